//! Noticing that a tracked process ended, and how.

use std::fmt;

use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};

use super::stat;

/// How a process ended, in the words an operator reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this status.
    Code(i32),
    /// A signal with this number killed it.
    Killed(i32),
    /// It was not our child (adopted after a daemon restart), so its status is not ours to read.
    Unknown,
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Exit::Code(code) => write!(f, "exited with status {code}"),
            Exit::Killed(number) => match Signal::try_from(number) {
                Ok(signal) => write!(f, "was killed by signal {number} ({signal})"),
                Err(_) => write!(f, "was killed by signal {number}"),
            },
            Exit::Unknown => write!(f, "exited (status unknown: not a child of this daemon)"),
        }
    }
}

/// Whether a tracked process still runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessState {
    /// It runs.
    Running,
    /// It ended.
    Exited(Exit),
}

/// Checks the process, reaping it when it is our exited child (a zombie looks alive to
/// `kill(pid, 0)` and holds its pid until reaped).
pub fn observe(pid: u32, start_time: u64) -> ProcessState {
    let Some(stat) = stat::read(pid).filter(|stat| stat.start_time == start_time) else {
        // Gone, or the pid now names a later process: ours ended either way.
        return ProcessState::Exited(Exit::Unknown);
    };
    if !stat.is_dead() {
        return ProcessState::Running;
    }
    // Only waited for once it is a zombie with the recorded start time, so the wait can never
    // reap some other child that reused the pid.
    let Some(pid) = super::signalable(pid) else {
        return ProcessState::Exited(Exit::Unknown);
    };
    match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::Exited(_, code)) => ProcessState::Exited(Exit::Code(code)),
        Ok(WaitStatus::Signaled(_, signal, _)) => ProcessState::Exited(Exit::Killed(signal as i32)),
        // ECHILD: an adopted process, whose status went to its new parent.
        _ => ProcessState::Exited(Exit::Unknown),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_read_like_an_operator_would_write_them() {
        assert_eq!(Exit::Code(3).to_string(), "exited with status 3");
        assert_eq!(Exit::Killed(9).to_string(), "was killed by signal 9 (SIGKILL)");
        assert_eq!(Exit::Killed(200).to_string(), "was killed by signal 200");
        assert!(Exit::Unknown.to_string().contains("status unknown"));
    }
}

//! Process utilities: start detached processes, recognise them across pid reuse, stop them.
//!
//! The daemon reuses them for the proxy process it supervises.

mod exit;
mod stat;
mod terminate;

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use crate::error::PlatformError;

pub use exit::{Exit, ProcessState, observe};
pub use terminate::terminate;
pub(crate) use terminate::terminate_all;

/// A started process, identified by pid and start time so a later process reusing the pid is
/// not mistaken for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpawnedProcess {
    /// The process, which leads its own process group.
    pub pid: u32,
    /// Field 22 of `/proc/<pid>/stat`, in clock ticks since boot.
    pub start_time: u64,
}

/// Starts `program` in its own process group, so it survives the daemon and the terminal's
/// Ctrl-C does not reach it; stdin is null and stdout and stderr are appended to `log`.
///
/// The caller must eventually [`observe`] or [`terminate`] the process: that is what reaps it.
pub fn spawn_detached(
    program: &Path,
    args: &[String],
    env: &BTreeMap<String, String>,
    cwd: Option<&Path>,
    log: &Path,
) -> Result<SpawnedProcess, PlatformError> {
    if let Some(dir) = log.parent() {
        fs::create_dir_all(dir).map_err(|source| PlatformError::CreateLogDir {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let open_log_error = |source| PlatformError::OpenLog {
        path: log.to_path_buf(),
        source,
    };
    let stdout = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(open_log_error)?;
    let stderr = stdout.try_clone().map_err(open_log_error)?;

    let mut command = Command::new(program);
    command
        .args(args)
        .envs(env)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0);
    if let Some(cwd) = cwd {
        command.current_dir(cwd);
    }
    let mut child = command.spawn().map_err(|source| PlatformError::Spawn {
        program: program.to_path_buf(),
        source,
    })?;
    let pid = child.id();
    // Dropping `child` neither kills nor reaps it: the process must outlive the daemon.
    match stat::read(pid) {
        Some(stat) => Ok(SpawnedProcess {
            pid,
            start_time: stat.start_time,
        }),
        None => {
            // Unidentifiable, it could never be adopted; the kill is best effort on a process
            // that apparently vanished already.
            let _ = child.kill();
            let _ = child.wait();
            Err(PlatformError::UnreadableStartTime { pid })
        }
    }
}

/// Whether the process still runs: false for zombies, for a pid now used by another process,
/// and for pids that cannot name another process (0, 1, the caller's own).
pub fn is_alive(pid: u32, start_time: u64) -> bool {
    signalable(pid).is_some() && stat::read(pid).is_some_and(|stat| stat.start_time == start_time && !stat.is_dead())
}

/// The calling process's pid and start time, for a daemon that records itself so it can be
/// [`terminate`]d from another process.
pub fn own_identity() -> Result<(u32, u64), PlatformError> {
    let pid = std::process::id();
    let stat = stat::read(pid).ok_or(PlatformError::UnreadableStartTime { pid })?;
    Ok((pid, stat.start_time))
}

/// A port on 127.0.0.1 that was free a moment ago (bound, read, closed).
pub fn free_port() -> Result<u16, PlatformError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|source| PlatformError::FreePort { source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| PlatformError::FreePort { source })?;
    Ok(addr.port())
}

/// Kills a process just spawned, group and all, and reaps it, for when it cannot be kept.
pub(crate) fn kill_spawned(process: SpawnedProcess) {
    let Some(pid) = signalable(process.pid) else {
        return;
    };
    // Best effort: the process is our child and just started, so both only fail if it is
    // already gone, which is the wanted outcome.
    let _ = killpg(pid, Signal::SIGKILL);
    let _ = waitpid(pid, None);
}

/// The pid as a signal target, unless it cannot be an instance: 0 and 1 address whole groups
/// or every process in `kill`, and the daemon never runs as its own instance. This keeps a
/// corrupt ledger record from signalling the wrong processes.
fn signalable(pid: u32) -> Option<Pid> {
    if pid <= 1 || pid == std::process::id() {
        return None;
    }
    i32::try_from(pid).ok().map(Pid::from_raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids_that_address_groups_or_the_daemon_are_never_signal_targets() {
        for pid in [0, 1, std::process::id(), u32::MAX] {
            assert_eq!(signalable(pid), None, "pid {pid}");
            assert!(!is_alive(pid, 0), "pid {pid}");
        }
    }

    #[test]
    fn own_identity_names_this_process() {
        let (pid, start_time) = own_identity().unwrap();

        assert_eq!(pid, std::process::id());
        assert_eq!(own_identity().unwrap(), (pid, start_time));
        assert!(start_time > 0);
    }

    #[test]
    fn free_port_is_a_bindable_loopback_port() {
        let port = free_port().unwrap();

        assert_ne!(port, 0);
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
    }
}

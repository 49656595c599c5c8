//! Graceful stop: SIGTERM to the process group, SIGKILL to what is left after the grace period.

use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use tokio::time::Instant;

use super::{SpawnedProcess, exit, is_alive, signalable, stat};
use crate::error::PlatformError;

/// How often a stopping process is checked.
const POLL_INTERVAL: Duration = Duration::from_millis(25);
/// How long SIGKILL gets before the process counts as unkillable.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// SIGTERM to the process's group, then SIGKILL to whatever still runs after `grace`;
/// `Ok` when it is already gone.
pub async fn terminate(pid: u32, start_time: u64, grace: Duration) -> Result<(), PlatformError> {
    terminate_all(&[SpawnedProcess { pid, start_time }], grace).await
}

/// [`terminate`] for several processes at once, sharing one grace period. Every process is
/// dealt with even when one fails; the first failure is returned.
pub(crate) async fn terminate_all(processes: &[SpawnedProcess], grace: Duration) -> Result<(), PlatformError> {
    let mut first_error = None;
    let mut pending = Vec::new();
    for &process in processes {
        if pid_now_names_another_process(process) {
            continue;
        }
        match send(process, Signal::SIGTERM) {
            Ok(()) => pending.push(process),
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    wait_until_gone(&mut pending, grace).await;

    pending.retain(|&process| match send(process, Signal::SIGKILL) {
        Ok(()) => true,
        Err(error) => {
            first_error.get_or_insert(error);
            false
        }
    });
    wait_until_gone(&mut pending, KILL_WAIT).await;
    if let Some(survivor) = pending.first() {
        first_error.get_or_insert(PlatformError::StillRunning {
            pid: survivor.pid,
            waited: KILL_WAIT,
        });
    }
    first_error.map_or(Ok(()), Err)
}

/// A live pid with another start time means ours ended and its group emptied (the kernel
/// reuses no pid still naming a group), so there is nothing left to signal.
fn pid_now_names_another_process(process: SpawnedProcess) -> bool {
    stat::read(process.pid).is_some_and(|stat| stat.start_time != process.start_time)
}

fn send(process: SpawnedProcess, signal: Signal) -> Result<(), PlatformError> {
    let pid = signalable(process.pid).ok_or(PlatformError::InvalidPid { pid: process.pid })?;
    let failed = |source| PlatformError::Signal {
        pid: process.pid,
        signal: signal.as_str(),
        source,
    };
    // The group takes along whatever the instance started, such as a shell's children.
    ignore_missing(killpg(pid, signal)).map_err(failed)?;
    // The process itself too, in case it moved to another group.
    if is_alive(process.pid, process.start_time) {
        ignore_missing(kill(pid, signal)).map_err(failed)?;
    }
    Ok(())
}

fn ignore_missing(result: nix::Result<()>) -> nix::Result<()> {
    match result {
        Err(Errno::ESRCH) => Ok(()),
        other => other,
    }
}

async fn wait_until_gone(pending: &mut Vec<SpawnedProcess>, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        pending.retain(|&process| !is_gone(process));
        let now = Instant::now();
        if pending.is_empty() || now >= deadline {
            return;
        }
        tokio::time::sleep(POLL_INTERVAL.min(deadline - now)).await;
    }
}

fn is_gone(process: SpawnedProcess) -> bool {
    // Reaps our own exited child: a zombie would keep counting as alive and as a group member.
    exit::observe(process.pid, process.start_time);
    if is_alive(process.pid, process.start_time) {
        return false;
    }
    let Some(group) = signalable(process.pid) else {
        return true;
    };
    match killpg(group, None) {
        Err(Errno::ESRCH) => true,
        // Zombies still count for `kill`; whether any member really runs takes a look at /proc.
        _ => !stat::group_has_live_member(group.as_raw()),
    }
}

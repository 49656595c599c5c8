//! One instance position of a revision: its port and log outlive the processes that fill it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;

use crate::model::loopback;
use crate::process::{self, ProcessState, SpawnedProcess};

/// Delay before restarting an instance after its first crash in a row.
const FIRST_RESTART_DELAY: Duration = Duration::from_millis(250);
/// Longest delay between restarts; an instance that ran this long is forgiven its crashes.
const MAX_RESTART_DELAY: Duration = Duration::from_secs(10);

/// An instance position and the latest process started for it.
#[derive(Debug)]
pub(super) struct Slot {
    pub(super) port: u16,
    pub(super) log_path: PathBuf,
    pub(super) process: SpawnedProcess,
    /// Set once `process` has ended.
    pub(super) exit: Option<SlotExit>,
    /// Restarts since this platform began supervising the slot.
    pub(super) restarts: u32,
    started_at: Instant,
    crashes_in_a_row: u32,
}

/// Why a slot's process is not running, and when supervision may start it again.
#[derive(Debug)]
pub(super) struct SlotExit {
    pub(super) reason: String,
    restart_at: Instant,
}

impl Slot {
    /// A slot whose process runs (just started or adopted).
    pub(super) fn running(port: u16, log_path: PathBuf, process: SpawnedProcess, now: Instant) -> Self {
        Self {
            port,
            log_path,
            process,
            exit: None,
            restarts: 0,
            started_at: now,
            crashes_in_a_row: 0,
        }
    }

    /// A recorded slot whose process died while no daemon watched it; due for restart now.
    pub(super) fn found_dead(
        port: u16,
        log_path: PathBuf,
        process: SpawnedProcess,
        reason: String,
        now: Instant,
    ) -> Self {
        let mut slot = Self::running(port, log_path, process, now);
        slot.exit = Some(SlotExit {
            reason,
            restart_at: now,
        });
        slot
    }

    pub(super) fn addr(&self) -> SocketAddr {
        loopback(self.port)
    }

    pub(super) fn is_running(&self) -> bool {
        self.exit.is_none()
    }

    /// Checks the process; when it has ended, records why and returns the reason.
    pub(super) fn notice_exit(&mut self, index: u32, now: Instant) -> Option<&str> {
        if self.exit.is_some() {
            return None;
        }
        let ProcessState::Exited(exit) = process::observe(self.process.pid, self.process.start_time) else {
            return None;
        };
        if now.duration_since(self.started_at) >= MAX_RESTART_DELAY {
            self.crashes_in_a_row = 0;
        }
        let reason = format!("instance {index} {exit}; log: {}", self.log_path.display());
        Some(&self.failed(reason, now).reason)
    }

    pub(super) fn restart_due(&self, now: Instant) -> bool {
        self.exit.as_ref().is_some_and(|exit| exit.restart_at <= now)
    }

    pub(super) fn restarted(&mut self, process: SpawnedProcess, now: Instant) {
        self.process = process;
        self.exit = None;
        self.started_at = now;
        self.restarts = self.restarts.saturating_add(1);
    }

    /// Records that the slot has no running process and backs off before the next restart.
    pub(super) fn failed(&mut self, reason: String, now: Instant) -> &SlotExit {
        self.crashes_in_a_row = self.crashes_in_a_row.saturating_add(1);
        self.exit.insert(SlotExit {
            reason,
            restart_at: now + restart_delay(self.crashes_in_a_row),
        })
    }
}

/// Exponential backoff: doubles from [`FIRST_RESTART_DELAY`] up to [`MAX_RESTART_DELAY`].
fn restart_delay(crashes_in_a_row: u32) -> Duration {
    let doublings = crashes_in_a_row.saturating_sub(1).min(16);
    FIRST_RESTART_DELAY
        .saturating_mul(1 << doublings)
        .min(MAX_RESTART_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_delay_doubles_up_to_the_cap() {
        let delays: Vec<_> = (1..=8).map(restart_delay).collect();

        assert_eq!(
            delays,
            [250, 500, 1000, 2000, 4000, 8000, 10_000, 10_000].map(Duration::from_millis)
        );
        assert_eq!(restart_delay(u32::MAX), MAX_RESTART_DELAY);
    }

    #[test]
    fn repeated_failures_push_the_restart_back() {
        let now = Instant::now();
        let process = SpawnedProcess { pid: 2, start_time: 1 };
        let mut slot = Slot::found_dead(40_000, PathBuf::from("0.log"), process, "gone".into(), now);
        assert!(slot.restart_due(now));

        slot.failed("could not start".into(), now);
        slot.failed("could not start".into(), now);

        assert!(!slot.restart_due(now + Duration::from_millis(499)));
        assert!(slot.restart_due(now + Duration::from_millis(500)));
        assert_eq!(slot.exit.as_ref().unwrap().reason, "could not start");
    }
}

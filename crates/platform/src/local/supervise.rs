//! The supervision task: notices exits and restarts stable instances with backoff.

use std::sync::Weak;
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};

use super::Shared;
use super::launch::{Placement, launch};
use super::revision::Revision;
use crate::ledger::Ledger;
use crate::model::{RestartPolicy, RevisionKey};

/// How often processes are checked.
const TICK: Duration = Duration::from_millis(500);

/// Runs until the platform is dropped.
pub(super) async fn supervise(shared: Weak<Shared>) {
    // No round right away: a caller about to stop everything (`sluice down`) should not see
    // dead stable instances restarted first.
    let mut ticks = tokio::time::interval_at(Instant::now() + TICK, TICK);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let now = Instant::now();
        for (key, revision) in shared.revisions().iter_mut() {
            if !revision.stopping {
                supervise_revision(shared.ledger.as_ref(), key, revision, now);
            }
        }
    }
}

fn supervise_revision(ledger: &dyn Ledger, key: &RevisionKey, revision: &mut Revision, now: Instant) {
    revision.notice_exits(key, now);
    if revision.policy != RestartPolicy::Always {
        return;
    }
    let Revision {
        template,
        policy,
        slots,
        ..
    } = revision;
    for (&index, slot) in slots.iter_mut().filter(|(_, slot)| slot.restart_due(now)) {
        let placement = Placement {
            key,
            index,
            port: slot.port,
            log_path: &slot.log_path,
            template,
            policy: *policy,
        };
        // Spawning happens under the lock, so a concurrent stop never misses a new process.
        match launch(ledger, &placement) {
            Ok(process) => {
                tracing::info!(revision = %key, index, pid = process.pid, "instance restarted");
                slot.restarted(process, now);
            }
            Err(error) => {
                let reason = format!("instance {index} could not be restarted: {error}");
                tracing::warn!(revision = %key, "{reason}");
                slot.failed(reason, now);
            }
        }
    }
}

//! Rebuilding the platform's view from the ledger after a daemon restart.

use std::collections::HashMap;

use tokio::time::Instant;

use super::revision::Revision;
use super::slot::Slot;
use crate::error::PlatformError;
use crate::ledger::Ledger;
use crate::model::RevisionKey;
use crate::process::{self, SpawnedProcess};

/// Adopts every recorded process that still runs; forgets the records of dead ones but keeps
/// their slots, so supervision restarts stable instances and candidates report the loss.
pub(super) fn adopt(ledger: &dyn Ledger, now: Instant) -> Result<HashMap<RevisionKey, Revision>, PlatformError> {
    let mut revisions: HashMap<RevisionKey, Revision> = HashMap::new();
    for (key, record) in ledger.load()? {
        let process = SpawnedProcess {
            pid: record.pid,
            start_time: record.start_time,
        };
        let slot = if process::is_alive(record.pid, record.start_time) {
            tracing::info!(revision = %key, index = record.index, pid = record.pid, "instance adopted");
            Slot::running(record.port, record.log_path, process, now)
        } else {
            ledger.forget(&key, record.index)?;
            let reason = format!(
                "instance {} (pid {}) was no longer running when the daemon started; log: {}",
                record.index,
                record.pid,
                record.log_path.display()
            );
            tracing::warn!(revision = %key, "{reason}");
            Slot::found_dead(record.port, record.log_path, process, reason, now)
        };
        revisions
            .entry(key)
            .or_insert_with(|| Revision::new(record.template, record.policy))
            .slots
            .insert(record.index, slot);
    }
    Ok(revisions)
}

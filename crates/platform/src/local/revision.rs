//! What the platform knows about one revision it runs.

use std::collections::BTreeMap;

use tokio::time::Instant;

use super::launch::Placement;
use super::slot::Slot;
use crate::error::LedgerError;
use crate::ledger::Ledger;
use crate::model::{Instance, ProcessTemplate, RestartPolicy, RevisionKey};
use crate::process::SpawnedProcess;

/// A revision's template, policy and instance slots.
#[derive(Debug)]
pub(super) struct Revision {
    /// Fixed by the first start (or by the adopted records): a revision never changes.
    pub(super) template: ProcessTemplate,
    pub(super) policy: RestartPolicy,
    pub(super) slots: BTreeMap<u32, Slot>,
    /// Set while a stop is under way or failed: supervision leaves the revision alone.
    pub(super) stopping: bool,
}

impl Revision {
    pub(super) fn new(template: ProcessTemplate, policy: RestartPolicy) -> Self {
        Self {
            template,
            policy,
            slots: BTreeMap::new(),
            stopping: false,
        }
    }

    /// Instance indices the template calls for that have no slot yet.
    pub(super) fn missing_indices(&self) -> Vec<u32> {
        (0..self.template.instances)
            .filter(|index| !self.slots.contains_key(index))
            .collect()
    }

    /// Notices processes that ended since the last look.
    pub(super) fn notice_exits(&mut self, key: &RevisionKey, now: Instant) {
        for (&index, slot) in &mut self.slots {
            if let Some(reason) = slot.notice_exit(index, now) {
                tracing::warn!(revision = %key, "{reason}");
            }
        }
    }

    pub(super) fn running_instances(&self) -> Vec<Instance> {
        self.slots
            .iter()
            .filter(|(_, slot)| slot.is_running())
            .map(|(&index, slot)| Instance {
                index,
                addr: slot.addr(),
                pid: slot.process.pid,
                log_path: slot.log_path.clone(),
            })
            .collect()
    }

    /// The latest process of every slot, running or not: an ended one may have left group
    /// members behind.
    pub(super) fn processes(&self) -> Vec<SpawnedProcess> {
        self.slots.values().map(|slot| slot.process).collect()
    }

    /// Writes every slot's record again, so the ledger carries the current policy.
    pub(super) fn record_all(&self, key: &RevisionKey, ledger: &dyn Ledger) -> Result<(), LedgerError> {
        for (&index, slot) in &self.slots {
            let placement = Placement {
                key,
                index,
                port: slot.port,
                log_path: &slot.log_path,
                template: &self.template,
                policy: self.policy,
            };
            ledger.record(key, &placement.record(slot.process))?;
        }
        Ok(())
    }
}

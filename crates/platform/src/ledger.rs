//! Where the platform records the processes it starts, so a restarted daemon finds them.

use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::error::LedgerError;
use crate::model::{InstanceRecord, RevisionKey};

/// Durable record of started processes, keyed by revision and instance index.
///
/// The daemon implements it on its SQLite store; [`MemoryLedger`] serves tests.
pub trait Ledger: Send + Sync + 'static {
    /// Inserts the record, replacing any earlier one for the same revision and index.
    fn record(&self, key: &RevisionKey, record: &InstanceRecord) -> Result<(), LedgerError>;
    /// Removes the record of that instance; removing a missing record is not an error.
    fn forget(&self, key: &RevisionKey, index: u32) -> Result<(), LedgerError>;
    /// Every record, in any order.
    fn load(&self) -> Result<Vec<(RevisionKey, InstanceRecord)>, LedgerError>;
}

/// A ledger that lives as long as the value: for tests and for daemons that do not persist.
#[derive(Debug, Default)]
pub struct MemoryLedger {
    records: Mutex<Vec<(RevisionKey, InstanceRecord)>>,
}

impl MemoryLedger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    fn records(&self) -> MutexGuard<'_, Vec<(RevisionKey, InstanceRecord)>> {
        // Every update is a single push, replace or retain, so a panicking holder cannot leave
        // the list half-changed.
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Ledger for MemoryLedger {
    fn record(&self, key: &RevisionKey, record: &InstanceRecord) -> Result<(), LedgerError> {
        let mut records = self.records();
        let existing = records
            .iter_mut()
            .find(|(known, known_record)| known == key && known_record.index == record.index);
        match existing {
            Some((_, slot)) => *slot = record.clone(),
            None => records.push((key.clone(), record.clone())),
        }
        Ok(())
    }

    fn forget(&self, key: &RevisionKey, index: u32) -> Result<(), LedgerError> {
        self.records()
            .retain(|(known, record)| !(known == key && record.index == index));
        Ok(())
    }

    fn load(&self) -> Result<Vec<(RevisionKey, InstanceRecord)>, LedgerError> {
        Ok(self.records().clone())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::model::{ProcessTemplate, RestartPolicy};

    fn record(index: u32, pid: u32) -> InstanceRecord {
        InstanceRecord {
            index,
            pid,
            start_time: 1,
            port: 40_000,
            log_path: PathBuf::from("/tmp/0.log"),
            template: ProcessTemplate {
                command: vec!["server".to_owned()],
                env: BTreeMap::new(),
                working_dir: None,
                instances: 2,
                readiness_path: "/".to_owned(),
                readiness_timeout: Duration::from_secs(1),
            },
            policy: RestartPolicy::Always,
        }
    }

    #[test]
    fn recording_an_instance_again_replaces_its_record() {
        let ledger = MemoryLedger::new();
        let web = RevisionKey::new("web", "v1");
        let api = RevisionKey::new("api", "v1");

        ledger.record(&web, &record(0, 100)).unwrap();
        ledger.record(&api, &record(0, 200)).unwrap();
        ledger.record(&web, &record(0, 101)).unwrap();

        let loaded = ledger.load().unwrap();
        assert_eq!(
            loaded,
            vec![(web.clone(), record(0, 101)), (api.clone(), record(0, 200))]
        );
    }

    #[test]
    fn forgetting_removes_only_that_instance_and_is_idempotent() {
        let ledger = MemoryLedger::new();
        let web = RevisionKey::new("web", "v1");
        ledger.record(&web, &record(0, 100)).unwrap();
        ledger.record(&web, &record(1, 101)).unwrap();

        ledger.forget(&web, 0).unwrap();
        ledger.forget(&web, 0).unwrap();

        assert_eq!(ledger.load().unwrap(), vec![(web, record(1, 101))]);
    }
}

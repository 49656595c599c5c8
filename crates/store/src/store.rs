//! The store itself.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use sluice_engine::{Action, Command, Rollout, Severity};
use sluice_platform::{InstanceRecord, Ledger, LedgerError, RevisionKey};
use sluice_spec::{RevisionRef, RevisionSpec, ServiceSpec};
use thiserror::Error;

use crate::migrations::MIGRATIONS;

/// Why the store could not do what was asked.
#[derive(Debug, Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored document did not decode (written by a newer Sluice, or damaged).
    #[error("store: cannot decode the stored {what}: {source}")]
    Decode {
        what: &'static str,
        source: serde_json::Error,
    },
    /// The database's schema is newer than this binary knows.
    #[error("store: the database has schema version {found}, newer than this Sluice's {known}; upgrade Sluice")]
    TooNew { found: i64, known: usize },
}

/// The spec a service was last applied with.
#[derive(Clone, Debug)]
pub struct AppliedSpec {
    /// The spec as the user wrote it.
    pub yaml: String,
    /// The parsed spec.
    pub spec: ServiceSpec,
    /// Its revision.
    pub revision: RevisionRef,
    /// When it was applied.
    pub applied_at: Timestamp,
}

/// One line of a rollout's history as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredEvent {
    /// Position in the history (increasing).
    pub id: i64,
    /// When it happened.
    pub at: Timestamp,
    /// How serious it is.
    pub severity: Severity,
    /// What happened.
    pub message: String,
}

/// A process the daemon supervises outside the platform (the proxy), found again after a restart.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProcessRecord {
    /// Its pid.
    pub pid: u32,
    /// Its start time as the kernel reports it, to recognise a reused pid.
    pub start_time: u64,
    /// Anything else the supervisor wants back (addresses, paths).
    pub info: serde_json::Value,
}

/// The embedded store. Calls are short synchronous SQLite statements behind one connection.
pub struct Store {
    conn: Mutex<Connection>,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and migrates it to the current schema.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let mut conn = Connection::open(path)?;
        // WAL keeps readers (the API) off the writer's back; NORMAL is durable across a process crash, which is
        // the failure the daemon is built to survive.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&mut conn)?;
        Ok(Store { conn: Mutex::new(conn) })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (transactions roll back), so the
        // connection is still good.
        self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The schema version the database is at.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self.conn().query_row("PRAGMA user_version", [], |row| row.get(0))?)
    }

    /// Records `spec` as the service's desired state, and its revision among the service's revisions.
    pub fn apply_spec(&self, yaml: &str, spec: &ServiceSpec, now: Timestamp) -> Result<(), StoreError> {
        let revision = spec.revision();
        let spec_json = encode(spec)?;
        let revision_json = encode(&spec.spec.revision)?;
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO specs (service, yaml, spec_json, revision, checksum, applied_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (service) DO UPDATE SET yaml = ?2, spec_json = ?3, revision = ?4, checksum = ?5, applied_at = ?6",
            params![spec.metadata.name, yaml, spec_json, revision.name, revision.checksum, now.to_string()],
        )?;
        tx.execute(
            "INSERT OR IGNORE INTO revisions (service, name, checksum, spec_json, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![spec.metadata.name, revision.name, revision.checksum, revision_json, now.to_string()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The spec the service was last applied with.
    pub fn applied(&self, service: &str) -> Result<Option<AppliedSpec>, StoreError> {
        let row = self
            .conn()
            .query_row(
                "SELECT yaml, spec_json, revision, checksum, applied_at FROM specs WHERE service = ?1",
                [service],
                |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, String>(3)?,
                        row.get::<_, String>(4)?,
                    ))
                },
            )
            .optional()?;
        let Some((yaml, spec_json, name, checksum, applied_at)) = row else {
            return Ok(None);
        };
        Ok(Some(AppliedSpec {
            yaml,
            spec: decode("spec", &spec_json)?,
            revision: RevisionRef { name, checksum },
            applied_at: applied_at.parse().unwrap_or(Timestamp::UNIX_EPOCH),
        }))
    }

    /// Every service that has been applied, by name.
    pub fn services(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut statement = conn.prepare("SELECT service FROM specs ORDER BY service")?;
        let names = statement
            .query_map([], |row| row.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(names)
    }

    /// How a revision of the service runs, as it was applied.
    pub fn revision(&self, service: &str, revision: &RevisionRef) -> Result<Option<RevisionSpec>, StoreError> {
        let json: Option<String> = self
            .conn()
            .query_row(
                "SELECT spec_json FROM revisions WHERE service = ?1 AND name = ?2 AND checksum = ?3",
                params![service, revision.name, revision.checksum],
                |row| row.get(0),
            )
            .optional()?;
        json.map(|json| decode("revision", &json)).transpose()
    }

    /// The checksum a revision name was first applied with, to refuse reusing a name for different fields.
    pub fn checksum_of(&self, service: &str, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT checksum FROM revisions WHERE service = ?1 AND name = ?2 LIMIT 1",
                params![service, name],
                |row| row.get(0),
            )
            .optional()?)
    }

    /// The rollout's state and the actions of its last decision that were not confirmed done.
    pub fn rollout(&self, service: &str) -> Result<Option<(Rollout, Vec<Action>)>, StoreError> {
        let row: Option<(String, String)> = self
            .conn()
            .query_row(
                "SELECT state_json, pending_json FROM rollouts WHERE service = ?1",
                [service],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        let Some((state, pending)) = row else { return Ok(None) };
        Ok(Some((
            decode("rollout state", &state)?,
            decode("pending actions", &pending)?,
        )))
    }

    /// Persists a decision before anything acts on it: the new state, its actions as pending, the events it
    /// records, and the removal of the commands it consumed (ids up to `commands_through`), in one transaction.
    pub fn save_decision(
        &self,
        rollout: &Rollout,
        actions: &[Action],
        commands_through: Option<i64>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let state = encode(rollout)?;
        let pending: Vec<&Action> = actions.iter().filter(|a| !matches!(a, Action::Record(_))).collect();
        let pending = encode(&pending)?;
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO rollouts (service, state_json, pending_json, generation, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (service) DO UPDATE SET state_json = ?2, pending_json = ?3, generation = ?4, updated_at = ?5",
            params![rollout.service, state, pending, rollout.generation as i64, now.to_string()],
        )?;
        for action in actions {
            if let Action::Record(event) = action {
                tx.execute(
                    "INSERT INTO events (service, at, severity, message) VALUES (?1, ?2, ?3, ?4)",
                    params![
                        rollout.service,
                        event.at.to_string(),
                        encode(&event.severity)?,
                        event.message
                    ],
                )?;
            }
        }
        if let Some(last) = commands_through {
            tx.execute(
                "DELETE FROM commands WHERE service = ?1 AND id <= ?2",
                params![rollout.service, last],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Marks the pending actions of generation `generation` as carried out.
    pub fn clear_pending(&self, service: &str, generation: u64) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE rollouts SET pending_json = '[]' WHERE service = ?1 AND generation = ?2",
            params![service, generation as i64],
        )?;
        Ok(())
    }

    /// Appends an event that no decision produced (the controller's own observations).
    pub fn record_event(
        &self,
        service: &str,
        at: Timestamp,
        severity: Severity,
        message: &str,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO events (service, at, severity, message) VALUES (?1, ?2, ?3, ?4)",
            params![service, at.to_string(), encode(&severity)?, message],
        )?;
        Ok(())
    }

    /// The service's events after `after_id`, oldest first, at most `limit`.
    pub fn events(&self, service: &str, after_id: i64, limit: u32) -> Result<Vec<StoredEvent>, StoreError> {
        let conn = self.conn();
        let mut statement = conn.prepare(
            "SELECT id, at, severity, message FROM events WHERE service = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
        )?;
        let rows = statement
            .query_map(params![service, after_id, limit], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(id, at, severity, message)| {
                Ok(StoredEvent {
                    id,
                    at: at.parse().unwrap_or(Timestamp::UNIX_EPOCH),
                    severity: decode("event severity", &severity)?,
                    message,
                })
            })
            .collect()
    }

    /// The last `limit` events of the service, oldest first.
    pub fn recent_events(&self, service: &str, limit: u32) -> Result<Vec<StoredEvent>, StoreError> {
        let first: i64 = self.conn().query_row(
            "SELECT COALESCE(MIN(id), 1) FROM (SELECT id FROM events WHERE service = ?1 ORDER BY id DESC LIMIT ?2)",
            params![service, limit],
            |row| row.get(0),
        )?;
        self.events(service, first - 1, limit)
    }

    /// Queues an operator command for the service's next decision.
    pub fn queue_command(&self, service: &str, command: Command, now: Timestamp) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO commands (service, command, queued_at) VALUES (?1, ?2, ?3)",
            params![service, encode(&command)?, now.to_string()],
        )?;
        Ok(())
    }

    /// The service's queued commands in arrival order, with their ids.
    pub fn queued_commands(&self, service: &str) -> Result<Vec<(i64, Command)>, StoreError> {
        let conn = self.conn();
        let mut statement = conn.prepare("SELECT id, command FROM commands WHERE service = ?1 ORDER BY id")?;
        let rows = statement
            .query_map([service], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(id, json)| Ok((id, decode("command", &json)?)))
            .collect()
    }

    /// Keeps the latest report of a kind (`isolation`, `prePromotion`, `shadow`) for the service, replacing the
    /// previous one.
    pub fn save_report<T: Serialize>(
        &self,
        service: &str,
        kind: &str,
        report: &T,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO reports (service, kind, report_json, at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (service, kind) DO UPDATE SET report_json = ?3, at = ?4",
            params![service, kind, encode(report)?, now.to_string()],
        )?;
        Ok(())
    }

    /// The service's latest reports by kind, as JSON.
    pub fn reports(&self, service: &str) -> Result<BTreeMap<String, serde_json::Value>, StoreError> {
        let conn = self.conn();
        let mut statement = conn.prepare("SELECT kind, report_json FROM reports WHERE service = ?1 ORDER BY kind")?;
        let rows = statement
            .query_map([service], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(kind, json)| Ok((kind, decode("report", &json)?)))
            .collect()
    }

    /// Remembers a supervised process under `name`.
    pub fn save_process(&self, name: &str, record: &ProcessRecord) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO processes (name, pid, start_time, info_json) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (name) DO UPDATE SET pid = ?2, start_time = ?3, info_json = ?4",
            params![name, record.pid, record.start_time as i64, encode(&record.info)?],
        )?;
        Ok(())
    }

    /// The supervised process recorded under `name`.
    pub fn process(&self, name: &str) -> Result<Option<ProcessRecord>, StoreError> {
        let row: Option<(u32, i64, String)> = self
            .conn()
            .query_row(
                "SELECT pid, start_time, info_json FROM processes WHERE name = ?1",
                [name],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()?;
        row.map(|(pid, start_time, info)| {
            Ok(ProcessRecord {
                pid,
                start_time: start_time as u64,
                info: decode("process record", &info)?,
            })
        })
        .transpose()
    }

    /// Forgets the supervised process recorded under `name`.
    pub fn forget_process(&self, name: &str) -> Result<(), StoreError> {
        self.conn().execute("DELETE FROM processes WHERE name = ?1", [name])?;
        Ok(())
    }
}

/// The platform records the instances it starts here, so a restarted daemon adopts them.
impl Ledger for Store {
    fn record(&self, key: &RevisionKey, record: &InstanceRecord) -> Result<(), LedgerError> {
        let json = encode(record).map_err(ledger_error)?;
        self.conn()
            .execute(
                "INSERT INTO instances (service, revision, idx, record_json) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (service, revision, idx) DO UPDATE SET record_json = ?4",
                params![key.service, key.revision, record.index, json],
            )
            .map_err(|e| ledger_error(e.into()))?;
        Ok(())
    }

    fn forget(&self, key: &RevisionKey, index: u32) -> Result<(), LedgerError> {
        self.conn()
            .execute(
                "DELETE FROM instances WHERE service = ?1 AND revision = ?2 AND idx = ?3",
                params![key.service, key.revision, index],
            )
            .map_err(|e| ledger_error(e.into()))?;
        Ok(())
    }

    fn load(&self) -> Result<Vec<(RevisionKey, InstanceRecord)>, LedgerError> {
        let conn = self.conn();
        let rows = (|| -> Result<Vec<(String, String, String)>, rusqlite::Error> {
            let mut statement =
                conn.prepare("SELECT service, revision, record_json FROM instances ORDER BY service, revision, idx")?;
            let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
            rows.collect()
        })()
        .map_err(|e| ledger_error(e.into()))?;
        rows.into_iter()
            .map(|(service, revision, json)| {
                let record = decode("instance record", &json).map_err(ledger_error)?;
                Ok((RevisionKey { service, revision }, record))
            })
            .collect()
    }
}

fn ledger_error(error: StoreError) -> LedgerError {
    LedgerError::new("sluice store", error)
}

fn encode<T: Serialize + ?Sized>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|source| StoreError::Decode {
        what: "value to store",
        source,
    })
}

fn decode<T: for<'de> Deserialize<'de>>(what: &'static str, json: &str) -> Result<T, StoreError> {
    serde_json::from_str(json).map_err(|source| StoreError::Decode { what, source })
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if version as usize > MIGRATIONS.len() {
        return Err(StoreError::TooNew {
            found: version,
            known: MIGRATIONS.len(),
        });
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive)?;
        tx.execute_batch(migration)?;
        tx.pragma_update(None, "user_version", (index + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

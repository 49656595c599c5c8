//! Starting one instance process and recording it before anything else can go wrong.

use std::path::{Path, PathBuf};

use crate::error::PlatformError;
use crate::ledger::Ledger;
use crate::model::{InstanceRecord, ProcessTemplate, RestartPolicy, RevisionKey};
use crate::process::{self, SpawnedProcess};

/// `<logs_dir>/<service>/<revision>/<index>.log`.
pub(super) fn log_path(logs_dir: &Path, key: &RevisionKey, index: u32) -> PathBuf {
    logs_dir
        .join(&key.service)
        .join(&key.revision)
        .join(format!("{index}.log"))
}

/// Where and how one instance runs.
pub(super) struct Placement<'a> {
    pub(super) key: &'a RevisionKey,
    pub(super) index: u32,
    pub(super) port: u16,
    pub(super) log_path: &'a Path,
    pub(super) template: &'a ProcessTemplate,
    pub(super) policy: RestartPolicy,
}

impl Placement<'_> {
    /// What the ledger keeps about `process` filling this place.
    pub(super) fn record(&self, process: SpawnedProcess) -> InstanceRecord {
        InstanceRecord {
            index: self.index,
            pid: process.pid,
            start_time: process.start_time,
            port: self.port,
            log_path: self.log_path.to_path_buf(),
            template: self.template.clone(),
            policy: self.policy,
        }
    }
}

/// Spawns the instance and records it in the ledger right away.
pub(super) fn launch(ledger: &dyn Ledger, placement: &Placement<'_>) -> Result<SpawnedProcess, PlatformError> {
    let template = placement.template;
    let (program, args) = template.command_for(placement.port);
    let spawned = process::spawn_detached(
        Path::new(&program),
        &args,
        &template.env_for(placement.port),
        template.working_dir.as_deref(),
        placement.log_path,
    )?;
    if let Err(error) = ledger.record(placement.key, &placement.record(spawned)) {
        // An unrecorded process would be invisible to a restarted daemon and run forever.
        process::kill_spawned(spawned);
        return Err(error.into());
    }
    tracing::info!(
        revision = %placement.key,
        index = placement.index,
        pid = spawned.pid,
        port = placement.port,
        "instance started"
    );
    Ok(spawned)
}

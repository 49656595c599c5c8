//! The embedded default platform: each instance is a local process on a loopback port.

mod adopt;
mod health;
mod launch;
mod revision;
mod slot;
mod supervise;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::task::AbortHandle;
use tokio::time::Instant;

use self::health::{SlotHealth, classify};
use self::launch::{Placement, launch, log_path};
use self::revision::Revision;
use self::slot::Slot;
use crate::error::PlatformError;
use crate::ledger::Ledger;
use crate::model::{Instance, ProcessTemplate, RestartPolicy, RevisionHealth, RevisionKey};
use crate::platform::Platform;
use crate::probe::Prober;
use crate::process::{self, SpawnedProcess};

/// Runs revisions as local processes that outlive the daemon and are adopted by the next one.
///
/// An instance that exits keeps its slot (port and log): under `Always` supervision restarts
/// it, under `Never` it stays failed, and `start` does not revive it, until the revision is
/// stopped. Dropping the platform ends supervision but leaves the processes running;
/// [`Platform::stop`] or [`LocalPlatform::stop_all`] ends them.
pub struct LocalPlatform {
    shared: Arc<Shared>,
    prober: Prober,
    supervision: AbortHandle,
}

impl fmt::Debug for LocalPlatform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalPlatform")
            .field("logs_dir", &self.shared.logs_dir)
            .finish_non_exhaustive()
    }
}

/// State the supervision task shares with the platform's operations.
struct Shared {
    logs_dir: PathBuf,
    ledger: Arc<dyn Ledger>,
    revisions: Mutex<HashMap<RevisionKey, Revision>>,
}

impl Shared {
    fn revisions(&self) -> MutexGuard<'_, HashMap<RevisionKey, Revision>> {
        // Operations change the map under the lock without panicking in between, so a panic
        // elsewhere must not wedge the daemon.
        self.revisions.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A slot as health sees it, copied out so the probes run without the lock.
struct SlotView {
    addr: SocketAddr,
    exit_reason: Option<String>,
    restarts: u32,
}

impl SlotView {
    fn of(slot: &Slot) -> Self {
        Self {
            addr: slot.addr(),
            exit_reason: slot.exit.as_ref().map(|exit| exit.reason.clone()),
            restarts: slot.restarts,
        }
    }
}

impl LocalPlatform {
    /// `logs_dir`: each instance writes stdout and stderr (appended) to
    /// `<logs_dir>/<service>/<revision>/<index>.log`.
    ///
    /// Adopts every recorded process that is still alive and forgets dead ones (supervision
    /// restarts those of stable revisions), then starts supervising: every ~500 ms exits are
    /// noticed and `Always` instances restarted on the same port, with exponential backoff
    /// capped at 10 s. Must be called within a Tokio runtime.
    pub async fn new(logs_dir: PathBuf, ledger: Arc<dyn Ledger>) -> Result<Self, PlatformError> {
        let revisions = adopt::adopt(ledger.as_ref(), Instant::now())?;
        let prober = Prober::new()?;
        let shared = Arc::new(Shared {
            logs_dir,
            ledger,
            revisions: Mutex::new(revisions),
        });
        let supervision = tokio::spawn(supervise::supervise(Arc::downgrade(&shared))).abort_handle();
        Ok(Self {
            shared,
            prober,
            supervision,
        })
    }

    /// Stops every recorded instance of every revision (for `sluice down`).
    pub async fn stop_all(&self, grace: Duration) -> Result<(), PlatformError> {
        let keys = self.shared.revisions().keys().cloned().collect();
        self.stop_revisions(keys, grace).await
    }

    /// Stops the revisions together, so they share one grace period.
    async fn stop_revisions(&self, keys: Vec<RevisionKey>, grace: Duration) -> Result<(), PlatformError> {
        let mut processes: Vec<SpawnedProcess> = Vec::new();
        {
            let mut revisions = self.shared.revisions();
            for key in &keys {
                if let Some(revision) = revisions.get_mut(key) {
                    revision.stopping = true;
                    processes.extend(revision.processes());
                }
            }
        }
        // On failure the revisions stay marked as stopping, so repeating the stop finishes it.
        process::terminate_all(&processes, grace).await?;

        let mut revisions = self.shared.revisions();
        for key in &keys {
            let Some(revision) = revisions.get(key) else {
                continue;
            };
            for &index in revision.slots.keys() {
                self.shared.ledger.forget(key, index)?;
            }
            revisions.remove(key);
            tracing::info!(revision = %key, "revision stopped");
        }
        Ok(())
    }

    /// Starts the slots `revision` is missing; stops at the first failure.
    fn start_missing(&self, key: &RevisionKey, revision: &mut Revision) -> Result<(), PlatformError> {
        let now = Instant::now();
        for index in revision.missing_indices() {
            let port = process::free_port()?;
            let log_path = log_path(&self.shared.logs_dir, key, index);
            let placement = Placement {
                key,
                index,
                port,
                log_path: &log_path,
                template: &revision.template,
                policy: revision.policy,
            };
            let process = launch(self.shared.ledger.as_ref(), &placement)?;
            revision
                .slots
                .insert(index, Slot::running(port, log_path, process, now));
        }
        Ok(())
    }
}

impl Drop for LocalPlatform {
    fn drop(&mut self) {
        // The processes keep serving users; only their supervision ends with the platform.
        self.supervision.abort();
    }
}

impl Platform for LocalPlatform {
    async fn start(
        &self,
        key: &RevisionKey,
        template: &ProcessTemplate,
        policy: RestartPolicy,
    ) -> Result<Vec<Instance>, PlatformError> {
        key.check()?;
        template.check(key)?;
        let mut revisions = self.shared.revisions();
        let revision = revisions
            .entry(key.clone())
            .or_insert_with(|| Revision::new(template.clone(), policy));
        if revision.stopping {
            return Err(PlatformError::Stopping { key: key.clone() });
        }
        if revision.policy != policy {
            revision.policy = policy;
            revision.record_all(key, self.shared.ledger.as_ref())?;
        }
        let started = self.start_missing(key, revision);
        let instances = revision.running_instances();
        if started.is_err() && revision.slots.is_empty() {
            // Nothing runs and nothing is recorded: the revision is as unknown as before.
            revisions.remove(key);
        }
        started.map(|()| instances)
    }

    async fn health(&self, key: &RevisionKey) -> RevisionHealth {
        let (policy, of, readiness_path, readiness_timeout, views) = {
            let mut revisions = self.shared.revisions();
            let Some(revision) = revisions.get_mut(key) else {
                return RevisionHealth::NotRunning;
            };
            revision.notice_exits(key, Instant::now());
            let views: Vec<SlotView> = revision.slots.values().map(SlotView::of).collect();
            let template = &revision.template;
            (
                revision.policy,
                template.instances,
                template.readiness_path.clone(),
                template.readiness_timeout,
                views,
            )
        };
        let running: Vec<SocketAddr> = views
            .iter()
            .filter(|view| view.exit_reason.is_none())
            .map(|view| view.addr)
            .collect();
        let mut answers = self
            .prober
            .probe_all(&running, &readiness_path, readiness_timeout)
            .await
            .into_iter();
        let slots: Vec<SlotHealth> = views
            .into_iter()
            .map(|view| {
                // `answers` follows the running slots, in order.
                let ready = view.exit_reason.is_none() && answers.next() == Some(true);
                SlotHealth {
                    ready,
                    exit_reason: view.exit_reason,
                    restarts: view.restarts,
                }
            })
            .collect();
        classify(policy, of, &slots)
    }

    fn instances(&self, key: &RevisionKey) -> Vec<Instance> {
        let mut revisions = self.shared.revisions();
        let Some(revision) = revisions.get_mut(key) else {
            return Vec::new();
        };
        revision.notice_exits(key, Instant::now());
        revision.running_instances()
    }

    fn set_policy(&self, key: &RevisionKey, policy: RestartPolicy) {
        let mut revisions = self.shared.revisions();
        let Some(revision) = revisions.get_mut(key) else {
            return;
        };
        if revision.policy == policy {
            return;
        }
        revision.policy = policy;
        if let Err(error) = revision.record_all(key, self.shared.ledger.as_ref()) {
            // Supervision already follows the new policy; only a daemon restart before the
            // next successful write would see the old one.
            tracing::warn!(revision = %key, ?policy, "cannot record the new restart policy: {error}");
        }
    }

    async fn stop(&self, key: &RevisionKey, grace: Duration) -> Result<(), PlatformError> {
        self.stop_revisions(vec![key.clone()], grace).await
    }
}

//! The interface the daemon drives, whatever actually runs the instances.

use std::future::Future;
use std::time::Duration;

use crate::error::PlatformError;
use crate::model::{Instance, ProcessTemplate, RestartPolicy, RevisionHealth, RevisionKey};

/// Runs revisions' instances. Every operation is idempotent, so the daemon may repeat any of
/// them after a crash.
pub trait Platform: Send + Sync + 'static {
    /// Starts the revision's instances that are not running (adopted ones count) and returns
    /// the running ones.
    fn start(
        &self,
        key: &RevisionKey,
        template: &ProcessTemplate,
        policy: RestartPolicy,
    ) -> impl Future<Output = Result<Vec<Instance>, PlatformError>> + Send;

    /// Probes readiness now (each instance `GET http://addr{readiness_path}`, within the
    /// template's readiness timeout) and reports.
    fn health(&self, key: &RevisionKey) -> impl Future<Output = RevisionHealth> + Send;

    /// The revision's instances whose process runs now.
    fn instances(&self, key: &RevisionKey) -> Vec<Instance>;

    /// Changes the restart policy (a candidate promoted to stable becomes `Always`).
    fn set_policy(&self, key: &RevisionKey, policy: RestartPolicy);

    /// Graceful stop: SIGTERM to each instance's process group, SIGKILL after `grace`.
    /// Stopping a stopped revision is `Ok`.
    fn stop(&self, key: &RevisionKey, grace: Duration) -> impl Future<Output = Result<(), PlatformError>> + Send;
}

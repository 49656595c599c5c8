//! Instances that exit: candidates report it, stable revisions restart them.

use std::sync::Arc;
use std::time::Duration;

use sluice_platform::{
    InstanceRecord, Ledger, LedgerError, LocalPlatform, Platform, PlatformError, RestartPolicy, RevisionHealth,
    RevisionKey,
};
use tempfile::TempDir;
use tokio::time::Instant;

use crate::harness::{Harness, get, process_with_marker_exists};

/// Crashes with status 3 the first time, serves HTTP from then on.
const CRASHES_ONCE: &str =
    "if [ -e crashed-once ]; then exec python3 -m http.server {port} --bind 127.0.0.1; fi; touch crashed-once; exit 3";

fn failed(health: &RevisionHealth) -> bool {
    matches!(health, RevisionHealth::Failed { .. })
}

#[tokio::test]
async fn a_candidate_instance_that_exits_fails_the_revision_with_its_status() {
    let h = Harness::new().await;
    let key = RevisionKey::new("web", "v2");
    let started = Instant::now();

    h.platform()
        .start(&key, &h.shell("exit 3"), RestartPolicy::Never)
        .await
        .unwrap();
    let seen = h.wait_for(&key, failed).await;

    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    let log_path = h.logs.path().join("web/v2/0.log");
    let expected = format!("instance 0 exited with status 3; log: {}", log_path.display());
    assert_eq!(seen.last(), Some(&RevisionHealth::Failed { reason: expected }));
}

#[tokio::test]
async fn a_failed_candidate_stays_failed_and_is_not_restarted() {
    let h = Harness::new().await;
    let key = RevisionKey::new("web", "v2");
    h.platform()
        .start(&key, &h.shell("exit 3"), RestartPolicy::Never)
        .await
        .unwrap();
    h.wait_for(&key, failed).await;
    let record = h.record(&key);

    // Long enough for a few supervision rounds.
    tokio::time::sleep(Duration::from_millis(1200)).await;

    assert!(failed(&h.platform().health(&key).await));
    assert!(h.platform().instances(&key).is_empty());
    assert_eq!(h.record(&key).pid, record.pid);
    h.platform().stop(&key, Duration::from_secs(1)).await.unwrap();
    assert_eq!(h.platform().health(&key).await, RevisionHealth::NotRunning);
}

#[tokio::test]
async fn a_candidate_killed_by_a_signal_says_which() {
    let h = Harness::new().await;
    let key = RevisionKey::new("web", "v2");

    h.platform()
        .start(&key, &h.shell("kill -9 $$"), RestartPolicy::Never)
        .await
        .unwrap();
    let seen = h.wait_for(&key, failed).await;

    let Some(RevisionHealth::Failed { reason }) = seen.last() else {
        unreachable!("wait_for returns once failed");
    };
    assert!(
        reason.starts_with("instance 0 was killed by signal 9 (SIGKILL); log: "),
        "{reason}"
    );
}

#[tokio::test]
async fn a_stable_instance_that_crashes_is_restarted_on_the_same_port() {
    let h = Harness::new().await;
    let key = RevisionKey::new("web", "v1");
    let first = h
        .platform()
        .start(&key, &h.shell(CRASHES_ONCE), RestartPolicy::Always)
        .await
        .unwrap()
        .remove(0);

    let seen = h.wait_for(&key, |health| *health == RevisionHealth::Ready).await;

    assert!(
        seen.iter()
            .any(|health| matches!(health, RevisionHealth::Degraded { ready: 0, of: 1, .. })),
        "{seen:?}"
    );
    let restarted = h.platform().instances(&key).remove(0);
    assert_eq!(restarted.addr, first.addr);
    assert_ne!(restarted.pid, first.pid);
    assert_eq!(h.record(&key).pid, restarted.pid);
    assert_eq!(get(restarted.addr, "/ready.txt").await, Some((200, "ok".to_owned())));
}

#[tokio::test]
async fn promoting_a_failed_candidate_restarts_it_and_records_the_policy() {
    let h = Harness::new().await;
    let key = RevisionKey::new("web", "v2");
    h.platform()
        .start(&key, &h.shell(CRASHES_ONCE), RestartPolicy::Never)
        .await
        .unwrap();
    h.wait_for(&key, failed).await;

    h.platform().set_policy(&key, RestartPolicy::Always);

    assert_eq!(h.record(&key).policy, RestartPolicy::Always);
    h.wait_for(&key, |health| *health == RevisionHealth::Ready).await;
}

/// A ledger whose storage refuses writes.
struct ReadOnlyLedger;

impl Ledger for ReadOnlyLedger {
    fn record(&self, _: &RevisionKey, _: &InstanceRecord) -> Result<(), LedgerError> {
        Err(LedgerError::new("recording an instance", "the database is read-only"))
    }

    fn forget(&self, _: &RevisionKey, _: u32) -> Result<(), LedgerError> {
        Ok(())
    }

    fn load(&self) -> Result<Vec<(RevisionKey, InstanceRecord)>, LedgerError> {
        Ok(Vec::new())
    }
}

#[tokio::test]
async fn an_instance_the_ledger_cannot_record_is_killed_and_reported() {
    let logs = TempDir::new().unwrap();
    let platform = LocalPlatform::new(logs.path().to_path_buf(), Arc::new(ReadOnlyLedger))
        .await
        .unwrap();
    let h = Harness::new().await;
    let key = RevisionKey::new("web", "v1");
    let marker = format!("30.{}", std::process::id());
    h.kill_on_drop_marked(&marker);
    let template = h.shell(&format!("exec sleep {marker}"));

    let error = platform
        .start(&key, &template, RestartPolicy::Always)
        .await
        .unwrap_err();

    assert!(matches!(error, PlatformError::Ledger(_)), "{error:?}");
    assert_eq!(
        error.to_string(),
        "process ledger: recording an instance: the database is read-only"
    );
    assert!(!process_with_marker_exists(&marker));
    assert_eq!(platform.health(&key).await, RevisionHealth::NotRunning);
}

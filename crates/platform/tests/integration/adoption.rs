//! A daemon killed and started again finds its processes through the ledger.

use std::time::Duration;

use sluice_platform::process::{self, SpawnedProcess};
use sluice_platform::{InstanceRecord, Ledger, Platform, RestartPolicy, RevisionHealth, RevisionKey};

use crate::harness::{Harness, get};

#[tokio::test]
async fn a_restarted_daemon_adopts_running_instances_instead_of_starting_new_ones() {
    let mut h = Harness::new().await;
    let key = RevisionKey::new("web", "v1");
    let template = h.http_server(2);
    let instances = h
        .platform()
        .start(&key, &template, RestartPolicy::Always)
        .await
        .unwrap();
    h.wait_for(&key, |health| *health == RevisionHealth::Ready).await;
    let records = h.records();

    h.restart_daemon().await;

    for (_, record) in &records {
        assert!(process::is_alive(record.pid, record.start_time));
    }
    assert_eq!(h.platform().instances(&key), instances);
    assert_eq!(h.platform().health(&key).await, RevisionHealth::Ready);
    let again = h
        .platform()
        .start(&key, &template, RestartPolicy::Always)
        .await
        .unwrap();
    assert_eq!(again, instances);
    assert_eq!(h.records(), records);

    h.platform().stop(&key, Duration::from_secs(5)).await.unwrap();

    for (_, record) in &records {
        assert!(!process::is_alive(record.pid, record.start_time));
    }
    assert!(h.records().is_empty());
}

fn record(h: &Harness, process: SpawnedProcess, policy: RestartPolicy) -> InstanceRecord {
    InstanceRecord {
        index: 0,
        pid: process.pid,
        start_time: process.start_time,
        port: process::free_port().unwrap(),
        log_path: h.logs.path().join("web/v1/0.log"),
        template: h.http_server(1),
        policy,
    }
}

#[tokio::test]
async fn a_recorded_candidate_that_died_is_forgotten_and_reported() {
    let mut h = Harness::new().await;
    let key = RevisionKey::new("web", "v1");
    let dead = h.exited_process().await;
    h.ledger.record(&key, &record(&h, dead, RestartPolicy::Never)).unwrap();

    h.restart_daemon().await;

    assert!(h.records().is_empty());
    let RevisionHealth::Failed { reason } = h.platform().health(&key).await else {
        panic!("a candidate that died unobserved must be reported as failed");
    };
    assert!(
        reason.starts_with(&format!(
            "instance 0 (pid {}) was no longer running when the daemon started",
            dead.pid
        )),
        "{reason}"
    );
}

#[tokio::test]
async fn a_recorded_stable_instance_that_died_is_restarted_on_its_port() {
    let mut h = Harness::new().await;
    let key = RevisionKey::new("web", "v1");
    let dead = h.exited_process().await;
    let recorded = record(&h, dead, RestartPolicy::Always);
    h.ledger.record(&key, &recorded).unwrap();

    h.restart_daemon().await;
    h.wait_for(&key, |health| *health == RevisionHealth::Ready).await;

    let restarted = h.record(&key);
    assert_ne!(restarted.pid, dead.pid);
    assert_eq!(restarted.port, recorded.port);
    let instance = h.platform().instances(&key).remove(0);
    assert_eq!(instance.addr.port(), recorded.port);
    assert_eq!(get(instance.addr, "/ready.txt").await, Some((200, "ok".to_owned())));
}

#[tokio::test]
async fn a_recorded_pid_now_used_by_another_process_is_neither_adopted_nor_signalled() {
    let mut h = Harness::new().await;
    let key = RevisionKey::new("web", "v1");
    let stranger = h.spawn("exec sleep 30");
    let reused = SpawnedProcess {
        pid: stranger.pid,
        start_time: stranger.start_time + 1,
    };
    h.ledger
        .record(&key, &record(&h, reused, RestartPolicy::Never))
        .unwrap();

    h.restart_daemon().await;
    h.platform().stop(&key, Duration::from_secs(1)).await.unwrap();

    assert!(h.records().is_empty());
    assert!(h.platform().instances(&key).is_empty());
    assert!(process::is_alive(stranger.pid, stranger.start_time));
}

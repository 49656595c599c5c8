//! Stopping revisions: SIGTERM first, SIGKILL after the grace period, idempotent.

use std::time::Duration;

use sluice_platform::process;
use sluice_platform::{Platform, RestartPolicy, RevisionHealth, RevisionKey};
use tokio::time::Instant;

use crate::harness::{Harness, get};

#[tokio::test]
async fn stop_ends_instances_that_honour_sigterm_without_waiting_for_the_grace() {
    let h = Harness::new().await;
    let key = RevisionKey::new("web", "v1");
    let instances = h
        .platform()
        .start(&key, &h.http_server(2), RestartPolicy::Always)
        .await
        .unwrap();
    h.wait_for(&key, |health| *health == RevisionHealth::Ready).await;
    let records = h.records();
    let started = Instant::now();

    h.platform().stop(&key, Duration::from_secs(10)).await.unwrap();

    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    for (_, record) in &records {
        assert!(!process::is_alive(record.pid, record.start_time));
    }
    for instance in &instances {
        assert_eq!(get(instance.addr, "/ready.txt").await, None);
    }
    assert_eq!(h.platform().health(&key).await, RevisionHealth::NotRunning);
    assert!(h.platform().instances(&key).is_empty());
    assert!(h.records().is_empty());
}

#[tokio::test]
async fn stopping_a_stopped_or_unknown_revision_is_ok() {
    let h = Harness::new().await;
    let key = RevisionKey::new("web", "v1");
    h.platform()
        .start(&key, &h.http_server(1), RestartPolicy::Never)
        .await
        .unwrap();

    h.platform().stop(&key, Duration::from_secs(5)).await.unwrap();
    h.platform().stop(&key, Duration::from_secs(5)).await.unwrap();
    h.platform()
        .stop(&RevisionKey::new("api", "v9"), Duration::from_secs(5))
        .await
        .unwrap();

    assert!(h.records().is_empty());
}

#[tokio::test]
async fn an_instance_ignoring_sigterm_is_killed_after_the_grace_period() {
    let h = Harness::new().await;
    let key = RevisionKey::new("web", "v1");
    let template = h.shell("trap '' TERM; exec python3 -m http.server {port} --bind 127.0.0.1");
    h.platform()
        .start(&key, &template, RestartPolicy::Always)
        .await
        .unwrap();
    h.wait_for(&key, |health| *health == RevisionHealth::Ready).await;
    let record = h.record(&key);
    let grace = Duration::from_millis(600);
    let started = Instant::now();

    h.platform().stop(&key, grace).await.unwrap();

    let took = started.elapsed();
    assert!(took >= grace && took < grace + Duration::from_secs(3), "{took:?}");
    assert!(!process::is_alive(record.pid, record.start_time));
    assert!(h.records().is_empty());
}

#[tokio::test]
async fn stop_all_stops_every_revision() {
    let h = Harness::new().await;
    let stable = RevisionKey::new("web", "v1");
    let candidate = RevisionKey::new("web", "v2");
    for (key, policy) in [(&stable, RestartPolicy::Always), (&candidate, RestartPolicy::Never)] {
        h.platform().start(key, &h.http_server(1), policy).await.unwrap();
    }
    let records = h.records();

    h.platform().stop_all(Duration::from_secs(5)).await.unwrap();

    assert_eq!(records.len(), 2);
    for (_, record) in &records {
        assert!(!process::is_alive(record.pid, record.start_time));
    }
    for key in [&stable, &candidate] {
        assert_eq!(h.platform().health(key).await, RevisionHealth::NotRunning);
    }
    assert!(h.records().is_empty());
}

//! Starting revisions, probing them, and where their output goes.

use sluice_platform::{Platform, RestartPolicy, RevisionHealth, RevisionKey};

use crate::harness::{Harness, get};

#[tokio::test]
async fn started_instances_are_ready_once_each_answers_its_readiness_probe() {
    let h = Harness::new().await;
    let key = RevisionKey::new("web", "v1");

    let instances = h
        .platform()
        .start(&key, &h.http_server(2), RestartPolicy::Always)
        .await
        .unwrap();

    assert_eq!(instances.len(), 2);
    assert_ne!(instances[0].addr, instances[1].addr);
    assert!(instances.iter().all(|instance| instance.addr.ip().is_loopback()));
    h.wait_for(&key, |health| *health == RevisionHealth::Ready).await;
    for instance in &instances {
        assert_eq!(get(instance.addr, "/ready.txt").await, Some((200, "ok".to_owned())));
    }
    let mut recorded: Vec<_> = h
        .records()
        .into_iter()
        .map(|(known, record)| (known, record.index, record.pid, record.port))
        .collect();
    recorded.sort();
    let expected: Vec<_> = instances
        .iter()
        .map(|instance| (key.clone(), instance.index, instance.pid, instance.addr.port()))
        .collect();
    assert_eq!(recorded, expected);
    assert_eq!(h.platform().instances(&key), instances);
}

#[tokio::test]
async fn an_instance_answering_its_probe_with_an_error_is_not_ready() {
    let h = Harness::new().await;
    let key = RevisionKey::new("web", "v1");
    let mut template = h.http_server(1);
    template.readiness_path = "/missing".to_owned();

    let instances = h.platform().start(&key, &template, RestartPolicy::Never).await.unwrap();
    let serving = || async { get(instances[0].addr, "/missing").await };
    crate::harness::wait_until_async(serving, |answer| {
        answer.as_ref().is_some_and(|(status, _)| *status == 404)
    })
    .await;

    assert_eq!(
        h.platform().health(&key).await,
        RevisionHealth::Starting { ready: 0, of: 1 }
    );
}

#[tokio::test]
async fn starting_a_running_revision_again_starts_nothing_new() {
    let h = Harness::new().await;
    let key = RevisionKey::new("web", "v1");
    let template = h.http_server(2);
    let first = h
        .platform()
        .start(&key, &template, RestartPolicy::Always)
        .await
        .unwrap();
    let records = h.records();

    let second = h
        .platform()
        .start(&key, &template, RestartPolicy::Always)
        .await
        .unwrap();

    assert_eq!(second, first);
    assert_eq!(h.records(), records);
    h.wait_for(&key, |health| *health == RevisionHealth::Ready).await;
}

#[tokio::test]
async fn an_unknown_revision_is_not_running() {
    let h = Harness::new().await;
    let key = RevisionKey::new("web", "never-started");

    assert_eq!(h.platform().health(&key).await, RevisionHealth::NotRunning);
    assert!(h.platform().instances(&key).is_empty());
}

#[tokio::test]
async fn unsafe_names_are_refused_before_anything_starts() {
    let h = Harness::new().await;
    let key = RevisionKey::new("..", "v1");

    let error = h
        .platform()
        .start(&key, &h.http_server(1), RestartPolicy::Never)
        .await
        .unwrap_err();

    assert!(error.to_string().contains("\"..\""), "{error}");
    assert!(h.records().is_empty());
    assert_eq!(h.platform().health(&key).await, RevisionHealth::NotRunning);
}

#[tokio::test]
async fn instance_output_is_appended_to_its_log_file() {
    let h = Harness::new().await;
    let key = RevisionKey::new("web", "v1");
    let template = h.shell("echo to-stdout; echo to-stderr >&2; exec python3 -m http.server {port} --bind 127.0.0.1");

    let instances = h.platform().start(&key, &template, RestartPolicy::Never).await.unwrap();
    h.wait_for(&key, |health| *health == RevisionHealth::Ready).await;

    let log_path = h.logs.path().join("web").join("v1").join("0.log");
    assert_eq!(instances[0].log_path, log_path);
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("to-stdout\n"), "{log}");
    assert!(log.contains("to-stderr\n"), "{log}");
    // The server's own request log: the readiness probes themselves.
    assert!(log.contains("GET /ready.txt"), "{log}");
}

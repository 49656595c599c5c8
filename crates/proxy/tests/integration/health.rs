//! Passive health: an instance that refuses connections is ejected, and its refusals are not the revision's errors.

use http::StatusCode;

use crate::common::*;

#[tokio::test]
async fn a_dead_instance_is_ejected_and_not_charged_to_its_revision() {
    let alive = TestBackend::start("v1-alive").await;
    let dead = free_addr();
    let listen = free_addr();
    let proxy = start_proxy(Some(table(
        1,
        vec![service("web", listen, &[("v1", 100, &[dead, alive.addr])])],
    )))
    .await;
    let client = client();

    let statuses = get_many(&client, listen, 100).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::OK), "{statuses:?}");
    assert_eq!(alive.hits(), 100, "every request reached the live instance");

    let snapshot = snapshot(&client, proxy.admin_addr()).await;
    let v1 = snapshot.revisions.iter().find(|r| r.revision == "v1").expect("v1");
    assert_eq!(
        v1.requests.server_error, 0,
        "refused connections are not the revision's 5xx"
    );
    assert_eq!(v1.requests.success, 100);
    assert!(
        (1..=2).contains(&v1.connect_failures),
        "ejected after its first refusal: {} failures",
        v1.connect_failures
    );
    let instance = snapshot
        .instances
        .iter()
        .find(|i| i.address == dead)
        .expect("dead instance");
    assert!(instance.ejected);
    assert_eq!(instance.ejections, 1);
    proxy.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_slow_answer_is_a_504_that_says_request_timeout() {
    let slow = TestBackend::start_with(
        "slow",
        Behaviour {
            delay: std::time::Duration::from_secs(2),
            ..Behaviour::default()
        },
    )
    .await;
    let listen = free_addr();
    let mut web = service("web", listen, &[("v1", 100, &[slow.addr])]);
    web.timeouts.request_ms = 100;
    let proxy = start_proxy(Some(table(1, vec![web]))).await;
    let client = client();

    let (status, body) = get(&client, listen, "/").await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert!(body.contains("request timeout"), "{body}");
    let snapshot = snapshot(&client, proxy.admin_addr()).await;
    assert_eq!(snapshot.revisions[0].requests.server_error, 1);
    proxy.shutdown().await.expect("clean shutdown");
}

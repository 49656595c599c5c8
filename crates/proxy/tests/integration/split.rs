//! Traffic splits exactly by weight, and follows a pushed table.

use http::StatusCode;

use crate::common::*;

#[tokio::test]
async fn weights_split_traffic_exactly_and_follow_a_pushed_table() {
    let stable = TestBackend::start("stable").await;
    let canary = TestBackend::start("canary").await;
    let listen = free_addr();
    let split = |version, stable_weight, canary_weight| {
        table(
            version,
            vec![service(
                "web",
                listen,
                &[
                    ("stable", stable_weight, &[stable.addr]),
                    ("canary", canary_weight, &[canary.addr]),
                ],
            )],
        )
    };
    let proxy = start_proxy(Some(split(1, 90, 10))).await;
    let client = client();

    let statuses = get_many(&client, listen, 1_000).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::OK));
    assert_eq!((stable.hits(), canary.hits()), (900, 100));

    let (status, answer) = put_routes(&client, proxy.admin_addr(), &split(2, 50, 50)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer, serde_json::json!({"version": 2}));

    let statuses = get_many(&client, listen, 1_000).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::OK));
    assert_eq!((stable.hits() - 900, canary.hits() - 100), (500, 500));

    proxy.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn instances_of_a_revision_share_its_traffic() {
    let first = TestBackend::start("v1-a").await;
    let second = TestBackend::start("v1-b").await;
    let listen = free_addr();
    let proxy = start_proxy(Some(table(
        1,
        vec![service("web", listen, &[("v1", 100, &[first.addr, second.addr])])],
    )))
    .await;

    get_many(&client(), listen, 10).await;
    assert_eq!((first.hits(), second.hits()), (5, 5));

    proxy.shutdown().await.expect("clean shutdown");
}

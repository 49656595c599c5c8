//! Version rules of `PUT /routes`, and tables rejected whole.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;

use crate::common::*;

#[tokio::test]
async fn older_versions_conflict_and_the_same_table_is_idempotent() {
    let backend = TestBackend::start("v1").await;
    let listen = free_addr();
    let web = |weight| service("web", listen, &[("v1", weight, &[backend.addr])]);
    let proxy = start_proxy(None).await;
    let admin = proxy.admin_addr();
    let client = client();

    let (status, answer) = put_routes(&client, admin, &table(5, vec![web(100)])).await;
    assert_eq!((status, answer), (StatusCode::OK, serde_json::json!({"version": 5})));

    let (status, answer) = put_routes(&client, admin, &table(5, vec![web(100)])).await;
    assert_eq!((status, answer), (StatusCode::OK, serde_json::json!({"version": 5})));

    let (status, answer) = put_routes(&client, admin, &table(5, vec![web(50)])).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        answer["error"],
        "route table version 5 is already applied with different content; push it with a higher version"
    );

    let (status, answer) = put_routes(&client, admin, &table(4, vec![])).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        answer["error"],
        "route table version 4 is older than the applied version 5"
    );

    assert_eq!(get_routes(&client, admin).await, table(5, vec![web(100)]));
    assert_eq!(get(&client, listen, "/").await, (StatusCode::OK, "v1".to_owned()));
    proxy.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_table_with_an_unbindable_address_is_rejected_whole() {
    let backend = TestBackend::start("v1").await;
    let web_listen = free_addr();
    let web = service("web", web_listen, &[("v1", 100, &[backend.addr])]);
    let proxy = start_proxy(Some(table(1, vec![web.clone()]))).await;
    let admin = proxy.admin_addr();
    let client = client();

    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken_addr = taken.local_addr().expect("address");
    let fresh_addr = free_addr();
    let rejected = table(
        2,
        vec![
            service("web", web_listen, &[("v1", 50, &[backend.addr])]),
            service("fresh", fresh_addr, &[("v1", 100, &[backend.addr])]),
            service("blocked", taken_addr, &[("v1", 100, &[backend.addr])]),
        ],
    );
    let (status, answer) = put_routes(&client, admin, &rejected).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let message = answer["error"].as_str().expect("error message");
    assert!(
        message.starts_with(&format!("cannot listen on {taken_addr} for service \"blocked\"")),
        "{message}"
    );

    assert_eq!(get_routes(&client, admin).await, table(1, vec![web]));
    assert_eq!(get(&client, web_listen, "/").await, (StatusCode::OK, "v1".to_owned()));
    assert!(
        tokio::net::TcpStream::connect(fresh_addr).await.is_err(),
        "the listener bound for the rejected table was released"
    );
    drop(taken);
    proxy.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn malformed_and_invalid_tables_are_rejected() {
    let proxy = start_proxy(None).await;
    let admin = proxy.admin_addr();
    let client = client();

    let request = Request::put(format!("http://{admin}/routes"))
        .body(Full::new(Bytes::from_static(b"{\"version\": \"one\"}")))
        .expect("request");
    let (status, _, body) = send(&client, request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("the body is not a route table"), "{body}");

    let listen = free_addr();
    let no_instances = table(1, vec![service("web", listen, &[("v1", 100, &[])])]);
    let (status, answer) = put_routes(&client, admin, &no_instances).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        answer["error"],
        "invalid route table: service \"web\": revision \"v1\" has weight 100 but no instances"
    );
    assert_eq!(get_routes(&client, admin).await, table(0, vec![]));
    proxy.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_removed_service_stops_accepting_after_its_in_flight_requests_finish() {
    let slow = TestBackend::start_with(
        "slow",
        Behaviour {
            delay: Duration::from_millis(300),
            ..Behaviour::default()
        },
    )
    .await;
    let listen = free_addr();
    let proxy = start_proxy(Some(table(
        1,
        vec![service("web", listen, &[("v1", 100, &[slow.addr])])],
    )))
    .await;
    let client = client();

    let in_flight = tokio::spawn({
        let client = client.clone();
        async move { get(&client, listen, "/").await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, _) = put_routes(&client, proxy.admin_addr(), &table(2, vec![])).await;
    assert_eq!(status, StatusCode::OK);

    let answer = tokio::time::timeout(Duration::from_secs(10), in_flight)
        .await
        .expect("in-flight request finishes")
        .expect("request task");
    assert_eq!(answer, (StatusCode::OK, "slow".to_owned()));

    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while tokio::net::TcpStream::connect(listen).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(closed.is_ok(), "listener of the removed service still accepts");
    proxy.shutdown().await.expect("clean shutdown");
}

//! What backends receive and what clients get back.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sluice_proxy::ProxyConfig;

use crate::common::*;

#[tokio::test]
async fn requests_reach_the_backend_as_sent_minus_hop_by_hop_headers() {
    let backend = TestBackend::start("v1").await;
    let listen = free_addr();
    let proxy = start_proxy(Some(table(
        1,
        vec![service("web", listen, &[("v1", 100, &[backend.addr])])],
    )))
    .await;

    let request = Request::get(format!("http://{listen}/orders?page=2"))
        .header("host", "shop.example")
        .header("connection", "x-secret")
        .header("x-secret", "for the proxy only")
        .header("x-forwarded-for", "203.0.113.9")
        .body(Full::default())
        .expect("request");
    let (status, headers, _) = send(&client(), request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-seen-host"], "shop.example");
    assert_eq!(headers["x-seen-path"], "/orders?page=2");
    assert_eq!(headers["x-seen-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(headers["x-seen-secret"], "");
    proxy.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn request_bodies_are_forwarded_and_answers_streamed_back() {
    let backend = TestBackend::start("echo").await;
    let listen = free_addr();
    let proxy = start_proxy(Some(table(
        1,
        vec![service("web", listen, &[("v1", 100, &[backend.addr])])],
    )))
    .await;

    let payload: String = (0..200_000).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    let request = Request::post(format!("http://{listen}/upload"))
        .body(Full::new(Bytes::from(payload.clone())))
        .expect("request");
    let (status, headers, body) = send(&client(), request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-backend"], "echo");
    assert_eq!(body.len(), payload.len());
    assert!(body == payload, "echoed body differs");
    proxy.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_service_without_weighted_revisions_answers_503() {
    let backend = TestBackend::start("v1").await;
    let listen = free_addr();
    let proxy = start_proxy(Some(table(
        1,
        vec![service("web", listen, &[("v1", 0, &[backend.addr])])],
    )))
    .await;

    let (status, body) = get(&client(), listen, "/").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, "service web: no revision has a non-zero weight and instances");
    assert_eq!(backend.hits(), 0);
    proxy.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn http2_prior_knowledge_clients_are_served() {
    let backend = TestBackend::start("v1").await;
    let listen = free_addr();
    let proxy = start_proxy(Some(table(
        1,
        vec![service("web", listen, &[("v1", 100, &[backend.addr])])],
    )))
    .await;

    let h2: TestClient = Client::builder(TokioExecutor::new()).http2_only(true).build_http();
    let request = Request::get(format!("http://{listen}/h2"))
        .body(Full::default())
        .expect("request");
    let (status, headers, body) = send(&h2, request).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "v1"));
    assert_eq!(headers["x-seen-host"], listen.to_string());
    proxy.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn run_finishes_in_flight_requests_before_returning() {
    let slow = TestBackend::start_with(
        "slow",
        Behaviour {
            delay: Duration::from_millis(300),
            ..Behaviour::default()
        },
    )
    .await;
    let listen = free_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let proxy = tokio::spawn(sluice_proxy::run(
        ProxyConfig {
            admin: "127.0.0.1:0".parse().expect("admin address"),
            state_file: None,
            initial: Some(table(1, vec![service("web", listen, &[("v1", 100, &[slow.addr])])])),
            workers: None,
        },
        async move {
            let _ = stopped.await;
        },
    ));

    let client = client();
    let ready = tokio::time::timeout(Duration::from_secs(5), async {
        while tokio::net::TcpStream::connect(listen).await.is_err() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(ready.is_ok(), "proxy listens");
    let in_flight = tokio::spawn({
        let client = client.clone();
        async move { get(&client, listen, "/").await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).expect("proxy is running");

    let finished = tokio::time::timeout(Duration::from_secs(15), proxy)
        .await
        .expect("run returns within the drain bound")
        .expect("run task");
    assert!(finished.is_ok(), "{finished:?}");
    let answer = in_flight.await.expect("request task");
    assert_eq!(answer, (StatusCode::OK, "slow".to_owned()));
    assert!(tokio::net::TcpStream::connect(listen).await.is_err(), "listener closed");
}

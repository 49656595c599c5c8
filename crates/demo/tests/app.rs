//! The demo service as a client sees it, over real loopback sockets.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sluice_demo::app::{self, AppConfig};
use tokio::time::Instant;

struct Reply {
    status: StatusCode,
    revision: Option<String>,
    content_type: Option<String>,
    body: String,
}

fn config(revision: &str, error_rate: f64, latency: Duration) -> AppConfig {
    AppConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        revision: revision.into(),
        error_rate,
        latency,
        latency_jitter: Duration::ZERO,
        fail_methods: Vec::new(),
        price_change: 0.0,
    }
}

fn client() -> Client<HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn get(client: &Client<HttpConnector, Empty<Bytes>>, addr: SocketAddr, path: &str) -> Reply {
    send(client, Method::GET, addr, path).await
}

async fn send(client: &Client<HttpConnector, Empty<Bytes>>, method: Method, addr: SocketAddr, path: &str) -> Reply {
    let request = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .body(Empty::new())
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(5), client.request(request))
        .await
        .unwrap()
        .unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let revision = response
        .headers()
        .get("x-revision")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        revision,
        content_type,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

#[tokio::test]
async fn five_percent_fails_exactly_every_twentieth_request_and_health_checks_never_fail() {
    let app = app::start(config("v3", 0.05, Duration::ZERO)).await.unwrap();
    let client = client();
    let mut failing = Vec::new();
    for n in 1..=100 {
        let reply = get(&client, app.addr(), "/hello").await;
        assert_eq!(reply.revision.as_deref(), Some("v3"));
        match reply.status {
            StatusCode::OK => assert_eq!(reply.body, "hello from v3\n"),
            StatusCode::INTERNAL_SERVER_ERROR => failing.push(n),
            other => panic!("unexpected status {other} for request {n}"),
        }
        let health = get(&client, app.addr(), "/healthz").await;
        assert_eq!((health.status, health.body.as_str()), (StatusCode::OK, "ok"));
        assert_eq!(health.revision.as_deref(), Some("v3"));
    }
    assert_eq!(failing, [20, 40, 60, 80, 100]);
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn error_rate_zero_never_fails_and_one_always_fails_except_health() {
    let healthy = app::start(config("v2", 0.0, Duration::ZERO)).await.unwrap();
    let broken = app::start(config("v9", 1.0, Duration::ZERO)).await.unwrap();
    let client = client();
    for _ in 0..40 {
        assert_eq!(get(&client, healthy.addr(), "/").await.status, StatusCode::OK);
        let failed = get(&client, broken.addr(), "/any/path?q=1").await;
        assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(failed.revision.as_deref(), Some("v9"));
        assert_eq!(get(&client, broken.addr(), "/healthz").await.status, StatusCode::OK);
    }
    healthy.shutdown().await.unwrap();
    broken.shutdown().await.unwrap();
}

#[tokio::test]
async fn latency_applies_to_requests_but_not_to_health_checks() {
    let latency = Duration::from_millis(300);
    let app = app::start(config("slow", 0.0, latency)).await.unwrap();
    let client = client();

    let started = Instant::now();
    assert_eq!(get(&client, app.addr(), "/hello").await.status, StatusCode::OK);
    let request_took = started.elapsed();

    let started = Instant::now();
    assert_eq!(get(&client, app.addr(), "/healthz").await.status, StatusCode::OK);
    let health_took = started.elapsed();

    assert!(request_took >= latency, "request took {request_took:?}");
    assert!(health_took < latency, "health check took {health_took:?}");
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn jitter_keeps_every_request_at_or_above_the_base_latency() {
    let base = Duration::from_millis(20);
    let app = app::start(AppConfig {
        latency_jitter: Duration::from_millis(30),
        ..config("jittery", 0.0, base)
    })
    .await
    .unwrap();
    let client = client();
    for _ in 0..10 {
        let started = Instant::now();
        assert_eq!(get(&client, app.addr(), "/").await.status, StatusCode::OK);
        assert!(started.elapsed() >= base);
    }
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_out_of_range_error_rate_or_unsendable_revision_is_refused_before_listening() {
    let error = app::start(config("v3", 5.0, Duration::ZERO)).await.unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    assert!(error.to_string().contains("between 0 and 1"), "{error}");

    let error = app::start(config("v3\nx", 0.0, Duration::ZERO)).await.unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    assert!(error.to_string().contains("x-revision"), "{error}");

    let error = app::start(AppConfig {
        price_change: -100.0,
        ..config("v3", 0.0, Duration::ZERO)
    })
    .await
    .unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    assert!(error.to_string().contains("above -100"), "{error}");
}

#[tokio::test]
async fn serve_reports_an_address_in_use_and_returns_when_shutdown_resolves() {
    let occupied = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let taken = AppConfig {
        listen: occupied.local_addr().unwrap(),
        ..config("v1", 0.0, Duration::ZERO)
    };
    let error = app::serve(taken, std::future::ready(())).await.unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::AddrInUse);
    assert!(error.to_string().contains("v1"), "{error}");

    let served = tokio::time::timeout(
        Duration::from_secs(5),
        app::serve(config("v1", 0.0, Duration::ZERO), std::future::ready(())),
    )
    .await
    .unwrap();
    served.unwrap();
}

#[tokio::test]
async fn after_shutdown_nothing_answers() {
    let app = app::start(config("v1", 0.0, Duration::ZERO)).await.unwrap();
    let addr = app.addr();
    assert_eq!(get(&client(), addr, "/").await.status, StatusCode::OK);
    tokio::time::timeout(Duration::from_secs(5), app.shutdown())
        .await
        .unwrap()
        .unwrap();
    let refused = tokio::net::TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
}

/// The value of one top-level field of the demo's flat JSON item, as written.
fn field<'a>(body: &'a str, name: &str) -> &'a str {
    let key = format!("\"{name}\":");
    let start = body.find(&key).unwrap_or_else(|| panic!("no {name} in {body}")) + key.len();
    let rest = &body[start..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].trim_matches('"')
}

#[tokio::test]
async fn items_are_json_whose_only_differences_between_two_answers_are_request_id_and_served_at() {
    let app = app::start(config("v2", 0.0, Duration::ZERO)).await.unwrap();
    let client = client();
    let first = get(&client, app.addr(), "/api/items/42").await;
    let second = get(&client, app.addr(), "/api/items/42?again=1").await;
    for reply in [&first, &second] {
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.content_type.as_deref(), Some("application/json"));
        assert_eq!(reply.revision.as_deref(), Some("v2"));
        assert_eq!(field(&reply.body, "id"), "42");
        assert_eq!(field(&reply.body, "name"), "item-42");
        assert_eq!(field(&reply.body, "currency"), "EUR");
        assert!(
            field(&reply.body, "price").parse::<f64>().unwrap() > 0.0,
            "{}",
            reply.body
        );
    }
    assert_eq!(field(&first.body, "price"), field(&second.body, "price"));
    assert_ne!(field(&first.body, "requestId"), field(&second.body, "requestId"));
    assert_ne!(field(&first.body, "servedAt"), field(&second.body, "servedAt"));
    let served_at: u64 = field(&first.body, "servedAt").parse().unwrap();
    assert!(
        served_at > 1_600_000_000_000_000_000,
        "{served_at} is not unix nanoseconds"
    );

    let another = get(&client, app.addr(), "/api/items/43").await;
    assert_eq!(field(&another.body, "name"), "item-43");

    let bad = get(&client, app.addr(), "/api/items/forty-two").await;
    assert_eq!(bad.status, StatusCode::NOT_FOUND);
    assert_eq!(bad.content_type.as_deref(), Some("application/json"));
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_price_change_shows_in_every_item_and_nowhere_else() {
    let baseline = app::start(config("v1", 0.0, Duration::ZERO)).await.unwrap();
    let dearer = app::start(AppConfig {
        price_change: 10.0,
        ..config("v4", 0.0, Duration::ZERO)
    })
    .await
    .unwrap();
    let client = client();
    for id in [1, 7, 1000] {
        let path = format!("/api/items/{id}");
        let before = get(&client, baseline.addr(), &path).await;
        let after = get(&client, dearer.addr(), &path).await;
        let cents = |reply: &Reply| (field(&reply.body, "price").parse::<f64>().unwrap() * 100.0).round() as u64;
        assert_eq!(cents(&after), (cents(&before) * 11 + 5) / 10, "item {id}");
        assert_eq!(field(&before.body, "name"), field(&after.body, "name"));
    }
    assert_eq!(get(&client, dearer.addr(), "/").await.body, "hello from v4\n");
    baseline.shutdown().await.unwrap();
    dearer.shutdown().await.unwrap();
}

#[tokio::test]
async fn fail_methods_restrict_the_error_rate_to_those_methods() {
    let app = app::start(AppConfig {
        fail_methods: vec![Method::POST],
        ..config("v3", 0.1, Duration::ZERO)
    })
    .await
    .unwrap();
    let client = client();
    let mut failing_posts = Vec::new();
    for n in 1..=50 {
        let read = get(&client, app.addr(), &format!("/api/items/{n}")).await;
        assert_eq!(read.status, StatusCode::OK, "GET {n}");
        let written = send(&client, Method::POST, app.addr(), &format!("/api/items/{n}")).await;
        match written.status {
            StatusCode::OK => assert_eq!(field(&written.body, "id"), n.to_string()),
            StatusCode::INTERNAL_SERVER_ERROR => failing_posts.push(n),
            other => panic!("unexpected status {other} for POST {n}"),
        }
        let put = send(&client, Method::PUT, app.addr(), "/hello").await;
        assert_eq!(put.status, StatusCode::OK, "PUT {n}");
    }
    assert_eq!(failing_posts, [10, 20, 30, 40, 50]);
    app.shutdown().await.unwrap();
}

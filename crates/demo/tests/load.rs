//! The load generator against real loopback targets: the demo app, a scripted server, and nothing
//! at all.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use sluice_demo::app::{self, AppConfig, AppHandle};
use sluice_demo::load::{self, LoadConfig, LoadSnapshot, RequestTemplate, RevisionLoad};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// No run in these tests may take longer than this, whatever goes wrong.
const TEST_LIMIT: Duration = Duration::from_secs(10);

async fn demo_app(revision: &str, error_rate: f64, latency: Duration) -> AppHandle {
    app::start(AppConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        revision: revision.into(),
        error_rate,
        latency,
        latency_jitter: Duration::ZERO,
        fail_methods: Vec::new(),
        price_change: 0.0,
    })
    .await
    .unwrap()
}

fn load_config(target: SocketAddr, rate: f64, duration: Duration, max_requests: u64) -> LoadConfig {
    LoadConfig {
        target,
        requests: vec![RequestTemplate::get("/hello")],
        rate,
        duration,
        max_requests,
        max_in_flight: 50,
        timeout: Duration::from_secs(2),
    }
}

async fn run(config: LoadConfig) -> (LoadSnapshot, Duration) {
    let started = Instant::now();
    let handle = load::start(config).unwrap();
    let snapshot = tokio::time::timeout(TEST_LIMIT, handle.finish()).await.unwrap();
    (snapshot, started.elapsed())
}

fn only_revision(snapshot: &LoadSnapshot) -> &RevisionLoad {
    assert_eq!(snapshot.revisions.len(), 1, "{:?}", snapshot.revisions);
    &snapshot.revisions[0]
}

#[tokio::test]
async fn two_hundred_per_second_for_a_second_sends_about_two_hundred_requests() {
    let app = demo_app("v1", 0.0, Duration::ZERO).await;
    let started = Instant::now();
    let handle = load::start(load_config(app.addr(), 200.0, Duration::from_secs(1), 1_000)).unwrap();
    let stats = handle.stats();

    tokio::time::sleep(Duration::from_millis(500)).await;
    let halfway = stats.snapshot();
    let last = tokio::time::timeout(TEST_LIMIT, handle.finish()).await.unwrap();
    let took = started.elapsed();

    assert!((60..=110).contains(&halfway.sent), "halfway: {halfway:?}");
    assert!((150..=210).contains(&last.sent), "{last:?}");
    assert_eq!((last.dropped, last.in_flight), (0, 0));
    let v1 = only_revision(&last);
    assert_eq!(v1.revision, "v1");
    assert_eq!(
        (v1.requests, v1.ok, v1.server_errors, v1.transport_errors),
        (last.sent, last.sent, 0, 0)
    );
    assert!(v1.p50 <= v1.p99 && v1.p99 < Duration::from_secs(1), "{v1:?}");

    let second_half = last.since(&halfway);
    let rate = second_half.total.request_rate(second_half.span);
    assert!(
        (100.0..=300.0).contains(&rate),
        "second half ran at {rate}/s: {second_half:?}"
    );
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_secs(3),
        "took {took:?}"
    );
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn max_requests_bounds_a_run_before_its_duration() {
    let app = demo_app("v1", 0.0, Duration::ZERO).await;
    let (snapshot, took) = run(load_config(app.addr(), 500.0, Duration::from_secs(5), 40)).await;
    assert_eq!(snapshot.sent, 40);
    assert_eq!(only_revision(&snapshot).ok, 40);
    assert!(took < Duration::from_secs(2), "took {took:?}");
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_five_percent_revision_shows_exactly_one_server_error_in_twenty() {
    let app = demo_app("v3", 0.05, Duration::ZERO).await;
    let (snapshot, _) = run(load_config(app.addr(), 400.0, Duration::from_secs(5), 100)).await;
    let v3 = only_revision(&snapshot);
    assert_eq!(v3.revision, "v3");
    assert_eq!(
        (v3.requests, v3.ok, v3.server_errors, v3.transport_errors),
        (100, 95, 5, 0)
    );
    assert_eq!(v3.success_ratio(), Some(0.95));
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn beyond_max_in_flight_requests_are_dropped_and_the_run_still_ends_on_time() {
    let app = demo_app("slow", 0.0, Duration::from_secs(2)).await;
    let config = LoadConfig {
        max_in_flight: 5,
        timeout: Duration::from_secs(5),
        ..load_config(app.addr(), 50.0, Duration::from_secs(1), 1_000)
    };
    let started = Instant::now();
    let handle = load::start(config).unwrap();
    let stats = handle.stats();
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let while_waiting = stats.snapshot();
    let last = tokio::time::timeout(TEST_LIMIT, handle.finish()).await.unwrap();
    let took = started.elapsed();

    assert_eq!(
        (while_waiting.sent, while_waiting.in_flight),
        (5, 5),
        "{while_waiting:?}"
    );
    assert_eq!(last.sent, 5);
    assert!((40..=45).contains(&last.dropped), "{last:?}");
    assert_eq!((last.total.ok, last.in_flight), (5, 0));
    assert!(last.total.p50 >= Duration::from_secs(2), "{:?}", last.total);
    // Scheduling ends at 1 s; the five answers arrive about 2 s after they were sent.
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_millis(2_900),
        "took {took:?}"
    );
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn refused_connections_count_as_transport_errors() {
    let vacant = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let nobody = vacant.local_addr().unwrap();
    drop(vacant);

    let (snapshot, took) = run(load_config(nobody, 100.0, Duration::from_secs(5), 5)).await;

    let unknown = only_revision(&snapshot);
    assert_eq!(unknown.revision, "?");
    assert_eq!((unknown.requests, unknown.transport_errors, unknown.ok), (5, 5, 0));
    assert_eq!(unknown.success_ratio(), Some(0.0));
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

#[tokio::test]
async fn unanswered_requests_time_out_as_transport_errors() {
    let app = demo_app("stuck", 0.0, Duration::from_secs(30)).await;
    let config = LoadConfig {
        timeout: Duration::from_millis(300),
        ..load_config(app.addr(), 100.0, Duration::from_secs(5), 3)
    };
    let (snapshot, took) = run(config).await;
    assert_eq!(only_revision(&snapshot).transport_errors, 3);
    assert!(took < Duration::from_secs(2), "took {took:?}");
    // A graceful shutdown would wait out the 30 s latency; dropping the handle stops the app
    // without waiting.
    drop(app);
}

#[tokio::test]
async fn stop_ends_a_run_early() {
    let app = demo_app("v1", 0.0, Duration::ZERO).await;
    let started = Instant::now();
    let handle = load::start(load_config(app.addr(), 100.0, Duration::from_secs(30), 10_000)).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    handle.stop();
    let snapshot = tokio::time::timeout(TEST_LIMIT, handle.finish()).await.unwrap();
    assert!((10..=50).contains(&snapshot.sent), "{snapshot:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    app.shutdown().await.unwrap();
}

/// Answers with the status named in `x-status` and the revision named in `x-reply-revision` (no
/// `x-revision` header when that is absent), so one run can exercise every way of counting.
async fn scripted_target() -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service_fn(script)));
        }
    });
    (addr, server)
}

async fn script(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
    };
    let mut response = Response::new(Full::new(Bytes::from_static(b"scripted")));
    *response.status_mut() = header("x-status").map_or(StatusCode::OK, |code| code.parse().unwrap());
    if let Some(revision) = header("x-reply-revision") {
        response.headers_mut().insert("x-revision", revision.parse().unwrap());
    }
    Ok(response)
}

fn scripted(revision: Option<&str>, status: u16) -> RequestTemplate {
    let mut template = RequestTemplate::get("/scripted");
    template.headers.push(("x-status".into(), status.to_string()));
    if let Some(revision) = revision {
        template.headers.push(("x-reply-revision".into(), revision.into()));
    }
    template
}

#[tokio::test]
async fn responses_are_counted_per_revision_header_and_status_class() {
    let (addr, server) = scripted_target().await;
    let config = LoadConfig {
        requests: vec![
            scripted(Some("a"), 200),
            scripted(Some("b"), 503),
            scripted(Some("a"), 404),
            scripted(None, 302),
        ],
        ..load_config(addr, 400.0, Duration::from_secs(5), 40)
    };

    let (snapshot, _) = run(config).await;

    let summary: Vec<(&str, u64, u64, u64, u64)> = snapshot
        .revisions
        .iter()
        .map(|r| (r.revision.as_str(), r.requests, r.ok, r.client_errors, r.server_errors))
        .collect();
    assert_eq!(
        summary,
        [("?", 10, 10, 0, 0), ("a", 20, 20, 10, 0), ("b", 10, 0, 0, 10)]
    );
    assert_eq!((snapshot.total.requests, snapshot.total.server_errors), (40, 10));
    server.abort();
}

//! Servers the checks run against, and shorthands for the spec's check types.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::routing::{any, get};
use sluice_checks::{CheckOptions, CheckReport, Checker, Target};
use sluice_demo::app::{self, AppConfig, AppHandle};
use sluice_spec::Checks;
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// No check run in these tests may take longer than this, whatever goes wrong.
const TEST_LIMIT: Duration = Duration::from_secs(10);

/// Checks as a spec would have them, written in the spec's own (JSON) shape so defaults apply as for users.
pub fn checks(value: serde_json::Value) -> Checks {
    serde_json::from_value(value).unwrap()
}

/// Short limits, so failing targets fail fast.
pub fn options(request_timeout: Duration) -> CheckOptions {
    CheckOptions {
        request_timeout,
        ..CheckOptions::default()
    }
}

/// Runs `checks` and returns the report with how long the run took.
pub async fn run_with(options: CheckOptions, checks: &Checks, target: &Target) -> (CheckReport, Duration) {
    let started = Instant::now();
    let report = tokio::time::timeout(TEST_LIMIT, Checker::new(options).run(checks, target))
        .await
        .unwrap();
    (report, started.elapsed())
}

/// `GET /healthz` answers 200 `ok, ready`; `/unavailable` answers 503 `db down`; `/echo` answers 200 with the
/// method, the `Host` and `x-test` headers and the body it got; `/serial` takes 100 ms and answers one request at
/// a time, so requests arriving faster queue up.
pub async fn scripted_server() -> SocketAddr {
    let one_at_a_time = Arc::new(Mutex::new(()));
    let routes = Router::new()
        .route(
            "/serial",
            get(move || async move {
                let _turn = one_at_a_time.lock().await;
                tokio::time::sleep(Duration::from_millis(100)).await;
                "done"
            }),
        )
        .route("/healthz", get(|| async { "ok, ready" }))
        .route(
            "/unavailable",
            get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "db down") }),
        )
        .route(
            "/echo",
            any(|method: Method, headers: HeaderMap, body: String| async move {
                let header = |name| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-")
                        .to_owned()
                };
                format!(
                    "{method} host={} x-test={} body={body}",
                    header("host"),
                    header("x-test")
                )
            }),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, routes).await });
    addr
}

/// The demo service: `GET /hello` after `latency`, exactly a fraction `error_rate` of them answered 500.
pub async fn demo_app(latency: Duration, error_rate: f64) -> AppHandle {
    app::start(AppConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        revision: "candidate".into(),
        error_rate,
        latency,
        latency_jitter: Duration::ZERO,
        fail_methods: Vec::new(),
        price_change: 0.0,
    })
    .await
    .unwrap()
}

/// A server that accepts connections and never reads nor answers.
pub async fn hanging_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    addr
}

/// An address nobody listens on: bound, then released.
pub async fn refused_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

pub fn target(addr: SocketAddr) -> Target {
    Target::parse(&format!("http://{addr}")).unwrap()
}

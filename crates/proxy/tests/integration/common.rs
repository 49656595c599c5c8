//! Real backends, a real client and helpers to drive a proxy started in-process.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use sluice_proxy::snapshot::Snapshot;
use sluice_proxy::{Backend, ProxyConfig, ProxyHandle, RouteTable, ServiceRoute};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// Every load loop in these tests gives up after this long.
pub const LOAD_DEADLINE: Duration = Duration::from_secs(60);

pub type TestClient = Client<HttpConnector, Full<Bytes>>;

/// How a test backend answers.
#[derive(Clone, Copy, Default)]
pub struct Behaviour {
    /// Answer 500 to every n-th request (counting from 1).
    pub fail_every: Option<u64>,
    /// Wait this long before answering.
    pub delay: Duration,
}

/// An HTTP backend that names itself in every answer and echoes what it received.
pub struct TestBackend {
    pub addr: SocketAddr,
    hits: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl TestBackend {
    pub async fn start(name: &'static str) -> Self {
        Self::start_with(name, Behaviour::default()).await
    }

    pub async fn start_with(name: &'static str, behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind backend");
        let addr = listener.local_addr().expect("backend address");
        let hits = Arc::new(AtomicU64::new(0));
        let counter = hits.clone();
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let counter = counter.clone();
                let service = service_fn(move |request| {
                    let hit = counter.fetch_add(1, Ordering::SeqCst) + 1;
                    answer(name, behaviour, hit, request)
                });
                connections.spawn(async move {
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, hits, task }
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        // Aborting the accept task drops its JoinSet, which aborts every connection.
        self.task.abort();
    }
}

async fn answer(
    name: &'static str,
    behaviour: Behaviour,
    hit: u64,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    tokio::time::sleep(behaviour.delay).await;
    let seen = |header: &str| {
        request
            .headers()
            .get(header)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let host = seen("host");
    let forwarded_for = seen("x-forwarded-for");
    let secret = seen("x-secret");
    let forwarded_proto = seen("x-forwarded-proto");
    let request_id = seen("x-request-id");
    let path = request.uri().to_string();
    let echo = request.method() == http::Method::POST;
    let method = request.method().clone();
    let body = request.into_body().collect().await.expect("request body").to_bytes();
    let status = match behaviour.fail_every {
        Some(n) if hit.is_multiple_of(n) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::OK,
    };
    let response = Response::builder()
        .status(status)
        .header("x-seen-method", method.as_str())
        .header("x-backend", name)
        .header("x-seen-host", host)
        .header("x-seen-forwarded-for", forwarded_for)
        .header("x-seen-secret", secret)
        .header("x-seen-path", path)
        .header("x-seen-forwarded-proto", forwarded_proto)
        .header("x-seen-request-id", request_id)
        .body(Full::new(if echo { body } else { Bytes::from(name) }))
        .expect("response");
    Ok(response)
}

/// A loopback address that was free a moment ago (the proxy rejects port 0 for services).
pub fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind probe");
    listener.local_addr().expect("probe address")
}

pub fn client() -> TestClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends one request and returns the status, headers and body.
pub async fn send(client: &TestClient, request: Request<Full<Bytes>>) -> (StatusCode, http::HeaderMap, String) {
    let response = client.request(request).await.expect("proxy answers");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("response body").to_bytes();
    (parts.status, parts.headers, String::from_utf8_lossy(&body).into_owned())
}

pub async fn get(client: &TestClient, addr: SocketAddr, path: &str) -> (StatusCode, String) {
    let request = Request::get(format!("http://{addr}{path}"))
        .body(Full::default())
        .expect("request");
    let (status, _, body) = send(client, request).await;
    (status, body)
}

/// Sends `count` sequential GETs, failing the test if they take longer than [`LOAD_DEADLINE`].
pub async fn get_many(client: &TestClient, addr: SocketAddr, count: usize) -> Vec<StatusCode> {
    tokio::time::timeout(LOAD_DEADLINE, async {
        let mut statuses = Vec::with_capacity(count);
        for _ in 0..count {
            statuses.push(get(client, addr, "/").await.0);
        }
        statuses
    })
    .await
    .expect("requests finish before the deadline")
}

pub fn table(version: u64, services: Vec<ServiceRoute>) -> RouteTable {
    RouteTable { version, services }
}

pub fn service(name: &str, listen: SocketAddr, backends: &[(&str, u32, &[SocketAddr])]) -> ServiceRoute {
    ServiceRoute::new(
        name.to_owned(),
        listen,
        backends
            .iter()
            .map(|(revision, weight, instances)| Backend {
                revision: (*revision).to_owned(),
                weight: *weight,
                instances: instances.to_vec(),
            })
            .collect(),
    )
}

pub async fn start_proxy(initial: Option<RouteTable>) -> ProxyHandle {
    start_proxy_on(initial, None).await
}

/// A proxy serving on `workers` threads of its own (as `sluice proxy --workers` does) rather than on the test's
/// runtime, so what it does cannot be confused with the test's own clients and backends.
pub async fn start_proxy_on(initial: Option<RouteTable>, workers: Option<std::num::NonZeroUsize>) -> ProxyHandle {
    sluice_proxy::start(ProxyConfig {
        admin: "127.0.0.1:0".parse().expect("admin address"),
        state_file: None,
        initial,
        workers,
    })
    .await
    .expect("proxy starts")
}

/// `PUT /routes`; returns the status and the JSON answer.
pub async fn put_routes(client: &TestClient, admin: SocketAddr, table: &RouteTable) -> (StatusCode, serde_json::Value) {
    let body = serde_json::to_vec(table).expect("table serializes");
    let request = Request::put(format!("http://{admin}/routes"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    let (status, _, body) = send(client, request).await;
    (status, serde_json::from_str(&body).expect("admin answers JSON"))
}

pub async fn get_routes(client: &TestClient, admin: SocketAddr) -> RouteTable {
    let (status, body) = get(client, admin, "/routes").await;
    assert_eq!(status, StatusCode::OK);
    serde_json::from_str(&body).expect("routes are a table")
}

pub async fn snapshot(client: &TestClient, admin: SocketAddr) -> Snapshot {
    let (status, body) = get(client, admin, "/snapshot").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_str(&body).expect("snapshot deserializes")
}

//! Serving the demo app over HTTP/1.1 until told to stop.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, error, info, warn};

use super::error_schedule::ErrorSchedule;
use super::item::{BAD_ID_BODY, ItemCatalogue, ItemPath};
use super::latency::LatencyPlan;
use super::{AppConfig, InvalidAppConfig, InvalidPriceChange};

/// How long in-flight requests may take to finish after shutdown, on top of the configured latency.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
const REVISION_HEADER: &str = "x-revision";
const HEALTH_PATH: &str = "/healthz";

/// Serves the demo app on `config.listen` until `shutdown` resolves, then lets in-flight requests
/// finish.
///
/// Every response carries `x-revision: <revision>`. `GET /healthz` answers 200 `ok` at once and
/// never fails. `/api/items/{id}` (any method) answers, after the configured latency, 200 with
/// `application/json`
/// `{"id":7,"name":"item-7","price":12.34,"currency":"EUR","requestId":"<hex>","servedAt":<unix ns>}`:
/// the price depends on the id and `price_change` only, `requestId` and `servedAt` differ between any two
/// answers; a non-numeric id gets a JSON 404. Any other path answers, after the latency, 200
/// `hello from <revision>`. Exactly a fraction `error_rate` of the requests (of those whose method is in
/// `fail_methods`, when it is not empty) get a 500 instead: request `n` (counted from 1) fails iff
/// `floor(n * rate) > floor((n - 1) * rate)`, so 5% is exactly every twentieth request.
pub async fn serve(config: AppConfig, shutdown: impl Future<Output = ()>) -> io::Result<()> {
    let behaviour = Behaviour::new(&config).map_err(invalid_input)?;
    let listener = bind(&config).await?;
    serve_on(listener, behaviour, shutdown).await
}

/// Starts the demo app in the background, for tests and in-process demos; `config.listen` may use
/// port 0.
pub async fn start(config: AppConfig) -> io::Result<AppHandle> {
    let behaviour = Behaviour::new(&config).map_err(invalid_input)?;
    let listener = bind(&config).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    // A dropped sender also resolves the receiver, so dropping the handle stops the server.
    let server = tokio::spawn(serve_on(listener, behaviour, async move {
        let _ = stopped.await;
    }));
    Ok(AppHandle { addr, stop, server })
}

/// A demo app running in the background. Dropping the handle stops it too, without waiting.
#[derive(Debug)]
pub struct AppHandle {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    server: JoinHandle<io::Result<()>>,
}

impl AppHandle {
    /// The address the app actually listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections and waits for in-flight requests (bounded by latency plus a
    /// grace period).
    pub async fn shutdown(self) -> io::Result<()> {
        let Self { stop, server, .. } = self;
        drop(stop);
        match server.await {
            Ok(result) => result,
            Err(join_error) if join_error.is_panic() => std::panic::resume_unwind(join_error.into_panic()),
            Err(join_error) => Err(io::Error::other(format!("demo app task was cancelled: {join_error}"))),
        }
    }
}

/// Everything a request handler needs, shared by all connections.
#[derive(Debug)]
struct Behaviour {
    revision: HeaderValue,
    greeting: Bytes,
    failure_body: Bytes,
    errors: ErrorSchedule,
    /// Methods the error schedule applies to; empty for all.
    fail_methods: Vec<Method>,
    /// Every request but health checks, numbered for the latency spread whatever the method.
    requests_seen: AtomicU64,
    latency: LatencyPlan,
    items: ItemCatalogue,
}

impl Behaviour {
    fn new(config: &AppConfig) -> Result<Self, InvalidAppConfig> {
        let errors = ErrorSchedule::new(config.error_rate)?;
        let price_change = InvalidPriceChange::check(config.price_change)?;
        let revision = match HeaderValue::from_str(&config.revision) {
            Ok(value) if !config.revision.is_empty() => value,
            _ => {
                return Err(InvalidAppConfig::Revision {
                    revision: config.revision.clone(),
                });
            }
        };
        Ok(Self {
            revision,
            greeting: Bytes::from(format!("hello from {}\n", config.revision)),
            failure_body: Bytes::from(format!("injected failure in {}\n", config.revision)),
            errors,
            fail_methods: config.fail_methods.clone(),
            requests_seen: AtomicU64::new(0),
            latency: LatencyPlan {
                base: config.latency,
                jitter: config.latency_jitter,
            },
            items: ItemCatalogue::new(price_change),
        })
    }

    /// The longest a request can take, so shutdown waits for slow revisions but not forever.
    fn drain_deadline(&self) -> Duration {
        self.latency
            .base
            .saturating_add(self.latency.jitter)
            .saturating_add(SHUTDOWN_GRACE)
    }

    async fn respond(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        if request.uri().path() == HEALTH_PATH {
            discard_body(request.into_body()).await;
            return self.reply(StatusCode::OK, Bytes::from_static(b"ok"));
        }
        let number = self.requests_seen.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        // Only requests the schedule applies to advance it, so "1 in 10 POSTs" holds whatever else is sent.
        let fails = self.schedules(request.method()) && self.errors.next_request().1;
        let item = ItemPath::parse(request.uri().path());
        discard_body(request.into_body()).await;
        tokio::time::sleep(self.latency.delay_for(number)).await;
        if fails {
            return self.reply(StatusCode::INTERNAL_SERVER_ERROR, self.failure_body.clone());
        }
        match item {
            ItemPath::Other => self.reply(StatusCode::OK, self.greeting.clone()),
            ItemPath::Item(id) => self.reply_json(StatusCode::OK, Bytes::from(self.items.render(id))),
            ItemPath::BadId => self.reply_json(StatusCode::NOT_FOUND, Bytes::from_static(BAD_ID_BODY.as_bytes())),
        }
    }

    fn schedules(&self, method: &Method) -> bool {
        self.fail_methods.is_empty() || self.fail_methods.contains(method)
    }

    fn reply(&self, status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
        self.reply_as(status, body, HeaderValue::from_static("text/plain; charset=utf-8"))
    }

    fn reply_json(&self, status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
        self.reply_as(status, body, HeaderValue::from_static("application/json"))
    }

    fn reply_as(&self, status: StatusCode, body: Bytes, content_type: HeaderValue) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(body));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(REVISION_HEADER, self.revision.clone());
        headers.insert(CONTENT_TYPE, content_type);
        response
    }
}

fn invalid_input(error: InvalidAppConfig) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, error)
}

async fn bind(config: &AppConfig) -> io::Result<TcpListener> {
    let listener = TcpListener::bind(config.listen).await.map_err(|error| {
        io::Error::new(
            error.kind(),
            format!(
                "demo app {} cannot listen on {}: {error}",
                config.revision, config.listen
            ),
        )
    })?;
    info!(revision = %config.revision, addr = %listener.local_addr()?, "demo app listening");
    Ok(listener)
}

/// Reads and drops a request body, so the connection stays usable for keep-alive.
async fn discard_body(mut body: Incoming) {
    while let Some(frame) = body.frame().await {
        if let Err(error) = frame {
            debug!(%error, "request body ended early");
            return;
        }
    }
}

async fn serve_on(listener: TcpListener, behaviour: Behaviour, shutdown: impl Future<Output = ()>) -> io::Result<()> {
    let drain_deadline = behaviour.drain_deadline();
    let behaviour = Arc::new(behaviour);
    let graceful = GracefulShutdown::new();
    // Owning the connection tasks means dropping the set aborts any that outlive the drain
    // deadline.
    let mut connections = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(finished) = connections.join_next() => {
                if let Err(join_error) = finished {
                    error!(%join_error, "demo app connection task failed");
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let behaviour = Arc::clone(&behaviour);
                    connections.spawn(serve_connection(stream, peer, behaviour, &graceful));
                }
                Err(error) => {
                    warn!(%error, "demo app cannot accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
    drop(listener);
    if tokio::time::timeout(drain_deadline, graceful.shutdown()).await.is_err() {
        warn!(?drain_deadline, "demo app shut down with requests still in flight");
    }
    Ok(())
}

fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    behaviour: Arc<Behaviour>,
    graceful: &GracefulShutdown,
) -> impl Future<Output = ()> + use<> {
    // Replies are tiny; without NODELAY, Nagle and delayed ACKs would add tens of milliseconds of
    // latency.
    if let Err(error) = stream.set_nodelay(true) {
        debug!(%error, %peer, "cannot disable Nagle's algorithm");
    }
    let service = service_fn(move |request| {
        let behaviour = Arc::clone(&behaviour);
        async move { Ok::<_, Infallible>(behaviour.respond(request).await) }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(stream), service);
    let watched = graceful.watch(connection);
    async move {
        if let Err(error) = watched.await {
            debug!(%error, %peer, "demo app connection ended with an error");
        }
    }
}

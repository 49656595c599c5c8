//! The shadow listener: receives the proxy's mirrored copies, sends each to the primary, the secondary and
//! the candidate at once, and compares the answers.
//!
//! The proxy drops the listener's answers, so each request is answered as soon as its body is read: `204`
//! when it was taken, `503` when too many are in flight (it is dropped and counted), `413` when its body is
//! over `maxBodyBytes` (skipped and counted), `405` for a method that is not shadowed (a second guard behind
//! the proxy's own filter, since repeating a POST repeats its side effects); a body broken off or not read
//! within the timeout gets `400` or `408` and is not counted, as the proxy did not send a whole request. The
//! fan-out then runs on its own task, holding one of the in-flight slots, each exchange bounded by the
//! timeout.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Empty, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use sluice_spec::Shadow;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, info, warn};

use crate::compare::{CompareSettings, Difference, compare};
use crate::error::ShadowError;
use crate::fanout::{Outcome, Sender, Shadowed};
use crate::field;
use crate::report::{Accumulator, DiffReport};

/// How long open connections get to finish when the listener shuts down; answers are immediate.
const DRAIN: Duration = Duration::from_secs(1);
/// Pause after a failed accept (out of file descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Where shadowed requests go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShadowTargets {
    /// The stable revision's instances; each request goes to the next in turn, and its answer is the one
    /// the others are compared with.
    pub primary: Vec<SocketAddr>,
    /// A second stable instance, started for the stage; its differences from the primary are the noise.
    pub secondary: SocketAddr,
    /// The candidate's instances, in turn.
    pub candidate: Vec<SocketAddr>,
}

impl ShadowTargets {
    fn check(&self) -> Result<(), ShadowError> {
        if self.primary.is_empty() {
            return Err(ShadowError::NoInstances { role: "primary" });
        }
        if self.candidate.is_empty() {
            return Err(ShadowError::NoInstances { role: "candidate" });
        }
        Ok(())
    }
}

/// Bounds on the listener's work; the spec does not set these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Requests being fanned out at once; more are dropped and counted.
    pub max_in_flight: usize,
    /// Time for one instance to answer, body included; an instance that takes longer gave no answer.
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_in_flight: 256,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Starts shadow listeners.
#[derive(Debug)]
pub struct ShadowServer;

impl ShadowServer {
    /// Starts a listener on `127.0.0.1:0` for a shadow stage, with the default [`Limits`].
    pub async fn start(settings: &Shadow, targets: ShadowTargets) -> Result<ShadowHandle, ShadowError> {
        Self::start_with_limits(settings, targets, Limits::default()).await
    }

    /// Starts a listener on `127.0.0.1:0` for a shadow stage.
    pub async fn start_with_limits(
        settings: &Shadow,
        targets: ShadowTargets,
        limits: Limits,
    ) -> Result<ShadowHandle, ShadowError> {
        let compare = CompareSettings::new(settings)?;
        targets.check()?;
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(ShadowError::Bind)?;
        let addr = listener.local_addr().map_err(ShadowError::Bind)?;
        let shared = Arc::new(Shared {
            sender: Sender::new(limits.timeout, compare.max_body_bytes()),
            compare,
            targets: ArcSwap::from_pointee(targets),
            next_primary: AtomicUsize::new(0),
            next_candidate: AtomicUsize::new(0),
            slots: Arc::new(Semaphore::new(limits.max_in_flight)),
            accumulator: Mutex::new(Accumulator::new(settings.noise.clone())),
            limits,
        });
        let (stop, stopped) = watch::channel(false);
        let server = tokio::spawn(serve(listener, Arc::clone(&shared), stopped));
        info!(%addr, "shadow listener started");
        Ok(ShadowHandle {
            addr,
            shared,
            stop,
            server,
        })
    }
}

/// A running shadow listener. Dropping it stops the listener and closes its connections at once.
#[derive(Debug)]
pub struct ShadowHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    server: JoinHandle<()>,
}

impl ShadowHandle {
    /// The address the proxy's mirror should send to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The report so far.
    pub fn report(&self) -> DiffReport {
        self.shared.accumulator().report()
    }

    /// Sends the next requests to these instances (the platform restarted or replaced some).
    pub fn set_targets(&self, targets: ShadowTargets) -> Result<(), ShadowError> {
        targets.check()?;
        self.shared.targets.store(Arc::new(targets));
        Ok(())
    }

    /// Stops accepting, lets the fan-outs in flight finish (each is bounded by the timeout) and returns the
    /// final report.
    pub async fn shutdown(mut self) -> DiffReport {
        self.stop.send_replace(true);
        if let Err(error) = (&mut self.server).await {
            warn!(%error, "shadow listener task failed");
        }
        let slots = u32::try_from(self.shared.limits.max_in_flight).unwrap_or(u32::MAX);
        let finished = tokio::time::timeout(
            self.shared.limits.timeout + DRAIN,
            self.shared.slots.acquire_many(slots),
        );
        if finished.await.is_err() {
            warn!("shadow listener stopped with fan-outs still in flight");
        }
        self.report()
    }
}

impl Drop for ShadowHandle {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[derive(Debug)]
struct Shared {
    compare: CompareSettings,
    sender: Sender,
    targets: ArcSwap<ShadowTargets>,
    next_primary: AtomicUsize,
    next_candidate: AtomicUsize,
    slots: Arc<Semaphore>,
    accumulator: Mutex<Accumulator>,
    limits: Limits,
}

impl Shared {
    fn accumulator(&self) -> MutexGuard<'_, Accumulator> {
        // Recording cannot leave the counts half-updated in a way worth refusing to read.
        self.accumulator.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Answers the proxy, and starts the fan-out when the request is taken.
    async fn receive(self: Arc<Self>, request: Request<Incoming>) -> Response<Empty<Bytes>> {
        if !self.compare.shadows(request.method()) {
            self.accumulator().record_refused();
            return status(StatusCode::METHOD_NOT_ALLOWED);
        }
        let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() else {
            self.accumulator().record_dropped();
            return status(StatusCode::SERVICE_UNAVAILABLE);
        };
        let max = self.compare.max_body_bytes();
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|length| length > max) {
            self.accumulator().record_skipped();
            return status(StatusCode::PAYLOAD_TOO_LARGE);
        }
        let (parts, body) = request.into_parts();
        let limit = usize::try_from(max).unwrap_or(usize::MAX);
        // A body sent slowly would hold its slot; it gets the same time limit as an instance's answer.
        let read = tokio::time::timeout(self.limits.timeout, Limited::new(body, limit).collect()).await;
        let body = match read {
            Ok(Ok(collected)) => collected.to_bytes(),
            Ok(Err(error)) if error.is::<LengthLimitError>() => {
                self.accumulator().record_skipped();
                return status(StatusCode::PAYLOAD_TOO_LARGE);
            }
            Ok(Err(error)) => {
                debug!(%error, "shadowed request body broken off");
                return status(StatusCode::BAD_REQUEST);
            }
            Err(_) => {
                debug!("shadowed request body not read in time");
                return status(StatusCode::REQUEST_TIMEOUT);
            }
        };
        let shadowed = Shadowed::new(parts.method, &parts.uri, parts.headers, body);
        tokio::spawn(self.fan_out(shadowed, slot));
        status(StatusCode::NO_CONTENT)
    }

    /// Sends one request to the three instances at once and records how their answers differ.
    async fn fan_out(self: Arc<Self>, request: Shadowed, _slot: OwnedSemaphorePermit) {
        let targets = self.targets.load_full();
        let primary = pick(&targets.primary, &self.next_primary);
        let candidate = pick(&targets.candidate, &self.next_candidate);
        let (primary, secondary, candidate) = tokio::join!(
            self.sender.send(primary, &request),
            self.sender.send(targets.secondary, &request),
            self.sender.send(candidate, &request),
        );
        // Comparing a large JSON body takes a while; it is done before the accumulator is locked.
        let outcome = match (primary, secondary, candidate) {
            (Outcome::TooLarge, _, _) | (_, Outcome::TooLarge, _) | (_, _, Outcome::TooLarge) => Recorded::Skipped,
            (Outcome::NoAnswer(reason), _, _) | (_, Outcome::NoAnswer(reason), _) => {
                debug!(%reason, request = %request.label(), "a stable instance did not answer a shadowed request");
                Recorded::Unanswered
            }
            (Outcome::Answered(primary), Outcome::Answered(secondary), Outcome::NoAnswer(reason)) => {
                debug!(%reason, request = %request.label(), "the candidate did not answer a shadowed request");
                let missing = Difference {
                    field: field::STATUS.to_owned(),
                    expected: primary.status.as_u16().to_string(),
                    actual: "(no answer)".to_owned(),
                };
                Recorded::Compared(vec![missing], compare(&primary, &secondary, &self.compare))
            }
            (Outcome::Answered(primary), Outcome::Answered(secondary), Outcome::Answered(candidate)) => {
                Recorded::Compared(
                    compare(&primary, &candidate, &self.compare),
                    compare(&primary, &secondary, &self.compare),
                )
            }
        };
        let mut accumulator = self.accumulator();
        match outcome {
            Recorded::Skipped => accumulator.record_skipped(),
            Recorded::Unanswered => accumulator.record_unanswered(),
            Recorded::Compared(candidate, noise) => accumulator.record(&request.label(), &candidate, &noise),
        }
    }
}

enum Recorded {
    Skipped,
    Unanswered,
    Compared(Vec<Difference>, Vec<Difference>),
}

/// The next instance in turn; `instances` is never empty (checked when the targets are set).
fn pick(instances: &[SocketAddr], next: &AtomicUsize) -> SocketAddr {
    let turn = next.fetch_add(1, Ordering::Relaxed);
    instances[turn % instances.len()]
}

fn status(code: StatusCode) -> Response<Empty<Bytes>> {
    let mut response = Response::new(Empty::new());
    *response.status_mut() = code;
    response
}

async fn serve(listener: TcpListener, shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    let graceful = GracefulShutdown::new();
    // Owning the connection tasks means aborting this task (dropping the handle) closes them too.
    let mut connections = JoinSet::new();
    // The wait is wrapped so that the borrowed value it returns, which is not `Send`, is dropped inside.
    let mut stop = pin!(async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    });
    loop {
        tokio::select! {
            () = &mut stop => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(serve_connection(stream, peer, Arc::clone(&shared), &graceful));
                }
                Err(error) => {
                    warn!(%error, "shadow listener cannot accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown()).await.is_err() {
        debug!("shadow listener closed connections still open");
    }
}

fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    graceful: &GracefulShutdown,
) -> impl Future<Output = ()> + use<> {
    if let Err(error) = stream.set_nodelay(true) {
        debug!(%error, %peer, "cannot disable Nagle's algorithm");
    }
    let service = service_fn(move |request| {
        let shared = Arc::clone(&shared);
        async move { Ok::<_, Infallible>(shared.receive(request).await) }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    let connection = builder.serve_connection(TokioIo::new(stream), service).into_owned();
    let watched = graceful.watch(connection);
    async move {
        if let Err(error) = watched.await {
            debug!(%error, %peer, "shadow connection ended with an error");
        }
    }
}

//! Connections to instances: per-worker pools of keep-alive HTTP/1.1 connections, one multiplexed HTTP/2
//! connection per instance and worker, connect timeouts, and passive health.
//!
//! Pools are per worker because a connection's I/O runs on the runtime that opened it: handing it to another
//! worker would wake that worker for every request. They are kept per instance address across table swaps
//! (the [`EndpointRegistry`]), so a weight change keeps every warm connection.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Waker};
use std::time::Duration;

use http::uri::Authority;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::body::UpstreamBody;
use crate::lean::Pipes;
use crate::routes::UpstreamProtocol;
use crate::snapshot::InstanceSnapshot;
use crate::worker;

/// First ejection of an instance that refused a connection; each consecutive one doubles it.
const BASE_EJECTION: Duration = Duration::from_secs(5);

/// Consecutive ejections stop doubling here (5 s × 2³ = 40 s).
const MAX_EJECTION_DOUBLINGS: u32 = 3;

/// Idle keep-alive connections kept per instance and worker; more are closed when they come back.
const MAX_IDLE_PER_WORKER: usize = 512;

/// An idle connection older than this is closed rather than reused: backends commonly close theirs
/// after 60–75 s, and reusing one they are closing fails the request.
const IDLE_TIMEOUT: Duration = Duration::from_secs(50);

/// A connection to an instance, ready to send one request.
pub(crate) enum Connection {
    Http1(http1::SendRequest<UpstreamBody>),
    Http2(http2::SendRequest<UpstreamBody>),
}

/// Why no connection to an instance could be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("connect timeout after {0:?}")]
    Timeout(Duration),
    #[error("cannot connect: {0}")]
    Io(#[from] io::Error),
    #[error("connected, but the HTTP handshake failed: {0}")]
    Handshake(#[from] hyper::Error),
}

struct IdleConnection {
    sender: http1::SendRequest<UpstreamBody>,
    since: Instant,
}

/// A keep-alive connection of the lean HTTP/1.1 path, between two exchanges.
struct IdleStream {
    stream: TcpStream,
    since: Instant,
}

/// One worker's connections to one instance; aligned so workers never share a cache line.
#[repr(align(128))]
#[derive(Default)]
struct WorkerConnections {
    idle: Mutex<Vec<IdleConnection>>,
    /// Connections the lean path drives itself (no hyper connection task), kept apart from hyper's.
    idle_streams: Mutex<Vec<IdleStream>>,
    http2: Mutex<Option<http2::SendRequest<UpstreamBody>>>,
    /// Pipelined connections of the lean path (services with `pipelineDepth` above 1).
    pipes: Pipes,
}

/// An instance address: its connections and its passive health.
pub(crate) struct Endpoint {
    pub(crate) addr: SocketAddr,
    pub(crate) authority: Authority,
    workers: Box<[WorkerConnections]>,
    /// Milliseconds since [`epoch`] until which the instance gets no new requests.
    ejected_until_ms: AtomicU64,
    consecutive_failures: AtomicU32,
    connect_failures: AtomicU64,
    ejections: AtomicU64,
}

impl Endpoint {
    fn new(addr: SocketAddr, workers: usize) -> Self {
        Self {
            addr,
            authority: authority_of(addr),
            workers: (0..workers.max(1)).map(|_| WorkerConnections::default()).collect(),
            ejected_until_ms: AtomicU64::new(0),
            consecutive_failures: AtomicU32::new(0),
            connect_failures: AtomicU64::new(0),
            ejections: AtomicU64::new(0),
        }
    }

    fn worker(&self) -> &WorkerConnections {
        let index = worker::current().min(self.workers.len() - 1);
        &self.workers[index]
    }

    /// This worker's pipelined connections to the instance.
    pub(crate) fn pipes(&self) -> &Pipes {
        &self.worker().pipes
    }

    /// Whether the instance is ejected at `now`.
    pub(crate) fn is_ejected(&self, now: Instant) -> bool {
        self.ejected_until_ms.load(Ordering::Relaxed) > millis_since_epoch(now)
    }

    /// A connection ready for one request: an idle pooled one, the shared HTTP/2 one, or a new one.
    pub(crate) async fn connect(
        self: &Arc<Self>,
        protocol: UpstreamProtocol,
        timeout: Duration,
    ) -> Result<Connection, ConnectError> {
        match protocol {
            UpstreamProtocol::Http1 => {
                if let Some(sender) = self.idle_http1().await {
                    return Ok(Connection::Http1(sender));
                }
                self.connect_new(timeout).await
            }
            UpstreamProtocol::Http2 => {
                if let Some(sender) = lock(&self.worker().http2).as_ref().filter(|s| !s.is_closed()) {
                    return Ok(Connection::Http2(sender.clone()));
                }
                let stream = self.open(timeout).await?;
                let (sender, connection) = http2::Builder::new(TokioExecutor::new())
                    .timer(TokioTimer::new())
                    .handshake(TokioIo::new(stream))
                    .await
                    .inspect_err(|_| self.failed())?;
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!(%error, "upstream HTTP/2 connection ended with an error");
                    }
                });
                *lock(&self.worker().http2) = Some(sender.clone());
                Ok(Connection::Http2(sender))
            }
        }
    }

    /// A new HTTP/1.1 connection, never a pooled one. Its task allows upgrades, so the same connection can
    /// carry a WebSocket after a `101`.
    pub(crate) async fn connect_new(&self, timeout: Duration) -> Result<Connection, ConnectError> {
        let stream = self.open(timeout).await?;
        let (sender, connection) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .inspect_err(|_| self.failed())?;
        tokio::spawn(async move {
            if let Err(error) = connection.with_upgrades().await {
                tracing::debug!(%error, "upstream connection ended with an error");
            }
        });
        Ok(Connection::Http1(sender))
    }

    /// Gives back an HTTP/1.1 connection whose answer was read to the end.
    pub(crate) fn release(&self, sender: http1::SendRequest<UpstreamBody>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = lock(&self.worker().idle);
        if idle.len() < MAX_IDLE_PER_WORKER {
            idle.push(IdleConnection {
                sender,
                since: Instant::now(),
            });
        }
    }

    async fn idle_http1(&self) -> Option<http1::SendRequest<UpstreamBody>> {
        loop {
            // Most recently used first: it is the least likely to have been closed by the backend.
            let IdleConnection { mut sender, since } = lock(&self.worker().idle).pop()?;
            if sender.is_closed() || since.elapsed() > IDLE_TIMEOUT {
                continue;
            }
            if sender.is_ready() {
                return Some(sender);
            }
            // Released as its last answer ended: its task is still finishing that exchange.
            if sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    /// An idle keep-alive stream of the lean path, most recently used first, or `None`.
    ///
    /// A stream the instance closed while it sat idle is noticed without a system call in the common case: the
    /// reactor has then marked it readable, and only such a stream is probed with a read.
    pub(crate) fn idle_stream(&self, now: Instant) -> Option<TcpStream> {
        let mut idle = lock(&self.worker().idle_streams);
        while let Some(IdleStream { stream, since }) = idle.pop() {
            if now.saturating_duration_since(since) > IDLE_TIMEOUT {
                continue;
            }
            let mut context = Context::from_waker(Waker::noop());
            if stream.poll_read_ready(&mut context).is_pending() {
                return Some(stream);
            }
            // Readable while idle: closed (EOF), or sending what nobody asked for. `WouldBlock` means the
            // readiness was stale (the last answer filled the read buffer exactly); the probe clears it.
            if let Err(error) = stream.try_read(&mut [0_u8; 1])
                && error.kind() == io::ErrorKind::WouldBlock
            {
                return Some(stream);
            }
        }
        None
    }

    /// Gives back a lean-path stream whose exchange ended cleanly (answer read to its end, keep-alive).
    pub(crate) fn release_stream(&self, stream: TcpStream, now: Instant) {
        let mut idle = lock(&self.worker().idle_streams);
        if idle.len() < MAX_IDLE_PER_WORKER {
            idle.push(IdleStream { stream, since: now });
        }
    }

    /// A new TCP connection to the instance (`TCP_NODELAY` set); a failure ejects the instance.
    pub(crate) async fn open(&self, timeout: Duration) -> Result<TcpStream, ConnectError> {
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(self.addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                self.failed();
                return Err(ConnectError::Io(error));
            }
            Err(_) => {
                self.failed();
                return Err(ConnectError::Timeout(timeout));
            }
        };
        // Small request/response exchanges must not wait for Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        self.consecutive_failures.store(0, Ordering::Relaxed);
        Ok(stream)
    }

    /// Ejects the instance for a while: 5 s, doubling with each consecutive failure up to 40 s.
    fn failed(&self) {
        self.connect_failures.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        if !self.is_ejected(now) {
            self.ejections.fetch_add(1, Ordering::Relaxed);
        }
        let consecutive = self.consecutive_failures.fetch_add(1, Ordering::Relaxed);
        let ejection = BASE_EJECTION * 2_u32.pow(consecutive.min(MAX_EJECTION_DOUBLINGS));
        let until = millis_since_epoch(now + ejection);
        self.ejected_until_ms.fetch_max(until, Ordering::Relaxed);
        tracing::info!(instance = %self.addr, ?ejection, "instance ejected after a failed connection");
    }

    fn snapshot(&self, now: Instant) -> InstanceSnapshot {
        InstanceSnapshot {
            address: self.addr,
            ejected: self.is_ejected(now),
            connect_failures: self.connect_failures.load(Ordering::Relaxed),
            ejections: self.ejections.load(Ordering::Relaxed),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded values are replaced whole, so a poisoned lock still guards a consistent value.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The instant ejection deadlines are counted from, so they fit in an atomic.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn millis_since_epoch(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(epoch()).as_millis()).unwrap_or(u64::MAX)
}

fn authority_of(addr: SocketAddr) -> Authority {
    // A socket address always renders as a valid authority (`1.2.3.4:80` or `[::1]:80`).
    Authority::try_from(addr.to_string().as_str()).expect("socket address is a valid authority")
}

/// Every instance address the table references, shared by the compiled tables that use it.
pub(crate) struct EndpointRegistry {
    workers: usize,
    endpoints: Mutex<BTreeMap<SocketAddr, Arc<Endpoint>>>,
}

impl EndpointRegistry {
    pub(crate) fn new(workers: usize) -> Self {
        Self {
            workers,
            endpoints: Mutex::new(BTreeMap::new()),
        }
    }

    /// The endpoint of an address, created on first use.
    pub(crate) fn endpoint(&self, addr: SocketAddr) -> Arc<Endpoint> {
        lock(&self.endpoints)
            .entry(addr)
            .or_insert_with(|| Arc::new(Endpoint::new(addr, self.workers)))
            .clone()
    }

    /// Drops the endpoints no table references, closing their idle connections.
    pub(crate) fn forget_unused(&self) {
        lock(&self.endpoints).retain(|_, endpoint| Arc::strong_count(endpoint) > 1);
    }

    pub(crate) fn snapshot(&self) -> Vec<InstanceSnapshot> {
        let now = Instant::now();
        lock(&self.endpoints).values().map(|e| e.snapshot(now)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_of_ipv6_is_bracketed() {
        let v6 = SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], 9000));
        assert_eq!(authority_of(v6).as_str(), "[::1]:9000");
    }

    #[tokio::test]
    async fn a_refused_connection_ejects_the_instance_with_growing_pauses() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = closed.local_addr().expect("address");
        drop(closed);
        let endpoint = Arc::new(Endpoint::new(addr, 1));
        assert!(!endpoint.is_ejected(Instant::now()));
        let error = endpoint
            .connect(UpstreamProtocol::Http1, Duration::from_secs(5))
            .await
            .err()
            .expect("nothing listens");
        assert!(matches!(error, ConnectError::Io(_)), "{error}");
        let now = Instant::now();
        assert!(endpoint.is_ejected(now));
        assert!(!endpoint.is_ejected(now + BASE_EJECTION + Duration::from_millis(10)));
        let _ = endpoint.connect(UpstreamProtocol::Http1, Duration::from_secs(5)).await;
        assert!(endpoint.is_ejected(Instant::now() + BASE_EJECTION + Duration::from_millis(10)));
        let snapshot = endpoint.snapshot(Instant::now());
        assert_eq!(
            (snapshot.connect_failures, snapshot.ejections),
            (2, 1),
            "one ejection, extended"
        );
    }
}

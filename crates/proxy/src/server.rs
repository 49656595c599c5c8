//! Accepting and serving HTTP connections on one listener, and draining them when it stops.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::{Body, Incoming};
use hyper::service::Service;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulConnection;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::forward::Origin;
use crate::lean;
use crate::plane::DataPlane;

/// What the lean HTTP/1.1 path needs to serve a service listener's connections.
pub(crate) struct Lean {
    pub(crate) plane: Arc<DataPlane>,
    pub(crate) listen: SocketAddr,
}

/// How long in-flight requests get to finish once a listener stops.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// A TLS handshake that takes longer than this is abandoned, so silent clients cannot pile up.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves connections until `stop` resolves, then stops accepting, lets in-flight requests finish
/// for up to [`DRAIN_TIMEOUT`] (idle keep-alive connections close at once) and aborts the rest.
///
/// `tls_for` is asked at each connection whether to speak TLS, so a new certificate applies to the next
/// connection; `service_for` learns the client's address and whether TLS is in use.
///
/// With `lean`, plain-text connections start on the lean HTTP/1.1 path, which hands them to hyper (with this
/// `service_for`'s service) at the first request it does not take.
pub(crate) async fn serve<S, B>(
    listener: TcpListener,
    tls_for: impl Fn() -> Option<TlsAcceptor>,
    mut service_for: impl FnMut(SocketAddr, bool) -> S,
    lean: Option<Lean>,
    stop: impl Future<Output = ()>,
) where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let local = listener.local_addr().ok();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The timer enables hyper's header read timeout, which closes connections that never send a request.
    builder.http1().timer(TokioTimer::new());
    builder.http2().timer(TokioTimer::new());
    let (drain, draining) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            biased;
            () = &mut stop => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    // Small request/response exchanges must not wait for Nagle's algorithm.
                    let _ = stream.set_nodelay(true);
                    match tls_for() {
                        None if lean.is_some() => {
                            let Some(lean) = &lean else { continue };
                            let service = service_for(peer, false);
                            let builder = builder.clone();
                            let origin = Origin::new(lean.listen, peer, false);
                            connections.spawn(lean::serve(
                                lean.plane.clone(),
                                origin,
                                stream,
                                draining.clone(),
                                move |io, draining| {
                                    let connection = builder
                                        .serve_connection_with_upgrades(TokioIo::new(io), service)
                                        .into_owned();
                                    serve_connection(connection, draining)
                                },
                            ));
                        }
                        None => {
                            let connection = builder
                                .serve_connection_with_upgrades(TokioIo::new(stream), service_for(peer, false))
                                .into_owned();
                            connections.spawn(serve_connection(connection, draining.clone()));
                        }
                        Some(acceptor) => {
                            let builder = builder.clone();
                            let service = service_for(peer, true);
                            let draining = draining.clone();
                            connections.spawn(async move {
                                let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                                let stream = match handshake.await {
                                    Ok(Ok(stream)) => stream,
                                    Ok(Err(error)) => {
                                        tracing::debug!(%peer, %error, "TLS handshake failed");
                                        return;
                                    }
                                    Err(_) => {
                                        tracing::debug!(%peer, "TLS handshake timed out");
                                        return;
                                    }
                                };
                                let connection = builder
                                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                                    .into_owned();
                                serve_connection(connection, draining).await;
                            });
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(listener = ?local, %error, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
    drop(listener);
    drain.send_replace(true);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            listener = ?local,
            connections = connections.len(),
            "requests still in flight after the drain timeout; closing their connections"
        );
        connections.shutdown().await;
    }
}

/// Resolves once the flag is raised or its sender is gone; both mean stop.
pub(crate) async fn signalled(flag: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`; drop it here rather than hold it in a task.
    let _ = flag.wait_for(|raised| *raised).await;
}

async fn serve_connection<C>(connection: C, mut draining: watch::Receiver<bool>)
where
    C: GracefulConnection,
    C::Error: std::fmt::Display,
{
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => log_connection_end(result),
        () = signalled(&mut draining) => {
            connection.as_mut().graceful_shutdown();
            log_connection_end(connection.await);
        }
    }
}

fn log_connection_end<E: std::fmt::Display>(result: Result<(), E>) {
    if let Err(error) = result {
        tracing::debug!(%error, "client connection ended with an error");
    }
}

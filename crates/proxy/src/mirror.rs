//! Mirroring: copies of a share of the users' requests, sent to a revision whose answers are dropped.
//!
//! A copy never delays or fails the user's request: it is sent from its own task, at most `maxInFlight`
//! copies per service are in flight (beyond that a copy is dropped and counted), and a request whose body is
//! larger than `maxBodyBytes`, or of unknown length, is not copied (counted as skipped). The one cost a user
//! may see is that a copied body is read whole before it is forwarded, which the cap bounds.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::request::Parts;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Body as _;
use tokio::time::Instant;

use crate::body::{ProxyBody, UpstreamBody};
use crate::forward::{self, message};
use crate::routing::{BackendRoutes, ServiceRoutes};
use crate::stats::{Outcome, class_of};

/// A copy ready to go, holding one of the service's in-flight slots until it is sent and answered.
pub(crate) struct Copy {
    service: Arc<ServiceRoutes>,
    request: Request<UpstreamBody>,
}

impl Copy {
    /// Sends the copy from its own task. Called once the user's request has its answer (or failed), so
    /// the copy's connection and sending never run ahead of the user's request on the same worker.
    pub(crate) fn send(self) {
        tokio::spawn(send_copy(self.service, self.request));
    }
}

/// Prepares a copy of the request for the mirror revision if it may be made; returns the body to forward to
/// the user's revision (read into memory when it was copied) with the copy, or the answer for a client whose
/// body could not be read.
pub(crate) async fn copy(
    service: &Arc<ServiceRoutes>,
    target: &BackendRoutes,
    parts: &Parts,
    body: UpstreamBody,
    received: Option<&AtomicU64>,
) -> Result<(UpstreamBody, Option<Copy>), Response<ProxyBody>> {
    let max = service.mirror_max_body_bytes();
    if !body.is_end_stream() && declared_length(parts).is_none_or(|length| length > max) {
        target.stats().mirror_skipped();
        return Ok((body, None));
    }
    if !service.acquire_mirror_slot() {
        target.stats().mirror_dropped();
        return Ok((body, None));
    }
    let (bytes, body) = if body.is_end_stream() {
        (Bytes::new(), body)
    } else {
        let limit = usize::try_from(max).unwrap_or(usize::MAX);
        match Limited::new(body, limit).collect().await {
            Ok(collected) => {
                let bytes = collected.to_bytes();
                if let Some(received) = received {
                    received.store(bytes.len() as u64, Ordering::Relaxed);
                }
                (bytes.clone(), UpstreamBody::Buffered(Full::new(bytes)))
            }
            Err(error) => {
                service.release_mirror_slot();
                return Err(message(
                    StatusCode::BAD_REQUEST,
                    format!("service {}: cannot read the request body: {error}", service.name()),
                ));
            }
        }
    };
    let mut copy = Request::new(UpstreamBody::Buffered(Full::new(bytes)));
    *copy.method_mut() = parts.method.clone();
    *copy.uri_mut() = parts.uri.clone();
    *copy.version_mut() = parts.version;
    *copy.headers_mut() = parts.headers.clone();
    let copy = Copy {
        service: service.clone(),
        request: copy,
    };
    Ok((body, Some(copy)))
}

fn declared_length(parts: &Parts) -> Option<u64> {
    parts.headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Sends one copy, reads its answer to the end, measures it and frees its slot.
async fn send_copy(service: Arc<ServiceRoutes>, copy: Request<UpstreamBody>) {
    if let Some(target) = service.mirror_backend() {
        let recorder = target.stats().mirror().clone();
        let started = recorder.start();
        let begun = Instant::now();
        let length = copy.body().size_hint().exact().unwrap_or(0);
        let (class, latency) = match deliver(&service, target, copy, begun).await {
            Some((status, latency)) => (class_of(status), latency),
            // No answer (unreachable, timed out, broken off) counts as a 5xx of the copy.
            None => (4, begun.elapsed()),
        };
        recorder.finish(
            started,
            Outcome {
                class,
                grpc: None,
                latency,
                bytes_received: length,
                bytes_sent: 0,
            },
        );
    }
    service.release_mirror_slot();
}

async fn deliver(
    service: &ServiceRoutes,
    target: &BackendRoutes,
    copy: Request<UpstreamBody>,
    begun: Instant,
) -> Option<(StatusCode, std::time::Duration)> {
    let endpoint = target.pick_instance(begun)?.clone();
    let connection = endpoint.connect(service.protocol, service.connect_timeout).await.ok()?;
    let (mut parts, body) = copy.into_parts();
    forward::set_uri(&mut parts, service.protocol, &endpoint);
    let request = Request::from_parts(parts, body);
    let sent = tokio::time::timeout(
        service.request_timeout,
        forward::send(&endpoint, connection, request, service),
    );
    let (response, pooled) = sent.await.ok()?.ok()?;
    let latency = begun.elapsed();
    let status = response.status();
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        frame.ok()?;
    }
    if let Some(sender) = pooled {
        endpoint.release(sender);
    }
    Some((status, latency))
}

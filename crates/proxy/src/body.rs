//! Bodies crossing the proxy: requests going up (streamed or buffered), answers coming down (measured).
//!
//! An answer is measured when its body ends, not when its headers arrive: a gRPC status is only known from
//! the trailers, and the bytes sent only at the end. The latency recorded is still the time to the headers.
//! Ending is also when an HTTP/1.1 connection goes back to its pool, as only then can it carry another request.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1;

use crate::stats::{GRPC_UNKNOWN, InFlight, Outcome, Recorder};
use crate::upstream::Endpoint;

/// A request body sent to an instance.
pub(crate) enum UpstreamBody {
    /// The client's body, streamed; `received` counts its bytes when someone wants them.
    Streamed {
        inner: Incoming,
        received: Option<Arc<AtomicU64>>,
    },
    /// A body held in memory: a mirrored copy, or a user's body read whole so it could be copied.
    Buffered(Full<Bytes>),
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            Self::Streamed { inner, received } => {
                let frame = ready!(Pin::new(inner).poll_frame(cx));
                if let (Some(Ok(frame)), Some(received)) = (&frame, received)
                    && let Some(data) = frame.data_ref()
                {
                    received.fetch_add(data.len() as u64, Ordering::Relaxed);
                }
                Poll::Ready(frame)
            }
            Self::Buffered(full) => match ready!(Pin::new(full).poll_frame(cx)) {
                Some(Ok(frame)) => Poll::Ready(Some(Ok(frame))),
                None => Poll::Ready(None),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Streamed { inner, .. } => inner.is_end_stream(),
            Self::Buffered(full) => full.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Streamed { inner, .. } => inner.size_hint(),
            Self::Buffered(full) => full.size_hint(),
        }
    }
}

/// Where a gRPC answer's status stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Grpc {
    /// Not a gRPC answer.
    No,
    /// A gRPC answer whose status is still to come in the trailers.
    Pending,
    /// The status is known.
    Status(u8),
}

impl Grpc {
    /// `grpc-status` from headers or trailers; a malformed one is `UNKNOWN`, as gRPC clients read it.
    pub(crate) fn status_in(headers: &HeaderMap) -> Option<u8> {
        let value = headers.get("grpc-status")?;
        let code = std::str::from_utf8(value.as_bytes())
            .ok()
            .and_then(|s| s.parse::<u8>().ok())
            .filter(|code| *code <= 16);
        Some(code.unwrap_or(GRPC_UNKNOWN))
    }
}

/// The status class a gRPC code counts in: `OK` is a success, codes that blame the caller are 4xx
/// (as in the gRPC-to-HTTP mapping of gRPC-Gateway), every other code is a 5xx.
pub(crate) fn grpc_class(code: u8) -> usize {
    match code {
        0 => 1,
        // CANCELLED, INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, PERMISSION_DENIED, FAILED_PRECONDITION,
        // OUT_OF_RANGE, UNAUTHENTICATED
        1 | 3 | 5 | 6 | 7 | 9 | 11 | 16 => 3,
        _ => 4,
    }
}

/// Measurement of one answer, completed when its body ends (or is abandoned).
pub(crate) struct Measure {
    pub(crate) recorder: Arc<Recorder>,
    pub(crate) started: InFlight,
    /// Status class index of the answer's HTTP status.
    pub(crate) class: usize,
    pub(crate) grpc: Grpc,
    pub(crate) latency: Duration,
    pub(crate) received: Option<Arc<AtomicU64>>,
    pub(crate) sent: u64,
}

impl Measure {
    fn finish(self, abandoned: bool) {
        let grpc = match self.grpc {
            Grpc::No => None,
            Grpc::Status(code) => Some(code),
            // Trailers never came: the stream was cut (CANCELLED if the client left, else UNKNOWN).
            Grpc::Pending if abandoned => Some(1),
            Grpc::Pending => Some(GRPC_UNKNOWN),
        };
        let class = grpc.map_or(self.class, grpc_class);
        let bytes_received = self.received.map_or(0, |r| r.load(Ordering::Relaxed));
        self.recorder.finish(
            self.started,
            Outcome {
                class,
                grpc,
                latency: self.latency,
                bytes_received,
                bytes_sent: self.sent,
            },
        );
    }
}

/// The body of an answer relayed from an instance.
pub(crate) struct Relayed {
    inner: Incoming,
    measure: Option<Measure>,
    /// The HTTP/1.1 connection the answer came on, pooled again once the body has been read.
    connection: Option<(Arc<Endpoint>, http1::SendRequest<UpstreamBody>)>,
}

impl Relayed {
    pub(crate) fn new(
        inner: Incoming,
        measure: Measure,
        connection: Option<(Arc<Endpoint>, http1::SendRequest<UpstreamBody>)>,
    ) -> Self {
        Self {
            inner,
            measure: Some(measure),
            connection,
        }
    }

    fn complete(&mut self) {
        if let Some(measure) = self.measure.take() {
            measure.finish(false);
        }
        if let Some((endpoint, sender)) = self.connection.take() {
            endpoint.release(sender);
        }
    }
}

impl Drop for Relayed {
    fn drop(&mut self) {
        // An answer without a body is never polled; one dropped half-way leaves its connection unusable.
        if self.inner.is_end_stream() {
            self.complete();
        } else if let Some(measure) = self.measure.take() {
            measure.finish(true);
        }
    }
}

impl Body for Relayed {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Some(measure) = &mut this.measure {
                    if let Some(data) = frame.data_ref() {
                        measure.sent += data.len() as u64;
                    } else if let Some(trailers) = frame.trailers_ref()
                        && measure.grpc == Grpc::Pending
                    {
                        measure.grpc = Grpc::Status(Grpc::status_in(trailers).unwrap_or(GRPC_UNKNOWN));
                    }
                }
                // Measure before handing over the last frame, so a client that has the whole answer
                // also finds it counted.
                if this.inner.is_end_stream() {
                    this.complete();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(error)) => {
                if let Some(measure) = &mut this.measure {
                    // The instance broke off its answer: the client got less than it was promised.
                    measure.class = 4;
                }
                Poll::Ready(Some(Err(error)))
            }
            None => {
                this.complete();
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Body of an answer to a client: relayed from an instance, or written by the proxy itself.
pub(crate) enum ProxyBody {
    Relayed(Relayed),
    Message(Full<Bytes>),
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            Self::Relayed(relayed) => Pin::new(relayed).poll_frame(cx),
            Self::Message(full) => match ready!(Pin::new(full).poll_frame(cx)) {
                Some(Ok(frame)) => Poll::Ready(Some(Ok(frame))),
                None => Poll::Ready(None),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Relayed(relayed) => relayed.is_end_stream(),
            Self::Message(full) => full.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Relayed(relayed) => relayed.size_hint(),
            Self::Message(full) => full.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_codes_count_in_the_class_that_blames_the_right_side() {
        let classes: Vec<usize> = (0..=16).map(grpc_class).collect();
        assert_eq!(classes, [1, 3, 4, 3, 4, 3, 3, 3, 4, 3, 4, 3, 4, 4, 4, 4, 3]);
    }

    #[test]
    fn grpc_status_is_read_from_headers_and_malformed_ones_are_unknown() {
        let mut headers = HeaderMap::new();
        assert_eq!(Grpc::status_in(&headers), None);
        headers.insert("grpc-status", http::HeaderValue::from_static("14"));
        assert_eq!(Grpc::status_in(&headers), Some(14));
        headers.insert("grpc-status", http::HeaderValue::from_static("99"));
        assert_eq!(Grpc::status_in(&headers), Some(GRPC_UNKNOWN));
    }
}

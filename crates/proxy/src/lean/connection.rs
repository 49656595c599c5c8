//! One client connection on the lean path: requests in turn, each forwarded on a pooled instance connection
//! by this same task, until the client leaves, the connection drains, or a request is handed to hyper.

use std::future::Future;
use std::io::{self, IoSlice};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use super::chunked::{ChunkedScanner, Scan};
use super::deadline::Deadline;
use super::head::{self, Forwarding, Framing, Parsed};
use super::pipelined::{Answers, Pipelined};
use super::rewind::Rewind;
use crate::forward::{self, Origin};
use crate::plane::DataPlane;
use crate::routes::UpstreamProtocol;
use crate::server;
use crate::stats::{InFlight, Outcome, Recorder, class_of};
use crate::upstream::Endpoint;

/// A client gets this long for each request head (from the end of the previous answer), as hyper's header
/// read timeout gave it; an idle keep-alive connection is closed after it too.
pub(super) const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Bytes asked of the kernel per read from a client.
const CLIENT_READ: usize = 8 * 1024;

/// Bytes asked of the kernel per read from an instance.
const UPSTREAM_READ: usize = 16 * 1024;

/// Serves a plain-text client connection; a request the lean path does not take is handed, with the bytes
/// read so far, to `handoff` (hyper), which serves the connection from there.
pub(crate) async fn serve<F, Fut>(
    plane: Arc<DataPlane>,
    origin: Origin,
    stream: TcpStream,
    mut draining: watch::Receiver<bool>,
    handoff: F,
) where
    F: FnOnce(Rewind<TcpStream>, watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut connection = Client {
        plane,
        origin,
        stream,
        inbound: Vec::with_capacity(CLIENT_READ),
        outbound: Vec::new(),
        answer: Vec::new(),
        head: Vec::new(),
        answers: None,
    };
    if connection.run(&mut draining).await == End::Handoff {
        let Client { stream, inbound, .. } = connection;
        handoff(Rewind::new(Bytes::from(inbound), stream), draining).await;
    }
}

#[derive(Debug, PartialEq, Eq)]
enum End {
    Closed,
    Handoff,
}

/// What became of one request.
pub(super) enum Step {
    /// The buffered bytes are not a whole request yet.
    Partial,
    Handoff,
    /// Answered; whether the client connection stays open.
    Answered {
        keep_alive: bool,
    },
}

pub(super) struct Client {
    plane: Arc<DataPlane>,
    origin: Origin,
    pub(super) stream: TcpStream,
    /// Bytes read from the client and not used yet; a request starts at 0.
    inbound: Vec<u8>,
    /// Bytes read from the instance.
    answer: Vec<u8>,
    /// The head written to the client.
    pub(super) head: Vec<u8>,
    /// The request as sent to the instance: head and body.
    pub(super) outbound: Vec<u8>,
    /// Where answers from pipelined connections come, once the connection has sent a request on one.
    pub(super) answers: Option<Answers>,
}

/// An instance connection for one exchange.
struct Upstream {
    endpoint: Arc<Endpoint>,
    stream: TcpStream,
    /// Taken from the pool: the instance may have closed it just before the request went out.
    reused: bool,
}

/// The answer head, as far as relaying its body needs it.
struct Answer {
    status: u16,
    head_len: usize,
    framing: Framing,
    keep_alive: bool,
    /// When its head was complete: the end of the latency measured.
    at: Instant,
}

/// Why an exchange with an instance ended before an answer head.
enum Failure {
    Timeout,
    /// The connection ended before a byte of answer: on a reused connection, the request may go again.
    ClosedEarly(io::Error),
    Broken(Box<dyn std::error::Error + Send + Sync>),
}

/// A request on its way, measured.
pub(super) struct Exchange<'a> {
    recorder: &'a Recorder,
    started: InFlight,
    pub(super) received: Instant,
    pub(super) body_len: usize,
}

impl Client {
    async fn run(&mut self, draining: &mut watch::Receiver<bool>) -> End {
        let drain = server::signalled(draining);
        tokio::pin!(drain);
        let mut deadline = Deadline::new(Instant::now() + HEADER_TIMEOUT);
        loop {
            match self.forward_one(&mut deadline).await {
                Step::Handoff => return End::Handoff,
                Step::Answered { keep_alive: false } => break,
                Step::Answered { keep_alive: true } => {}
                Step::Partial => {
                    if self.inbound.capacity() - self.inbound.len() < CLIENT_READ / 2 {
                        self.inbound.reserve(CLIENT_READ);
                    }
                    // Draining closes connections between requests, never in the middle of one.
                    let idle = self.inbound.is_empty();
                    tokio::select! {
                        biased;
                        () = &mut drain, if idle => break,
                        read = self.stream.read_buf(&mut self.inbound) => match read {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {}
                        },
                        () = deadline.expired() => break,
                    }
                }
            }
        }
        let _ = self.stream.shutdown().await;
        End::Closed
    }

    /// Forwards the request at the start of the buffer, if it is whole and the lean path takes it.
    async fn forward_one(&mut self, deadline: &mut Deadline) -> Step {
        let mut slots = head::header_slots();
        let request = match head::parse_request(&self.inbound, &mut slots) {
            Parsed::Partial => return Step::Partial,
            Parsed::Handoff => return Step::Handoff,
            Parsed::Request(request) => request,
        };
        let received = Instant::now();
        let Some(service) = self.plane.table.load().service_at(self.origin.listen).cloned() else {
            return Step::Handoff;
        };
        if service.protocol != UpstreamProtocol::Http1 || service.has_mirror() {
            return Step::Handoff;
        }
        let Some(decision) = service.route(request.headers) else {
            return Step::Handoff;
        };
        let used = request.head_len + request.body_len;
        let client_close = request.close;
        let head_request = request.is_head();
        let idempotent = request.is_idempotent();
        let pipelinable = request.is_pipelinable();
        self.outbound.clear();
        let forwarding = Forwarding {
            client_ip: self.origin.client_ip.as_bytes(),
            proto: self.origin.proto.as_bytes(),
        };
        head::write_upstream_head(&mut self.outbound, &request, &forwarding);
        self.outbound.extend_from_slice(&self.inbound[request.head_len..used]);
        let exchange = Exchange {
            recorder: decision.recorder,
            started: decision.recorder.start(),
            received,
            body_len: request.body_len,
        };
        self.inbound.drain(..used);
        if service.pipeline_depth > 1 && pipelinable {
            let request = Pipelined {
                backend: decision.backend,
                depth: service.pipeline_depth,
                connect_timeout: service.connect_timeout,
                request_timeout: service.request_timeout,
                set_cookie: decision.set_cookie.as_ref(),
                head_request,
                client_close,
            };
            return self.forward_pipelined(exchange, &request, deadline).await;
        }

        let timeout = service.connect_timeout;
        let connected = forward::connect_instance(decision.backend, received, |endpoint| async move {
            if let Some(stream) = endpoint.idle_stream(received) {
                return Ok((stream, true));
            }
            endpoint.open(timeout).await.map(|stream| (stream, false))
        })
        .await;
        let mut upstream = match connected {
            Ok((endpoint, (stream, reused))) => Upstream {
                endpoint,
                stream,
                reused,
            },
            Err((status, text)) => return self.answer_own(exchange, status, &text, client_close).await,
        };
        deadline.set(received + service.request_timeout);
        let set_cookie = decision.set_cookie.as_ref().map(http::HeaderValue::as_bytes);
        let answer = loop {
            match self
                .send(&mut upstream, deadline, head_request, set_cookie, client_close)
                .await
            {
                Ok(answer) => break answer,
                Err(Failure::ClosedEarly(error)) if upstream.reused && idempotent => {
                    // The instance closed the pooled connection as the request went out: nothing was processed.
                    tracing::debug!(instance = %upstream.endpoint.addr, %error, "pooled connection closed; sending again");
                    match upstream.endpoint.open(timeout).await {
                        Ok(stream) => {
                            upstream.stream = stream;
                            upstream.reused = false;
                        }
                        Err(error) => {
                            decision.backend.stats().connect_failed();
                            let text = forward::failed_answer(decision.backend, &upstream.endpoint, &error);
                            return self
                                .answer_own(exchange, StatusCode::BAD_GATEWAY, &text, client_close)
                                .await;
                        }
                    }
                }
                Err(Failure::Timeout) => {
                    let text = forward::timed_out(decision.backend, &upstream.endpoint, service.request_timeout);
                    return self
                        .answer_own(exchange, StatusCode::GATEWAY_TIMEOUT, &text, client_close)
                        .await;
                }
                Err(Failure::ClosedEarly(error)) => {
                    let text = forward::failed_answer(decision.backend, &upstream.endpoint, &error);
                    return self
                        .answer_own(exchange, StatusCode::BAD_GATEWAY, &text, client_close)
                        .await;
                }
                Err(Failure::Broken(error)) => {
                    let text = forward::failed_answer(decision.backend, &upstream.endpoint, &*error);
                    return self
                        .answer_own(exchange, StatusCode::BAD_GATEWAY, &text, client_close)
                        .await;
                }
            }
        };
        deadline.set(answer.at + HEADER_TIMEOUT);
        let keep_alive = !client_close && answer.framing != Framing::UntilClose;
        let relayed = self.relay(exchange, &answer, &mut upstream.stream).await;
        match relayed {
            Relayed::Whole { reusable } => {
                if reusable && answer.keep_alive {
                    upstream.endpoint.release_stream(upstream.stream, answer.at);
                }
                Step::Answered { keep_alive }
            }
            Relayed::Cut => Step::Answered { keep_alive: false },
        }
    }

    /// Sends the request and reads the answer head (skipping interim `1xx` answers), within the deadline;
    /// writes the client's head into `self.head`.
    async fn send(
        &mut self,
        upstream: &mut Upstream,
        deadline: &mut Deadline,
        head_request: bool,
        set_cookie: Option<&[u8]>,
        client_close: bool,
    ) -> Result<Answer, Failure> {
        let stream = &mut upstream.stream;
        tokio::select! {
            biased;
            written = stream.write_all(&self.outbound) => written.map_err(Failure::ClosedEarly)?,
            () = deadline.expired() => return Err(Failure::Timeout),
        }
        self.answer.clear();
        let mut received_any = false;
        loop {
            let mut slots = head::header_slots();
            match head::parse_response(&self.answer, &mut slots, head_request) {
                Ok(Some(response)) if (100..200).contains(&response.status) => {
                    let interim = response.head_len;
                    self.answer.drain(..interim);
                    continue;
                }
                Ok(Some(response)) => {
                    self.head.clear();
                    let close = client_close || response.framing == Framing::UntilClose;
                    head::write_client_head(&mut self.head, &response, set_cookie, close);
                    return Ok(Answer {
                        status: response.status,
                        head_len: response.head_len,
                        framing: response.framing,
                        keep_alive: response.keep_alive,
                        at: Instant::now(),
                    });
                }
                Ok(None) => {}
                Err(error) => return Err(Failure::Broken(error.into())),
            }
            if self.answer.capacity() - self.answer.len() < UPSTREAM_READ / 2 {
                self.answer.reserve(UPSTREAM_READ);
            }
            let read = tokio::select! {
                biased;
                read = stream.read_buf(&mut self.answer) => read,
                () = deadline.expired() => return Err(Failure::Timeout),
            };
            match read {
                Ok(0) if !received_any => {
                    return Err(Failure::ClosedEarly(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed before an answer",
                    )));
                }
                Ok(0) => {
                    return Err(Failure::Broken(
                        "connection closed in the middle of the answer head".into(),
                    ));
                }
                Ok(_) => received_any = true,
                Err(error) if !received_any && error.kind() == io::ErrorKind::ConnectionReset => {
                    return Err(Failure::ClosedEarly(error));
                }
                Err(error) => return Err(Failure::Broken(error.into())),
            }
        }
    }

    /// Writes the head and relays the body as framed. The exchange is recorded before the write that hands
    /// the client the answer's last byte, so a client that has the whole answer also finds it counted.
    async fn relay(&mut self, exchange: Exchange<'_>, answer: &Answer, upstream: &mut TcpStream) -> Relayed {
        let class = class_of(StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY));
        let latency = answer.at - exchange.received;
        let finish = |exchange: Exchange<'_>, class: usize, sent: u64| {
            let received = exchange.body_len as u64;
            exchange.finish(class, latency, received, sent);
        };
        let mut body_at = answer.head_len;
        let mut head: &[u8] = &self.head;
        let mut sent = 0_u64;
        let mut scanner = ChunkedScanner::default();
        loop {
            let body = &self.answer[body_at..];
            // How much of `body` belongs to the answer, when it ends in it.
            let ends = match answer.framing {
                Framing::Empty => Some(0),
                Framing::Length(length) => {
                    let left = length - sent;
                    (body.len() as u64 >= left).then(|| usize::try_from(left).unwrap_or(usize::MAX))
                }
                Framing::Chunked => match scanner.feed(body) {
                    Ok(Scan::Ends(at)) => Some(at),
                    Ok(Scan::More) => None,
                    Err(error) => {
                        tracing::debug!(%error, "instance sent a malformed chunked answer");
                        finish(exchange, SERVER_ERROR, sent);
                        return Relayed::Cut;
                    }
                },
                Framing::UntilClose => None,
            };
            if let Some(at) = ends {
                let sent = match answer.framing {
                    Framing::Chunked => scanner.data_bytes(),
                    _ => sent + at as u64,
                };
                finish(exchange, class, sent);
                let written = write_two(&mut self.stream, head, &body[..at]).await;
                // Bytes after the answer mean the instance is out of step: its connection is not reused.
                return match written {
                    Ok(()) => Relayed::Whole {
                        reusable: at == body.len(),
                    },
                    Err(_) => Relayed::Cut,
                };
            }
            sent += body.len() as u64;
            if write_two(&mut self.stream, head, body).await.is_err() {
                // The client left; it is measured with the status it was being sent.
                finish(exchange, class, sent);
                return Relayed::Cut;
            }
            head = &[];
            body_at = 0;
            self.answer.clear();
            if self.answer.capacity() < UPSTREAM_READ {
                self.answer.reserve(UPSTREAM_READ);
            }
            match upstream.read_buf(&mut self.answer).await {
                Ok(0) if answer.framing == Framing::UntilClose => {
                    finish(exchange, class, sent);
                    return Relayed::Whole { reusable: false };
                }
                Ok(0) | Err(_) => {
                    // The instance broke off its answer: the client got less than it was promised.
                    finish(exchange, SERVER_ERROR, sent);
                    return Relayed::Cut;
                }
                Ok(_) => {}
            }
        }
    }

    /// Answers with the proxy's own message (`502`, `503`, `504`), measured like any answer.
    pub(super) async fn answer_own(
        &mut self,
        exchange: Exchange<'_>,
        status: StatusCode,
        text: &str,
        client_close: bool,
    ) -> Step {
        let latency = exchange.received.elapsed();
        exchange.finish(class_of(status), latency, 0, 0);
        self.head.clear();
        head::write_message(&mut self.head, status, text, client_close);
        let written = self.stream.write_all(&self.head).await;
        Step::Answered {
            keep_alive: written.is_ok() && !client_close,
        }
    }
}

/// Status class index of a `5xx`.
pub(super) const SERVER_ERROR: usize = 4;

/// How relaying an answer ended.
enum Relayed {
    /// The client has the whole answer; the instance connection can be reused if nothing followed it.
    Whole { reusable: bool },
    /// Either side broke off: the client connection is closed, the instance connection dropped.
    Cut,
}

impl Exchange<'_> {
    pub(super) fn finish(self, class: usize, latency: Duration, received: u64, sent: u64) {
        self.recorder.finish(
            self.started,
            Outcome {
                class,
                grpc: None,
                latency,
                bytes_received: received,
                bytes_sent: sent,
            },
        );
    }
}

/// Writes `first` then `second` with as few system calls as the socket allows (one `writev`, usually).
pub(super) async fn write_two(stream: &mut TcpStream, first: &[u8], second: &[u8]) -> io::Result<()> {
    let total = first.len() + second.len();
    let mut written = 0;
    while written < total {
        let n = if written < first.len() {
            let slices = [IoSlice::new(&first[written..]), IoSlice::new(second)];
            let count = if second.is_empty() { 1 } else { 2 };
            stream.write_vectored(&slices[..count]).await?
        } else {
            stream.write(&second[written - first.len()..]).await?
        };
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        written += n;
    }
    Ok(())
}

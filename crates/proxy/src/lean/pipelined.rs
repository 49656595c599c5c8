//! A client's request forwarded on a pipelined instance connection ([`super::pipeline`]): queued there, its
//! answer received over the client connection's channel and relayed, sent again once if the connection was
//! lost before its answer began.

use std::io;
use std::time::Duration;

use http::{HeaderValue, StatusCode};
use tokio::sync::mpsc;

use super::connection::{Client, Exchange, SERVER_ERROR, Step, write_two};
use super::deadline::Deadline;
use super::pipeline::{AnswerStart, Part, Piece, Waiter};
use super::splitter::End;
use crate::forward;
use crate::routing::BackendRoutes;
use crate::stats::class_of;

/// Pieces of answers a connection's driver may send ahead of the client task relaying them; past that it waits.
const PIECES_AHEAD: usize = 4;

/// How many times a request is sent when connections are lost before its answer begins.
const ATTEMPTS: usize = 2;

/// What the pipelined forwarding of one request needs to know.
pub(super) struct Pipelined<'a> {
    pub(super) backend: &'a BackendRoutes,
    pub(super) depth: usize,
    pub(super) connect_timeout: Duration,
    pub(super) request_timeout: Duration,
    pub(super) set_cookie: Option<&'a HeaderValue>,
    pub(super) head_request: bool,
    pub(super) client_close: bool,
}

/// The channel a client connection's pipelined answers come over, kept for the connection's life; every
/// request sent gets a new number, so pieces left over from one abandoned are told apart.
pub(super) struct Answers {
    to: mpsc::Sender<Piece>,
    from: mpsc::Receiver<Piece>,
    seq: u64,
}

impl Answers {
    pub(super) fn new() -> Self {
        let (to, from) = mpsc::channel(PIECES_AHEAD);
        Self { to, from, seq: 0 }
    }

    /// The next part of answer `seq`; `None` when `deadline` passes first.
    async fn next(&mut self, seq: u64, mut deadline: Option<&mut Deadline>) -> Option<Part> {
        loop {
            let piece = match deadline.as_deref_mut() {
                Some(deadline) => tokio::select! {
                    biased;
                    piece = self.from.recv() => piece,
                    () = deadline.expired() => return None,
                },
                None => self.from.recv().await,
            };
            // `self.to` keeps the channel open, so it never ends while waiting.
            let piece = piece?;
            if piece.seq == seq {
                return Some(piece.part);
            }
        }
    }
}

impl Client {
    /// Forwards the request in `self.outbound` on a pipelined connection and relays its answer.
    pub(super) async fn forward_pipelined(
        &mut self,
        exchange: Exchange<'_>,
        request: &Pipelined<'_>,
        deadline: &mut Deadline,
    ) -> Step {
        let mut answers = self.answers.take().unwrap_or_else(Answers::new);
        let step = self.exchange_pipelined(&mut answers, exchange, request, deadline).await;
        self.answers = Some(answers);
        step
    }

    async fn exchange_pipelined(
        &mut self,
        answers: &mut Answers,
        exchange: Exchange<'_>,
        request: &Pipelined<'_>,
        deadline: &mut Deadline,
    ) -> Step {
        let received = exchange.received;
        deadline.set(received + request.request_timeout);
        let mut attempt = 0;
        loop {
            attempt += 1;
            answers.seq += 1;
            let seq = answers.seq;
            let outbound = &self.outbound;
            let to = &answers.to;
            let first_attempt = attempt == 1;
            let queued = forward::connect_instance(request.backend, received, |endpoint| {
                let waiter = Waiter {
                    seq,
                    head_request: request.head_request,
                    client_close: request.client_close,
                    set_cookie: request.set_cookie.cloned(),
                    to: to.clone(),
                };
                async move {
                    // A request sent again goes first on a new connection, where nothing can be lost before it.
                    let waiter = if first_attempt {
                        match endpoint.pipes().submit(outbound, waiter, request.depth) {
                            Ok(pipe) => return Ok(pipe),
                            Err(waiter) => waiter,
                        }
                    } else {
                        waiter
                    };
                    let stream = endpoint.open(request.connect_timeout).await?;
                    Ok(endpoint.pipes().start(stream, outbound, waiter))
                }
            })
            .await;
            let (endpoint, pipe) = match queued {
                Ok(queued) => queued,
                Err((status, text)) => return self.answer_own(exchange, status, &text, request.client_close).await,
            };
            let failure = match answers.next(seq, Some(deadline)).await {
                Some(Part::Head(answer)) => {
                    deadline.set(answer.at + super::connection::HEADER_TIMEOUT);
                    return self.relay_pipelined(answers, exchange, seq, answer).await;
                }
                None => {
                    // Its answer would arrive ahead of those behind it: the connection goes, they go again.
                    pipe.close();
                    let text = forward::timed_out(request.backend, &endpoint, request.request_timeout);
                    return self
                        .answer_own(exchange, StatusCode::GATEWAY_TIMEOUT, &text, request.client_close)
                        .await;
                }
                Some(Part::Unanswered) if attempt < ATTEMPTS => {
                    tracing::debug!(instance = %endpoint.addr, "pipelined connection lost before the answer; sending again");
                    continue;
                }
                Some(Part::Unanswered) => "connection closed before an answer".to_owned(),
                Some(Part::Broken(why)) => why,
                Some(Part::Body { .. }) => "answer body before its head".to_owned(),
            };
            let error = io::Error::other(failure);
            let text = forward::failed_answer(request.backend, &endpoint, &error);
            return self
                .answer_own(exchange, StatusCode::BAD_GATEWAY, &text, request.client_close)
                .await;
        }
    }

    /// Writes the client's head and the body pieces as they come. The exchange is recorded before the write
    /// that hands the client the answer's last byte, as on the lean path's own connections.
    async fn relay_pipelined(
        &mut self,
        answers: &mut Answers,
        exchange: Exchange<'_>,
        seq: u64,
        answer: AnswerStart,
    ) -> Step {
        let AnswerStart {
            head,
            mut body,
            status,
            at,
            mut end,
            close,
        } = answer;
        let class = class_of(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY));
        let latency = at - exchange.received;
        let received = exchange.body_len as u64;
        let mut head: &[u8] = &head;
        let mut sent = 0_u64;
        loop {
            if let End::Whole { data_bytes, .. } = end {
                exchange.finish(class, latency, received, data_bytes);
                let written = write_two(&mut self.stream, head, &body).await;
                return Step::Answered {
                    keep_alive: written.is_ok() && !close,
                };
            }
            sent += body.len() as u64;
            if write_two(&mut self.stream, head, &body).await.is_err() {
                // The client left; it is measured with the status it was being sent.
                exchange.finish(class, latency, received, sent);
                return Step::Answered { keep_alive: false };
            }
            head = &[];
            match answers.next(seq, None).await {
                Some(Part::Body { bytes, end: next }) => {
                    body = bytes;
                    end = next;
                }
                // The instance broke off its answer: the client got less than it was promised.
                _ => {
                    exchange.finish(SERVER_ERROR, latency, received, sent);
                    return Step::Answered { keep_alive: false };
                }
            }
        }
    }
}

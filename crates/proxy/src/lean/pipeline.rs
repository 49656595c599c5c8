//! Pipelined instance connections (a service's `pipelineDepth` above 1): requests of several users in flight on
//! one HTTP/1.1 connection, written together and answered in order (RFC 9112 §9.3.2).
//!
//! Why: a proxied request costs four system calls and four TCP segments, and the write to the instance is the
//! dearest of them (on loopback it also pays for the instance's receive and wake-up). Requests that arrive
//! together are written with one `write` here, so the instance side costs a fraction of a write per request.
//! The price is head-of-line blocking: an answer waits for the answers before it on its connection, so only
//! services with uniformly quick answers should turn it on, and the depth bounds the wait.
//!
//! Which requests: idempotent ones without a body (`GET`, `HEAD`, `OPTIONS`, `TRACE`), so that a request the
//! connection lost before its answer began can always be sent again. Others take a connection of their own.
//!
//! How: one driver task per connection owns the socket. Users' tasks queue their request bytes and a
//! [`Waiter`] under a lock, in the same order, and wake the driver; it writes whatever is queued, reads,
//! cuts the answers apart ([`Splitter`]) and sends each user the pieces of their own answer over the channel
//! their client connection keeps for it. It writes the next batch once the one before is answered: the
//! requests queued meanwhile would get their answers after those anyway, and going out together they cost the
//! instance one read and us one write. Which connection a request joins is [`Choice`]'s. A connection that
//! breaks, is closed by the instance, or sends what nobody asked for ends: the answer being relayed is cut
//! off, and every request behind it is told it was not answered, so it goes again on another connection.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::{Buf as _, Bytes, BytesMut};
use http::HeaderValue;
use socket2::SockRef;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::net::tcp::ReadHalf;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use super::deadline::Deadline;
use super::head::{self, Framing};
use super::splitter::{Cut, End, SplitError, Splitter};

/// Bytes asked of the kernel per read from an instance.
const READ_SIZE: usize = 16 * 1024;

/// A connection with nothing in flight for this long is closed, as idle pooled connections are.
const IDLE_TIMEOUT: Duration = Duration::from_secs(50);

/// Answers in flight and no byte for this long: the instance may be holding back its small writes until the
/// ones before are acknowledged (Nagle's algorithm, no `TCP_NODELAY`), while our side delays its ACK for up to
/// 40 ms, to send it with the next batch, which waits for those answers. From then on the connection
/// acknowledges at once what it reads while answers are still due. Well above an answer's usual gaps, so a
/// connection to an instance that sends at once never pays the extra calls.
const STALL: Duration = Duration::from_millis(10);

/// What a request gets back from a pipelined connection, in order, tagged with the request's number.
#[derive(Debug)]
pub(crate) struct Piece {
    pub(crate) seq: u64,
    pub(crate) part: Part,
}

/// The start of an answer: its head as the client gets it, and the body bytes that came with it.
#[derive(Debug)]
pub(crate) struct AnswerStart {
    pub(crate) head: Bytes,
    pub(crate) body: Bytes,
    pub(crate) status: u16,
    /// When the instance's head was whole: the end of the latency measured.
    pub(crate) at: Instant,
    pub(crate) end: End,
    /// The client connection ends after this answer.
    pub(crate) close: bool,
}

#[derive(Debug)]
pub(crate) enum Part {
    Head(AnswerStart),
    /// More of the body.
    Body {
        bytes: Bytes,
        end: End,
    },
    /// The connection ended before this answer began: the request may be sent again.
    Unanswered,
    /// The answer cannot be relayed (malformed, or cut off in its body); nothing more comes.
    Broken(String),
}

/// A request queued or sent on a pipelined connection, waiting for its answer.
#[derive(Debug)]
pub(crate) struct Waiter {
    pub(crate) seq: u64,
    /// Its answer has no body whatever the headers say.
    pub(crate) head_request: bool,
    /// The client connection ends after this answer.
    pub(crate) client_close: bool,
    /// A new user's affinity cookie, set on the answer.
    pub(crate) set_cookie: Option<HeaderValue>,
    pub(crate) to: mpsc::Sender<Piece>,
}

/// One pipelined connection, shared by the requests on it and its driver.
pub(crate) struct Pipe {
    shared: Mutex<Shared>,
    wake: Notify,
}

struct Shared {
    /// Request bytes not written yet, in the order of `waiting`'s tail.
    queued: Vec<u8>,
    /// Requests queued or sent and not answered in full, oldest first.
    waiting: VecDeque<Waiter>,
    /// How many of `waiting`, at its tail, are still in `queued`.
    unsent: usize,
    /// Takes more requests: false once the connection is ending, or its current answer runs until close.
    accepting: bool,
    /// The driver is to stop: a request gave up waiting.
    stop: bool,
}

impl Shared {
    /// Requests written and not answered in full.
    fn in_flight(&self) -> usize {
        self.waiting.len() - self.unsent
    }
}

impl Pipe {
    /// A new connection's pipe, with its first request queued.
    fn with_first(request: &[u8], waiter: Waiter) -> Self {
        Self {
            shared: Mutex::new(Shared {
                queued: request.to_vec(),
                waiting: VecDeque::from([waiter]),
                unsent: 1,
                accepting: true,
                stop: false,
            }),
            wake: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // Every change under the lock leaves the queues consistent, so a poisoned lock is still usable.
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Ends the connection: a request that gave up waiting (its deadline passed) cannot leave its answer
    /// behind the next ones. Those waiting behind are told they were not answered.
    pub(crate) fn close(&self) {
        let mut shared = self.lock();
        shared.accepting = false;
        shared.stop = true;
        drop(shared);
        self.wake.notify_one();
    }

    /// Queues `request` when the connection is open and has fewer than `depth` requests in flight.
    fn try_submit(&self, request: &[u8], waiter: Waiter, depth: usize) -> Result<(), Waiter> {
        let mut shared = self.lock();
        if !shared.accepting || shared.waiting.len() >= depth {
            return Err(waiter);
        }
        let wake = shared.queued.is_empty();
        shared.queued.extend_from_slice(request);
        shared.waiting.push_back(waiter);
        shared.unsent += 1;
        drop(shared);
        if wake {
            self.wake.notify_one();
        }
        Ok(())
    }
}

/// One worker's pipelined connections to one instance.
#[derive(Default)]
pub(crate) struct Pipes {
    open: Mutex<Vec<Arc<Pipe>>>,
}

impl Pipes {
    /// Queues `request` on an open connection with room (see [`Choice`]), or gives the waiter back when every
    /// connection is full, so the caller opens another.
    pub(crate) fn submit(&self, request: &[u8], waiter: Waiter, depth: usize) -> Result<Arc<Pipe>, Waiter> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let mut choice = Choice::new(depth);
        let mut index = 0;
        while index < open.len() {
            let load = {
                let shared = open[index].lock();
                shared.accepting.then(|| Load {
                    unsent: shared.unsent,
                    in_flight: shared.in_flight(),
                })
            };
            let Some(load) = load else {
                open.swap_remove(index);
                continue;
            };
            choice.offer(index, load);
            index += 1;
        }
        let Some(index) = choice.chosen() else {
            return Err(waiter);
        };
        let pipe = open[index].clone();
        drop(open);
        pipe.try_submit(request, waiter, depth).map(|()| pipe)
    }

    /// Starts driving a new connection to the instance, with `request` as its first; the connection is
    /// offered to later requests.
    pub(crate) fn start(&self, stream: TcpStream, request: &[u8], waiter: Waiter) -> Arc<Pipe> {
        let pipe = Arc::new(Pipe::with_first(request, waiter));
        tokio::spawn(drive(pipe.clone(), stream));
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(pipe.clone());
        pipe
    }
}

/// What an open connection carries.
#[derive(Clone, Copy, Debug)]
struct Load {
    /// Requests queued and not written yet.
    unsent: usize,
    /// Requests written and not answered in full.
    in_flight: usize,
}

/// Which open connection a request joins, offered each in turn.
///
/// One whose queued requests are about to be written comes first: the request goes out in the same write.
/// After that it depends on whether another request for the instance is already waiting on this worker. If
/// none is, an idle connection is preferred, so a lone request waits for nobody's answer. If one is, batching
/// is: a request joins requests held behind a batch in flight, then a connection with a batch in flight, and
/// takes an idle one last. Its answer may come a round trip later, but the instance gets one write for many
/// requests; each write is dear (the instance's read and wake-up, and an ACK back), and under load it is
/// what both sides can least spare.
struct Choice {
    depth: usize,
    /// Requests for the instance on the connections offered so far.
    waiting: usize,
    calm: Best,
    busy: Best,
}

impl Choice {
    fn new(depth: usize) -> Self {
        Self {
            depth,
            waiting: 0,
            calm: Best::default(),
            busy: Best::default(),
        }
    }

    fn offer(&mut self, index: usize, load: Load) {
        let Load { unsent, in_flight } = load;
        self.waiting += unsent + in_flight;
        if unsent + in_flight >= self.depth {
            return;
        }
        // Lower is better. `calm` counts only while at most one request waits, so at most one connection
        // here is busy.
        self.calm.offer(
            index,
            match (unsent, in_flight) {
                (1.., 0) => 0,
                (0, 0) => 1,
                _ => 2,
            },
        );
        self.busy.offer(
            index,
            match (unsent, in_flight) {
                (1.., 0) => 0,
                (1.., _) => 1,
                (0, 1..) => 2,
                (0, 0) => 3,
            },
        );
    }

    /// The index of the connection chosen; `None` when every one is full.
    fn chosen(self) -> Option<usize> {
        if self.waiting < 2 { self.calm } else { self.busy }.index
    }
}

/// The connection ranked best so far.
#[derive(Default)]
struct Best {
    index: Option<usize>,
    rank: usize,
}

impl Best {
    fn offer(&mut self, index: usize, rank: usize) {
        if self.index.is_none() || rank < self.rank {
            *self = Self {
                index: Some(index),
                rank,
            };
        }
    }
}

/// Why a connection's driver stopped.
enum Ending {
    /// Closed by a request that gave up, or idle for [`IDLE_TIMEOUT`].
    Closed,
    /// The instance closed it (end of stream), or announced it would (`connection: close`).
    ByInstance,
    Io(io::Error),
    /// Bytes that are no answer to anything sent, or an answer that breaks HTTP/1.1.
    OutOfStep(String),
}

async fn drive(pipe: Arc<Pipe>, mut stream: TcpStream) {
    let (mut reader, mut writer) = stream.split();
    let mut buf = BytesMut::with_capacity(READ_SIZE);
    let mut heads = BytesMut::new();
    // Requests being written, and how much of them is.
    let mut out = Vec::new();
    let mut written = 0;
    let mut splitter = Splitter::default();
    let mut idle = Deadline::new(Instant::now() + IDLE_TIMEOUT);
    let mut was_idle = false;
    let mut stall = Deadline::new(Instant::now() + STALL);
    // The instance waits for acknowledgements before it answers on (see `STALL`).
    let mut acknowledge = false;
    let ending = loop {
        let (is_idle, awaiting) = {
            let mut shared = pipe.lock();
            if shared.stop {
                break Ending::Closed;
            }
            // The next batch goes once the one before is answered: requests queued meanwhile go out together,
            // and their answers would have come after those anyway.
            if written == out.len() && shared.in_flight() == 0 {
                out.clear();
                written = 0;
                std::mem::swap(&mut shared.queued, &mut out);
                shared.unsent = 0;
            }
            (shared.waiting.is_empty(), shared.in_flight() > 0)
        };
        if is_idle && !was_idle {
            idle.set(Instant::now() + IDLE_TIMEOUT);
        }
        was_idle = is_idle;
        if buf.capacity() - buf.len() < READ_SIZE / 2 {
            buf.reserve(READ_SIZE);
        }
        // Reading goes on while requests are written: an instance that answers before it reads on must not
        // find both sides waiting for the other.
        tokio::select! {
            biased;
            read = reader.read_buf(&mut buf) => match read {
                Ok(0) => break Ending::ByInstance,
                Ok(_) => {
                    stall.set(Instant::now() + STALL);
                    if let Err(ending) = deliver(&pipe, &mut splitter, &mut buf, &mut heads).await {
                        break ending;
                    }
                    if acknowledge && pipe.lock().in_flight() > 0 {
                        quick_ack(&reader);
                    }
                }
                Err(error) => break Ending::Io(error),
            },
            wrote = writer.write(&out[written..]), if written < out.len() => match wrote {
                Ok(0) => break Ending::Io(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    written += n;
                    stall.set(Instant::now() + STALL);
                }
                Err(error) => break Ending::Io(error),
            },
            () = pipe.wake.notified(), if written == out.len() => {}
            () = stall.expired(), if awaiting && !acknowledge => {
                acknowledge = true;
                quick_ack(&reader);
            }
            () = idle.expired(), if is_idle => break Ending::Closed,
        }
    };
    end(&pipe, &splitter, &ending);
}

/// Acknowledges what was read now rather than with the next write.
fn quick_ack(reader: &ReadHalf<'_>) {
    if let Err(error) = SockRef::from(reader.as_ref()).set_tcp_quickack(true) {
        tracing::debug!(%error, "cannot acknowledge at once on an instance connection");
    }
}

/// Sends the front requests the pieces of their answers that `buf` holds; their heads are rewritten for the
/// client into `heads`.
async fn deliver(pipe: &Pipe, splitter: &mut Splitter, buf: &mut BytesMut, heads: &mut BytesMut) -> Result<(), Ending> {
    loop {
        let (seq, head_request, client_close, set_cookie, to) = {
            let shared = pipe.lock();
            // A request that gave up closed the connection: its answer is not handed to the next in line.
            if shared.stop {
                return Err(Ending::Closed);
            }
            match shared.waiting.front().filter(|_| shared.in_flight() > 0) {
                Some(front) => (
                    front.seq,
                    front.head_request,
                    front.client_close,
                    front.set_cookie.clone(),
                    front.to.clone(),
                ),
                None if buf.is_empty() => return Ok(()),
                None => return Err(Ending::OutOfStep("the instance sent bytes nobody asked for".into())),
            }
        };
        let mut answer_head = None;
        let cut = splitter.next(buf, head_request, |response| {
            let close = client_close || response.framing == Framing::UntilClose;
            let cookie = set_cookie.as_ref().map(HeaderValue::as_bytes);
            head::write_client_head(heads, response, cookie, close);
            answer_head = Some((response.status, close));
        });
        let (len, head_len, end) = match cut {
            Ok(Cut::NeedMore) => return Ok(()),
            Ok(Cut::Interim(len)) => {
                buf.advance(len);
                continue;
            }
            Ok(Cut::Answer { len, head_len, end }) => (len, head_len, end),
            Err(error @ (SplitError::Head(_) | SplitError::Chunked(_))) => {
                return Err(Ending::OutOfStep(error.to_string()));
            }
        };
        let mut bytes = buf.split_to(len).freeze();
        let part = match (head_len, answer_head) {
            (Some(head_len), Some((status, close))) => Part::Head(AnswerStart {
                head: heads.split().freeze(),
                body: bytes.split_off(head_len),
                status,
                at: Instant::now(),
                end,
                close,
            }),
            _ => Part::Body { bytes, end },
        };
        // A user who left is not waiting any more; the answer was still read, to keep the connection in step.
        let _ = to.send(Piece { seq, part }).await;
        match end {
            End::Whole { keep_alive, .. } => {
                pipe.lock().waiting.pop_front();
                if !keep_alive {
                    return Err(Ending::ByInstance);
                }
            }
            // Nothing can follow an answer that ends with the connection.
            End::UntilClose => pipe.lock().accepting = false,
            End::Open => {}
        }
    }
}

/// Tells every request still waiting how its answer ended, and takes the connection out of use.
fn end(pipe: &Pipe, splitter: &Splitter, ending: &Ending) {
    let waiting = {
        let mut shared = pipe.lock();
        shared.accepting = false;
        shared.queued.clear();
        shared.unsent = 0;
        std::mem::take(&mut shared.waiting)
    };
    if let Ending::Io(error) = ending {
        tracing::debug!(%error, "pipelined instance connection failed");
    }
    for (index, waiter) in waiting.into_iter().enumerate() {
        let part = match (index, ending) {
            (0, Ending::ByInstance) if splitter.until_close() => Part::Body {
                bytes: Bytes::new(),
                end: End::Whole {
                    data_bytes: splitter.body_bytes(),
                    keep_alive: false,
                },
            },
            (0, Ending::OutOfStep(why)) => Part::Broken(why.clone()),
            (0, _) if splitter.in_answer() => Part::Broken("connection closed in the middle of the answer".into()),
            _ => Part::Unanswered,
        };
        // Never wait here for a user who is not reading (one whose request gave up): the last word goes
        // through when their channel has room, or is dropped with it.
        let piece = Piece { seq: waiter.seq, part };
        if let Err(mpsc::error::TrySendError::Full(piece)) = waiter.to.try_send(piece) {
            tokio::spawn(async move {
                let _ = waiter.to.send(piece).await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Choice, Load};

    /// The connection a request joins, given each open connection's (unsent, in flight).
    fn choose(depth: usize, loads: &[(usize, usize)]) -> Option<usize> {
        let mut choice = Choice::new(depth);
        for (index, &(unsent, in_flight)) in loads.iter().enumerate() {
            choice.offer(index, Load { unsent, in_flight });
        }
        choice.chosen()
    }

    #[test]
    fn a_request_goes_out_with_requests_about_to_be_written_whatever_the_load() {
        assert_eq!(choose(16, &[(0, 0), (2, 0)]), Some(1));
        assert_eq!(choose(4, &[(0, 3), (0, 0), (1, 0), (1, 2)]), Some(2));
    }

    #[test]
    fn a_lone_request_waits_for_nobody() {
        assert_eq!(choose(16, &[(0, 1), (0, 0)]), Some(1), "an idle connection first");
        assert_eq!(
            choose(16, &[(0, 1)]),
            Some(0),
            "else the connection in flight, which has room"
        );
    }

    #[test]
    fn a_request_that_finds_others_waiting_joins_a_batch_rather_than_an_idle_connection() {
        assert_eq!(
            choose(16, &[(0, 0), (0, 3), (1, 2)]),
            Some(2),
            "a batch being formed first"
        );
        assert_eq!(
            choose(16, &[(0, 0), (0, 1), (0, 1)]),
            Some(1),
            "then a connection with a batch in flight"
        );
        assert_eq!(
            choose(4, &[(0, 4), (0, 0)]),
            Some(1),
            "an idle one when the others are full"
        );
    }

    #[test]
    fn full_connections_are_never_chosen() {
        assert_eq!(choose(2, &[(0, 2), (1, 1), (2, 0)]), None);
        assert_eq!(choose(1, &[(0, 1)]), None);
    }
}

//! Cutting an instance's byte stream into its answers, in the order the requests were sent: what a pipelined
//! connection needs to hand each user exactly the bytes of their own answer.
//!
//! Pure: bytes in, cuts out. The driver of a pipelined connection owns the buffer and the I/O.

use super::chunked::{ChunkedScanner, Scan};
use super::head::{self, Framing, ResponseError, ResponseHead};

/// The next cut of the buffer's front.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Cut {
    /// Not enough bytes for the next cut.
    NeedMore,
    /// An interim (`1xx`) answer of this length: dropped, the final answer follows.
    Interim(usize),
    /// The first `len` bytes of the buffer belong to the front request's answer.
    Answer {
        len: usize,
        /// The head's length when these bytes start the answer; `None` for more of its body.
        head_len: Option<usize>,
        end: End,
    },
}

/// Where an answer stands after a cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// More of the body is to come.
    Open,
    /// The answer is whole: its body carried this many data bytes; whether the connection stays open.
    Whole { data_bytes: u64, keep_alive: bool },
    /// The body runs until the instance closes the connection.
    UntilClose,
}

/// Why the stream cannot be cut into answers: the connection is out of step and must close.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SplitError {
    #[error(transparent)]
    Head(#[from] ResponseError),
    #[error(transparent)]
    Chunked(#[from] super::chunked::ChunkedError),
}

/// The answer whose body is being cut.
#[derive(Debug)]
enum Body {
    Length {
        left: u64,
        total: u64,
        keep_alive: bool,
    },
    Chunked {
        scanner: ChunkedScanner,
        keep_alive: bool,
    },
    /// Body bytes so far.
    UntilClose {
        seen: u64,
    },
}

/// Follows one connection's answers; [`Splitter::next`] is called with the front request's method.
#[derive(Debug, Default)]
pub(crate) struct Splitter {
    body: Option<Body>,
}

impl Splitter {
    /// Whether an answer is cut halfway (its head relayed, not all of its body).
    pub(crate) fn in_answer(&self) -> bool {
        self.body.is_some()
    }

    /// Whether the answer being cut ends when the connection does.
    pub(crate) fn until_close(&self) -> bool {
        matches!(self.body, Some(Body::UntilClose { .. }))
    }

    /// Body bytes of a close-delimited answer so far.
    pub(crate) fn body_bytes(&self) -> u64 {
        match self.body {
            Some(Body::UntilClose { seen }) => seen,
            _ => 0,
        }
    }

    /// The next cut of `buf`, the bytes received and not cut yet; `head_request` when the front request is
    /// a `HEAD` (its answer has no body whatever its headers say). A final answer head is shown to
    /// `on_head` as parsed, so it is parsed once.
    pub(crate) fn next(
        &mut self,
        buf: &[u8],
        head_request: bool,
        on_head: impl FnOnce(&ResponseHead<'_>),
    ) -> Result<Cut, SplitError> {
        match self.body.take() {
            None => self.head(buf, head_request, on_head),
            Some(body) => self.body_cut(body, buf, 0),
        }
    }

    fn head(
        &mut self,
        buf: &[u8],
        head_request: bool,
        on_head: impl FnOnce(&ResponseHead<'_>),
    ) -> Result<Cut, SplitError> {
        let mut slots = head::header_slots();
        let Some(response) = head::parse_response(buf, &mut slots, head_request)? else {
            return Ok(Cut::NeedMore);
        };
        if (100..200).contains(&response.status) {
            return Ok(Cut::Interim(response.head_len));
        }
        on_head(&response);
        let head_len = response.head_len;
        let keep_alive = response.keep_alive;
        let body = match response.framing {
            Framing::Empty => {
                return Ok(Cut::Answer {
                    len: head_len,
                    head_len: Some(head_len),
                    end: End::Whole {
                        data_bytes: 0,
                        keep_alive,
                    },
                });
            }
            Framing::Length(total) => Body::Length {
                left: total,
                total,
                keep_alive,
            },
            Framing::Chunked => Body::Chunked {
                scanner: ChunkedScanner::default(),
                keep_alive,
            },
            Framing::UntilClose => Body::UntilClose { seen: 0 },
        };
        Ok(match self.body_cut(body, buf, head_len)? {
            Cut::Answer { len, end, .. } => Cut::Answer {
                len,
                head_len: Some(head_len),
                end,
            },
            other => other,
        })
    }

    /// Cuts the body bytes of `buf` from `start` (the head's length, or 0 for a later piece).
    fn body_cut(&mut self, body: Body, buf: &[u8], start: usize) -> Result<Cut, SplitError> {
        let available = &buf[start..];
        let (taken, end, body) = match body {
            Body::Length {
                left,
                total,
                keep_alive,
            } => {
                let taken = usize::try_from(left).map_or(available.len(), |left| left.min(available.len()));
                let left = left - taken as u64;
                if left == 0 {
                    let end = End::Whole {
                        data_bytes: total,
                        keep_alive,
                    };
                    (taken, end, None)
                } else {
                    (
                        taken,
                        End::Open,
                        Some(Body::Length {
                            left,
                            total,
                            keep_alive,
                        }),
                    )
                }
            }
            Body::Chunked {
                mut scanner,
                keep_alive,
            } => match scanner.feed(available)? {
                Scan::Ends(at) => {
                    let end = End::Whole {
                        data_bytes: scanner.data_bytes(),
                        keep_alive,
                    };
                    (at, end, None)
                }
                Scan::More => (available.len(), End::Open, Some(Body::Chunked { scanner, keep_alive })),
            },
            Body::UntilClose { seen } => {
                let seen = seen + available.len() as u64;
                (available.len(), End::UntilClose, Some(Body::UntilClose { seen }))
            }
        };
        self.body = body;
        if start + taken == 0 && !matches!(end, End::Whole { .. }) {
            return Ok(Cut::NeedMore);
        }
        Ok(Cut::Answer {
            len: start + taken,
            head_len: None,
            end,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// An answer as an instance would write it, and whether its request was a `HEAD`.
    #[derive(Debug, Clone)]
    struct Written {
        bytes: Vec<u8>,
        head_request: bool,
        data_bytes: u64,
        keep_alive: bool,
    }

    fn answer() -> impl Strategy<Value = Written> {
        let body = prop::collection::vec(any::<u8>(), 0..300);
        let chunks = prop::collection::vec(prop::collection::vec(any::<u8>(), 1..40), 0..5);
        prop_oneof![
            (body.clone(), any::<bool>(), any::<bool>()).prop_map(|(body, interim, keep_alive)| {
                let mut bytes = Vec::new();
                if interim {
                    bytes.extend_from_slice(b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n");
                }
                let connection = if keep_alive { "" } else { "connection: close\r\n" };
                bytes.extend_from_slice(
                    format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n{connection}\r\n", body.len()).as_bytes(),
                );
                bytes.extend_from_slice(&body);
                Written {
                    bytes,
                    head_request: false,
                    data_bytes: body.len() as u64,
                    keep_alive,
                }
            }),
            chunks.prop_map(|chunks| {
                let mut bytes = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
                for chunk in &chunks {
                    bytes.extend_from_slice(format!("{:x};ext=1\r\n", chunk.len()).as_bytes());
                    bytes.extend_from_slice(chunk);
                    bytes.extend_from_slice(b"\r\n");
                }
                bytes.extend_from_slice(b"0\r\ntrailer: t\r\n\r\n");
                Written {
                    bytes,
                    head_request: false,
                    data_bytes: chunks.iter().map(|c| c.len() as u64).sum(),
                    keep_alive: true,
                }
            }),
            Just(Written {
                bytes: b"HTTP/1.1 200 OK\r\ncontent-length: 1234\r\n\r\n".to_vec(),
                head_request: true,
                data_bytes: 0,
                keep_alive: true,
            }),
            Just(Written {
                bytes: b"HTTP/1.1 304 Not Modified\r\netag: \"x\"\r\n\r\n".to_vec(),
                head_request: false,
                data_bytes: 0,
                keep_alive: true,
            }),
        ]
    }

    /// Feeds `stream` in reads of the given sizes and collects each answer's bytes, as the driver does.
    fn cut_all(answers: &[Written], stream: &[u8], reads: &[usize]) -> Vec<(Vec<u8>, End)> {
        let mut splitter = Splitter::default();
        let mut buf: Vec<u8> = Vec::new();
        let mut fed = 0;
        let mut reads = reads.iter().copied().cycle();
        let mut cut = vec![(Vec::new(), End::Open); answers.len()];
        let mut front = 0;
        while front < answers.len() {
            match splitter
                .next(&buf, answers[front].head_request, |_| {})
                .expect("valid answers")
            {
                Cut::NeedMore => {
                    assert!(fed < stream.len(), "needs more than the whole stream");
                    let take = reads.next().unwrap_or(1).max(1).min(stream.len() - fed);
                    buf.extend_from_slice(&stream[fed..fed + take]);
                    fed += take;
                }
                Cut::Interim(len) => {
                    buf.drain(..len);
                }
                Cut::Answer { len, head_len, end } => {
                    assert_eq!(head_len.is_some(), cut[front].0.is_empty(), "a head starts each answer");
                    cut[front].0.extend(buf.drain(..len));
                    cut[front].1 = end;
                    if matches!(end, End::Whole { .. }) {
                        front += 1;
                    }
                }
            }
        }
        assert!(buf.is_empty() && fed == stream.len(), "nothing is left over");
        cut
    }

    proptest! {
        #[test]
        fn every_answer_gets_exactly_its_bytes_however_the_stream_is_read(
            answers in prop::collection::vec(answer(), 1..8),
            reads in prop::collection::vec(1_usize..200, 1..20),
        ) {
            // An answer that closes the connection can only be the last.
            let last = answers.iter().position(|a| !a.keep_alive).unwrap_or(answers.len() - 1);
            let answers = &answers[..=last];
            let stream: Vec<u8> = answers.iter().flat_map(|a| a.bytes.clone()).collect();
            let cut = cut_all(answers, &stream, &reads);
            for (answer, (bytes, end)) in answers.iter().zip(cut) {
                let interim = b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n";
                let expected = answer.bytes.strip_prefix(interim.as_slice()).unwrap_or(&answer.bytes);
                prop_assert_eq!(bytes, expected.to_vec());
                prop_assert_eq!(end, End::Whole { data_bytes: answer.data_bytes, keep_alive: answer.keep_alive });
            }
        }
    }

    #[test]
    fn a_close_delimited_answer_takes_everything_and_counts_it() {
        let mut splitter = Splitter::default();
        let cut = splitter
            .next(b"HTTP/1.1 200 OK\r\n\r\nabc", false, |_| {})
            .expect("valid");
        assert_eq!(
            cut,
            Cut::Answer {
                len: 22,
                head_len: Some(19),
                end: End::UntilClose
            }
        );
        assert_eq!(splitter.next(b"", false, |_| {}).expect("valid"), Cut::NeedMore);
        assert_eq!(
            splitter.next(b"defg", false, |_| {}).expect("valid"),
            Cut::Answer {
                len: 4,
                head_len: None,
                end: End::UntilClose
            }
        );
        assert!(splitter.until_close());
        assert_eq!(splitter.body_bytes(), 7);
    }

    #[test]
    fn a_broken_chunked_body_is_an_error() {
        let mut splitter = Splitter::default();
        let result = splitter.next(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
            false,
            |_| {},
        );
        assert!(matches!(result, Err(SplitError::Chunked(_))), "{result:?}");
    }
}

//! Following a chunked body (RFC 9112 §7.1) that passes through unchanged: where it ends, and how many data
//! bytes it carries. The lean path relays the bytes as they came, so nothing is decoded or re-encoded.

/// A chunked body that breaks the grammar; the exchange cannot go on.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed chunked body: {0}")]
pub(crate) struct ChunkedError(&'static str);

/// Where the scan stands after some input.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Scan {
    /// All of the input belongs to the body, and more is to come.
    More,
    /// The body ends after this many bytes of the input; any rest belongs to the next message.
    Ends(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Hex digits of a chunk size; `digits` seen so far.
    Size {
        digits: u8,
    },
    /// After the size: whitespace or extensions, up to the line's CR.
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// The start of a trailer line, or of the empty line that ends the body.
    TrailerStart,
    TrailerLine,
    TrailerLf,
    EndLf,
    Done,
}

/// A scanner fed the body's bytes in order, in pieces of any size.
#[derive(Debug)]
pub(crate) struct ChunkedScanner {
    state: State,
    /// Data bytes left in the current chunk (the size while it is being read).
    remaining: u64,
    data_bytes: u64,
}

impl Default for ChunkedScanner {
    fn default() -> Self {
        Self {
            state: State::Size { digits: 0 },
            remaining: 0,
            data_bytes: 0,
        }
    }
}

impl ChunkedScanner {
    /// Data bytes seen so far (what the body carries, without the chunk framing).
    pub(crate) fn data_bytes(&self) -> u64 {
        self.data_bytes
    }

    /// Scans the next piece of the body.
    pub(crate) fn feed(&mut self, input: &[u8]) -> Result<Scan, ChunkedError> {
        let mut at = 0;
        while at < input.len() {
            if self.state == State::Data {
                // Skip over chunk data in one step: this is where the bytes are.
                let take = usize::try_from(self.remaining)
                    .unwrap_or(usize::MAX)
                    .min(input.len() - at);
                at += take;
                self.remaining -= take as u64;
                self.data_bytes += take as u64;
                if self.remaining == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            let byte = input[at];
            at += 1;
            self.state = match (self.state, byte) {
                (State::Size { digits }, b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F') => {
                    if digits >= 15 {
                        return Err(ChunkedError("chunk size too large"));
                    }
                    let digit = char::from(byte).to_digit(16).map_or(0, u64::from);
                    self.remaining = self.remaining * 16 + digit;
                    State::Size { digits: digits + 1 }
                }
                (State::Size { digits }, b';' | b' ' | b'\t') if digits > 0 => State::Extension,
                (State::Size { digits }, b'\r') if digits > 0 => State::SizeLf,
                (State::Size { .. }, _) => return Err(ChunkedError("invalid chunk size")),
                (State::Extension, b'\r') => State::SizeLf,
                (State::Extension, b'\n') => return Err(ChunkedError("bare LF in chunk extension")),
                (State::Extension, _) => State::Extension,
                (State::SizeLf, b'\n') if self.remaining == 0 => State::TrailerStart,
                (State::SizeLf, b'\n') => State::Data,
                (State::DataCr, b'\r') => State::DataLf,
                (State::DataLf, b'\n') => State::Size { digits: 0 },
                (State::TrailerStart, b'\r') => State::EndLf,
                (State::TrailerStart | State::TrailerLine, b'\n') => {
                    return Err(ChunkedError("bare LF in trailers"));
                }
                (State::TrailerLine, b'\r') => State::TrailerLf,
                (State::TrailerStart | State::TrailerLine, _) => State::TrailerLine,
                (State::TrailerLf, b'\n') => State::TrailerStart,
                (State::EndLf, b'\n') => {
                    self.state = State::Done;
                    return Ok(Scan::Ends(at));
                }
                (State::SizeLf | State::DataCr | State::DataLf | State::TrailerLf | State::EndLf, _) => {
                    return Err(ChunkedError("expected CRLF"));
                }
                (State::Data | State::Done, _) => unreachable!("handled above"),
            };
        }
        Ok(if self.state == State::Done {
            Scan::Ends(0)
        } else {
            Scan::More
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the body ended (if it did) and its data bytes, or the error.
    type Scanned = Result<(Option<usize>, u64), ChunkedError>;

    /// Feeds `body` in pieces of `step` bytes.
    fn scan(body: &[u8], step: usize) -> Scanned {
        let mut scanner = ChunkedScanner::default();
        for (index, piece) in body.chunks(step).enumerate() {
            if let Scan::Ends(at) = scanner.feed(piece)? {
                return Ok((Some(index * step + at), scanner.data_bytes()));
            }
        }
        Ok((None, scanner.data_bytes()))
    }

    #[test]
    fn bodies_end_where_their_last_chunk_and_trailers_end() {
        let cases: [(&[u8], Scanned); 9] = [
            (b"5\r\nhello\r\n0\r\n\r\nNEXT", Ok((Some(15), 5))),
            (b"5;name=value\r\nhello\r\n0\r\n\r\n", Ok((Some(26), 5))),
            (b"A\r\n0123456789\r\n0\r\nx-trailer: 1\r\n\r\n", Ok((Some(34), 10))),
            (b"5\r\nhel", Ok((None, 3))),
            (b"0\r\n\r\n", Ok((Some(5), 0))),
            (b"\r\n", Err(ChunkedError("invalid chunk size"))),
            (b"5\r\nhelloX", Err(ChunkedError("expected CRLF"))),
            (b"fffffffffffffffff\r\n", Err(ChunkedError("chunk size too large"))),
            (b"0\r\nbad\nline\r\n\r\n", Err(ChunkedError("bare LF in trailers"))),
        ];
        for (body, expected) in cases {
            for step in [1, 2, 7, body.len()] {
                assert_eq!(
                    scan(body, step),
                    expected,
                    "{:?} in pieces of {step}",
                    String::from_utf8_lossy(body)
                );
            }
        }
    }
}

//! Message heads on the lean path: which requests it takes, and the heads it writes, copied from the ones it
//! read with the same edits as the hyper path (hop-by-hop headers out, forwarding headers in).

use std::mem::MaybeUninit;

use bytes::BufMut;
use http::header;

use crate::forward::{HOP_BY_HOP_NAMES, X_FORWARDED_FOR, X_FORWARDED_PROTO, X_REQUEST_ID, request_id_digits};

/// More headers than this and the request goes to hyper (which answers `431`, as it always did).
pub(crate) const MAX_HEADERS: usize = 100;

/// A request head longer than this goes to hyper, whose limit is larger.
pub(crate) const MAX_HEAD_BYTES: usize = 64 * 1024;

/// A request body longer than this goes to hyper, which streams it; the lean path sends a request whole.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

/// Uninitialised header slots for `httparse`, which fills them without the cost of clearing 100 first.
pub(crate) type HeaderSlots<'b> = [MaybeUninit<httparse::Header<'b>>; MAX_HEADERS];

/// Fresh header slots.
pub(crate) fn header_slots<'b>() -> HeaderSlots<'b> {
    [const { MaybeUninit::uninit() }; MAX_HEADERS]
}

/// What the client's buffered bytes hold.
#[derive(Debug)]
pub(crate) enum Parsed<'b> {
    /// Not a whole request yet.
    Partial,
    /// A request the lean path leaves to hyper (which answers it exactly as before): anything but a plain
    /// HTTP/1.1 request with a small body of known length.
    Handoff,
    Request(RequestHead<'b>),
}

/// A request the lean path forwards.
#[derive(Debug)]
pub(crate) struct RequestHead<'b> {
    pub(crate) method: &'b str,
    pub(crate) path: &'b str,
    pub(crate) headers: &'b [httparse::Header<'b>],
    /// Bytes of the head; the body follows.
    pub(crate) head_len: usize,
    pub(crate) body_len: usize,
    /// The client asked to close the connection after this exchange.
    pub(crate) close: bool,
}

impl RequestHead<'_> {
    /// A `HEAD` request: its answer has no body whatever its headers say.
    pub(crate) fn is_head(&self) -> bool {
        self.method == "HEAD"
    }

    /// Whether the request may wait behind others on a pipelined connection: a safe method without a body
    /// (RFC 9110 §9.2.1), so it can always go again when the connection is lost before its answer.
    pub(crate) fn is_pipelinable(&self) -> bool {
        self.body_len == 0 && matches!(self.method, "GET" | "HEAD" | "OPTIONS" | "TRACE")
    }

    /// Whether the request may be sent again when a reused connection turns out closed (RFC 9110 §9.2.2).
    pub(crate) fn is_idempotent(&self) -> bool {
        matches!(self.method, "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE")
    }
}

/// Parses the request at the start of `buf`, deciding whether the lean path takes it.
pub(crate) fn parse_request<'b>(buf: &'b [u8], slots: &'b mut HeaderSlots<'b>) -> Parsed<'b> {
    let mut request = httparse::Request::new(&mut []);
    let head_len = match request.parse_with_uninit_headers(buf, slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD_BYTES => return Parsed::Partial,
        // Malformed, too many headers, too long: hyper gives the answer it always gave.
        Ok(httparse::Status::Partial) | Err(_) => return Parsed::Handoff,
    };
    let (Some(method), Some(path), Some(1)) = (request.method, request.path, request.version) else {
        return Parsed::Handoff;
    };
    // Origin-form only: `*` and absolute targets (and `CONNECT`'s authority form) take hyper's way.
    if !path.starts_with('/') || method == "CONNECT" {
        return Parsed::Handoff;
    }
    let headers: &'b [httparse::Header<'b>] = request.headers;
    let mut body_len = None;
    let mut host = false;
    let mut close = false;
    for header in headers {
        let name = header.name;
        if name.eq_ignore_ascii_case("content-length") {
            let length = std::str::from_utf8(header.value)
                .ok()
                .filter(|text| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|text| text.parse::<usize>().ok());
            match (length, body_len) {
                (Some(length), None) if length <= MAX_BODY_BYTES => body_len = Some(length),
                _ => return Parsed::Handoff,
            }
        } else if name.eq_ignore_ascii_case("host") {
            host = true;
        } else if name.eq_ignore_ascii_case("connection") {
            for token in header.value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"upgrade") {
                    return Parsed::Handoff;
                }
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("upgrade")
            || name.eq_ignore_ascii_case("expect")
            || (name.eq_ignore_ascii_case("content-type") && header.value.starts_with(b"application/grpc"))
        {
            // Streamed bodies, upgrades, `100-continue` and gRPC keep hyper's full handling.
            return Parsed::Handoff;
        }
    }
    if !host {
        return Parsed::Handoff;
    }
    let body_len = body_len.unwrap_or(0);
    if buf.len() < head_len + body_len {
        return Parsed::Partial;
    }
    Parsed::Request(RequestHead {
        method,
        path,
        headers,
        head_len,
        body_len,
        close,
    })
}

/// Where a request comes from, as the forwarding headers say it.
pub(crate) struct Forwarding<'a> {
    pub(crate) client_ip: &'a [u8],
    pub(crate) proto: &'a [u8],
}

/// Writes the head sent to the instance: the request line in origin form, the client's headers minus the
/// hop-by-hop ones (and those `Connection` names), `x-forwarded-for` with the client appended,
/// `x-forwarded-proto`, and an `x-request-id` unless the client sent one.
pub(crate) fn write_upstream_head(out: &mut Vec<u8>, request: &RequestHead<'_>, forwarding: &Forwarding<'_>) {
    out.extend_from_slice(request.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(request.path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut forwarded_for: Option<Vec<u8>> = None;
    let mut request_id = false;
    let hop_by_hop = HopByHop::of(request.headers);
    for header in request.headers {
        let name = header.name;
        if name.eq_ignore_ascii_case(X_FORWARDED_FOR.as_str()) {
            let chain = forwarded_for.get_or_insert_with(Vec::new);
            chain.extend_from_slice(header.value);
            chain.extend_from_slice(b", ");
            continue;
        }
        if name.eq_ignore_ascii_case(X_FORWARDED_PROTO.as_str()) || hop_by_hop.contains(name) {
            continue;
        }
        request_id |= name.eq_ignore_ascii_case(X_REQUEST_ID.as_str());
        write_header(out, name.as_bytes(), header.value);
    }
    match &mut forwarded_for {
        Some(chain) => {
            chain.extend_from_slice(forwarding.client_ip);
            write_header(out, X_FORWARDED_FOR.as_str().as_bytes(), chain);
        }
        None => write_header(out, X_FORWARDED_FOR.as_str().as_bytes(), forwarding.client_ip),
    }
    write_header(out, X_FORWARDED_PROTO.as_str().as_bytes(), forwarding.proto);
    if !request_id {
        write_header(out, X_REQUEST_ID.as_str().as_bytes(), &request_id_digits());
    }
    out.extend_from_slice(b"\r\n");
}

/// How an answer's body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body: an answer to `HEAD`, a `204` or a `304`.
    Empty,
    Length(u64),
    Chunked,
    /// Until the instance closes the connection.
    UntilClose,
}

/// An instance's answer head.
#[derive(Debug)]
pub(crate) struct ResponseHead<'b> {
    pub(crate) status: u16,
    pub(crate) reason: &'b str,
    pub(crate) headers: &'b [httparse::Header<'b>],
    pub(crate) head_len: usize,
    pub(crate) framing: Framing,
    /// The instance keeps the connection open after this answer.
    pub(crate) keep_alive: bool,
}

/// Why an instance's answer head cannot be relayed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ResponseError {
    #[error("invalid answer head: {0}")]
    Parse(#[from] httparse::Error),
    #[error("answer head longer than {MAX_HEAD_BYTES} bytes")]
    TooLong,
    #[error("answer has an invalid or conflicting Content-Length / Transfer-Encoding")]
    Framing,
    #[error("answer switches protocols, but no upgrade was requested")]
    UnrequestedUpgrade,
}

/// Parses the answer at the start of `buf`; `Ok(None)` until it is whole.
pub(crate) fn parse_response<'b>(
    buf: &'b [u8],
    slots: &'b mut HeaderSlots<'b>,
    head_request: bool,
) -> Result<Option<ResponseHead<'b>>, ResponseError> {
    let mut response = httparse::Response::new(&mut []);
    let head_len =
        match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut response, buf, slots)? {
            httparse::Status::Complete(len) => len,
            httparse::Status::Partial if buf.len() < MAX_HEAD_BYTES => return Ok(None),
            httparse::Status::Partial => return Err(ResponseError::TooLong),
        };
    let (Some(status), Some(version)) = (response.code, response.version) else {
        return Err(ResponseError::Parse(httparse::Error::Status));
    };
    if status == 101 {
        return Err(ResponseError::UnrequestedUpgrade);
    }
    let headers: &'b [httparse::Header<'b>] = response.headers;
    let mut keep_alive = version == 1;
    let mut length: Option<u64> = None;
    let mut chunked = None;
    for header in headers {
        let name = header.name;
        if name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(header.value)
                .ok()
                .filter(|text| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|text| text.parse::<u64>().ok())
                .ok_or(ResponseError::Framing)?;
            if length.is_some_and(|seen| seen != value) {
                return Err(ResponseError::Framing);
            }
            length = Some(value);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked only when it is the last coding; any other last coding runs until close.
            let last = header.value.rsplit(|b| *b == b',').next().map(<[u8]>::trim_ascii);
            chunked = Some(last.is_some_and(|coding| coding.eq_ignore_ascii_case(b"chunked")));
        } else if name.eq_ignore_ascii_case("connection") {
            for token in header.value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && version == 0 {
                    keep_alive = true;
                }
            }
        }
    }
    let framing = if head_request || status == 204 || status == 304 || (100..200).contains(&status) {
        Framing::Empty
    } else {
        match (chunked, length) {
            // Both at once is how requests are smuggled; nginx refuses such answers too.
            (Some(_), Some(_)) => return Err(ResponseError::Framing),
            (Some(true), None) => Framing::Chunked,
            (Some(false), None) | (None, None) => Framing::UntilClose,
            (None, Some(length)) => Framing::Length(length),
        }
    };
    Ok(Some(ResponseHead {
        status,
        reason: response.reason.unwrap_or(""),
        headers,
        head_len,
        framing,
        keep_alive: keep_alive && framing != Framing::UntilClose,
    }))
}

/// Writes the head sent to the client: the instance's status line and headers minus the hop-by-hop ones,
/// then the affinity cookie, and `connection: close` when the client connection ends after this answer.
pub(crate) fn write_client_head(
    out: &mut impl BufMut,
    response: &ResponseHead<'_>,
    set_cookie: Option<&[u8]>,
    close: bool,
) {
    // httparse only accepts three-digit status codes.
    let status = response.status;
    let digit = |n: u16| b'0' + (n % 10) as u8;
    out.put_slice(b"HTTP/1.1 ");
    out.put_slice(&[digit(status / 100), digit(status / 10), digit(status), b' ']);
    out.put_slice(response.reason.as_bytes());
    out.put_slice(b"\r\n");
    let hop_by_hop = HopByHop::of(response.headers);
    for header in response.headers {
        let name = header.name;
        // The body is relayed as framed, so its framing header stays.
        if !name.eq_ignore_ascii_case("transfer-encoding") && hop_by_hop.contains(name) {
            continue;
        }
        write_header(out, name.as_bytes(), header.value);
    }
    if let Some(cookie) = set_cookie {
        write_header(out, header::SET_COOKIE.as_str().as_bytes(), cookie);
    }
    if close {
        out.put_slice(b"connection: close\r\n");
    }
    out.put_slice(b"\r\n");
}

/// Writes a whole answer of the proxy's own: plain text with its length.
pub(crate) fn write_message(out: &mut Vec<u8>, status: http::StatusCode, text: &str, close: bool) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ");
    out.extend_from_slice(text.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(text.as_bytes());
}

fn write_header(out: &mut impl BufMut, name: &[u8], value: &[u8]) {
    out.put_slice(name);
    out.put_slice(b": ");
    out.put_slice(value);
    out.put_slice(b"\r\n");
}

/// Which headers of a message describe one connection (RFC 9110 §7.6.1): the standard hop-by-hop ones, and
/// those its `Connection` header names.
struct HopByHop<'h> {
    /// The message's headers, when its `Connection` header names more than `close`/`keep-alive` (rare), so
    /// the common message is checked against the standard list alone.
    naming: Option<&'h [httparse::Header<'h>]>,
}

impl<'h> HopByHop<'h> {
    fn of(headers: &'h [httparse::Header<'h>]) -> Self {
        let names_more = connection_tokens(headers)
            .any(|token| !token.eq_ignore_ascii_case(b"close") && !token.eq_ignore_ascii_case(b"keep-alive"));
        Self {
            naming: names_more.then_some(headers),
        }
    }

    fn contains(&self, name: &str) -> bool {
        // Plain strings: this runs for every header of every message, and `HeaderName::as_str` of a standard
        // name is a lookup.
        HOP_BY_HOP_NAMES.iter().any(|hop| name.eq_ignore_ascii_case(hop))
            || self.naming.is_some_and(|headers| {
                connection_tokens(headers).any(|token| token.eq_ignore_ascii_case(name.as_bytes()))
            })
    }
}

fn connection_tokens<'h>(headers: &'h [httparse::Header<'h>]) -> impl Iterator<Item = &'h [u8]> {
    headers
        .iter()
        .filter(|header| header.name.eq_ignore_ascii_case("connection"))
        .flat_map(|header| header.value.split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream_head(request: &str) -> String {
        let mut slots = header_slots();
        let Parsed::Request(head) = parse_request(request.as_bytes(), &mut slots) else {
            panic!("lean path takes {request:?}");
        };
        let mut out = Vec::new();
        let forwarding = Forwarding {
            client_ip: b"127.0.0.1",
            proto: b"http",
        };
        write_upstream_head(&mut out, &head, &forwarding);
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn requests_outside_the_common_case_are_left_to_hyper() {
        let cases = [
            ("GET / HTTP/1.1\r\nHost: a\r\n\r\n", "request"),
            ("GET / HTTP/1.1\r\nHost: a\r\n", "partial"),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nabc", "partial"),
            ("GET / HTTP/1.0\r\nHost: a\r\n\r\n", "handoff"),
            ("GET / HTTP/1.1\r\n\r\n", "handoff"),
            ("GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", "handoff"),
            ("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", "handoff"),
            ("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", "handoff"),
            ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "handoff"),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
                "handoff",
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
                "handoff",
            ),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\nx", "handoff"),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999\r\n\r\n",
                "handoff",
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
                "handoff",
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
                "handoff",
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Type: application/grpc\r\n\r\n",
                "handoff",
            ),
            ("GET / HTTP/1.1\r\nHost a\r\n\r\n", "handoff"),
        ];
        for (request, expected) in cases {
            let mut slots = header_slots();
            let parsed = match parse_request(request.as_bytes(), &mut slots) {
                Parsed::Partial => "partial",
                Parsed::Handoff => "handoff",
                Parsed::Request(_) => "request",
            };
            assert_eq!(parsed, expected, "{request:?}");
        }
    }

    #[test]
    fn the_upstream_head_drops_hop_by_hop_headers_and_adds_forwarding_ones() {
        let head = upstream_head(
            "GET /a?b=1 HTTP/1.1\r\nHost: shop\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\n\
             Keep-Alive: 5\r\nTE: trailers\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: https\r\n\
             x-forwarded-for: 10.0.0.2\r\nAccept: */*\r\n\r\n",
        );
        let (line, rest) = head.split_once("\r\n").expect("request line");
        assert_eq!(line, "GET /a?b=1 HTTP/1.1");
        let headers: Vec<&str> = rest.trim_end().split("\r\n").collect();
        assert_eq!(
            &headers[..4],
            [
                "Host: shop",
                "Accept: */*",
                "x-forwarded-for: 10.0.0.1, 10.0.0.2, 127.0.0.1",
                "x-forwarded-proto: http",
            ]
        );
        assert!(
            headers[4].starts_with("x-request-id: ") && headers[4].len() == 30,
            "{headers:?}"
        );
        assert!(head.ends_with("\r\n\r\n"));
    }

    #[test]
    fn a_client_request_id_is_kept() {
        let head = upstream_head("GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: abc\r\n\r\n");
        assert_eq!(head.to_ascii_lowercase().matches("x-request-id").count(), 1, "{head}");
        assert!(head.contains("X-Request-Id: abc\r\n"));
    }

    #[test]
    fn answers_are_framed_as_rfc_9112_says() {
        let cases = [
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
                false,
                Some((Framing::Length(5), true)),
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                false,
                Some((Framing::Chunked, true)),
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                false,
                Some((Framing::UntilClose, false)),
            ),
            ("HTTP/1.1 200 OK\r\n\r\n", false, Some((Framing::UntilClose, false))),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
                true,
                Some((Framing::Empty, true)),
            ),
            ("HTTP/1.1 204 No Content\r\n\r\n", false, Some((Framing::Empty, true))),
            ("HTTP/1.1 304 Not Modified\r\n\r\n", false, Some((Framing::Empty, true))),
            (
                "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                false,
                Some((Framing::Length(0), false)),
            ),
            (
                "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
                false,
                Some((Framing::Length(0), false)),
            ),
            (
                "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
                false,
                Some((Framing::Length(0), true)),
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                false,
                None,
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                false,
                None,
            ),
            ("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", false, None),
            ("HTTP/1.1 101 Switching Protocols\r\n\r\n", false, None),
        ];
        for (response, head_request, expected) in cases {
            let mut slots = header_slots();
            let parsed = parse_response(response.as_bytes(), &mut slots, head_request)
                .ok()
                .map(|head| head.map(|head| (head.framing, head.keep_alive)).expect("whole head"));
            assert_eq!(parsed, expected, "{response:?}");
        }
    }

    #[test]
    fn the_client_head_keeps_framing_and_drops_connection_headers() {
        let response = "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\n\
                        Transfer-Encoding: chunked\r\nX-Kept: yes\r\n\r\n";
        let mut slots = header_slots();
        let head = parse_response(response.as_bytes(), &mut slots, false)
            .expect("valid")
            .expect("whole");
        let mut out = Vec::new();
        write_client_head(&mut out, &head, Some(b"u=1; Path=/"), true);
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Kept: yes\r\nset-cookie: u=1; Path=/\r\n\
             connection: close\r\n\r\n"
        );
    }
}

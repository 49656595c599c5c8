//! The hot path: pick a revision and instance, forward the request, measure the response.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::uri::{PathAndQuery, Scheme, Uri};
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::Full;
use hyper::body::{Body as _, Incoming};
use hyper::client::conn::http1;
use tokio::time::Instant;

use crate::affinity;
use crate::body::{Grpc, Measure, ProxyBody, Relayed, UpstreamBody};
use crate::mirror;
use crate::plane::DataPlane;
use crate::routes::UpstreamProtocol;
use crate::routing::{BackendRoutes, ServiceRoutes};
use crate::stats::{InFlight, Outcome, Recorder, class_of};
use crate::upgrade;
use crate::upstream::{ConnectError, Connection, Endpoint};

/// Headers that describe one connection rather than the message (RFC 9110 §7.6.1), so a proxy
/// must not pass them on. `Upgrade` is among them: an upgrade is re-requested explicitly, hop by hop.
pub(crate) const HOP_BY_HOP_NAMES: [&str; 8] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
];

/// [`HOP_BY_HOP_NAMES`] as header names, for header maps.
pub(crate) static HOP_BY_HOP: [HeaderName; 8] = [
    HeaderName::from_static(HOP_BY_HOP_NAMES[0]),
    HeaderName::from_static(HOP_BY_HOP_NAMES[1]),
    HeaderName::from_static(HOP_BY_HOP_NAMES[2]),
    HeaderName::from_static(HOP_BY_HOP_NAMES[3]),
    HeaderName::from_static(HOP_BY_HOP_NAMES[4]),
    HeaderName::from_static(HOP_BY_HOP_NAMES[5]),
    HeaderName::from_static(HOP_BY_HOP_NAMES[6]),
    HeaderName::from_static(HOP_BY_HOP_NAMES[7]),
];

pub(crate) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Where a request came from, fixed for the life of a client connection.
#[derive(Clone)]
pub(crate) struct Origin {
    /// The service listener the connection arrived on.
    pub(crate) listen: SocketAddr,
    /// The client's IP, preformatted once per connection for `x-forwarded-for`.
    pub(crate) client_ip: HeaderValue,
    /// `http` or `https`, for `x-forwarded-proto`.
    pub(crate) proto: HeaderValue,
}

impl Origin {
    pub(crate) fn new(listen: SocketAddr, peer: SocketAddr, tls: bool) -> Self {
        let client_ip = HeaderValue::try_from(peer.ip().to_string()).expect("an IP address is a valid header value");
        let proto = HeaderValue::from_static(if tls { "https" } else { "http" });
        Self {
            listen,
            client_ip,
            proto,
        }
    }
}

/// Proxies one request; failures become the response the client sees, never a dropped connection.
pub(crate) async fn forward(
    plane: Arc<DataPlane>,
    origin: Origin,
    mut request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let received = Instant::now();
    let Some(service) = plane.table.load().service_at(origin.listen).cloned() else {
        return Ok(message(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no service is routed on {}", origin.listen),
        ));
    };
    if request.method() == Method::CONNECT {
        return Ok(message(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("service {}: CONNECT is not supported", service.name()),
        ));
    }
    let Some(decision) = service.route(request.headers()) else {
        return Ok(message(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "service {}: no revision has a non-zero weight and instances",
                service.name()
            ),
        ));
    };
    let exchange = Exchange {
        service: &service,
        backend: decision.backend,
        recorder: decision.recorder,
        started: decision.recorder.start(),
        received,
    };
    let client_upgrade = upgrade::requested(&mut request, service.protocol);
    let (mut parts, body) = request.into_parts();
    let received_bytes = (!body.is_end_stream()).then(|| Arc::new(AtomicU64::new(0)));
    let mut body = UpstreamBody::Streamed {
        inner: body,
        received: received_bytes.clone(),
    };
    prepare_headers(&mut parts, &origin, client_upgrade.is_some(), service.protocol);
    let mut copy = None;
    if let Some(backend) = service.mirror_for(&parts.method) {
        (body, copy) = match mirror::copy(&service, backend, &parts, body, received_bytes.as_deref()).await {
            Ok(copied) => copied,
            Err(response) => return Ok(exchange.answer(response)),
        };
    }
    let result = exchange_with_instance(&exchange, &service, parts, body).await;
    if let Some(copy) = copy {
        copy.send();
    }
    let (endpoint, mut response, pooled) = match result {
        Ok(answered) => answered,
        Err(response) => return Ok(exchange.answer(response)),
    };
    let latency = received.elapsed();
    if let Some(client_upgrade) = client_upgrade
        && response.status() == StatusCode::SWITCHING_PROTOCOLS
    {
        upgrade::tunnel(client_upgrade, &mut response);
        exchange.backend.stats().upgraded();
        let (mut parts, _) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers, true);
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        let response = Response::from_parts(parts, ProxyBody::Message(Full::default()));
        return Ok(exchange.answer(response));
    }
    let (mut parts, body) = response.into_parts();
    let grpc = if is_grpc(&parts.headers) {
        Grpc::status_in(&parts.headers).map_or(Grpc::Pending, Grpc::Status)
    } else {
        Grpc::No
    };
    strip_hop_by_hop(&mut parts.headers, false);
    if let Some(cookie) = decision.set_cookie {
        parts.headers.append(header::SET_COOKIE, cookie);
    }
    let measure = Measure {
        recorder: exchange.recorder.clone(),
        started: exchange.started,
        class: class_of(parts.status),
        grpc,
        latency,
        received: received_bytes,
        sent: 0,
    };
    let connection = pooled.map(|sender| (endpoint, sender));
    Ok(Response::from_parts(
        parts,
        ProxyBody::Relayed(Relayed::new(body, measure, connection)),
    ))
}

/// An answer from an instance, with the HTTP/1.1 connection to pool once its body has been read.
type Answered = (
    Arc<Endpoint>,
    Response<Incoming>,
    Option<http1::SendRequest<UpstreamBody>>,
);

/// Connects to an instance and sends it the request; a failure is the answer the client gets.
async fn exchange_with_instance(
    exchange: &Exchange<'_>,
    service: &ServiceRoutes,
    mut parts: Parts,
    body: UpstreamBody,
) -> Result<Answered, Response<ProxyBody>> {
    let (endpoint, connection) = exchange.connect().await?;
    set_uri(&mut parts, service.protocol, &endpoint);
    let sent = tokio::time::timeout(
        service.request_timeout,
        send(&endpoint, connection, Request::from_parts(parts, body), service),
    )
    .await;
    match sent {
        Ok(Ok((response, pooled))) => Ok((endpoint, response, pooled)),
        Ok(Err(error)) => Err(exchange.bad_gateway(&endpoint, &error)),
        Err(_) => Err(exchange.gateway_timeout(&endpoint, service.request_timeout)),
    }
}

/// One request on its way: where it goes and where it is measured.
struct Exchange<'a> {
    service: &'a ServiceRoutes,
    backend: &'a BackendRoutes,
    recorder: &'a Arc<Recorder>,
    started: InFlight,
    received: Instant,
}

impl Exchange<'_> {
    /// Connects to an instance of the revision (see [`connect_instance`]).
    async fn connect(&self) -> Result<(Arc<Endpoint>, Connection), Response<ProxyBody>> {
        let protocol = self.service.protocol;
        let timeout = self.service.connect_timeout;
        connect_instance(self.backend, self.received, |endpoint| async move {
            endpoint.connect(protocol, timeout).await
        })
        .await
        .map_err(|(status, text)| message(status, text))
    }

    fn bad_gateway(&self, endpoint: &Endpoint, error: &hyper::Error) -> Response<ProxyBody> {
        message(StatusCode::BAD_GATEWAY, failed_answer(self.backend, endpoint, error))
    }

    fn gateway_timeout(&self, endpoint: &Endpoint, timeout: Duration) -> Response<ProxyBody> {
        message(StatusCode::GATEWAY_TIMEOUT, timed_out(self.backend, endpoint, timeout))
    }

    /// Measures an answer whose body is already complete (the proxy's own, or a `101`).
    fn answer(self, response: Response<ProxyBody>) -> Response<ProxyBody> {
        self.recorder.finish(
            self.started,
            Outcome {
                class: class_of(response.status()),
                grpc: None,
                latency: self.received.elapsed(),
                bytes_received: 0,
                bytes_sent: 0,
            },
        );
        response
    }
}

/// Connects to an instance of the revision with `connect`. An instance that cannot be reached is ejected
/// (by the endpoint) and the next one tried, since nothing was sent yet and any request may move; only when no
/// instance of the revision can be reached is the answer an error: its status and the text that says why.
pub(crate) async fn connect_instance<C, F, Fut>(
    backend: &BackendRoutes,
    received: Instant,
    mut connect: F,
) -> Result<(Arc<Endpoint>, C), (StatusCode, String)>
where
    F: FnMut(Arc<Endpoint>) -> Fut,
    Fut: Future<Output = Result<C, ConnectError>>,
{
    let attempts = backend.instance_count();
    let mut attempt = 0;
    loop {
        let Some(endpoint) = backend.pick_instance(received) else {
            return Err((
                StatusCode::SERVICE_UNAVAILABLE,
                format!("revision {}: no instances", backend.revision()),
            ));
        };
        match connect(endpoint.clone()).await {
            Ok(connection) => return Ok((endpoint.clone(), connection)),
            Err(error) => {
                backend.stats().connect_failed();
                attempt += 1;
                // The failed instance is ejected now, so a healthy one is another instance.
                if attempt >= attempts || !backend.has_healthy_instance(Instant::now()) {
                    return Err((StatusCode::BAD_GATEWAY, cannot_connect(backend, endpoint, &error)));
                }
            }
        }
    }
}

/// The `502` text when no instance of the revision could be reached.
fn cannot_connect(backend: &BackendRoutes, endpoint: &Endpoint, error: &ConnectError) -> String {
    let mut body = format!(
        "revision {}: cannot connect to instance {}: ",
        backend.revision(),
        endpoint.addr
    );
    write_chain(&mut body, error);
    // Debug, not warn: a down instance fails every request sent to it, and the counts already say so.
    tracing::debug!(revision = backend.revision(), instance = %endpoint.addr, "{body}");
    body
}

/// The `502` text when an instance broke off the exchange before its answer's headers.
pub(crate) fn failed_answer(backend: &BackendRoutes, endpoint: &Endpoint, error: &dyn StdError) -> String {
    let mut body = format!(
        "revision {}: failed to answer from instance {}: ",
        backend.revision(),
        endpoint.addr
    );
    write_chain(&mut body, error);
    tracing::debug!(revision = backend.revision(), instance = %endpoint.addr, "{body}");
    body
}

/// The `504` text when an instance sent no answer headers within the request timeout.
pub(crate) fn timed_out(backend: &BackendRoutes, endpoint: &Endpoint, timeout: Duration) -> String {
    let body = format!(
        "revision {}: request timeout: instance {} sent no answer within {timeout:?}",
        backend.revision(),
        endpoint.addr
    );
    tracing::debug!(revision = backend.revision(), instance = %endpoint.addr, "{body}");
    body
}

fn write_chain(out: &mut String, error: &dyn StdError) {
    let _ = write!(out, "{error}");
    let mut cause = error.source();
    while let Some(current) = cause {
        let _ = write!(out, ": {current}");
        cause = current.source();
    }
}

/// Sends the request; an HTTP/1.1 connection comes back with the answer, to be pooled when its body ends.
///
/// A pooled connection the instance closed just before is noticed before anything is sent: the request
/// then goes once more on a new connection.
pub(crate) async fn send(
    endpoint: &Arc<Endpoint>,
    connection: Connection,
    request: Request<UpstreamBody>,
    service: &ServiceRoutes,
) -> Result<(Response<Incoming>, Option<http1::SendRequest<UpstreamBody>>), hyper::Error> {
    match connection {
        Connection::Http1(mut sender) => match sender.try_send_request(request).await {
            Ok(response) => Ok((response, Some(sender))),
            Err(mut error) => {
                let Some(request) = error.take_message() else {
                    return Err(error.into_error());
                };
                let Ok(Connection::Http1(mut fresh)) = endpoint.connect_new(service.connect_timeout).await else {
                    return Err(error.into_error());
                };
                let response = fresh.send_request(request).await?;
                Ok((response, Some(fresh)))
            }
        },
        Connection::Http2(mut sender) => {
            sender.ready().await?;
            Ok((sender.send_request(request).await?, None))
        }
    }
}

fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"))
}

/// Rewrites the request's headers for the instance: hop-by-hop headers out, forwarding headers in.
pub(crate) fn prepare_headers(parts: &mut Parts, origin: &Origin, upgrade: bool, protocol: UpstreamProtocol) {
    if protocol == UpstreamProtocol::Http1
        && !parts.headers.contains_key(header::HOST)
        && let Some(authority) = parts.uri.authority()
        && let Ok(host) = HeaderValue::from_str(authority.as_str())
    {
        // HTTP/2 clients put the host in the `:authority` pseudo-header; HTTP/1.1 backends need `Host`.
        parts.headers.insert(header::HOST, host);
    }
    let keep_te_trailers = protocol == UpstreamProtocol::Http2
        && parts
            .headers
            .get(header::TE)
            .is_some_and(|te| te.as_bytes().eq_ignore_ascii_case(b"trailers"));
    strip_hop_by_hop(&mut parts.headers, upgrade);
    if upgrade {
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    if keep_te_trailers {
        // gRPC servers require `te: trailers`, the one TE value HTTP/2 allows.
        parts.headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    append_forwarded_for(&mut parts.headers, &origin.client_ip);
    parts.headers.insert(X_FORWARDED_PROTO, origin.proto.clone());
    if !parts.headers.contains_key(X_REQUEST_ID) {
        parts.headers.insert(X_REQUEST_ID, request_id());
    }
}

/// Points the request at an instance: origin-form for HTTP/1.1, absolute for HTTP/2 (which sends the
/// scheme and authority as pseudo-headers).
pub(crate) fn set_uri(parts: &mut Parts, protocol: UpstreamProtocol, endpoint: &Endpoint) {
    let path = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    match protocol {
        UpstreamProtocol::Http1 => {
            if parts.uri.authority().is_some() || parts.uri.path_and_query().is_none() {
                parts.uri = Uri::from(path);
            }
            parts.version = Version::HTTP_11;
        }
        UpstreamProtocol::Http2 => {
            let authority = parts
                .headers
                .remove(header::HOST)
                .and_then(|host| host.to_str().ok().and_then(|h| h.parse().ok()))
                .or_else(|| parts.uri.authority().cloned())
                .unwrap_or_else(|| endpoint.authority.clone());
            let mut uri = http::uri::Parts::default();
            uri.scheme = Some(Scheme::HTTP);
            uri.authority = Some(authority);
            uri.path_and_query = Some(path);
            parts.uri = Uri::from_parts(uri).expect("scheme, authority and path form a valid URI");
            parts.version = Version::HTTP_2;
        }
    }
}

/// A fresh request id: 16 hex digits, unique within the process and unlikely to repeat across processes.
fn request_id() -> HeaderValue {
    HeaderValue::from_bytes(&request_id_digits()).expect("hex digits are a valid header value")
}

/// The digits of a fresh request id, written straight into a head by the lean path.
pub(crate) fn request_id_digits() -> [u8; 16] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let id = affinity::fresh_id();
    let mut text = [0_u8; 16];
    for (index, digit) in text.iter_mut().enumerate() {
        *digit = HEX[((id >> (60 - 4 * index)) & 0xf) as usize];
    }
    text
}

/// Removes hop-by-hop headers (RFC 9110 §7.6.1), those named in `Connection` included; for an upgrade request,
/// `Upgrade` itself is kept. Whoever forwards a request or an answer does this, the shadow stage's fan-out too.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // Headers named in `Connection` are hop-by-hop too; collected first because they are removed
    // from the map being read. Typical values (`keep-alive`, `close`) name nothing extra.
    let mut named: Vec<HeaderName> = Vec::new();
    for value in headers.get_all(header::CONNECTION) {
        let Ok(value) = value.to_str() else { continue };
        for token in value.split(',').map(str::trim) {
            if token.is_empty()
                || token.eq_ignore_ascii_case("close")
                || token.eq_ignore_ascii_case("keep-alive")
                || (keep_upgrade && token.eq_ignore_ascii_case("upgrade"))
            {
                continue;
            }
            if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
                named.push(name);
            }
        }
    }
    for name in named.iter().chain(&HOP_BY_HOP) {
        if keep_upgrade && name == header::UPGRADE {
            continue;
        }
        headers.remove(name);
    }
}

fn append_forwarded_for(headers: &mut HeaderMap, client_ip: &HeaderValue) {
    let mut previous = headers.get_all(&X_FORWARDED_FOR).iter().peekable();
    if previous.peek().is_none() {
        headers.insert(X_FORWARDED_FOR, client_ip.clone());
        return;
    }
    let mut chain = Vec::new();
    for value in previous {
        chain.extend_from_slice(value.as_bytes());
        chain.extend_from_slice(b", ");
    }
    chain.extend_from_slice(client_ip.as_bytes());
    if let Ok(value) = HeaderValue::from_bytes(&chain) {
        headers.insert(X_FORWARDED_FOR, value);
    }
}

/// A plain-text response written by the proxy itself.
pub(crate) fn message(status: StatusCode, text: String) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::Message(Full::new(Bytes::from(text))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_named_in_connection_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, X-Secret"));
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        headers.insert("x-kept", HeaderValue::from_static("yes"));
        strip_hop_by_hop(&mut headers, false);
        let names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["x-kept"]);
    }

    #[test]
    fn an_upgrade_keeps_its_upgrade_header() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        strip_hop_by_hop(&mut headers, true);
        let names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["upgrade"]);
    }

    #[test]
    fn forwarded_for_appends_to_an_existing_chain() {
        let ip = HeaderValue::from_static("127.0.0.1");
        let mut headers = HeaderMap::new();
        append_forwarded_for(&mut headers, &ip);
        assert_eq!(headers[&X_FORWARDED_FOR], "127.0.0.1");

        let mut headers = HeaderMap::new();
        headers.append(&X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.1"));
        headers.append(&X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.2"));
        append_forwarded_for(&mut headers, &ip);
        assert_eq!(headers[&X_FORWARDED_FOR], "10.0.0.1, 10.0.0.2, 127.0.0.1");
    }

    #[test]
    fn request_ids_are_sixteen_hex_digits_and_differ() {
        let first = request_id();
        assert_eq!(first.len(), 16);
        assert!(first.as_bytes().iter().all(u8::is_ascii_hexdigit));
        assert_ne!(first, request_id());
    }
}

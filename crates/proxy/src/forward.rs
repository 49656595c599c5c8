//! The hot path: pick a revision and instance, forward the request, measure the response.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{PathAndQuery, Scheme, Uri};
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use tokio::time::Instant;

use crate::plane::DataPlane;
use crate::routing::{BackendRoutes, Instance};

/// Body of a proxied response: the backend's, streamed, or the proxy's own error message.
pub(crate) type ProxyBody = Either<Incoming, Full<Bytes>>;

/// Headers that describe one connection rather than the message (RFC 9110 §7.6.1), so a proxy
/// must not pass them on. `Upgrade` is among them: upgrades are not proxied.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("proxy-connection"),
    HeaderName::from_static("keep-alive"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Where a request came from, fixed for the life of a client connection.
#[derive(Clone)]
pub(crate) struct Origin {
    /// The service listener the connection arrived on.
    pub(crate) listen: SocketAddr,
    /// The client's IP, preformatted once per connection for `x-forwarded-for`.
    pub(crate) client_ip: HeaderValue,
}

impl Origin {
    pub(crate) fn new(listen: SocketAddr, peer: SocketAddr) -> Self {
        let client_ip = HeaderValue::try_from(peer.ip().to_string()).expect("an IP address is a valid header value");
        Self { listen, client_ip }
    }
}

/// Proxies one request; failures become the response the client sees, never a dropped connection.
pub(crate) async fn forward(
    plane: Arc<DataPlane>,
    origin: Origin,
    request: Request<Incoming>,
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
    let Some((backend, instance)) = service.pick() else {
        return Ok(message(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "service {}: no revision has a non-zero weight and instances",
                service.name()
            ),
        ));
    };
    let upstream = upstream_request(request, instance, &origin.client_ip);
    let response = match plane.client.request(upstream).await {
        Ok(response) => downstream_response(response),
        Err(error) => bad_gateway(backend, instance, &error),
    };
    backend.stats().record(response.status(), received.elapsed());
    Ok(response)
}

fn upstream_request(request: Request<Incoming>, instance: &Instance, client_ip: &HeaderValue) -> Request<Incoming> {
    let (mut parts, body) = request.into_parts();
    if !parts.headers.contains_key(header::HOST)
        && let Some(authority) = parts.uri.authority()
        && let Ok(host) = HeaderValue::from_str(authority.as_str())
    {
        // HTTP/2 clients put the host in the `:authority` pseudo-header; HTTP/1.1 backends need `Host`.
        parts.headers.insert(header::HOST, host);
    }
    strip_hop_by_hop(&mut parts.headers);
    append_forwarded_for(&mut parts.headers, client_ip);
    let path = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let mut uri = http::uri::Parts::default();
    uri.scheme = Some(Scheme::HTTP);
    uri.authority = Some(instance.authority.clone());
    uri.path_and_query = Some(path);
    parts.uri = Uri::from_parts(uri).expect("scheme, authority and path form a valid URI");
    // Upstream connections are pooled HTTP/1.1 whatever the client spoke.
    parts.version = Version::HTTP_11;
    Request::from_parts(parts, body)
}

fn downstream_response(response: Response<Incoming>) -> Response<ProxyBody> {
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Response::from_parts(parts, Either::Left(body))
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Headers named in `Connection` are hop-by-hop too; collected first because they are removed
    // from the map being read. Typical values (`keep-alive`, `close`) name nothing extra.
    let mut named: Vec<HeaderName> = Vec::new();
    for value in headers.get_all(header::CONNECTION) {
        let Ok(value) = value.to_str() else { continue };
        for token in value.split(',').map(str::trim) {
            if token.is_empty() || token.eq_ignore_ascii_case("close") || token.eq_ignore_ascii_case("keep-alive") {
                continue;
            }
            if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
                named.push(name);
            }
        }
    }
    for name in named.iter().chain(&HOP_BY_HOP) {
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

fn bad_gateway(
    backend: &BackendRoutes,
    instance: &Instance,
    error: &hyper_util::client::legacy::Error,
) -> Response<ProxyBody> {
    let what = if error.is_connect() {
        "cannot connect to"
    } else {
        "failed to answer from"
    };
    let mut body = format!("revision {}: {what} instance {}", backend.revision(), instance.addr);
    let mut cause: Option<&dyn StdError> = Some(error);
    while let Some(current) = cause {
        let _ = write!(body, ": {current}");
        cause = current.source();
    }
    // Debug, not warn: a down instance fails every request sent to it, and the 5xx count already says so.
    tracing::debug!(revision = backend.revision(), instance = %instance.addr, "{body}");
    message(StatusCode::BAD_GATEWAY, body)
}

/// A plain-text response written by the proxy itself.
fn message(status: StatusCode, text: String) -> Response<ProxyBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(text))));
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
        strip_hop_by_hop(&mut headers);
        let names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["x-kept"]);
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
}

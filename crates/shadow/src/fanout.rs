//! Sending one shadowed request to one instance and reading its whole answer, within a time limit and a
//! body cap.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName};
use http::uri::{PathAndQuery, Uri};
use http::{Method, Request, Response};
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::compare::Answer;

/// Headers that describe one connection rather than the message (RFC 9110 §7.6.1), never passed on.
/// `Content-Length` and `Expect` go too: the body is sent whole from memory and its length is set from it.
/// Framing headers the client recomputes for the body it sends on.
const REFRAMED: [HeaderName; 2] = [header::CONTENT_LENGTH, header::EXPECT];

/// A shadowed request, read whole, ready to be sent to each instance.
#[derive(Clone, Debug)]
pub(crate) struct Shadowed {
    pub(crate) method: Method,
    pub(crate) path: PathAndQuery,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Shadowed {
    /// The request as the proxy sent it, without its hop-by-hop headers.
    pub(crate) fn new(method: Method, uri: &Uri, mut headers: HeaderMap, body: Bytes) -> Self {
        strip_hop_by_hop(&mut headers);
        let path = uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        Shadowed {
            method,
            path,
            headers,
            body,
        }
    }

    /// `GET /path`, without the query (which may carry credentials), for examples in the report.
    pub(crate) fn label(&self) -> String {
        format!("{} {}", self.method, self.path.path())
    }
}

/// How one instance answered.
#[derive(Debug)]
pub(crate) enum Outcome {
    Answered(Answer),
    /// The answer's body is longer than the cap: it is not compared.
    TooLarge,
    /// No answer in time, or a broken one; the reason is for logs.
    NoAnswer(String),
}

/// Sends shadowed requests over pooled connections.
#[derive(Clone, Debug)]
pub(crate) struct Sender {
    client: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
    max_body_bytes: u64,
}

impl Sender {
    pub(crate) fn new(timeout: Duration, max_body_bytes: u64) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Sender {
            client,
            timeout,
            max_body_bytes,
        }
    }

    /// Sends `request` to `to` and reads the answer whole, all within the time limit.
    pub(crate) async fn send(&self, to: SocketAddr, request: &Shadowed) -> Outcome {
        let uri = match Uri::builder()
            .scheme("http")
            .authority(to.to_string())
            .path_and_query(request.path.clone())
            .build()
        {
            Ok(uri) => uri,
            Err(error) => return Outcome::NoAnswer(format!("cannot address {to}: {error}")),
        };
        let mut outgoing = Request::new(Full::new(request.body.clone()));
        *outgoing.method_mut() = request.method.clone();
        *outgoing.uri_mut() = uri;
        *outgoing.headers_mut() = request.headers.clone();
        match tokio::time::timeout(self.timeout, self.exchange(outgoing)).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::NoAnswer(format!("no answer within {:?}", self.timeout)),
        }
    }

    async fn exchange(&self, request: Request<Full<Bytes>>) -> Outcome {
        let response = match self.client.request(request).await {
            Ok(response) => response,
            Err(error) => return Outcome::NoAnswer(error.to_string()),
        };
        read_answer(response, self.max_body_bytes).await
    }
}

async fn read_answer(response: Response<Incoming>, max_body_bytes: u64) -> Outcome {
    let declared = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > max_body_bytes) {
        return Outcome::TooLarge;
    }
    let (parts, body) = response.into_parts();
    let limit = usize::try_from(max_body_bytes).unwrap_or(usize::MAX);
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Outcome::Answered(Answer {
            status: parts.status,
            headers: parts.headers,
            body: collected.to_bytes(),
        }),
        Err(error) if error.is::<LengthLimitError>() => Outcome::TooLarge,
        Err(error) => Outcome::NoAnswer(format!("answer broken off: {error}")),
    }
}

/// Removes what is not forwarded: hop-by-hop headers (as the proxy does) and the body's framing.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    sluice_proxy::strip_hop_by_hop(headers, false);
    for name in &REFRAMED {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn the_bodys_framing_goes_with_the_proxys_hop_by_hop_headers() {
        // The proxy's own tests cover which headers are hop by hop; this is what the shadow adds to them.
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("3"));
        headers.insert(header::HOST, HeaderValue::from_static("example.com"));
        strip_hop_by_hop(&mut headers);
        let left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["host"]);
    }

    #[test]
    fn examples_name_the_path_without_the_query() {
        let uri: Uri = "/items/1?token=secret".parse().expect("a uri");
        let shadowed = Shadowed::new(Method::GET, &uri, HeaderMap::new(), Bytes::new());
        assert_eq!(shadowed.label(), "GET /items/1");
    }
}

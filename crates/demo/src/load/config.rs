//! What a load run sends, how fast, and for how long; checked up front so a run never fails
//! half-way.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, InvalidHeaderName, InvalidHeaderValue};
use http::uri::InvalidUri;
use http::{HeaderMap, Method, Request, Uri};
use http_body_util::Full;

/// One load run. Every run is bounded by `duration`, by `max_requests` and by `max_in_flight`.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Where requests go (plain HTTP/1.1).
    pub target: SocketAddr,
    /// The requests to send, cycled in order.
    pub requests: Vec<RequestTemplate>,
    /// Requests scheduled per second.
    pub rate: f64,
    /// How long to keep scheduling requests.
    pub duration: Duration,
    /// Most requests to schedule, whether they end up sent or dropped.
    pub max_requests: u64,
    /// Most requests outstanding at once; a request scheduled beyond it is dropped and counted.
    pub max_in_flight: usize,
    /// Longest wait for one request, from connecting to the end of the response body.
    pub timeout: Duration,
}

/// One request to send; `Host` and `Content-Length` are filled in when absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestTemplate {
    /// The HTTP method.
    pub method: Method,
    /// Path and query, starting with `/`.
    pub path: String,
    /// Extra headers, e.g. to steer a header-based route.
    pub headers: Vec<(String, String)>,
    /// The request body; empty for none.
    pub body: Bytes,
}

impl RequestTemplate {
    /// A bodyless GET of `path`.
    pub fn get(path: impl Into<String>) -> Self {
        Self {
            method: Method::GET,
            path: path.into(),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// A POST of `body` to `path`; add a `content-type` with [`RequestTemplate::with_header`] if the target
    /// needs one.
    pub fn post(path: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Self {
            method: Method::POST,
            body: body.into(),
            ..Self::get(path)
        }
    }

    /// The same request with one more header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The request this template sends to `target`, checked exactly as a load run checks it, so that a single
    /// request (a smoke check) and a load of them go out the same way.
    pub fn to_request(&self, target: SocketAddr) -> Result<Request<Full<Bytes>>, LoadConfigError> {
        Ok(PreparedRequest::new(target, self)?.to_request())
    }
}

/// A load configuration that cannot run.
#[derive(Debug, thiserror::Error)]
pub enum LoadConfigError {
    /// There is nothing to send.
    #[error("a load run needs at least one request template")]
    NoRequests,
    /// The rate is not a positive number of requests per second that tokio's timer can pace.
    #[error("request rate must be positive and at most one per nanosecond, got {rate}")]
    InvalidRate {
        /// The rejected rate.
        rate: f64,
    },
    /// No request could ever be in flight.
    #[error("max_in_flight must be at least 1")]
    NoRequestsInFlight,
    /// Every request would time out before it started.
    #[error("the request timeout must be longer than zero")]
    ZeroTimeout,
    /// A template's path does not form a valid request target.
    #[error("request path {path:?} is not a valid path starting with '/'")]
    InvalidPath {
        /// The rejected path.
        path: String,
        /// Why the URI was rejected, when it got that far.
        #[source]
        source: Option<InvalidUri>,
    },
    /// A template's header name is not a valid HTTP header name.
    #[error("request header name {name:?} is invalid")]
    InvalidHeaderName {
        /// The rejected name.
        name: String,
        /// The parser's complaint.
        #[source]
        source: InvalidHeaderName,
    },
    /// A template's header value cannot be sent.
    #[error("value of request header {name:?} is invalid")]
    InvalidHeaderValue {
        /// The header the value belongs to.
        name: String,
        /// The parser's complaint.
        #[source]
        source: InvalidHeaderValue,
    },
}

/// A validated [`LoadConfig`], with requests parsed once instead of on every send.
#[derive(Debug, Clone)]
pub(crate) struct LoadPlan {
    pub(crate) requests: Vec<PreparedRequest>,
    pub(crate) period: Duration,
    pub(crate) duration: Duration,
    pub(crate) max_requests: u64,
    pub(crate) max_in_flight: usize,
    pub(crate) timeout: Duration,
}

impl LoadPlan {
    pub(crate) fn new(config: &LoadConfig) -> Result<Self, LoadConfigError> {
        if config.requests.is_empty() {
            return Err(LoadConfigError::NoRequests);
        }
        if config.max_in_flight == 0 {
            return Err(LoadConfigError::NoRequestsInFlight);
        }
        if config.timeout.is_zero() {
            return Err(LoadConfigError::ZeroTimeout);
        }
        let requests = config
            .requests
            .iter()
            .map(|template| PreparedRequest::new(config.target, template))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            requests,
            period: period_of(config.rate)?,
            duration: config.duration,
            max_requests: config.max_requests,
            max_in_flight: config.max_in_flight,
            timeout: config.timeout,
        })
    }
}

/// The time between two scheduled requests; tokio's interval needs it to be at least a nanosecond.
fn period_of(rate: f64) -> Result<Duration, LoadConfigError> {
    let invalid = || LoadConfigError::InvalidRate { rate };
    if !(rate.is_finite() && rate > 0.0) {
        return Err(invalid());
    }
    Duration::try_from_secs_f64(rate.recip())
        .ok()
        .filter(|period| !period.is_zero())
        .ok_or_else(invalid)
}

/// A request template with its URI and headers already parsed.
#[derive(Debug, Clone)]
pub(crate) struct PreparedRequest {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

impl PreparedRequest {
    fn new(target: SocketAddr, template: &RequestTemplate) -> Result<Self, LoadConfigError> {
        let invalid_path = |source| LoadConfigError::InvalidPath {
            path: template.path.clone(),
            source,
        };
        if !template.path.starts_with('/') {
            return Err(invalid_path(None));
        }
        let uri: Uri = format!("http://{target}{}", template.path)
            .parse()
            .map_err(|error| invalid_path(Some(error)))?;
        let mut headers = HeaderMap::with_capacity(template.headers.len());
        for (name, value) in &template.headers {
            let header_name =
                HeaderName::try_from(name.as_str()).map_err(|source| LoadConfigError::InvalidHeaderName {
                    name: name.clone(),
                    source,
                })?;
            let header_value =
                HeaderValue::try_from(value.as_str()).map_err(|source| LoadConfigError::InvalidHeaderValue {
                    name: name.clone(),
                    source,
                })?;
            headers.append(header_name, header_value);
        }
        Ok(Self {
            method: template.method.clone(),
            uri,
            headers,
            body: template.body.clone(),
        })
    }

    /// A fresh request; cloning `Bytes` shares the body rather than copying it.
    pub(crate) fn to_request(&self) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(self.body.clone()));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = self.headers.clone();
        request
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_with(requests: Vec<RequestTemplate>, rate: f64) -> LoadConfig {
        LoadConfig {
            target: "127.0.0.1:8080".parse().unwrap(),
            requests,
            rate,
            duration: Duration::from_secs(1),
            max_requests: 10,
            max_in_flight: 1,
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn a_valid_config_is_prepared_once() {
        let mut template = RequestTemplate::get("/hello?x=1");
        template.headers.push(("x-canary".into(), "always".into()));
        let plan = LoadPlan::new(&config_with(vec![template], 200.0)).unwrap();
        assert_eq!(plan.period, Duration::from_millis(5));
        let request = plan.requests[0].to_request();
        assert_eq!(request.uri(), "http://127.0.0.1:8080/hello?x=1");
        assert_eq!(request.headers()["x-canary"], "always");
    }

    #[test]
    fn a_post_template_carries_its_method_body_and_headers() {
        let template =
            RequestTemplate::post("/api/items/7", r#"{"quantity":1}"#).with_header("content-type", "application/json");
        let plan = LoadPlan::new(&config_with(vec![template], 10.0)).unwrap();
        let request = plan.requests[0].to_request();
        assert_eq!(request.method(), Method::POST);
        assert_eq!(request.uri(), "http://127.0.0.1:8080/api/items/7");
        assert_eq!(request.headers()["content-type"], "application/json");
        assert_eq!(plan.requests[0].body, Bytes::from_static(br#"{"quantity":1}"#));
    }

    #[test]
    fn rates_that_cannot_be_paced_are_rejected() {
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e12] {
            let error = LoadPlan::new(&config_with(vec![RequestTemplate::get("/")], rate)).unwrap_err();
            assert!(matches!(error, LoadConfigError::InvalidRate { .. }), "{rate}: {error}");
        }
    }

    #[test]
    fn bad_templates_are_rejected_with_the_offending_part() {
        let relative = LoadPlan::new(&config_with(vec![RequestTemplate::get("hello")], 1.0)).unwrap_err();
        assert!(relative.to_string().contains("\"hello\""), "{relative}");

        let mut bad_header = RequestTemplate::get("/");
        bad_header.headers.push(("bad header".into(), "x".into()));
        let error = LoadPlan::new(&config_with(vec![bad_header], 1.0)).unwrap_err();
        assert!(error.to_string().contains("\"bad header\""), "{error}");

        let none = LoadPlan::new(&config_with(Vec::new(), 1.0)).unwrap_err();
        assert!(matches!(none, LoadConfigError::NoRequests));
    }
}

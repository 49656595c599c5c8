//! The route table the control plane pushes, and the checks a table must pass before it is applied.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::balancer;

/// The whole routing state pushed by the control plane. Versioned: a proxy never goes back to an older version.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RouteTable {
    /// Monotonic version chosen by the control plane.
    pub version: u64,
    /// Every service the proxy serves; a service missing here has its listener closed.
    pub services: Vec<ServiceRoute>,
}

/// One service: the address its clients connect to and the revisions that share its traffic.
///
/// Every field after `backends` is optional (absent from the JSON when it has its default), so tables written
/// before those fields existed stay valid and unchanged.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRoute {
    /// Service name, used as the `service` label of every metric.
    pub name: String,
    /// Address the proxy listens on for this service (a fixed port; port 0 is rejected).
    pub listen: SocketAddr,
    /// Revisions of the service and their weights.
    pub backends: Vec<Backend>,
    /// Rules evaluated in order before the weighted split; the first that matches picks the revision.
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<MatchRule>,
    /// Keeps a user on the revision the split gave them while weights change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity: Option<SessionAffinity>,
    /// Copies a share of requests to a revision and drops its answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<Mirror>,
    /// How long connecting to an instance and waiting for its answer may take.
    #[serde(default, skip_serializing_if = "Timeouts::is_default")]
    pub timeouts: Timeouts,
    /// The protocol spoken to the instances (`http2` for gRPC backends).
    #[serde(default, skip_serializing_if = "UpstreamProtocol::is_default")]
    pub upstream_protocol: UpstreamProtocol,
    /// Serve clients over TLS with this certificate instead of plain text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
    /// HTTP/1.1 requests that may be in flight on one instance connection (1..=64). 1, the default, sends a
    /// request only on a connection with nothing in flight. Above 1, idempotent requests without a body that
    /// arrive together are pipelined: written to one connection with one system call, which cuts the proxy's
    /// CPU per request, at the price of head-of-line blocking (an answer waits for those before it on its
    /// connection, up to this many). For services whose answers are uniformly quick.
    #[serde(
        default = "ServiceRoute::default_pipeline_depth",
        skip_serializing_if = "ServiceRoute::is_default_pipeline_depth"
    )]
    pub pipeline_depth: u32,
}

impl ServiceRoute {
    /// A plain weighted route: no rules, affinity, mirroring or TLS, default timeouts, HTTP/1.1 upstream.
    pub fn new(name: String, listen: SocketAddr, backends: Vec<Backend>) -> Self {
        Self {
            name,
            listen,
            backends,
            matches: Vec::new(),
            session_affinity: None,
            mirror: None,
            timeouts: Timeouts::default(),
            upstream_protocol: UpstreamProtocol::default(),
            tls: None,
            pipeline_depth: Self::default_pipeline_depth(),
        }
    }
}

/// A `match` rule: when every condition holds, the request goes to `revision`, whatever the weights.
///
/// A rule with no condition matches every request.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MatchRule {
    /// The `route` label of the requests this rule sends; `match-<index>` (from 0) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Request headers (names are case-insensitive) and the value each must have.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, StringMatch>,
    /// Cookies (from every `Cookie` header) and the value each must have.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cookies: BTreeMap<String, StringMatch>,
    /// The revision that receives matching requests; it needs instances, not weight.
    pub revision: String,
}

/// How a header or cookie value is compared.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum StringMatch {
    /// The whole value equals this string.
    Exact(String),
    /// The value matches this regular expression (Rust `regex` syntax, unanchored: use `^…$` to anchor).
    Regex(String),
}

/// Session affinity: how a user is recognised. Each user hashes to a fixed point, and revisions own
/// contiguous ranges of points sized by their weights, the last listed revision (the candidate) from the
/// bottom: as its weight grows its range only grows, so its users stay, and at weight 0 they all go back.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum SessionAffinity {
    /// A cookie of this name carries the user's key; the proxy sets one with a random key when it is absent.
    CookieName(String),
    /// This request header carries the user's key; requests without it are split by weight alone.
    Header(String),
}

/// Mirroring: a share of the service's requests is also sent to `revision`, whose answers are dropped.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Mirror {
    /// The revision that receives the copies (it needs instances, not weight).
    pub revision: String,
    /// Percent (0..=100) of eligible requests that are copied.
    pub percent: u32,
    /// Methods that may be copied; the idempotent `GET`, `HEAD` and `OPTIONS` by default.
    #[serde(default = "Mirror::default_methods")]
    pub methods: Vec<String>,
    /// Requests whose body is larger (or of unknown length) are not copied.
    #[serde(default = "Mirror::default_max_body_bytes")]
    pub max_body_bytes: u64,
    /// Copies in flight at once; a copy beyond this is dropped and counted.
    #[serde(default = "Mirror::default_max_in_flight")]
    pub max_in_flight: u32,
}

impl Mirror {
    fn default_methods() -> Vec<String> {
        ["GET", "HEAD", "OPTIONS"].map(String::from).to_vec()
    }

    fn default_max_body_bytes() -> u64 {
        64 * 1024
    }

    fn default_max_in_flight() -> u32 {
        256
    }
}

/// Upstream timeouts, in milliseconds.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Timeouts {
    /// Connecting to an instance; past it the client gets a `502` saying "connect timeout".
    #[serde(default = "Timeouts::default_connect_ms")]
    pub connect_ms: u64,
    /// From sending the request to receiving the response headers; past it the client gets a `504`
    /// saying "request timeout". Streaming bodies and upgraded connections are not limited.
    #[serde(default = "Timeouts::default_request_ms")]
    pub request_ms: u64,
}

impl Timeouts {
    fn default_connect_ms() -> u64 {
        5_000
    }

    fn default_request_ms() -> u64 {
        60_000
    }

    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect_ms: Self::default_connect_ms(),
            request_ms: Self::default_request_ms(),
        }
    }
}

/// The protocol spoken to a service's instances.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "camelCase")]
pub enum UpstreamProtocol {
    /// HTTP/1.1 over pooled keep-alive connections.
    #[default]
    Http1,
    /// HTTP/2 with prior knowledge (h2c), one multiplexed connection per instance; needed for gRPC.
    Http2,
}

impl UpstreamProtocol {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// A certificate chain and its private key, PEM files read when the table is applied.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tls {
    /// PEM file with the certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// One revision's share of a service's traffic. Weights are relative (the daemon uses percent, 0..=100); weight 0 = no new requests.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Backend {
    /// Revision name, used as the `revision` label of every metric.
    pub revision: String,
    /// Relative share of new requests.
    pub weight: u32,
    /// Instances of the revision, used round-robin.
    pub instances: Vec<SocketAddr>,
}

/// Why a route table cannot be applied; nothing of it takes effect.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TableError {
    /// Two services share a name, which would merge their metrics.
    #[error("service {service:?} is listed twice")]
    DuplicateService {
        /// The repeated name.
        service: String,
    },
    /// Two services want the same listen address.
    #[error("services {first:?} and {second:?} both listen on {listen}")]
    DuplicateListen {
        /// The contested address.
        listen: SocketAddr,
        /// The service listed first.
        first: String,
        /// The service listed second.
        second: String,
    },
    /// Port 0 would bind a random port that no client knows.
    #[error("service {service:?} listens on {listen}: port 0 is not allowed, clients need a fixed port")]
    PortZero {
        /// The service.
        service: String,
        /// Its listen address.
        listen: SocketAddr,
    },
    /// A revision appears twice in one service, which would merge their metrics.
    #[error("service {service:?} lists revision {revision:?} twice")]
    DuplicateRevision {
        /// The service.
        service: String,
        /// The repeated revision.
        revision: String,
    },
    /// A revision that should receive traffic has nowhere to send it.
    #[error("service {service:?}: revision {revision:?} has weight {weight} but no instances")]
    NoInstances {
        /// The service.
        service: String,
        /// The revision.
        revision: String,
        /// Its non-zero weight.
        weight: u32,
    },
    /// The weighted schedule is precomputed, so its length is bounded.
    #[error(
        "service {service:?}: weights reduced by their common divisor sum to {cycle}, more than the supported {max}"
    )]
    WeightsTooFine {
        /// The service.
        service: String,
        /// Sum of the reduced weights.
        cycle: u64,
        /// The largest supported sum.
        max: u64,
    },
    /// A rule or the mirror names a revision the service does not list with instances.
    #[error("service {service:?}: {what} names revision {revision:?}, which the service does not list with instances")]
    UnknownRevision {
        /// The service.
        service: String,
        /// Which field names it (`match[0]`, `mirror`).
        what: String,
        /// The revision named.
        revision: String,
    },
    /// A header name, cookie name or method is not valid HTTP.
    #[error("service {service:?}: {what}: {value:?} is not a valid {kind}")]
    InvalidName {
        /// The service.
        service: String,
        /// Where it is (`match[0].headers`, `sessionAffinity.header`).
        what: String,
        /// The offending value.
        value: String,
        /// What was expected (`header name`, `method`, `cookie name`).
        kind: &'static str,
    },
    /// A `regex` condition does not compile.
    #[error("service {service:?}: {what}: invalid regex: {message}")]
    InvalidRegex {
        /// The service.
        service: String,
        /// Where it is (`match[0].headers.x-user`).
        what: String,
        /// The compiler's complaint.
        message: String,
    },
    /// A value is outside its range.
    #[error("service {service:?}: {what} must be {expected}, got {value}")]
    OutOfRange {
        /// The service.
        service: String,
        /// The field (`mirror.percent`, `timeouts.connectMs`).
        what: &'static str,
        /// The allowed range.
        expected: &'static str,
        /// The value given.
        value: u64,
    },
    /// Two `match` rules would share a `route` label, merging their metrics.
    #[error("service {service:?}: route name {route:?} is used twice")]
    DuplicateRoute {
        /// The service.
        service: String,
        /// The repeated name.
        route: String,
    },
}

/// The `route` label of requests sent by the weighted split (with or without session affinity).
pub const DEFAULT_ROUTE: &str = "default";

impl MatchRule {
    /// The rule's `route` label: its name, or `match-<index>`.
    pub fn route_name(&self, index: usize) -> String {
        self.name.clone().unwrap_or_else(|| format!("match-{index}"))
    }
}

impl RouteTable {
    /// Checks everything that can be checked without touching the network.
    pub fn validate(&self) -> Result<(), TableError> {
        let mut names = HashSet::new();
        let mut listeners: HashMap<SocketAddr, &str> = HashMap::new();
        for service in &self.services {
            if !names.insert(service.name.as_str()) {
                return Err(TableError::DuplicateService {
                    service: service.name.clone(),
                });
            }
            if service.listen.port() == 0 {
                return Err(TableError::PortZero {
                    service: service.name.clone(),
                    listen: service.listen,
                });
            }
            if let Some(first) = listeners.insert(service.listen, &service.name) {
                return Err(TableError::DuplicateListen {
                    listen: service.listen,
                    first: first.to_owned(),
                    second: service.name.clone(),
                });
            }
            service.validate()?;
        }
        Ok(())
    }
}

impl ServiceRoute {
    fn validate(&self) -> Result<(), TableError> {
        let mut revisions = HashSet::new();
        for backend in &self.backends {
            if !revisions.insert(backend.revision.as_str()) {
                return Err(TableError::DuplicateRevision {
                    service: self.name.clone(),
                    revision: backend.revision.clone(),
                });
            }
            if backend.weight > 0 && backend.instances.is_empty() {
                return Err(TableError::NoInstances {
                    service: self.name.clone(),
                    revision: backend.revision.clone(),
                    weight: backend.weight,
                });
            }
        }
        self.validate_options()?;
        let weights: Vec<u32> = self.backends.iter().map(|b| b.weight).collect();
        let cycle = balancer::cycle_length(&weights);
        if cycle > balancer::MAX_CYCLE {
            return Err(TableError::WeightsTooFine {
                service: self.name.clone(),
                cycle,
                max: balancer::MAX_CYCLE,
            });
        }
        Ok(())
    }
}

impl ServiceRoute {
    fn default_pipeline_depth() -> u32 {
        1
    }

    fn is_default_pipeline_depth(depth: &u32) -> bool {
        *depth == Self::default_pipeline_depth()
    }

    fn validate_options(&self) -> Result<(), TableError> {
        let mut routes = HashSet::from([DEFAULT_ROUTE.to_owned()]);
        for (index, rule) in self.matches.iter().enumerate() {
            let what = format!("match[{index}]");
            self.require_instances(&what, &rule.revision)?;
            let route = rule.route_name(index);
            if !routes.insert(route.clone()) {
                return Err(TableError::DuplicateRoute {
                    service: self.name.clone(),
                    route,
                });
            }
            for (name, condition) in &rule.headers {
                self.check_name(&format!("{what}.headers"), name, "header name", is_header_name)?;
                self.check_condition(&format!("{what}.headers.{name}"), condition)?;
            }
            for (name, condition) in &rule.cookies {
                self.check_name(&format!("{what}.cookies"), name, "cookie name", is_cookie_name)?;
                self.check_condition(&format!("{what}.cookies.{name}"), condition)?;
            }
        }
        match &self.session_affinity {
            Some(SessionAffinity::CookieName(name)) => {
                self.check_name("sessionAffinity.cookieName", name, "cookie name", is_cookie_name)?;
            }
            Some(SessionAffinity::Header(name)) => {
                self.check_name("sessionAffinity.header", name, "header name", is_header_name)?;
            }
            None => {}
        }
        if let Some(mirror) = &self.mirror {
            self.require_instances("mirror", &mirror.revision)?;
            self.check_range("mirror.percent", "0..=100", u64::from(mirror.percent), 0..=100)?;
            self.check_range(
                "mirror.maxInFlight",
                "1..=65536",
                u64::from(mirror.max_in_flight),
                1..=65_536,
            )?;
            for method in &mirror.methods {
                self.check_name("mirror.methods", method, "method", |m| {
                    http::Method::from_bytes(m.as_bytes()).is_ok()
                })?;
            }
        }
        let day_ms = 86_400_000;
        self.check_range(
            "timeouts.connectMs",
            "1..=86400000",
            self.timeouts.connect_ms,
            1..=day_ms,
        )?;
        self.check_range(
            "timeouts.requestMs",
            "1..=86400000",
            self.timeouts.request_ms,
            1..=day_ms,
        )?;
        self.check_range("pipelineDepth", "1..=64", u64::from(self.pipeline_depth), 1..=64)?;
        Ok(())
    }

    fn require_instances(&self, what: &str, revision: &str) -> Result<(), TableError> {
        if self
            .backends
            .iter()
            .any(|b| b.revision == revision && !b.instances.is_empty())
        {
            return Ok(());
        }
        Err(TableError::UnknownRevision {
            service: self.name.clone(),
            what: what.to_owned(),
            revision: revision.to_owned(),
        })
    }

    fn check_name(
        &self,
        what: &str,
        value: &str,
        kind: &'static str,
        valid: impl Fn(&str) -> bool,
    ) -> Result<(), TableError> {
        if valid(value) {
            return Ok(());
        }
        Err(TableError::InvalidName {
            service: self.name.clone(),
            what: what.to_owned(),
            value: value.to_owned(),
            kind,
        })
    }

    fn check_condition(&self, what: &str, condition: &StringMatch) -> Result<(), TableError> {
        match condition {
            StringMatch::Exact(_) => Ok(()),
            StringMatch::Regex(pattern) => match regex::Regex::new(pattern) {
                Ok(_) => Ok(()),
                Err(error) => Err(TableError::InvalidRegex {
                    service: self.name.clone(),
                    what: what.to_owned(),
                    message: error.to_string(),
                }),
            },
        }
    }

    fn check_range(
        &self,
        what: &'static str,
        expected: &'static str,
        value: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<(), TableError> {
        if range.contains(&value) {
            return Ok(());
        }
        Err(TableError::OutOfRange {
            service: self.name.clone(),
            what,
            expected,
            value,
        })
    }
}

fn is_header_name(name: &str) -> bool {
    http::HeaderName::from_bytes(name.as_bytes()).is_ok()
}

/// RFC 6265 `cookie-name` is an RFC 9110 token, like a method.
fn is_cookie_name(name: &str) -> bool {
    !name.is_empty() && http::Method::from_bytes(name.as_bytes()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn service(name: &str, port: u16, backends: Vec<Backend>) -> ServiceRoute {
        ServiceRoute::new(name.to_owned(), addr(port), backends)
    }

    fn backend(revision: &str, weight: u32, instances: &[u16]) -> Backend {
        Backend {
            revision: revision.to_owned(),
            weight,
            instances: instances.iter().map(|p| addr(*p)).collect(),
        }
    }

    fn table(services: Vec<ServiceRoute>) -> RouteTable {
        RouteTable { version: 1, services }
    }

    #[test]
    fn a_canary_table_is_valid() {
        let t = table(vec![service(
            "web",
            8080,
            vec![backend("v1", 90, &[9001, 9002]), backend("v2", 10, &[9003])],
        )]);
        assert_eq!(t.validate(), Ok(()));
    }

    #[test]
    fn a_zero_weight_revision_may_have_no_instances() {
        let t = table(vec![service(
            "web",
            8080,
            vec![backend("v1", 100, &[9001]), backend("v2", 0, &[])],
        )]);
        assert_eq!(t.validate(), Ok(()));
    }

    #[test]
    fn rejects_tables_that_would_confuse_routing_or_metrics() {
        let cases = [
            (
                table(vec![service("web", 8080, vec![]), service("web", 8081, vec![])]),
                "service \"web\" is listed twice",
            ),
            (
                table(vec![service("a", 8080, vec![]), service("b", 8080, vec![])]),
                "services \"a\" and \"b\" both listen on 127.0.0.1:8080",
            ),
            (
                table(vec![service("a", 0, vec![])]),
                "service \"a\" listens on 127.0.0.1:0: port 0 is not allowed, clients need a fixed port",
            ),
            (
                table(vec![service(
                    "a",
                    8080,
                    vec![backend("v1", 1, &[9001]), backend("v1", 1, &[9002])],
                )]),
                "service \"a\" lists revision \"v1\" twice",
            ),
            (
                table(vec![service("a", 8080, vec![backend("v1", 5, &[])])]),
                "service \"a\": revision \"v1\" has weight 5 but no instances",
            ),
            (
                table(vec![service(
                    "a",
                    8080,
                    vec![backend("v1", 10_000, &[9001]), backend("v2", 1, &[9002])],
                )]),
                "service \"a\": weights reduced by their common divisor sum to 10001, more than the supported 10000",
            ),
        ];
        for (t, message) in cases {
            let error = t.validate().expect_err(message);
            assert_eq!(error.to_string(), message);
        }
    }

    #[test]
    fn a_pipeline_depth_outside_1_to_64_is_rejected_and_1_is_left_out_of_json() {
        let mut web = service("web", 8080, vec![backend("v1", 100, &[9001])]);
        for depth in [0, 65] {
            web.pipeline_depth = depth;
            let error = table(vec![web.clone()]).validate().expect_err("out of range");
            assert!(error.to_string().contains("pipelineDepth"), "{error}");
        }
        web.pipeline_depth = 8;
        let json = serde_json::to_value(table(vec![web.clone()])).expect("serializes");
        assert_eq!(json["services"][0]["pipelineDepth"], 8);
        web.pipeline_depth = 1;
        let json = serde_json::to_value(table(vec![web])).expect("serializes");
        assert!(json["services"][0].get("pipelineDepth").is_none());
    }

    #[test]
    fn json_uses_camel_case_field_names() {
        let t = table(vec![service("web", 8080, vec![backend("v1", 100, &[9001])])]);
        let json = serde_json::to_value(&t).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({
                "version": 1,
                "services": [{
                    "name": "web",
                    "listen": "127.0.0.1:8080",
                    "backends": [{"revision": "v1", "weight": 100, "instances": ["127.0.0.1:9001"]}]
                }]
            })
        );
    }
}

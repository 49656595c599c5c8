//! The stages a candidate walks before users see it: checks in isolation, then shadow traffic.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::syntax::{HTTP_METHOD_PATTERN, HTTP_PATH_PATTERN};

/// Optional stages, run in this order after the candidate is ready and before the strategy releases it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct Stages {
    /// Checks against the candidate alone, before it sees any user request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub isolation: Option<Checks>,
    /// A share of live traffic mirrored to the candidate, its answers compared with the stable revision's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow: Option<Shadow>,
}

/// Checks run straight at an address: smoke requests, then an open-loop load test held to an SLO. Used by the
/// isolation stage (against the candidate's instances) and blue/green's pre-promotion checks (its preview).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct Checks {
    /// Requests that must each get the expected answer.
    pub smoke: Vec<SmokeCheck>,
    /// A load test that must meet its SLO.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_test: Option<LoadTest>,
}

impl Checks {
    /// Whether there is anything to run.
    pub fn is_empty(&self) -> bool {
        self.smoke.is_empty() && self.load_test.is_none()
    }
}

/// One request and the answer it must get.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SmokeCheck {
    /// HTTP method; GET when absent.
    #[serde(default = "default_method")]
    #[schemars(regex(pattern = HTTP_METHOD_PATTERN))]
    pub method: String,
    /// Path and query, starting with `/`.
    #[schemars(regex(pattern = HTTP_PATH_PATTERN))]
    pub path: String,
    /// Request headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Request body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The status the answer must have; 200 when absent.
    #[serde(default = "default_status")]
    #[schemars(range(min = 100, max = 599))]
    pub expect_status: u16,
    /// Text the answer's body must contain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_body: Option<String>,
}

impl SmokeCheck {
    /// The request this check sends.
    pub fn request(&self) -> HttpRequest {
        HttpRequest {
            method: self.method.clone(),
            path: self.path.clone(),
            headers: self.headers.clone(),
            body: self.body.clone(),
        }
    }
}

/// An HTTP request to send to a revision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRequest {
    /// HTTP method; GET when absent.
    #[serde(default = "default_method")]
    #[schemars(regex(pattern = HTTP_METHOD_PATTERN))]
    pub method: String,
    /// Path and query, starting with `/`.
    #[schemars(regex(pattern = HTTP_PATH_PATTERN))]
    pub path: String,
    /// Request headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Request body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// An open-loop load test: requests start at `rate` per second whatever the answers' latency, cycling through
/// `requests`, for `duration`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadTest {
    /// The requests to send, in turn.
    #[schemars(length(min = 1))]
    pub requests: Vec<HttpRequest>,
    /// Requests started per second.
    #[schemars(range(min = 1, max = 10000))]
    pub rate: u32,
    /// How long the test runs.
    pub duration: Duration,
    /// What the candidate must achieve.
    #[serde(default)]
    pub slo: Slo,
}

/// The service level a load test holds the candidate to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct Slo {
    /// The percentage of requests that must get an answer below 500 (transport errors count as failures).
    #[schemars(range(min = 0.0, max = 100.0))]
    pub success_rate: f64,
    /// The 99th percentile latency the answers may not exceed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99: Option<Duration>,
}

impl Default for Slo {
    fn default() -> Self {
        Slo {
            success_rate: 99.0,
            p99: None,
        }
    }
}

/// The shadow stage: for `duration`, `share` percent of live requests (idempotent methods unless `methods` says
/// otherwise) are copied to the candidate and to a second stable instance; the answers are compared and the
/// noise between the two stable answers is cancelled out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Shadow {
    /// Percent of live requests to mirror.
    #[schemars(range(min = 1, max = 100))]
    pub share: u8,
    /// How long the stage lasts.
    pub duration: Duration,
    /// The largest percentage of compared requests that may have a real difference.
    #[serde(default = "default_max_diff_rate")]
    #[schemars(range(min = 0.0, max = 100.0))]
    pub max_diff_rate: f64,
    /// Fields not compared: JSON paths into the body (`$.timestamp`, `$.items[*].id`) or `headers.<name>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore: Vec<String>,
    /// Response headers compared besides the status and `Content-Type`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<String>,
    /// Methods mirrored; GET, HEAD and OPTIONS when absent. Mirroring other methods repeats their side effects.
    #[serde(default = "default_shadow_methods")]
    #[schemars(length(min = 1), inner(regex(pattern = HTTP_METHOD_PATTERN)))]
    pub methods: Vec<String>,
    /// Requests and answers with bodies larger than this are not mirrored or compared byte-wise.
    #[serde(default = "default_max_body_bytes")]
    #[schemars(range(min = 0, max = 67_108_864))]
    pub max_body_bytes: u64,
    /// How much more often a field must differ between candidate and stable than between two stables.
    #[serde(default)]
    pub noise: NoiseMargin,
}

/// A field differs for real only when its candidate-vs-stable difference rate exceeds its stable-vs-stable rate
/// by both margins.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct NoiseMargin {
    /// Relative margin in percent of the stable-vs-stable rate.
    #[schemars(range(min = 0.0, max = 1000.0))]
    pub relative: f64,
    /// Absolute margin in percentage points.
    #[schemars(range(min = 0.0, max = 100.0))]
    pub absolute: f64,
}

impl Default for NoiseMargin {
    fn default() -> Self {
        NoiseMargin {
            relative: 20.0,
            absolute: 0.03,
        }
    }
}

fn default_method() -> String {
    "GET".to_owned()
}

fn default_status() -> u16 {
    200
}

fn default_max_diff_rate() -> f64 {
    1.0
}

fn default_shadow_methods() -> Vec<String> {
    ["GET", "HEAD", "OPTIONS"].map(str::to_owned).to_vec()
}

fn default_max_body_bytes() -> u64 {
    1 << 20
}

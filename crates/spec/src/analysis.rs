//! How a new revision is judged while it takes traffic.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::syntax::HTTP_URL_PATTERN;

/// How a new revision is judged. Every field has a default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct Analysis {
    /// Which judge decides: `sequential` (the default) compares the candidate with the stable revision as
    /// evidence accrues; `threshold` holds the candidate to fixed limits (Flagger); `mannWhitney` compares
    /// interval series once, at the end of the plan (Kayenta).
    pub judge: Judge,
    /// How often the evidence is looked at, independent of the step interval. The threshold judge looks once
    /// per step interval, as Flagger does.
    pub evaluation_interval: Duration,
    /// The chance of rolling back a good candidate that the sequential judge allows, however often it looks.
    #[schemars(range(min = 0.0001, max = 0.5))]
    pub alpha: f64,
    /// How much worse (as a ratio: 0.05 = 5%) the candidate's error and slow-request rates may be and still
    /// count as no regression.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub tolerance: f64,
    /// What an end of plan without enough evidence either way does.
    pub on_inconclusive: OnInconclusive,
    /// Settings of the Mann–Whitney judge.
    pub mann_whitney: MannWhitneySettings,
    /// Where the revisions' traffic is measured.
    pub provider: MetricProvider,
    /// Metrics of the user's own, read from Prometheus or a web endpoint and held to a range at every
    /// evaluation; out-of-range values count as failed checks (Flagger's semantics, rollback at `threshold`).
    pub custom_metrics: Vec<CustomMetric>,
    /// Failed checks before the failure action is taken.
    #[schemars(range(min = 1, max = 1000))]
    pub threshold: u32,
    /// What to do when the threshold is reached.
    pub on_failure: OnFailure,
    /// How long a held rollout waits for an operator before it is rolled back.
    pub hold_timeout: Duration,
    /// The metrics checked at every interval.
    pub metrics: Vec<MetricCheck>,
}

impl Analysis {
    /// Flagger's two built-in checks with Flagger's usual limits: success rate at least 99%, p99 at most 500 ms.
    pub fn default_checks() -> Vec<MetricCheck> {
        vec![
            MetricCheck {
                name: MetricName::RequestSuccessRate,
                threshold_range: ThresholdRange {
                    min: Some(99.0),
                    max: None,
                },
            },
            MetricCheck {
                name: MetricName::RequestDuration,
                threshold_range: ThresholdRange {
                    min: None,
                    max: Some(500.0),
                },
            },
        ]
    }
}

impl Default for Analysis {
    fn default() -> Self {
        Self {
            judge: Judge::Sequential,
            evaluation_interval: Duration(std::time::Duration::from_secs(1)),
            alpha: 0.05,
            tolerance: DEFAULT_TOLERANCE,
            on_inconclusive: OnInconclusive::Hold,
            mann_whitney: MannWhitneySettings::default(),
            provider: MetricProvider::Builtin,
            custom_metrics: Vec::new(),
            threshold: 5,
            on_failure: OnFailure::Rollback,
            hold_timeout: Duration(std::time::Duration::from_secs(3600)),
            metrics: Self::default_checks(),
        }
    }
}

/// The default `tolerance`.
pub const DEFAULT_TOLERANCE: f64 = 0.0;

/// The judges that can decide on a revision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Judge {
    /// An anytime-valid test of the candidate's error and slow-request counts against the stable revision's,
    /// with the metrics' ranges as guardrails.
    #[default]
    Sequential,
    /// A check fails when a metric leaves its threshold range (Flagger).
    Threshold,
    /// A fixed-horizon Mann–Whitney comparison of interval series, scored (Kayenta).
    MannWhitney,
}

/// What an inconclusive end of plan does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum OnInconclusive {
    /// Wait for an operator (until `holdTimeout`, then roll back).
    #[default]
    Hold,
    /// Promote anyway.
    Promote,
    /// Roll back.
    Rollback,
}

/// Where the revisions' request counts and latency histograms come from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum MetricProvider {
    /// The built-in proxy's own counters, read from its admin listener every half second.
    #[default]
    Builtin,
    /// A Prometheus server that scrapes the proxy's `/metrics` (PromQL over its HTTP API).
    Prometheus {
        /// Its base URL, e.g. `http://127.0.0.1:9090`.
        #[schemars(regex(pattern = HTTP_URL_PATTERN))]
        address: String,
    },
}

/// A metric of the user's own: a query or an endpoint, and the range its value must stay in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomMetric {
    /// A name for events and status, e.g. `checkout-p95`.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// A PromQL query against `analysis.provider` (which must be Prometheus). `{{service}}`, `{{revision}}`
    /// (the candidate's name) and `{{interval}}` (the evaluation interval) are substituted, escaped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// A web endpoint returning JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<WebMetric>,
    /// The range the value must stay in.
    pub threshold_range: ThresholdRange,
}

/// A number read from a JSON endpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebMetric {
    /// The URL, `http://` or `https://`.
    #[schemars(regex(pattern = HTTP_URL_PATTERN))]
    pub url: String,
    /// Where the number is in the answer, e.g. `$.data.value`.
    pub json_path: String,
    /// A JSON body to POST instead of a GET.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
}

/// Settings of the Mann–Whitney judge, Kayenta's defaults.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct MannWhitneySettings {
    /// Confidence of each metric's comparison, in percent.
    #[schemars(range(min = 50.0, max = 99.99))]
    pub confidence: f64,
    /// Relative change of a metric that still counts as a pass.
    #[schemars(range(min = 0.0, max = 10.0))]
    pub tolerance: f64,
    /// Score (percent of metrics passing) needed to promote.
    #[schemars(range(min = 0.0, max = 100.0))]
    pub pass_score: f64,
}

impl Default for MannWhitneySettings {
    fn default() -> Self {
        MannWhitneySettings {
            confidence: 98.0,
            tolerance: 0.25,
            pass_score: 95.0,
        }
    }
}

/// What happens when a revision fails its analysis.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum OnFailure {
    /// Send all traffic back to the stable revision.
    #[default]
    Rollback,
    /// Freeze the traffic split and wait for an operator (until `holdTimeout`).
    Hold,
}

/// One metric and the range it must stay in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricCheck {
    /// Which metric.
    pub name: MetricName,
    /// The range the metric must stay in.
    pub threshold_range: ThresholdRange,
}

/// The built-in metrics (Flagger's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum MetricName {
    /// Percentage of requests that did not fail (no 5xx, no connection error), 0 to 100.
    RequestSuccessRate,
    /// 99th percentile of request duration, in milliseconds.
    RequestDuration,
}

impl MetricName {
    /// The name as written in specs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RequestSuccessRate => "request-success-rate",
            Self::RequestDuration => "request-duration",
        }
    }
}

impl fmt::Display for MetricName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Bounds a metric must stay within; which bound applies depends on the metric.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ThresholdRange {
    /// Lowest acceptable value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Highest acceptable value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_display_as_written_in_specs() {
        for name in [MetricName::RequestSuccessRate, MetricName::RequestDuration] {
            assert_eq!(serde_json::to_value(name).unwrap(), serde_json::json!(name.to_string()));
        }
    }
}

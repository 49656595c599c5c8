//! How a new revision is judged while it takes traffic.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::Duration;

/// How a new revision is judged. Every field has a default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct Analysis {
    /// Which judge decides.
    pub judge: Judge,
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

impl Default for Analysis {
    fn default() -> Self {
        Self {
            judge: Judge::Threshold,
            threshold: 5,
            on_failure: OnFailure::Rollback,
            hold_timeout: Duration(std::time::Duration::from_secs(3600)),
            metrics: vec![
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
            ],
        }
    }
}

/// The judges that can decide on a revision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Judge {
    /// A check fails when a metric leaves its threshold range.
    #[default]
    Threshold,
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

//! The observations a judge looks at.

use serde::{Deserialize, Serialize};

use crate::stats::Histogram;

/// One revision's traffic over an analysis window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionWindow {
    /// Requests answered in the window.
    pub requests: u64,
    /// Requests answered with a 5xx status (or failed before a backend answered).
    pub errors: u64,
    /// The 99th percentile of latency over the window, in milliseconds; `None` when no request was answered.
    pub p99_ms: Option<f64>,
    /// The window's latencies in fixed buckets, when the source has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<Histogram>,
}

impl RevisionWindow {
    /// Percentage of requests that did not fail, or `None` without requests.
    pub fn success_rate(&self) -> Option<f64> {
        (self.requests > 0)
            .then(|| 100.0 * (self.requests - self.errors.min(self.requests)) as f64 / self.requests as f64)
    }
}

/// What both revisions did over one analysis window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Window {
    /// The candidate revision's traffic.
    pub candidate: RevisionWindow,
    /// The stable revision's traffic over the same window.
    pub stable: RevisionWindow,
    /// False when the observations do not cover the whole window (the daemon was down, or the metric source
    /// missed samples). An incomplete window is inconclusive, never a pass.
    pub complete: bool,
}

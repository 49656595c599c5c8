//! The observations a judge looks at.

use serde::{Deserialize, Serialize};

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
}

impl RevisionWindow {
    /// Percentage of requests that did not fail, or `None` without requests.
    pub fn success_rate(&self) -> Option<f64> {
        (self.requests > 0)
            .then(|| 100.0 * (self.requests - self.errors.min(self.requests)) as f64 / self.requests as f64)
    }

    /// Adds another window's counts; quantiles cannot be added, so the larger p99 is kept as a bound.
    pub fn absorb(&mut self, other: &RevisionWindow) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.p99_ms = match (self.p99_ms, other.p99_ms) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
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

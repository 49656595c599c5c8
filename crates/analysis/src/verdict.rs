//! What a judge concluded, with the evidence behind it.

use serde::{Deserialize, Serialize};

/// The result of one check of one metric.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckOutcome {
    /// The metric's name, e.g. `request-success-rate`.
    pub metric: String,
    /// The candidate's value, `None` when there was no data.
    pub candidate: Option<f64>,
    /// The stable revision's value over the same window, for comparison.
    pub stable: Option<f64>,
    /// Requests the candidate answered in the window.
    pub candidate_requests: u64,
    /// Requests the stable revision answered in the window.
    pub stable_requests: u64,
    /// The limit the value was held to, as a user reads it (`>= 99%`, `<= 500ms`, `e-value < 20`).
    pub limit: String,
    /// The evidence weighed against the limit: an e-value, a confidence bound, a shift estimate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<f64>,
    /// Whether the check passed.
    pub passed: bool,
    /// A one-line explanation in Flagger's wording when it failed.
    pub message: String,
}

/// A judge's conclusion about one window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "camelCase")]
pub enum Verdict {
    /// Every check held.
    Pass { checks: Vec<CheckOutcome> },
    /// At least one check failed.
    Fail { checks: Vec<CheckOutcome> },
    /// The evidence does not allow a decision either way.
    Inconclusive { reason: String },
}

impl Verdict {
    /// The checks behind the verdict (none for an inconclusive one).
    pub fn checks(&self) -> &[CheckOutcome] {
        match self {
            Verdict::Pass { checks } | Verdict::Fail { checks } => checks,
            Verdict::Inconclusive { .. } => &[],
        }
    }

    /// The messages of the failed checks, joined for an event.
    pub fn failure_summary(&self) -> String {
        self.checks()
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.message.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    }
}

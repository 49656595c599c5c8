//! What a run of checks found, kept by the daemon with the rollout and shown by `sluice status`.

use serde::{Deserialize, Serialize};

use crate::{LoadOutcome, SmokeOutcome};

/// Every smoke check's outcome and the load test's, with the verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckReport {
    /// Whether every smoke check and the load test passed; true when there was nothing to run.
    pub passed: bool,
    /// One outcome per smoke check, in the spec's order.
    pub smoke: Vec<SmokeOutcome>,
    /// The load test's outcome, when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<LoadOutcome>,
    /// A load test was configured but not run, because a smoke check failed: loading a revision that already
    /// answers wrongly would tell nothing more and take its whole duration.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub load_skipped: bool,
}

impl CheckReport {
    /// One line for an event: the verdict, then each failure with its reason, or what passed.
    pub fn summary(&self) -> String {
        if self.smoke.is_empty() && self.load.is_none() && !self.load_skipped {
            return self.details();
        }
        let verdict = if self.passed { "checks passed" } else { "checks failed" };
        format!("{verdict}: {}", self.details())
    }

    /// Each failure with its reason, or what passed, without the verdict (for callers that state it).
    pub fn details(&self) -> String {
        let mut parts = Vec::new();
        let failed: Vec<&str> = self
            .smoke
            .iter()
            .filter(|outcome| !outcome.passed)
            .map(|outcome| outcome.reason.as_str())
            .collect();
        if failed.is_empty() {
            match self.smoke.len() {
                0 => {}
                1 => parts.push("1 smoke check passed".to_owned()),
                n => parts.push(format!("{n} smoke checks passed")),
            }
        } else {
            parts.extend(failed.into_iter().map(str::to_owned));
        }
        if let Some(load) = &self.load {
            parts.push(load.summary());
        } else if self.load_skipped {
            parts.push("load test not run".to_owned());
        }
        if parts.is_empty() {
            return "no checks to run".to_owned();
        }
        parts.join("; ")
    }
}

//! The threshold judge: Flagger's built-in checks on the candidate alone.
//!
//! `request-success-rate` must be at least `thresholdRange.min` percent and `request-duration` (p99, ms) at most
//! `thresholdRange.max`. As in Flagger, a window in which the candidate answered no request fails the check
//! ("no values found"): a canary that gets no traffic proves nothing.

use sluice_spec::{MetricCheck, MetricName};

use crate::{CheckOutcome, RevisionWindow, Verdict, Window};

/// Judges the candidate's window against the configured thresholds.
pub fn judge_thresholds(checks: &[MetricCheck], window: &Window) -> Verdict {
    if !window.complete {
        return Verdict::Inconclusive {
            reason: "the analysis window is incomplete (metrics missing for part of it)".into(),
        };
    }
    let outcomes: Vec<CheckOutcome> = checks.iter().map(|check| judge_one(check, window)).collect();
    if outcomes.iter().all(|o| o.passed) {
        Verdict::Pass { checks: outcomes }
    } else {
        Verdict::Fail { checks: outcomes }
    }
}

fn judge_one(check: &MetricCheck, window: &Window) -> CheckOutcome {
    let name = check.name.as_str().to_string();
    let value_of = |w: &RevisionWindow| match check.name {
        MetricName::RequestSuccessRate => w.success_rate(),
        MetricName::RequestDuration => w.p99_ms,
    };
    let candidate = value_of(&window.candidate);
    let (min, max) = (check.threshold_range.min, check.threshold_range.max);
    let unit = match check.name {
        MetricName::RequestSuccessRate => "%",
        MetricName::RequestDuration => "ms",
    };
    let limit = match (min, max) {
        (Some(lo), Some(hi)) => format!("{lo}{unit}..={hi}{unit}"),
        (Some(lo), None) => format!(">= {lo}{unit}"),
        (None, Some(hi)) => format!("<= {hi}{unit}"),
        (None, None) => "any".into(),
    };
    let (passed, message) = match candidate {
        None => (
            false,
            format!("no values found for metric {name}: the candidate is not receiving traffic"),
        ),
        Some(value) => {
            // Flagger compares the p99 truncated to whole milliseconds.
            let compared = match check.name {
                MetricName::RequestDuration => value.trunc(),
                MetricName::RequestSuccessRate => value,
            };
            if let Some(lo) = min.filter(|lo| compared < *lo) {
                (false, format!("{name} {value:.2}{unit} < {lo}{unit}"))
            } else if let Some(hi) = max.filter(|hi| compared > *hi) {
                (false, format!("{name} {value:.2}{unit} > {hi}{unit}"))
            } else {
                (true, String::new())
            }
        }
    };
    CheckOutcome {
        metric: name,
        candidate,
        stable: value_of(&window.stable),
        candidate_requests: window.candidate.requests,
        stable_requests: window.stable.requests,
        limit,
        evidence: None,
        passed,
        message,
    }
}

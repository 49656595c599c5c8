//! The load test: the demo crate's open-loop generator pointed at the target, its figures held to the SLO.
//!
//! Open loop matters here more than anywhere: a closed-loop test against a slow candidate sends fewer requests
//! and measures from when each was finally sent, so the slower the candidate the better it looks. Request `i`
//! is scheduled at `t0 + i / rate` whatever came before, and its latency runs from that moment.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sluice_demo::load::{self, LoadConfig, LoadSnapshot};
use sluice_spec::{LoadTest, Slo};
use tokio::time::{Instant, timeout_at};

use crate::request::template;
use crate::smoke::seconds;
use crate::{CheckOptions, Target};

/// How the load test went: what was sent, what came back, and each SLO term it missed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadOutcome {
    /// Whether the SLO was met.
    pub passed: bool,
    /// Requests scheduled per second.
    pub rate: u32,
    /// How long requests were scheduled for.
    pub duration: sluice_spec::Duration,
    /// What the test held the target to.
    pub slo: Slo,
    /// Requests the schedule called for: sent plus those that could not start.
    pub scheduled: u64,
    /// Requests sent.
    pub sent: u64,
    /// Requests not sent because the in-flight limit was reached; they count as failures.
    pub not_started: u64,
    /// Requests still unanswered when the test ended at its duration plus the request timeout; failures.
    pub unfinished: u64,
    /// Requests answered with a status below 500.
    pub succeeded: u64,
    /// Requests answered with a 5xx.
    pub server_errors: u64,
    /// Requests that got no answer: refused, reset or timed out.
    pub transport_errors: u64,
    /// `succeeded` as a percentage of `scheduled`.
    pub success_rate: f64,
    /// Median latency of the answers in milliseconds, from each request's scheduled start; absent without
    /// answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_ms: Option<f64>,
    /// 90th percentile latency in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p90_ms: Option<f64>,
    /// 99th percentile latency in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
    /// Each SLO term missed, with its numbers (`p99 412 ms > 200 ms over 1000 requests`), or why the test could
    /// not run; empty when passed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
}

impl LoadOutcome {
    /// One line: the verdict and its numbers.
    pub fn summary(&self) -> String {
        if !self.passed {
            return format!("load test failed: {}", self.failures.join("; "));
        }
        let latency = match (self.p50_ms, self.p90_ms, self.p99_ms) {
            (Some(p50), Some(p90), Some(p99)) => {
                format!(", p50 {} ms, p90 {} ms, p99 {} ms", ms(p50), ms(p90), ms(p99))
            }
            _ => String::new(),
        };
        format!(
            "load test passed: {} requests at {}/s for {}, {}% succeeded{latency}",
            self.scheduled,
            self.rate,
            self.duration,
            figure(self.success_rate, &[]),
        )
    }

    /// A test that failed before sending anything.
    fn not_run(test: &LoadTest, why: String) -> Self {
        Self {
            passed: false,
            rate: test.rate,
            duration: test.duration,
            slo: test.slo.clone(),
            scheduled: 0,
            sent: 0,
            not_started: 0,
            unfinished: 0,
            succeeded: 0,
            server_errors: 0,
            transport_errors: 0,
            success_rate: 0.0,
            p50_ms: None,
            p90_ms: None,
            p99_ms: None,
            failures: vec![format!("cannot run: {why}")],
        }
    }
}

/// Runs `test` against `target` and judges it. Ends by `duration + request_timeout` whatever the target does.
pub(crate) async fn run(test: &LoadTest, target: &Target, options: &CheckOptions) -> LoadOutcome {
    let requests = match test.requests.iter().map(|request| template(request, target)).collect() {
        Ok(requests) => requests,
        Err(error) => return LoadOutcome::not_run(test, error.to_string()),
    };
    let duration = test.duration.0;
    let rate = f64::from(test.rate);
    let config = LoadConfig {
        target: target.addr(),
        requests,
        rate,
        duration,
        // The schedule's length: the run is bounded in count as well as in time.
        max_requests: (rate * duration.as_secs_f64()).ceil() as u64,
        max_in_flight: options.max_in_flight,
        timeout: options.request_timeout,
    };
    let started = Instant::now();
    let handle = match load::start(config) {
        Ok(handle) => handle,
        Err(error) => return LoadOutcome::not_run(test, error.to_string()),
    };
    let stats = handle.stats();
    // Every request ends within its timeout, so the generator finishes by then on its own; the hard end makes
    // that a promise. Dropping the unfinished `finish` stops the schedule, and what is still in flight counts as
    // unanswered.
    let hard_end = duration
        .checked_add(options.request_timeout)
        .and_then(|limit| started.checked_add(limit));
    let snapshot = match hard_end {
        Some(hard_end) => timeout_at(hard_end, handle.finish())
            .await
            .unwrap_or_else(|_| stats.snapshot()),
        None => handle.finish().await,
    };
    judge(test, &snapshot, options)
}

/// The outcome of a finished (or cut short) run.
fn judge(test: &LoadTest, snapshot: &LoadSnapshot, options: &CheckOptions) -> LoadOutcome {
    let total = &snapshot.total;
    let scheduled = snapshot.sent + snapshot.dropped;
    let succeeded = total.ok;
    let success_rate = if scheduled == 0 {
        0.0
    } else {
        100.0 * succeeded as f64 / scheduled as f64
    };
    let latency_ms = |quantile| snapshot.latency_quantile(quantile).map(as_ms);
    let mut outcome = LoadOutcome {
        passed: false,
        rate: test.rate,
        duration: test.duration,
        slo: test.slo.clone(),
        scheduled,
        sent: snapshot.sent,
        not_started: snapshot.dropped,
        unfinished: snapshot.in_flight,
        succeeded,
        server_errors: total.server_errors,
        transport_errors: total.transport_errors,
        success_rate,
        p50_ms: latency_ms(0.50),
        p90_ms: latency_ms(0.90),
        p99_ms: latency_ms(0.99),
        failures: Vec::new(),
    };
    let slo = &test.slo;
    if scheduled == 0 {
        outcome.failures.push("no requests were scheduled".to_owned());
    } else if (succeeded as f64) * 100.0 < slo.success_rate * scheduled as f64 {
        // Compared as products, not rounded percentages, so 989 of 1000 never passes a 99% SLO.
        outcome.failures.push(format!(
            "success rate {}% < {}% ({succeeded} of {scheduled} requests succeeded{})",
            figure(success_rate, &[slo.success_rate]),
            figure(slo.success_rate, &[success_rate]),
            failure_breakdown(&outcome, options),
        ));
    }
    if let Some(limit) = slo.p99 {
        let answered = total.requests - total.transport_errors;
        match snapshot.latency_quantile(0.99) {
            None => outcome
                .failures
                .push("p99 cannot be measured: no request was answered".to_owned()),
            Some(p99) if p99 > limit.0 => {
                let (p99, limit) = (as_ms(p99), as_ms(limit.0));
                outcome.failures.push(format!(
                    "p99 {} ms > {} ms over {answered} requests",
                    figure(p99, &[limit]),
                    figure(limit, &[p99]),
                ));
            }
            Some(_) => {}
        }
    }
    outcome.passed = outcome.failures.is_empty();
    outcome
}

/// `: 10 got 5xx, 3 could not start (512 already in flight)`: where the failures came from.
fn failure_breakdown(outcome: &LoadOutcome, options: &CheckOptions) -> String {
    let parts: Vec<String> = [
        (outcome.server_errors, "got 5xx".to_owned()),
        (
            outcome.transport_errors,
            format!(
                "got no answer (refused, reset or over {})",
                seconds(options.request_timeout)
            ),
        ),
        (
            outcome.not_started,
            format!("could not start ({} already in flight)", options.max_in_flight),
        ),
        (outcome.unfinished, "were unanswered when the test ended".to_owned()),
    ]
    .into_iter()
    .filter(|(count, _)| *count > 0)
    .map(|(count, what)| format!("{count} {what}"))
    .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(": {}", parts.join(", "))
    }
}

fn as_ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Milliseconds for people: whole above 10, one decimal below.
fn ms(value: f64) -> String {
    figure(value, &[])
}

/// `value` with as few decimals as make it readable and different from each of `others`, so a comparison never
/// reads `200 ms > 200 ms`.
fn figure(value: f64, others: &[f64]) -> String {
    let start = if value.abs() >= 10.0 { 0 } else { 1 };
    let mut shown = String::new();
    for decimals in start..=3 {
        shown = trim(format!("{value:.decimals$}"));
        if others.iter().all(|other| trim(format!("{other:.decimals$}")) != shown) {
            break;
        }
    }
    shown
}

fn trim(text: String) -> String {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_short_but_never_equal_to_what_they_are_compared_with() {
        let check = |value: f64, others: &[f64], expected: &str| assert_eq!(figure(value, others), expected);
        check(412.4, &[200.0], "412");
        check(200.4, &[200.0], "200.4");
        check(200.0, &[200.4], "200");
        check(98.95, &[99.0], "98.95");
        check(90.0, &[99.0], "90");
        check(1.24, &[], "1.2");
        check(0.0, &[], "0");
        check(100.0, &[], "100");
    }
}

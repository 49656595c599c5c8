//! The `sequential` judge, Sluice's default: an anytime-valid comparison of the candidate's bad events with the
//! stable revision's, plus the SLO guardrails judged by anytime-valid bounds.
//!
//! Streams of bad events: 5xx errors, and requests slower than each latency threshold. Every evaluation adds the
//! window's counts to a [`SequentialTest`] conditioned on the candidate's *observed* share of the window's
//! requests; the rollout fails the moment its evidence reaches 1/α, which by Ville's inequality happens to a good
//! candidate with probability at most α however often it is looked at. At the end of the plan, promotion needs
//! evidence the other way: for every stream, an anytime-valid upper bound on the candidate's rate within the
//! promotion margin of the stable's rate. Without it the verdict is inconclusive.

use serde::{Deserialize, Serialize};
use sluice_spec::{MetricCheck, MetricName};

use crate::stats::{
    Direction, EventCounts, Histogram, SequentialTest, SloVerdict, Tolerance, latency_slo, proportion_bounds,
    success_rate_slo,
};
use crate::{CheckOutcome, RevisionWindow, Verdict, Window};

/// Latency thresholds (ms) of the slow-request streams, where the window's histogram has such a bound.
pub const DEFAULT_LATENCY_THRESHOLDS_MS: [f64; 6] = [50.0, 100.0, 200.0, 300.0, 500.0, 1000.0];

/// How close to the stable revision a candidate must be shown to be before it is promoted: its rate of each kind
/// of bad event at most the stable's times (1 + `relative`), or plus `absolute`, whichever allows more.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromotionMargin {
    /// Relative margin (0.2 = 20% more bad events than stable).
    pub relative: f64,
    /// Absolute margin, as a fraction of requests (0.01 = one percentage point).
    pub absolute: f64,
}

impl Default for PromotionMargin {
    fn default() -> Self {
        // Diffy's noise margins have the same two-part shape; these values promote an identical candidate after
        // a few thousand requests and refuse a 1%→5% error regression at any traffic.
        PromotionMargin {
            relative: 0.3,
            absolute: 0.015,
        }
    }
}

/// The judge's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SequentialConfig {
    /// Allowed chance of rolling back a good candidate.
    pub alpha: f64,
    /// How much worse (ratio − 1) still counts as no regression.
    pub tolerance: f64,
    /// What promotion needs.
    pub promotion_margin: PromotionMargin,
    /// Thresholds of the slow-request streams.
    pub latency_thresholds_ms: Vec<f64>,
    /// SLO guardrails on the candidate alone.
    pub guardrails: Vec<MetricCheck>,
}

/// Running totals of one revision since the analysis began.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Totals {
    requests: u64,
    errors: u64,
    slow: Vec<u64>,
    latency: Option<Histogram>,
}

/// What the candidate's bad events would have been at the stable revision's rate in each window: the baseline
/// promotion compares with, so a candidate whose traffic grew while load (and so latency) grew is held to the
/// stable's rates at the same times, not to its average.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Matched {
    errors: f64,
    slow: Vec<f64>,
}

impl Matched {
    fn add(&mut self, candidate_requests: u64, stable: &RevisionWindow, stable_slow: &[u64]) {
        if stable.requests == 0 {
            return;
        }
        let scale = candidate_requests as f64 / stable.requests as f64;
        self.errors += scale * stable.errors as f64;
        if self.slow.len() != stable_slow.len() {
            self.slow = vec![0.0; stable_slow.len()];
        }
        for (total, count) in self.slow.iter_mut().zip(stable_slow) {
            *total += scale * *count as f64;
        }
    }
}

impl Totals {
    fn add(&mut self, window: &RevisionWindow, slow: &[u64]) {
        self.requests += window.requests;
        self.errors += window.errors;
        if self.slow.len() != slow.len() {
            self.slow = vec![0; slow.len()];
        }
        for (total, count) in self.slow.iter_mut().zip(slow) {
            *total += count;
        }
        if let Some(latency) = &window.latency {
            let merged = self.latency.as_mut().is_some_and(|total| total.merge(latency).is_ok());
            if !merged {
                self.latency = Some(latency.clone());
            }
        }
    }

    fn rate(&self, events: u64) -> Option<f64> {
        (self.requests > 0).then(|| events as f64 / self.requests as f64)
    }
}

/// The judge's state, persisted with the rollout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SequentialState {
    test: SequentialTest,
    thresholds_ms: Vec<f64>,
    candidate: Totals,
    stable: Totals,
    /// Candidate requests in windows where the stable revision also served some (the matched baseline's base).
    matched_requests: u64,
    matched: Matched,
}

impl SequentialState {
    /// A fresh analysis.
    pub fn new(config: &SequentialConfig) -> Self {
        let tolerance = Tolerance::new(config.tolerance).unwrap_or_default();
        SequentialState {
            test: SequentialTest::new(Direction::Regression, tolerance, config.latency_thresholds_ms.len())
                .with_error_weight(ERROR_WEIGHT),
            thresholds_ms: config.latency_thresholds_ms.clone(),
            candidate: Totals::default(),
            stable: Totals::default(),
            matched_requests: 0,
            matched: Matched::default(),
        }
    }

    /// Adds one evaluation window. `Fail` means roll back now; `Pass` means no objection so far.
    pub fn observe(&mut self, config: &SequentialConfig, window: &Window) -> Verdict {
        if !window.complete {
            return Verdict::Inconclusive {
                reason: "the evaluation window is incomplete".into(),
            };
        }
        let slow_c = slow_counts(&window.candidate, &self.thresholds_ms);
        let slow_s = slow_counts(&window.stable, &self.thresholds_ms);
        let total = window.candidate.requests + window.stable.requests;
        if total > 0 {
            let share = window.candidate.requests as f64 / total as f64;
            let errors = EventCounts {
                canary: window.candidate.errors,
                control: window.stable.errors,
            };
            let latency: Vec<EventCounts> = slow_c
                .iter()
                .zip(&slow_s)
                .map(|(&canary, &control)| EventCounts { canary, control })
                .collect();
            // The counts come from the same window as the share, so the update cannot be invalid; if it were, the
            // window is left out rather than trusted.
            let _ = self.test.update(share, errors, &latency);
        }
        self.candidate.add(&window.candidate, &slow_c);
        self.stable.add(&window.stable, &slow_s);
        if window.stable.requests > 0 {
            self.matched_requests += window.candidate.requests;
            self.matched.add(window.candidate.requests, &window.stable, &slow_s);
        }

        let mut checks = self.stream_checks(config);
        checks.extend(self.guardrail_checks(config));
        let regressed = self.test.evidence() >= 1.0 / regression_alpha(config);
        if regressed || checks.iter().any(|c| !c.passed) {
            if regressed {
                // Name the stream that carries the most evidence.
                let strongest = checks
                    .iter_mut()
                    .filter(|c| c.evidence.is_some())
                    .max_by(|a, b| a.evidence.unwrap_or(0.0).total_cmp(&b.evidence.unwrap_or(0.0)));
                if let Some(check) = strongest {
                    check.passed = false;
                }
            }
            Verdict::Fail { checks }
        } else {
            Verdict::Pass { checks }
        }
    }

    /// At the end of the plan: `Pass` when the candidate is shown not worse than the margin on every stream,
    /// `Inconclusive` otherwise.
    pub fn conclude(&self, config: &SequentialConfig) -> Verdict {
        let margin = config.promotion_margin;
        let mut checks = Vec::new();
        let matched_rate = |events: f64| {
            if self.matched_requests > 0 {
                events / self.matched_requests as f64
            } else {
                0.0
            }
        };
        let streams = std::iter::once((
            "errors".to_string(),
            self.candidate.errors,
            matched_rate(self.matched.errors),
        ))
        .chain(self.thresholds_ms.iter().enumerate().map(|(i, t)| {
            (
                format!("latency>{t}ms"),
                self.candidate.slow.get(i).copied().unwrap_or(0),
                matched_rate(self.matched.slow.get(i).copied().unwrap_or(0.0)),
            )
        }));
        // "Not worse" must hold on every stream: by the intersection-union principle each bound is taken at α
        // and the whole at α too, without splitting it.
        for (metric, candidate_events, stable_rate) in streams {
            let allowed = (stable_rate * (1.0 + margin.relative)).max(stable_rate + margin.absolute);
            let upper = proportion_bounds(candidate_events, self.candidate.requests, config.alpha)
                .map(|b| b.upper)
                .unwrap_or(1.0);
            let passed = self.candidate.requests > 0 && upper <= allowed;
            checks.push(CheckOutcome {
                metric: metric.clone(),
                candidate: self.candidate.rate(candidate_events).map(percent),
                stable: Some(percent(stable_rate)),
                candidate_requests: self.candidate.requests,
                stable_requests: self.stable.requests,
                limit: format!("upper bound <= {:.3}%", percent(allowed)),
                evidence: Some(percent(upper)),
                passed,
                message: if passed {
                    String::new()
                } else {
                    format!(
                        "{metric}: not yet shown within the margin (candidate's rate at most {:.3}% with confidence, \
                         allowed {:.3}%, after {} requests)",
                        percent(upper),
                        percent(allowed),
                        self.candidate.requests
                    )
                },
            });
        }
        if checks.iter().all(|c| c.passed) {
            Verdict::Pass { checks }
        } else {
            Verdict::Inconclusive {
                reason: checks
                    .iter()
                    .filter(|c| !c.passed)
                    .map(|c| c.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
            }
        }
    }

    fn stream_checks(&self, config: &SequentialConfig) -> Vec<CheckOutcome> {
        let limit = format!("e-value < {:.1}", 1.0 / regression_alpha(config));
        let mut checks = vec![self.stream_check(
            "errors",
            self.candidate.errors,
            self.stable.errors,
            self.test.errors().e_value(),
            &limit,
        )];
        for (i, threshold) in self.thresholds_ms.iter().enumerate() {
            let Some(stream) = self.test.latency().get(i) else {
                continue;
            };
            checks.push(self.stream_check(
                &format!("latency>{threshold}ms"),
                self.candidate.slow.get(i).copied().unwrap_or(0),
                self.stable.slow.get(i).copied().unwrap_or(0),
                stream.e_value(),
                &limit,
            ));
        }
        checks
    }

    fn stream_check(&self, metric: &str, candidate: u64, stable: u64, evidence: f64, limit: &str) -> CheckOutcome {
        let (c, s) = (self.candidate.rate(candidate), self.stable.rate(stable));
        CheckOutcome {
            metric: metric.to_string(),
            candidate: c.map(percent),
            stable: s.map(percent),
            candidate_requests: self.candidate.requests,
            stable_requests: self.stable.requests,
            limit: limit.to_string(),
            evidence: Some(evidence),
            passed: true,
            message: format!(
                "{metric}: candidate {:.2}% of {} requests vs stable {:.2}% of {}: combined e-value {:.1} >= {}",
                c.map_or(0.0, percent),
                self.candidate.requests,
                s.map_or(0.0, percent),
                self.stable.requests,
                self.test.evidence(),
                limit.trim_start_matches("e-value < ")
            ),
        }
    }

    fn guardrail_checks(&self, config: &SequentialConfig) -> Vec<CheckOutcome> {
        let mut checks = Vec::new();
        for guardrail in &config.guardrails {
            let name = guardrail.name.as_str();
            let (verdict, limit) = match guardrail.name {
                MetricName::RequestSuccessRate => {
                    let Some(min) = guardrail.threshold_range.min else {
                        continue;
                    };
                    let successes = self.candidate.requests - self.candidate.errors.min(self.candidate.requests);
                    let target = (min / 100.0).clamp(1e-6, 1.0 - 1e-6);
                    let verdict = success_rate_slo(successes, self.candidate.requests, target, guardrail_alpha(config));
                    (verdict, format!(">= {min}%"))
                }
                MetricName::RequestDuration => {
                    let Some(max) = guardrail.threshold_range.max else {
                        continue;
                    };
                    let Some(latency) = &self.candidate.latency else {
                        continue;
                    };
                    // The bound must be a bucket bound: take the first at or above the limit.
                    let Some(&bound) = latency.bounds().iter().find(|b| **b >= max) else {
                        continue;
                    };
                    (
                        latency_slo(latency, 0.99, bound, guardrail_alpha(config)),
                        format!("p99 <= {max}ms"),
                    )
                }
            };
            let failed = matches!(verdict, Ok(SloVerdict::Fail));
            checks.push(CheckOutcome {
                metric: name.to_string(),
                candidate: match guardrail.name {
                    MetricName::RequestSuccessRate => self
                        .candidate
                        .rate(self.candidate.requests - self.candidate.errors)
                        .map(percent),
                    MetricName::RequestDuration => self.candidate.latency.as_ref().and_then(|h| h.quantile(0.99)),
                },
                stable: None,
                candidate_requests: self.candidate.requests,
                stable_requests: self.stable.requests,
                limit,
                evidence: None,
                passed: !failed,
                message: if failed {
                    format!(
                        "{name} breaks its SLO with confidence after {} requests",
                        self.candidate.requests
                    )
                } else {
                    String::new()
                },
            });
        }
        checks
    }
}

/// Weight of the error stream in the regression evidence. Errors are what users feel first, so they get three
/// quarters; slow-request streams share the rest (the benchmark's suite detects both within its targets).
const ERROR_WEIGHT: f64 = 0.75;

/// The share of α the regression test may spend; the guardrails share the rest, so that by the union bound a
/// good candidate is rolled back with probability at most α in all.
const REGRESSION_SHARE: f64 = 0.9;

fn regression_alpha(config: &SequentialConfig) -> f64 {
    config.alpha * REGRESSION_SHARE
}

fn guardrail_alpha(config: &SequentialConfig) -> f64 {
    config.alpha * (1.0 - REGRESSION_SHARE) / config.guardrails.len().max(1) as f64
}

fn percent(rate: f64) -> f64 {
    rate * 100.0
}

/// Requests slower than each threshold in one window (zero where the histogram cannot tell).
fn slow_counts(window: &RevisionWindow, thresholds_ms: &[f64]) -> Vec<u64> {
    thresholds_ms
        .iter()
        .map(|t| {
            window
                .latency
                .as_ref()
                .and_then(|h| h.count_above(*t).ok())
                .unwrap_or(0)
        })
        .collect()
}

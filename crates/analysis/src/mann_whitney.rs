//! The `mannWhitney` judge: Kayenta's fixed-horizon comparison. Every evaluation window becomes one point of
//! three series per revision (error rate, p50, p99); at the end of the plan each metric's candidate series is
//! compared with the stable's by a Mann–Whitney confidence interval (NetflixACAJudge's classifier), and the
//! candidate is promoted when the share of passing metrics reaches the pass score. It never decides early.

use serde::{Deserialize, Serialize};

use crate::stats::{Classification, KayentaClassifier, MetricDirection};
use crate::{CheckOutcome, RevisionWindow, Verdict, Window};

/// The judge's settings (Kayenta's defaults: 98% confidence, tolerance 0.25, pass score 95).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MannWhitneyConfig {
    /// Confidence of each comparison, 0..1.
    pub confidence: f64,
    /// Relative shift that still passes.
    pub tolerance: f64,
    /// Percent of metrics that must pass.
    pub pass_score: f64,
}

/// One series point per revision: error rate, p50 and p99 (ms) of one window; `None` without requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Point {
    error_rate: Option<f64>,
    p50: Option<f64>,
    p99: Option<f64>,
}

impl Point {
    fn of(window: &RevisionWindow) -> Point {
        if window.requests == 0 {
            return Point::default();
        }
        let quantile = |q| window.latency.as_ref().and_then(|h| h.quantile(q));
        Point {
            error_rate: Some(window.errors as f64 / window.requests as f64),
            p50: quantile(0.5),
            p99: quantile(0.99).or(window.p99_ms),
        }
    }
}

/// Reads one metric off a series point.
type Pick = fn(&Point) -> Option<f64>;

/// The series collected so far, persisted with the rollout.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MannWhitneyState {
    candidate: Vec<Point>,
    stable: Vec<Point>,
}

impl MannWhitneyState {
    /// Adds one window as a series point. The judge objects to nothing before the end.
    pub fn observe(&mut self, window: &Window) -> Verdict {
        if !window.complete {
            return Verdict::Inconclusive {
                reason: "the evaluation window is incomplete".into(),
            };
        }
        self.candidate.push(Point::of(&window.candidate));
        self.stable.push(Point::of(&window.stable));
        Verdict::Pass { checks: Vec::new() }
    }

    /// Scores the series: `Pass` at or above the pass score, `Fail` below.
    pub fn conclude(&self, config: &MannWhitneyConfig) -> Verdict {
        let classifier = KayentaClassifier::new(config.tolerance, config.confidence, 1.0, 1.0).unwrap_or_default();
        let series =
            |points: &[Point], pick: Pick| -> Vec<f64> { points.iter().map(|p| pick(p).unwrap_or(f64::NAN)).collect() };
        let metrics: [(&str, Pick); 3] = [
            ("error-rate", |p| p.error_rate),
            ("latency-p50", |p| p.p50),
            ("latency-p99", |p| p.p99),
        ];
        let mut checks = Vec::new();
        let mut no_data = 0;
        for (name, pick) in metrics {
            let (candidate, stable) = (series(&self.candidate, pick), series(&self.stable, pick));
            let comparison = classifier.classify(&candidate, &stable, MetricDirection::Increase);
            if comparison.classification == Classification::NoData {
                no_data += 1;
            }
            let mean = |values: &[f64]| {
                let kept: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
                (!kept.is_empty()).then(|| kept.iter().sum::<f64>() / kept.len() as f64)
            };
            let passed = comparison.classification != Classification::High;
            checks.push(CheckOutcome {
                metric: name.into(),
                candidate: mean(&candidate),
                stable: mean(&stable),
                candidate_requests: candidate.len() as u64,
                stable_requests: stable.len() as u64,
                limit: format!(
                    "shift within {}% at {}% confidence",
                    config.tolerance * 100.0,
                    config.confidence * 100.0
                ),
                evidence: comparison.shift.map(|s| s.lower),
                passed,
                message: if passed {
                    String::new()
                } else {
                    format!(
                        "{name}: the candidate's series is higher ({:?})",
                        comparison.classification
                    )
                },
            });
        }
        // Kayenta scores half or more of the metrics without data as 0.
        let scored = checks.len() - no_data;
        let score = if no_data * 2 >= checks.len() || scored == 0 {
            0.0
        } else {
            100.0 * checks.iter().filter(|c| c.passed).count().saturating_sub(no_data) as f64 / scored as f64
        };
        let passed = score >= config.pass_score;
        checks.push(CheckOutcome {
            metric: "score".into(),
            candidate: Some(score),
            stable: None,
            candidate_requests: self.candidate.len() as u64,
            stable_requests: self.stable.len() as u64,
            limit: format!(">= {}", config.pass_score),
            evidence: None,
            passed,
            message: if passed {
                String::new()
            } else {
                format!("score {score:.0} < {}", config.pass_score)
            },
        });
        if passed {
            Verdict::Pass { checks }
        } else {
            Verdict::Fail { checks }
        }
    }
}

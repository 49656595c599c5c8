//! The part of a spec that governs how a rollout proceeds.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sluice_analysis::{
    DEFAULT_LATENCY_THRESHOLDS_MS, JudgeConfig, MannWhitneyConfig, PromotionMargin, SequentialConfig,
};
use sluice_spec::{CustomMetric, Judge, MetricCheck, OnFailure, OnInconclusive, ServiceSpec};

/// How a rollout proceeds: its steps, pacing, checks and what to do on failure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// Candidate weights in percent, one per passing interval.
    pub steps: Vec<u8>,
    /// Time spent on each step before it is judged.
    pub interval: Duration,
    /// How long the candidate has to become ready.
    pub progress_deadline: Duration,
    /// Failed checks (cumulative) before the rollout fails.
    pub threshold: u32,
    /// The checks each interval is judged by (the threshold judge), or the guardrails (the sequential judge).
    pub metrics: Vec<MetricCheck>,
    /// Which judge decides.
    pub judge: JudgeConfig,
    /// The user's own metrics, held to their ranges at every evaluation.
    #[serde(default)]
    pub custom_metrics: Vec<CustomMetric>,
    /// How often a comparative judge looks at the evidence.
    pub evaluation_interval: Duration,
    /// What an inconclusive end of plan does.
    pub on_inconclusive: OnInconclusive,
    /// Roll back, or hold for a human, when the rollout fails its analysis.
    pub on_failure: OnFailure,
    /// How long any hold lasts before its timeout action is taken.
    pub hold_timeout: Duration,
    /// How long the previous stable revision keeps serving in-flight requests after a promotion.
    pub drain: Duration,
}

impl Plan {
    /// Grace given to a retired revision to finish in-flight requests before it is stopped.
    pub const DEFAULT_DRAIN: Duration = Duration::from_secs(5);

    /// The plan a spec describes.
    pub fn from_spec(spec: &ServiceSpec) -> Self {
        let body = &spec.spec;
        // Validation guarantees a canary strategy, the only one so far.
        let canary = body.strategy.canary();
        Plan {
            steps: canary.map(|c| c.steps()).unwrap_or_default(),
            interval: canary.map_or(std::time::Duration::from_secs(60), |c| c.interval.0),
            progress_deadline: body.progress_deadline.0,
            threshold: body.analysis.threshold,
            metrics: body.analysis.metrics.clone(),
            judge: judge_config(&body.analysis),
            custom_metrics: body.analysis.custom_metrics.clone(),
            evaluation_interval: body.analysis.evaluation_interval.0,
            on_inconclusive: body.analysis.on_inconclusive,
            on_failure: body.analysis.on_failure,
            hold_timeout: body.analysis.hold_timeout.0,
            drain: Self::DEFAULT_DRAIN,
        }
    }

    /// How often the evidence is looked at: every step interval for the threshold judge (Flagger's loop), every
    /// evaluation interval for the others.
    pub fn evaluation_period(&self) -> Duration {
        if self.is_comparative() {
            self.evaluation_interval
        } else {
            self.interval
        }
    }

    /// Whether the judge compares with stable as evidence accrues, rather than once per step (threshold).
    pub fn is_comparative(&self) -> bool {
        !matches!(self.judge, JudgeConfig::Threshold { .. })
    }

    /// The last weight before promotion.
    pub fn max_weight(&self) -> u8 {
        self.steps.last().copied().unwrap_or(0)
    }
}

/// The judge a spec's analysis block asks for.
pub fn judge_config(analysis: &sluice_spec::Analysis) -> JudgeConfig {
    match analysis.judge {
        Judge::Threshold => JudgeConfig::Threshold {
            checks: analysis.metrics.clone(),
        },
        Judge::Sequential => JudgeConfig::Sequential(SequentialConfig {
            alpha: analysis.alpha,
            tolerance: analysis.tolerance,
            promotion_margin: PromotionMargin::default(),
            latency_thresholds_ms: DEFAULT_LATENCY_THRESHOLDS_MS.to_vec(),
            guardrails: analysis.metrics.clone(),
        }),
        Judge::MannWhitney => JudgeConfig::MannWhitney(MannWhitneyConfig {
            confidence: analysis.mann_whitney.confidence / 100.0,
            tolerance: analysis.mann_whitney.tolerance,
            pass_score: analysis.mann_whitney.pass_score,
        }),
    }
}

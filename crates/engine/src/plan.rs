//! The part of a spec that governs how a rollout proceeds.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sluice_analysis::{
    DEFAULT_LATENCY_THRESHOLDS_MS, JudgeConfig, MannWhitneyConfig, PromotionMargin, SequentialConfig,
};
use sluice_spec::{CustomMetric, Judge, MetricCheck, OnFailure, OnInconclusive, ServiceSpec, Strategy, WebhookKind};

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
    /// The path before users see the candidate, and how they see it.
    #[serde(default)]
    pub release: Release,
}

/// What a candidate walks through besides the analysis: stages, the way users reach it, and the webhooks
/// that gate or follow it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Release {
    /// How users reach the candidate.
    pub exposure: Exposure,
    /// Checks in isolation before any user request (the controller runs them, with pre-rollout webhooks), and how
    /// long they may take.
    pub isolation: Option<Duration>,
    /// The shadow stage, if any.
    pub shadow: Option<ShadowPlan>,
    /// The webhook kinds the spec configures; gates are waited for only when configured.
    pub hooks: BTreeSet<WebhookKind>,
}

/// How users reach the candidate once its stages pass.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Exposure {
    /// A growing share of requests, one step per interval.
    #[default]
    Canary,
    /// A preview address first (with checks when `pre_promotion` gives them time), then all traffic at once; the
    /// old revision stays ready to take it back for `scale_down_delay`.
    #[serde(rename_all = "camelCase")]
    BlueGreen {
        /// How long the pre-promotion checks against the preview may take, if there are any.
        pre_promotion: Option<Duration>,
        /// How long the old revision keeps running after the switch.
        scale_down_delay: Duration,
    },
    /// Only requests matching the spec's rules, for one step per iteration.
    AbTest,
}

/// The shadow stage's length and limit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShadowPlan {
    /// How long mirrored traffic is compared.
    pub duration: Duration,
    /// The largest percentage of compared requests that may differ for real.
    pub max_diff_rate: f64,
}

impl Release {
    /// The release path a spec describes.
    pub fn from_spec(spec: &ServiceSpec) -> Self {
        let body = &spec.spec;
        let hooks: BTreeSet<WebhookKind> = body.webhooks.iter().map(|hook| hook.kind).collect();
        let exposure = match &body.strategy {
            Strategy::Canary(_) => Exposure::Canary,
            Strategy::BlueGreen(blue_green) => Exposure::BlueGreen {
                pre_promotion: (!blue_green.pre_promotion.is_empty())
                    .then(|| checks_budget(&blue_green.pre_promotion, body.progress_deadline.0)),
                scale_down_delay: blue_green.scale_down_delay.0,
            },
            Strategy::AbTest(_) => Exposure::AbTest,
        };
        let checks = body.stages.isolation.as_ref().filter(|checks| !checks.is_empty());
        let isolation = (checks.is_some() || hooks.contains(&WebhookKind::PreRollout)).then(|| {
            let hook_time: Duration = body
                .webhooks
                .iter()
                .filter(|hook| hook.kind == WebhookKind::PreRollout)
                .map(|hook| hook.timeout.0 * (hook.retries + 1))
                .sum();
            checks.map_or(body.progress_deadline.0 * 2, |c| {
                checks_budget(c, body.progress_deadline.0)
            }) + hook_time
        });
        let shadow = body.stages.shadow.as_ref().map(|shadow| ShadowPlan {
            duration: shadow.duration.0,
            max_diff_rate: shadow.max_diff_rate,
        });
        Release {
            exposure,
            isolation,
            shadow,
            hooks,
        }
    }

    /// Whether the spec configures webhooks of this kind.
    pub fn has_hook(&self, kind: WebhookKind) -> bool {
        self.hooks.contains(&kind)
    }
}

impl Plan {
    /// Grace given to a retired revision to finish in-flight requests before it is stopped.
    pub const DEFAULT_DRAIN: Duration = Duration::from_secs(5);

    /// The plan a spec describes.
    pub fn from_spec(spec: &ServiceSpec) -> Self {
        let body = &spec.spec;
        let (steps, interval) = match &body.strategy {
            Strategy::Canary(canary) => (canary.steps(), canary.interval.0),
            // One step per iteration, all at weight 0: only matching requests reach the candidate.
            Strategy::AbTest(ab) => (vec![0; ab.iterations as usize], ab.interval.0),
            // No steps: after the preview, one switch.
            Strategy::BlueGreen(_) => (Vec::new(), body.analysis.evaluation_interval.0),
        };
        Plan {
            steps,
            interval,
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
            release: Release::from_spec(spec),
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

/// How long a set of checks may take before its result counts as missing: the load test with the progress deadline
/// twice as slack. The controller bounds each check itself; this only catches a result that never comes.
fn checks_budget(checks: &sluice_spec::Checks, progress_deadline: Duration) -> Duration {
    let load = checks.load_test.as_ref().map_or(Duration::ZERO, |l| l.duration.0);
    load + progress_deadline * 2
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

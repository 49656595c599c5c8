//! Runs a scenario through Sluice's real engine in simulated time and scores the outcome.
//!
//! Each run starts a rollout of a candidate beside a stable revision, then, tick by tick, draws the traffic the
//! current weights would carry, hands the engine the window since its `window_start` exactly as the daemon's
//! metric source does (by diffing cumulative counts), and calls `engine::step` at the tick's end. It stops at
//! the first rollback, promotion or hold.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use sluice_analysis::stats::Histogram;
use sluice_analysis::{JudgeConfig, MannWhitneyConfig, RevisionWindow, Window};
use sluice_engine::{Desired, Health, Observations, Phase, Plan, Release, Rollout, step};
use sluice_spec::{Analysis, OnFailure, OnInconclusive, RevisionRef};

use crate::scenario::{Scenario, Truth};
use crate::traffic::{ArmCounts, ScenarioTraffic, TrafficError, TrafficGenerator, Version};

/// The four rows of the benchmark's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Algorithm {
    /// Sluice's threshold judge with Flagger's settings, on Flagger's progressive plan.
    Flagger,
    /// Sluice's Mann–Whitney judge with Kayenta's settings, canary and baseline at a fixed weight for 30 min.
    Kayenta,
    /// Sluice's default judge and settings on the progressive plan.
    SluiceProgressive,
    /// Sluice's default judge and settings at a fixed weight for 30 min.
    SluiceFixed,
}

impl Algorithm {
    /// Every row, in table order.
    pub const ALL: [Algorithm; 4] = [
        Algorithm::Flagger,
        Algorithm::Kayenta,
        Algorithm::SluiceProgressive,
        Algorithm::SluiceFixed,
    ];

    /// The row's name.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Flagger => "flagger",
            Algorithm::Kayenta => "kayenta",
            Algorithm::SluiceProgressive => "sluice-progressive",
            Algorithm::SluiceFixed => "sluice-fixed",
        }
    }

    fn stream(self) -> u64 {
        // Each plan draws from its own random stream, as the reference does.
        match self {
            Algorithm::Flagger | Algorithm::SluiceProgressive => 0,
            Algorithm::Kayenta | Algorithm::SluiceFixed => 1,
        }
    }

    /// The plan this row runs for `scenario`.
    pub fn plan(self, scenario: &Scenario) -> Plan {
        let progressive: Vec<u8> = (1..)
            .map(|k| k * scenario.plan.step_weight)
            .take_while(|w| *w <= scenario.plan.max_weight)
            .map(|w| w.min(100) as u8)
            .collect();
        let fixed = vec![scenario.plan.fixed_weight.min(100) as u8];
        let defaults = Analysis::default();
        let flagger_checks = Analysis::default_checks();
        let base = Plan {
            steps: progressive,
            interval: Duration::from_secs(60),
            progress_deadline: Duration::from_secs(60),
            threshold: 5,
            metrics: defaults.metrics.clone(),
            judge: sluice_engine::judge_config(&defaults),
            custom_metrics: Vec::new(),
            evaluation_interval: defaults.evaluation_interval.0,
            on_inconclusive: defaults.on_inconclusive,
            on_failure: OnFailure::Rollback,
            hold_timeout: defaults.hold_timeout.0,
            drain: Duration::from_secs(0),
            release: Release::default(),
        };
        match self {
            Algorithm::Flagger => Plan {
                judge: JudgeConfig::Threshold {
                    checks: flagger_checks.clone(),
                },
                metrics: flagger_checks,
                ..base
            },
            Algorithm::Kayenta => Plan {
                steps: fixed,
                interval: Duration::from_secs(1800),
                evaluation_interval: Duration::from_secs(30),
                judge: JudgeConfig::MannWhitney(MannWhitneyConfig {
                    confidence: 0.98,
                    tolerance: 0.25,
                    pass_score: 95.0,
                }),
                on_inconclusive: OnInconclusive::Rollback,
                ..base
            },
            Algorithm::SluiceProgressive => base,
            Algorithm::SluiceFixed => Plan {
                steps: fixed,
                interval: Duration::from_secs(1800),
                ..base
            },
        }
    }
}

/// How one run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Rolled back (a detection for a bad candidate, a false alarm for a good one).
    Rollback,
    /// Promoted.
    Promote,
    /// Held for a human: the evidence did not decide.
    Held,
}

/// One run's result.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct RunOutcome {
    /// How it ended.
    pub decision: Decision,
    /// Seconds from the first canary traffic to the decision.
    pub time_s: f64,
    /// Requests the candidate served until then.
    pub canary_requests: u64,
    /// Error responses the candidate served beyond what the stable version would have.
    pub excess_errors: f64,
}

/// Cumulative counts of one arm, diffed to make windows.
#[derive(Clone, Debug)]
struct Cumulative {
    requests: u64,
    errors: u64,
    latency: Histogram,
}

impl Cumulative {
    fn new(bounds: &[f64]) -> Self {
        let latency = Histogram::new(bounds.to_vec())
            .unwrap_or_else(|_| Histogram::new(Vec::new()).expect("empty bounds are valid"));
        Cumulative {
            requests: 0,
            errors: 0,
            latency,
        }
    }

    fn add(&mut self, arm: &ArmCounts) {
        self.requests += arm.requests;
        self.errors += arm.errors;
        let _ = self.latency.merge(&arm.latency);
    }

    fn since(&self, earlier: &Cumulative) -> RevisionWindow {
        let mut latency = self.latency.clone();
        let _ = latency.subtract(&earlier.latency);
        RevisionWindow {
            requests: self.requests - earlier.requests,
            errors: self.errors - earlier.errors,
            p99_ms: latency.quantile(0.99),
            latency: Some(latency),
        }
    }
}

fn revision(name: &str) -> RevisionRef {
    RevisionRef {
        name: name.into(),
        checksum: name.into(),
    }
}

/// Runs `algorithm` once on `scenario` with the given seed.
pub fn run(
    traffic: &ScenarioTraffic,
    scenario: &Scenario,
    algorithm: Algorithm,
    seed: u64,
) -> Result<RunOutcome, TrafficError> {
    let plan = algorithm.plan(scenario);
    let horizon = plan.interval.as_secs() * plan.steps.len() as u64;
    let start: Timestamp = Timestamp::UNIX_EPOCH + SignedDuration::from_hours(24 * 365 * 50);
    let at = |seconds: u64| start + SignedDuration::from_secs(seconds as i64);
    let mut generator = TrafficGenerator::new(traffic, seed, algorithm.stream());

    // The stable revision serves everything, then the candidate deploys and becomes ready.
    let stable = Desired {
        revision: revision("stable"),
        plan: plan.clone(),
    };
    let candidate = Desired {
        revision: revision("candidate"),
        plan,
    };
    let mut rollout = Rollout::new(traffic.name());
    for (desired, health) in [
        (&stable, Health::Starting),
        (&stable, Health::Ready),
        (&candidate, Health::Starting),
        (&candidate, Health::Ready),
    ] {
        let observations = Observations {
            desired: Some(desired.clone()),
            candidate: health,
            ..Observations::default()
        };
        rollout = step(rollout, &observations, at(0)).0;
    }
    debug_assert_eq!(rollout.phase, Phase::Progressing);

    let tick_s = u64::from(traffic.tick_seconds());
    let bounds = traffic.bounds_ms();
    let mut history = vec![(Cumulative::new(bounds), Cumulative::new(bounds))];
    let (mut canary_requests, mut excess) = (0u64, 0.0f64);
    let mut tick = 0u64;
    loop {
        let weight = f64::from(rollout.weight) / 100.0;
        let (canary, control) = match algorithm {
            Algorithm::Kayenta => {
                let drawn = generator.baseline_tick(tick, weight)?;
                (drawn.canary, drawn.baseline)
            }
            _ => {
                let drawn = generator.canary_tick(tick, weight)?;
                (drawn.canary, drawn.control)
            }
        };
        canary_requests += canary.requests;
        excess += canary.requests as f64
            * (traffic.error_probability(Version::Candidate, tick) - traffic.error_probability(Version::Stable, tick));
        let (mut c, mut s) = history
            .last()
            .cloned()
            .unwrap_or_else(|| (Cumulative::new(bounds), Cumulative::new(bounds)));
        c.add(&canary);
        s.add(&control);
        history.push((c, s));
        tick += 1;
        let now_s = tick * tick_s;

        let since = (rollout.window_start.duration_since(start).as_secs().max(0) as u64 / tick_s) as usize;
        let (c_now, s_now) = &history[history.len() - 1];
        let (c_then, s_then) = &history[since.min(history.len() - 1)];
        let window = Window {
            candidate: c_now.since(c_then),
            stable: s_now.since(s_then),
            complete: true,
        };
        let observations = Observations {
            desired: Some(candidate.clone()),
            candidate: Health::Ready,
            window: Some(window),
            ..Observations::default()
        };
        rollout = step(rollout, &observations, at(now_s)).0;
        let decision = match rollout.phase {
            Phase::RollingBack | Phase::RolledBack => Some(Decision::Rollback),
            Phase::Promoting | Phase::Finalising | Phase::Succeeded => Some(Decision::Promote),
            _ if rollout.hold.is_some() => Some(Decision::Held),
            _ => None,
        };
        if let Some(decision) = decision {
            return Ok(RunOutcome {
                decision,
                time_s: now_s as f64,
                canary_requests,
                excess_errors: excess,
            });
        }
        if now_s > 4 * horizon + 600 {
            // A plan that neither promotes nor rolls back by its end is a hold in all but name.
            return Ok(RunOutcome {
                decision: Decision::Held,
                time_s: now_s as f64,
                canary_requests,
                excess_errors: excess,
            });
        }
    }
}

/// The figures of one scenario × algorithm over many runs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// The scenario.
    pub scenario: String,
    /// Whether its candidate is good or bad.
    pub truth: Truth,
    /// The row.
    pub algorithm: &'static str,
    /// Runs.
    pub runs: usize,
    /// Percent of runs rolled back.
    pub rollback_pct: f64,
    /// Percent promoted.
    pub promoted_pct: f64,
    /// Percent held.
    pub held_pct: f64,
    /// Median time to rollback, a miss counted at the plan's end (bad scenarios).
    pub median_detection_s: Option<f64>,
    /// Median canary requests served before a rollback.
    pub median_canary_requests_at_rollback: Option<f64>,
    /// Mean excess error responses before a rollback.
    pub mean_excess_errors_at_rollback: Option<f64>,
    /// Median time to promotion (good scenarios).
    pub median_promotion_s: Option<f64>,
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    })
}

/// Summarises the runs of one scenario × algorithm. A miss counts as detected when its run ended (its promotion
/// or hold), but no earlier than `plan_end_s`.
pub fn summarize(scenario: &Scenario, algorithm: Algorithm, runs: &[RunOutcome], plan_end_s: f64) -> Summary {
    let share = |d: Decision| 100.0 * runs.iter().filter(|r| r.decision == d).count() as f64 / runs.len().max(1) as f64;
    let rollbacks: Vec<&RunOutcome> = runs.iter().filter(|r| r.decision == Decision::Rollback).collect();
    let bad = scenario.truth == Truth::Bad;
    Summary {
        scenario: scenario.name.clone(),
        truth: scenario.truth,
        algorithm: algorithm.name(),
        runs: runs.len(),
        rollback_pct: share(Decision::Rollback),
        promoted_pct: share(Decision::Promote),
        held_pct: share(Decision::Held),
        median_detection_s: if bad {
            median(
                runs.iter()
                    .map(|r| {
                        if r.decision == Decision::Rollback {
                            r.time_s
                        } else {
                            r.time_s.max(plan_end_s)
                        }
                    })
                    .collect(),
            )
        } else {
            None
        },
        median_canary_requests_at_rollback: median(rollbacks.iter().map(|r| r.canary_requests as f64).collect()),
        mean_excess_errors_at_rollback: (!rollbacks.is_empty())
            .then(|| rollbacks.iter().map(|r| r.excess_errors).sum::<f64>() / rollbacks.len() as f64),
        median_promotion_s: if bad {
            None
        } else {
            median(
                runs.iter()
                    .filter(|r| r.decision == Decision::Promote)
                    .map(|r| r.time_s)
                    .collect(),
            )
        },
    }
}

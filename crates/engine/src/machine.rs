//! The phase machine: one decision per call.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use sluice_analysis::{CheckOutcome, JudgeState, Verdict, judge_thresholds};
use sluice_spec::{OnFailure, OnInconclusive, RevisionRef};

use crate::{
    Action, Command, CustomReading, Desired, Event, Health, Hold, HoldReason, Observations, Phase, Plan, Role, Rollout,
    Severity, TimeoutAction,
};

/// Decides what happens next. Pure: the result depends only on the arguments.
pub fn step(rollout: Rollout, observations: &Observations, now: Timestamp) -> (Rollout, Vec<Action>) {
    let before = rollout.clone();
    let mut decision = Decision {
        rollout,
        actions: Vec::new(),
        now,
    };
    for command in &observations.commands {
        decision.command(*command);
    }
    if let Some(desired) = &observations.desired {
        decision.reconcile(desired);
    }
    // A phase entered by a command or a new revision settles first: its actions must run before anything is
    // judged, and this step's observations describe the previous candidate.
    let settled = decision.rollout.phase == before.phase && decision.rollout.candidate == before.candidate;
    if settled {
        decision.advance(observations);
    }
    let Decision {
        mut rollout, actions, ..
    } = decision;
    if rollout != before || !actions.is_empty() {
        rollout.generation = before.generation + 1;
    }
    (rollout, actions)
}

/// The actions that establish the world a state describes. The controller runs them when it starts, so that a
/// restarted daemon adopts (or, if they vanished, restarts) what the state says should run, and re-pushes the
/// route. All of them are idempotent.
pub fn resync(rollout: &Rollout) -> Vec<Action> {
    let mut actions = Vec::new();
    if let Some(stable) = &rollout.stable {
        actions.push(Action::StartRevision {
            revision: stable.clone(),
            role: Role::Stable,
        });
    }
    if let Some(candidate) = &rollout.candidate {
        let runs = matches!(
            rollout.phase,
            Phase::Initializing | Phase::Deploying | Phase::Progressing | Phase::RollingBack
        );
        if runs {
            actions.push(Action::StartRevision {
                revision: candidate.clone(),
                role: Role::Candidate,
            });
        }
    }
    actions.extend(route_of(rollout));
    actions
}

fn route_of(rollout: &Rollout) -> Option<Action> {
    let stable = rollout.stable.clone()?;
    let candidate = if rollout.weight > 0 {
        rollout.candidate.clone()
    } else {
        None
    };
    Some(Action::SetRoute {
        stable,
        candidate,
        weight: rollout.weight,
        draining: rollout.retired.clone(),
    })
}

/// Holds each of the user's own metrics to its range; a metric that could not be read fails its check, as an
/// empty result does in Flagger.
fn custom_checks(plan: &Plan, readings: &[CustomReading]) -> Vec<CheckOutcome> {
    plan.custom_metrics
        .iter()
        .map(|metric| {
            let reading = readings.iter().find(|r| r.name == metric.name).map(|r| &r.value);
            let (min, max) = (metric.threshold_range.min, metric.threshold_range.max);
            let limit = match (min, max) {
                (Some(lo), Some(hi)) => format!("{lo}..={hi}"),
                (Some(lo), None) => format!(">= {lo}"),
                (None, Some(hi)) => format!("<= {hi}"),
                (None, None) => "any".into(),
            };
            let (value, message) = match reading {
                None => (None, format!("{}: not read", metric.name)),
                Some(Err(error)) => (None, format!("{}: no value ({error})", metric.name)),
                Some(Ok(v)) if min.is_some_and(|lo| *v < lo) || max.is_some_and(|hi| *v > hi) => {
                    (Some(*v), format!("{} {v} outside {limit}", metric.name))
                }
                Some(Ok(v)) => (Some(*v), String::new()),
            };
            CheckOutcome {
                metric: metric.name.clone(),
                candidate: value,
                stable: None,
                candidate_requests: 0,
                stable_requests: 0,
                limit,
                evidence: None,
                passed: message.is_empty(),
                message,
            }
        })
        .collect()
}

/// The threshold judge's verdict with the user's own metrics added to its checks.
fn with_custom(verdict: Verdict, plan: &Plan, readings: &[CustomReading]) -> Verdict {
    let custom = custom_checks(plan, readings);
    if custom.is_empty() {
        return verdict;
    }
    let failed = custom.iter().any(|c| !c.passed);
    match verdict {
        Verdict::Pass { mut checks } | Verdict::Fail { mut checks } => {
            let passed = !failed && checks.iter().all(|c| c.passed);
            checks.extend(custom);
            if passed {
                Verdict::Pass { checks }
            } else {
                Verdict::Fail { checks }
            }
        }
        inconclusive => inconclusive,
    }
}

/// Evaluations in a row without usable metrics before a rollout is held.
const MAX_METRIC_GAPS: u32 = 30;

fn after(start: Timestamp, duration: Duration) -> Timestamp {
    let span = SignedDuration::try_from(duration).unwrap_or(SignedDuration::MAX);
    start.checked_add(span).unwrap_or(Timestamp::MAX)
}

struct Decision {
    rollout: Rollout,
    actions: Vec<Action>,
    now: Timestamp,
}

impl Decision {
    fn record(&mut self, severity: Severity, message: impl Into<String>) {
        self.actions.push(Action::Record(Event {
            at: self.now,
            severity,
            message: message.into(),
        }));
    }

    fn enter(&mut self, phase: Phase) {
        self.rollout.phase = phase;
        self.rollout.phase_since = self.now;
    }

    fn route(&mut self) {
        self.actions.extend(route_of(&self.rollout));
    }

    fn after(&self, duration: Duration) -> Timestamp {
        after(self.now, duration)
    }

    fn candidate_name(&self) -> String {
        self.rollout
            .candidate
            .as_ref()
            .map_or_else(|| "?".into(), |c| c.name.clone())
    }

    fn command(&mut self, command: Command) {
        if self.rollout.accepts(command).is_err() {
            self.record(
                Severity::Warning,
                format!("Ignored {command:?}: not possible in phase {}", self.rollout.phase),
            );
            return;
        }
        let hold_timeout = self
            .rollout
            .plan
            .as_ref()
            .map_or(Duration::from_secs(3600), |p| p.hold_timeout);
        match command {
            Command::Pause => {
                let until = self.after(hold_timeout);
                self.rollout.hold = Some(Hold {
                    reason: HoldReason::Operator,
                    since: self.now,
                    until,
                    on_timeout: TimeoutAction::Rollback,
                });
                self.record(
                    Severity::Warning,
                    format!(
                        "Rollout paused by an operator at weight {}; it rolls back at {until} unless resumed",
                        self.rollout.weight
                    ),
                );
            }
            Command::Resume => {
                if let Some(hold) = self.rollout.hold.take() {
                    match hold.reason {
                        HoldReason::FailedAnalysis { .. } => {
                            self.rollout.failed_checks = 0;
                            // The evidence led to the hold; whoever resumes asks for a fresh look.
                            if let Some(plan) = &self.rollout.plan {
                                self.rollout.judge = JudgeState::new(&plan.judge);
                            }
                        }
                        HoldReason::MetricsUnavailable => self.rollout.metric_gaps = 0,
                        HoldReason::Operator | HoldReason::Inconclusive { .. } => {}
                    }
                    if let Some(deadline) = self.rollout.deadline {
                        let held = self.now.duration_since(hold.since);
                        self.rollout.deadline = deadline.checked_add(held).ok();
                    }
                }
                self.rollout.window_start = self.now;
                self.rollout.step_started_at = self.now;
                self.record(Severity::Info, "Rollout resumed by an operator");
            }
            Command::Promote => {
                self.record(
                    Severity::Info,
                    "Promotion requested by an operator: skipping the rest of the analysis",
                );
                self.promote();
            }
            Command::Abort => self.rollback("aborted by an operator".into()),
        }
    }

    fn reconcile(&mut self, desired: &Desired) {
        let r = &self.rollout;
        if matches!(r.phase, Phase::Promoting | Phase::RollingBack) {
            // Transient: they settle on the next step, then the new revision is taken up.
            return;
        }
        let is_candidate = r.candidate.as_ref() == Some(&desired.revision);
        let is_stable = r.stable.as_ref() == Some(&desired.revision);
        if is_candidate && (r.phase.is_active() || r.phase == Phase::Initializing) {
            self.rollout.plan = Some(desired.plan.clone());
            return;
        }
        if is_stable {
            if r.phase.is_active() {
                let candidate = self.rollout.candidate.take();
                self.rollout.weight = 0;
                self.rollout.hold = None;
                self.enter(Phase::Succeeded);
                self.record(
                    Severity::Warning,
                    format!(
                        "Rollout of {} cancelled: the spec asks for {} again",
                        candidate.as_ref().map_or("?", |c| &c.name),
                        desired.revision.name
                    ),
                );
                self.route();
                if let Some(candidate) = candidate {
                    self.actions.push(Action::StopRevision { revision: candidate });
                }
            }
            return;
        }
        if is_candidate {
            // A failed (Failed, RolledBack) revision is not retried just because it is still the desired one.
            return;
        }
        self.start_rollout(desired);
    }

    fn start_rollout(&mut self, desired: &Desired) {
        let superseded = self.rollout.candidate.take();
        if let Some(old) = superseded {
            if self.rollout.phase.is_active() || self.rollout.phase == Phase::Initializing {
                self.record(
                    Severity::Info,
                    format!(
                        "New revision detected! Restarting analysis: {} supersedes {}",
                        desired.revision.name, old.name
                    ),
                );
            }
            self.actions.push(Action::StopRevision { revision: old });
        }
        if let Some(retired) = self.rollout.retired.take() {
            self.actions.push(Action::StopRevision { revision: retired });
        }
        let plan = desired.plan.clone();
        self.rollout.candidate = Some(desired.revision.clone());
        self.rollout.weight = 0;
        self.rollout.step = 0;
        self.rollout.failed_checks = 0;
        self.rollout.hold = None;
        self.rollout.last_checks.clear();
        self.rollout.deadline = Some(self.after(plan.progress_deadline));
        self.rollout.window_start = self.now;
        self.rollout.plan = Some(plan);
        let revision = desired.revision.clone();
        if self.rollout.stable.is_none() {
            self.enter(Phase::Initializing);
            self.record(
                Severity::Info,
                format!(
                    "Initializing {}: starting revision {}",
                    self.rollout.service, revision.name
                ),
            );
        } else {
            self.enter(Phase::Deploying);
            self.record(
                Severity::Info,
                format!(
                    "New revision detected, starting canary analysis of {} {}",
                    self.rollout.service, revision.name
                ),
            );
            self.route();
        }
        self.actions.push(Action::StartRevision {
            revision,
            role: Role::Candidate,
        });
    }

    fn advance(&mut self, observations: &Observations) {
        if let Health::Failed { reason } = &observations.candidate {
            let reason = format!("{} failed: {reason}", self.candidate_name());
            match self.rollout.phase {
                Phase::Initializing => return self.fail_initialization(reason),
                Phase::Deploying | Phase::Progressing => return self.rollback(reason),
                _ => {}
            }
        }
        if let Some(hold) = &self.rollout.hold {
            if self.now >= hold.until {
                let waited = hold.until.duration_since(hold.since);
                self.rollout.hold = None;
                self.record(Severity::Error, format!("Hold timed out after {waited:#}"));
                return self.rollback(format!("hold timed out after {waited:#}"));
            }
            return;
        }
        match self.rollout.phase {
            Phase::Initializing => self.initialize(&observations.candidate),
            Phase::Deploying => self.deploy(&observations.candidate),
            Phase::Progressing => self.progress(observations),
            Phase::Promoting => {
                let drain = self
                    .rollout
                    .plan
                    .as_ref()
                    .map_or(crate::Plan::DEFAULT_DRAIN, |p| p.drain);
                self.rollout.deadline = Some(self.after(drain));
                self.enter(Phase::Finalising);
            }
            Phase::Finalising => {
                if self.rollout.deadline.is_none_or(|d| self.now >= d) {
                    self.rollout.deadline = None;
                    let retired = self.rollout.retired.take();
                    self.enter(Phase::Succeeded);
                    self.route();
                    if let Some(retired) = retired {
                        self.actions.push(Action::StopRevision { revision: retired });
                    }
                    self.record(
                        Severity::Info,
                        "Canary analysis completed successfully, promotion finished",
                    );
                }
            }
            Phase::RollingBack => {
                self.enter(Phase::RolledBack);
                let stable = self
                    .rollout
                    .stable
                    .as_ref()
                    .map_or("?", |s| s.name.as_str())
                    .to_string();
                self.record(
                    Severity::Info,
                    format!(
                        "Rollback finished: all traffic on {stable}; {} left running for inspection",
                        self.candidate_name()
                    ),
                );
            }
            Phase::Pending | Phase::Failed | Phase::Succeeded | Phase::RolledBack => {}
        }
    }

    fn initialize(&mut self, health: &Health) {
        if *health == Health::Ready {
            let revision = self.rollout.candidate.take();
            self.rollout.stable = revision.clone();
            self.rollout.deadline = None;
            self.enter(Phase::Succeeded);
            if let Some(revision) = revision {
                self.actions.push(Action::SetRole {
                    revision: revision.clone(),
                    role: Role::Stable,
                });
                self.route();
                self.record(
                    Severity::Info,
                    format!("Initialization done! {} serves {}", revision.name, self.rollout.service),
                );
            }
        } else if self.rollout.deadline.is_some_and(|d| self.now >= d) {
            self.fail_initialization(format!("{} not ready in time", self.candidate_name()));
        }
    }

    fn fail_initialization(&mut self, reason: String) {
        self.rollout.deadline = None;
        self.enter(Phase::Failed);
        self.record(Severity::Error, format!("Progress deadline exceeded: {reason}"));
    }

    fn deploy(&mut self, health: &Health) {
        if *health == Health::Ready {
            let Some(first) = self.rollout.plan.as_ref().and_then(|p| p.steps.first().copied()) else {
                return self.promote();
            };
            self.rollout.deadline = None;
            self.rollout.step = 0;
            self.rollout.weight = first;
            self.rollout.window_start = self.now;
            self.rollout.step_started_at = self.now;
            self.rollout.metric_gaps = 0;
            if let Some(plan) = &self.rollout.plan {
                self.rollout.judge = JudgeState::new(&plan.judge);
            }
            self.enter(Phase::Progressing);
            self.record(
                Severity::Info,
                format!("Starting canary analysis for {}", self.rollout.service),
            );
            self.record(Severity::Info, format!("Advance canary weight {first}"));
            self.route();
        } else if self.rollout.deadline.is_some_and(|d| self.now >= d) {
            self.rollback(format!(
                "Progress deadline exceeded: {} not ready in time",
                self.candidate_name()
            ));
        }
    }

    fn progress(&mut self, observations: &Observations) {
        let Some(plan) = self.rollout.plan.clone() else { return };
        if plan.is_comparative() {
            self.progress_comparative(&plan, observations);
        } else {
            self.progress_threshold(&plan, observations);
        }
    }

    /// Flagger's loop: once per interval, first the failed-checks threshold, then the analysis of the interval.
    fn progress_threshold(&mut self, plan: &Plan, observations: &Observations) {
        if self.now < after(self.rollout.window_start, plan.interval) {
            return;
        }
        self.rollout.window_start = self.now;
        self.rollout.step_started_at = self.now;
        if self.rollout.failed_checks >= plan.threshold {
            let reason = format!("Failed checks threshold reached {}", self.rollout.failed_checks);
            self.record(Severity::Warning, reason.clone());
            return self.fail(plan, reason);
        }
        let window = observations.window.clone().unwrap_or_default();
        let verdict = with_custom(judge_thresholds(&plan.metrics, &window), plan, &observations.custom);
        self.rollout.last_checks = verdict.checks().to_vec();
        match verdict {
            Verdict::Inconclusive { reason } => {
                self.record(
                    Severity::Warning,
                    format!("Analysis inconclusive ({reason}): judging the interval again"),
                );
            }
            Verdict::Pass { .. } => self.next_step(plan),
            Verdict::Fail { .. } => {
                self.rollout.failed_checks += 1;
                self.record(
                    Severity::Warning,
                    format!("Halt advancement: {}", verdict.failure_summary()),
                );
            }
        }
    }

    /// The comparative judges: evidence every evaluation interval, a step every step interval, and a verdict on
    /// promotion at the end of the plan.
    fn progress_comparative(&mut self, plan: &Plan, observations: &Observations) {
        if self.now >= after(self.rollout.window_start, plan.evaluation_interval) {
            self.rollout.window_start = self.now;
            match observations.window.as_ref().filter(|w| w.complete) {
                None => {
                    self.rollout.metric_gaps += 1;
                    if self.rollout.metric_gaps == 1 {
                        self.record(
                            Severity::Warning,
                            "Metrics missing for an evaluation window: it is not counted",
                        );
                    }
                    if self.rollout.metric_gaps == MAX_METRIC_GAPS {
                        let summary = format!("Metrics unavailable for {MAX_METRIC_GAPS} evaluations in a row");
                        return self.hold(plan, HoldReason::MetricsUnavailable, summary);
                    }
                }
                Some(window) => {
                    self.rollout.metric_gaps = 0;
                    let custom = custom_checks(plan, &observations.custom);
                    if let Some(failed) = custom.iter().find(|c| !c.passed) {
                        // The user's own metrics are checked as Flagger checks them: failures count up to `threshold`.
                        self.rollout.failed_checks += 1;
                        self.record(Severity::Warning, format!("Halt advancement: {}", failed.message));
                        if self.rollout.failed_checks >= plan.threshold {
                            let reason = format!("Failed checks threshold reached {}", self.rollout.failed_checks);
                            return self.fail(plan, reason);
                        }
                    }
                    let verdict = self.rollout.judge.observe(&plan.judge, window);
                    if !verdict.checks().is_empty() || !custom.is_empty() {
                        self.rollout.last_checks = verdict.checks().iter().cloned().chain(custom).collect();
                    }
                    if let Verdict::Fail { .. } = verdict {
                        self.rollout.failed_checks += 1;
                        let summary = verdict.failure_summary();
                        self.record(Severity::Warning, format!("Halt advancement: {summary}"));
                        return self.fail(plan, summary);
                    }
                }
            }
        }
        if self.now < after(self.rollout.step_started_at, plan.interval) {
            return;
        }
        if self.rollout.step + 1 < plan.steps.len() {
            return self.next_step(plan);
        }
        match self.rollout.judge.conclude(&plan.judge) {
            Verdict::Pass { checks } => {
                self.rollout.last_checks = checks;
                self.record(
                    Severity::Info,
                    "Analysis conclusive: the candidate is not worse than stable",
                );
                self.promote();
            }
            Verdict::Fail { checks } => {
                let summary = checks
                    .iter()
                    .filter(|c| !c.passed)
                    .map(|c| c.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; ");
                self.rollout.last_checks = checks;
                self.fail(plan, format!("Analysis failed at the end of the plan: {summary}"));
            }
            Verdict::Inconclusive { reason } => {
                let summary = format!("Analysis inconclusive at the end of the plan: {reason}");
                match plan.on_inconclusive {
                    OnInconclusive::Hold => self.hold(
                        plan,
                        HoldReason::Inconclusive {
                            summary: summary.clone(),
                        },
                        summary,
                    ),
                    OnInconclusive::Promote => {
                        self.record(
                            Severity::Warning,
                            format!("{summary}; promoting as onInconclusive says"),
                        );
                        self.promote();
                    }
                    OnInconclusive::Rollback => self.rollback(summary),
                }
            }
        }
    }

    fn next_step(&mut self, plan: &Plan) {
        match plan.steps.get(self.rollout.step + 1) {
            Some(&next) => {
                self.rollout.step += 1;
                self.rollout.weight = next;
                self.rollout.step_started_at = self.now;
                self.record(Severity::Info, format!("Advance canary weight {next}"));
                self.route();
            }
            None => self.promote(),
        }
    }

    /// The analysis failed: roll back, or hold for a human under `onFailure: hold`.
    fn fail(&mut self, plan: &Plan, reason: String) {
        match plan.on_failure {
            OnFailure::Rollback => self.rollback(reason),
            OnFailure::Hold => self.hold(
                plan,
                HoldReason::FailedAnalysis {
                    summary: reason.clone(),
                },
                reason,
            ),
        }
    }

    fn hold(&mut self, plan: &Plan, reason: HoldReason, summary: String) {
        let until = self.after(plan.hold_timeout);
        self.rollout.hold = Some(Hold {
            reason,
            since: self.now,
            until,
            on_timeout: TimeoutAction::Rollback,
        });
        self.record(
            Severity::Error,
            format!("{summary}: holding for a human; rolls back at {until} unless resumed, promoted or aborted"),
        );
    }

    fn promote(&mut self) {
        let (Some(candidate), Some(old)) = (self.rollout.candidate.take(), self.rollout.stable.take()) else {
            return;
        };
        self.rollout.hold = None;
        self.rollout.deadline = None;
        self.rollout.weight = 0;
        self.rollout.stable = Some(candidate.clone());
        self.rollout.retired = Some(old);
        self.enter(Phase::Promoting);
        self.record(
            Severity::Info,
            format!("Promoting {}: routing all traffic to it", candidate.name),
        );
        self.actions.push(Action::SetRole {
            revision: candidate,
            role: Role::Stable,
        });
        self.route();
    }

    fn rollback(&mut self, reason: String) {
        let stable: RevisionRef = match &self.rollout.stable {
            Some(s) => s.clone(),
            None => return,
        };
        self.rollout.hold = None;
        self.rollout.deadline = None;
        self.rollout.weight = 0;
        self.enter(Phase::RollingBack);
        self.record(
            Severity::Error,
            format!(
                "Canary failed! Rolling back {} to {}: {reason}",
                self.rollout.service, stable.name
            ),
        );
        self.route();
    }
}

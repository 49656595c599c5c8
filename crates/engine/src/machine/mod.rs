//! The phase machine: one decision per call.

mod gates;
mod stages;

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use sluice_analysis::{CheckOutcome, JudgeState, Verdict, judge_thresholds};
use sluice_spec::{OnFailure, OnInconclusive, RevisionRef, WebhookKind};

use crate::plan::Exposure;
use crate::{
    Action, Command, CustomReading, Desired, Event, Health, Hold, HoldReason, Observations, Phase, Plan, Role, Rollout,
    RouteMode, Severity, TimeoutAction,
};

/// Decides what happens next. Pure: the result depends only on the arguments.
pub fn step(rollout: Rollout, observations: &Observations, now: Timestamp) -> (Rollout, Vec<Action>) {
    let before = rollout.clone();
    let mut decision = Decision {
        rollout,
        actions: Vec::new(),
        now,
        retry: false,
    };
    for command in &observations.commands {
        decision.command(*command);
    }
    if let Some(desired) = &observations.desired {
        decision.reconcile(desired);
    }
    // A phase entered by a command or a new revision settles first: its actions must run before anything is
    // judged, and this step's observations describe the previous candidate. So does a candidate that an approved
    // confirm-rollout gate has only just asked to start: it was observed not running.
    let started = gates::waits_to_start(&before) && !gates::waits_to_start(&decision.rollout);
    let settled = decision.rollout.phase == before.phase && decision.rollout.candidate == before.candidate && !started;
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
    if rollout.can_switch_back()
        && let Some(old) = &rollout.retired
    {
        // The old revision must be ready to take the traffic back until the scale-down delay ends.
        actions.push(Action::StartRevision {
            revision: old.clone(),
            role: Role::Stable,
        });
    }
    if let Some(candidate) = &rollout.candidate {
        let runs = matches!(
            rollout.phase,
            Phase::Initializing
                | Phase::Deploying
                | Phase::Isolation
                | Phase::Shadow
                | Phase::Progressing
                | Phase::RollingBack
        );
        if runs && !gates::waits_to_start(rollout) {
            actions.push(Action::StartRevision {
                revision: candidate.clone(),
                role: Role::Candidate,
            });
        }
        if rollout.phase == Phase::Shadow
            && let Some(stable) = &rollout.stable
        {
            actions.push(Action::StartShadow {
                stable: stable.clone(),
                candidate: candidate.clone(),
            });
        }
    }
    actions.extend(route_of(rollout));
    actions
}

/// The route a state describes: who gets users' requests, and how the candidate is reached.
fn route_of(rollout: &Rollout) -> Option<Action> {
    let stable = rollout.stable.clone()?;
    let exposure = rollout.exposure();
    let mode = match rollout.phase {
        Phase::Shadow => RouteMode::Mirrored,
        Phase::Progressing => match exposure {
            Some(Exposure::AbTest) => RouteMode::Matched,
            Some(Exposure::BlueGreen { .. }) => RouteMode::Preview,
            _ => RouteMode::Weighted,
        },
        _ => RouteMode::Weighted,
    };
    let candidate = if rollout.weight > 0 || mode != RouteMode::Weighted {
        rollout.candidate.clone()
    } else {
        None
    };
    Some(Action::SetRoute {
        stable,
        candidate,
        weight: rollout.weight,
        draining: rollout.retired.clone(),
        mode,
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
    /// An operator asked to start the rolled-back candidate's rollout again.
    retry: bool,
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
        if self.rollout.phase == Phase::Shadow
            && phase != Phase::Shadow
            && let Some(stable) = &self.rollout.stable
        {
            self.actions.push(Action::StopShadow { stable: stable.clone() });
        }
        self.rollout.phase = phase;
        self.rollout.phase_since = self.now;
    }

    fn route(&mut self) {
        self.actions.extend(route_of(&self.rollout));
    }

    fn after(&self, duration: Duration) -> Timestamp {
        after(self.now, duration)
    }

    /// The revision under analysis, by name: the candidate, or after a blue/green switch the new stable.
    fn analysed_name(&self) -> String {
        self.rollout
            .under_analysis()
            .map_or_else(|| "?".into(), |r| r.name.clone())
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
                        HoldReason::Operator | HoldReason::Inconclusive { .. } | HoldReason::Gate { .. } => {}
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
            Command::Approve => {
                if let Some(Hold {
                    reason: HoldReason::Gate { kind },
                    ..
                }) = self.rollout.hold
                {
                    self.open_gate(kind, "approved by an operator".into());
                }
            }
            Command::Retry => self.retry = true,
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
        if is_candidate && !(self.retry && r.phase == Phase::RolledBack) {
            // A failed (Failed, RolledBack) revision is not retried just because it is still the desired one.
            return;
        }
        self.start_rollout(desired);
    }

    fn start_rollout(&mut self, desired: &Desired) {
        let superseded = self.rollout.candidate.take();
        if let Some(old) = superseded {
            if self.retry {
                self.record(
                    Severity::Info,
                    format!("Retry requested by an operator: restarting the rollout of {}", old.name),
                );
            } else if self.rollout.phase.is_active() || self.rollout.phase == Phase::Initializing {
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
        if self.rollout.phase == Phase::Shadow {
            self.enter(Phase::Deploying);
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
            if self.gates(WebhookKind::ConfirmRollout) {
                self.rollout.deadline = None;
                return self.gate(WebhookKind::ConfirmRollout);
            }
        }
        self.actions.push(Action::StartRevision {
            revision,
            role: Role::Candidate,
        });
    }

    fn advance(&mut self, observations: &Observations) {
        if let Health::Failed { reason } = &observations.candidate
            && !gates::waits_to_start(&self.rollout)
        {
            let reason = format!("{} failed: {reason}", self.analysed_name());
            match self.rollout.phase {
                Phase::Initializing => return self.fail_initialization(reason),
                Phase::Deploying | Phase::Isolation | Phase::Shadow | Phase::Progressing => {
                    return self.rollback(reason);
                }
                Phase::Finalising if self.rollout.can_switch_back() => return self.rollback(reason),
                _ => {}
            }
        }
        if self.answers(&observations.hooks) {
            return;
        }
        if let Some(hold) = &self.rollout.hold {
            if self.now >= hold.until {
                let waited = hold.until.duration_since(hold.since);
                let what = match hold.reason {
                    HoldReason::Gate { kind } => format!("the {kind} gate stayed closed for {waited:#}"),
                    _ => format!("hold timed out after {waited:#}"),
                };
                self.rollout.hold = None;
                self.record(Severity::Error, format!("Hold timed out after {waited:#}: {what}"));
                return self.rollback(what);
            }
            return;
        }
        match self.rollout.phase {
            Phase::Initializing => self.initialize(&observations.candidate),
            Phase::Deploying => self.deploy(&observations.candidate),
            Phase::Isolation => self.isolate(observations),
            Phase::Shadow => self.shadow(observations),
            Phase::Progressing => self.progress(observations),
            Phase::Promoting => {
                let linger = match self.rollout.exposure() {
                    Some(Exposure::BlueGreen { scale_down_delay, .. }) => *scale_down_delay,
                    _ => self
                        .rollout
                        .plan
                        .as_ref()
                        .map_or(crate::Plan::DEFAULT_DRAIN, |p| p.drain),
                };
                self.rollout.deadline = Some(self.after(linger));
                self.rollout.window_start = self.now;
                self.enter(Phase::Finalising);
            }
            Phase::Finalising => {
                if self.rollout.can_switch_back() && self.rollout.deadline.is_some_and(|d| self.now < d) {
                    return self.watch_after_switch(observations);
                }
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
                    self.notify_hooks(WebhookKind::PostRollout);
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
                self.notify_hooks(WebhookKind::PostRollout);
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
            self.rollout.deadline = None;
            self.after_ready();
        } else if self.rollout.deadline.is_some_and(|d| self.now >= d) {
            self.rollback(format!(
                "Progress deadline exceeded: {} not ready in time",
                self.candidate_name()
            ));
        }
    }

    fn progress(&mut self, observations: &Observations) {
        let Some(plan) = self.rollout.plan.clone() else { return };
        if let Exposure::BlueGreen { .. } = plan.release.exposure {
            self.preview(&plan, observations);
        } else if plan.is_comparative() {
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
            Verdict::Pass { .. } => self.advance_step(plan),
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
            return self.advance_step(plan);
        }
        match self.rollout.judge.conclude(&plan.judge) {
            Verdict::Pass { checks } => {
                self.rollout.last_checks = checks;
                self.record(
                    Severity::Info,
                    "Analysis conclusive: the candidate is not worse than stable",
                );
                self.try_promote();
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
                        self.try_promote();
                    }
                    OnInconclusive::Rollback => self.rollback(summary),
                }
            }
        }
    }

    /// Users start reaching the candidate, as the strategy says.
    fn release(&mut self) {
        let Some(plan) = self.rollout.plan.clone() else { return };
        self.rollout.step = 0;
        self.rollout.window_start = self.now;
        self.rollout.step_started_at = self.now;
        self.rollout.metric_gaps = 0;
        self.rollout.judge = JudgeState::new(&plan.judge);
        let candidate = self.candidate_name();
        match plan.release.exposure {
            Exposure::BlueGreen { .. } => {
                self.rollout.weight = 0;
                self.enter(Phase::Progressing);
                self.record(
                    Severity::Info,
                    format!("Preview of {candidate} ready: checking it before switching all traffic"),
                );
                self.route();
            }
            Exposure::Canary | Exposure::AbTest => {
                let Some(first) = plan.steps.first().copied() else {
                    return self.try_promote();
                };
                self.rollout.weight = first;
                self.enter(Phase::Progressing);
                self.record(
                    Severity::Info,
                    format!("Starting canary analysis for {}", self.rollout.service),
                );
                if plan.release.exposure == Exposure::AbTest {
                    self.record(
                        Severity::Info,
                        format!(
                            "Advance A/B test iteration 1/{}: only matching requests reach {candidate}",
                            plan.steps.len()
                        ),
                    );
                } else {
                    self.record(Severity::Info, format!("Advance canary weight {first}"));
                }
                self.route();
            }
        }
    }

    /// The step interval passed: the next step, behind the traffic-increase gate when one is configured.
    fn advance_step(&mut self, plan: &Plan) {
        let increases = plan.release.exposure == Exposure::Canary && self.rollout.step + 1 < plan.steps.len();
        if increases && self.gates(WebhookKind::ConfirmTrafficIncrease) {
            return self.gate(WebhookKind::ConfirmTrafficIncrease);
        }
        self.next_step(plan);
    }

    fn next_step(&mut self, plan: &Plan) {
        match plan.steps.get(self.rollout.step + 1) {
            Some(&next) => {
                self.rollout.step += 1;
                self.rollout.weight = next;
                self.rollout.step_started_at = self.now;
                if plan.release.exposure == Exposure::AbTest {
                    self.record(
                        Severity::Info,
                        format!(
                            "Advance A/B test iteration {}/{}",
                            self.rollout.step + 1,
                            plan.steps.len()
                        ),
                    );
                } else {
                    self.record(Severity::Info, format!("Advance canary weight {next}"));
                }
                self.route();
            }
            None => self.try_promote(),
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
        self.rollout.previous = Some(old.clone());
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
        if self.rollout.can_switch_back() {
            self.switch_back();
        }
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

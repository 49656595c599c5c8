//! The persisted state of a service's rollout.

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sluice_analysis::{CheckOutcome, JudgeState};
use sluice_spec::{RevisionRef, WebhookKind};

use crate::plan::Exposure;
use crate::{CheckStage, Plan};

/// Where a rollout stands. Exactly one at a time, persisted after every decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Nothing applied yet.
    Pending,
    /// The first revision of the service is starting; it becomes stable without analysis.
    Initializing,
    /// The first revision never became ready; the next applied revision starts over.
    Failed,
    /// The candidate is starting beside the stable revision, with no user traffic.
    Deploying,
    /// Checks run against the candidate alone (smoke, load test, pre-rollout webhooks); still no user traffic.
    Isolation,
    /// A share of user requests is copied to the candidate and its answers compared; users get stable's.
    Shadow,
    /// The candidate serves users (a growing share, matching requests, or its blue/green preview) while it is
    /// judged.
    Progressing,
    /// All traffic is being routed to the candidate, which becomes stable.
    Promoting,
    /// The new stable revision serves everything; the previous one drains before it stops (or, blue/green, stays
    /// ready to take the traffic back for the scale-down delay).
    Finalising,
    /// The last rollout was promoted; one revision serves all traffic.
    Succeeded,
    /// All traffic is being routed back to the stable revision.
    RollingBack,
    /// All traffic is on the stable revision; the failed candidate is left running for inspection.
    RolledBack,
}

impl Phase {
    /// True while a rollout is under way (a candidate exists and is neither promoted nor rolled back).
    pub fn is_active(self) -> bool {
        matches!(
            self,
            Phase::Deploying
                | Phase::Isolation
                | Phase::Shadow
                | Phase::Progressing
                | Phase::Promoting
                | Phase::RollingBack
        )
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Why a rollout is held.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum HoldReason {
    /// An operator paused it.
    Operator,
    /// The analysis failed and `onFailure: hold` asked for a human.
    FailedAnalysis { summary: String },
    /// The plan ended without evidence either way and `onInconclusive: hold` asked for a human.
    Inconclusive { summary: String },
    /// The metrics could not be read for too many evaluations in a row.
    MetricsUnavailable,
    /// A confirm-* gate: its webhooks are asked every evaluation until they answer 2xx or someone approves.
    Gate { kind: WebhookKind },
}

/// What happens when a hold reaches its timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TimeoutAction {
    /// Roll the candidate back.
    Rollback,
}

/// A pause of the rollout. Every hold ends: at `until` its action is taken and an alert raised.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hold {
    /// Why it is held.
    pub reason: HoldReason,
    /// When the hold began.
    pub since: Timestamp,
    /// When the hold times out.
    pub until: Timestamp,
    /// What happens then.
    pub on_timeout: TimeoutAction,
}

/// The state of one service's rollout: everything the engine needs to continue after a restart.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    /// The service's name.
    pub service: String,
    /// The current phase.
    pub phase: Phase,
    /// The revision serving users, once there is one.
    pub stable: Option<RevisionRef>,
    /// The revision being released (or the rolled-back one, left running for inspection).
    pub candidate: Option<RevisionRef>,
    /// A previous stable revision draining after a promotion.
    pub retired: Option<RevisionRef>,
    /// The plan of the current rollout.
    pub plan: Option<Plan>,
    /// The candidate's share of traffic, in percent.
    pub weight: u8,
    /// Index of the current step in `plan.steps` while progressing.
    pub step: usize,
    /// Failed checks counted in this rollout (cumulative, as in Flagger).
    pub failed_checks: u32,
    /// When the current phase began.
    pub phase_since: Timestamp,
    /// Start of the analysis window being collected; the controller reports traffic since then.
    pub window_start: Timestamp,
    /// When the current step began (its interval is measured from here).
    #[serde(default = "epoch")]
    pub step_started_at: Timestamp,
    /// What the judge has accumulated in this rollout.
    #[serde(default)]
    pub judge: JudgeState,
    /// Evaluations in a row whose metrics could not be read.
    #[serde(default)]
    pub metric_gaps: u32,
    /// A deadline for the current phase: readiness in Initializing/Deploying, draining in Finalising.
    pub deadline: Option<Timestamp>,
    /// The hold, if the rollout is paused.
    pub hold: Option<Hold>,
    /// The last analysis's checks, for `sluice status`.
    pub last_checks: Vec<CheckOutcome>,
    /// When the webhooks due at every evaluation (gates, rollout, rollback) were last asked.
    #[serde(default = "epoch")]
    pub hooks_asked_at: Timestamp,
    /// The stable revision before the last promotion, which `sluice undo` goes back to.
    #[serde(default)]
    pub previous: Option<RevisionRef>,
    /// Bumped at every decision, so stored states and route tables can be ordered.
    pub generation: u64,
}

impl Rollout {
    /// A service with nothing applied yet.
    pub fn new(service: impl Into<String>) -> Self {
        Rollout {
            service: service.into(),
            phase: Phase::Pending,
            stable: None,
            candidate: None,
            retired: None,
            plan: None,
            weight: 0,
            step: 0,
            failed_checks: 0,
            phase_since: Timestamp::UNIX_EPOCH,
            window_start: Timestamp::UNIX_EPOCH,
            step_started_at: Timestamp::UNIX_EPOCH,
            judge: JudgeState::Threshold,
            metric_gaps: 0,
            deadline: None,
            hold: None,
            last_checks: Vec::new(),
            hooks_asked_at: Timestamp::UNIX_EPOCH,
            previous: None,
            generation: 0,
        }
    }

    /// Whether the next step will evaluate the analysis, so the controller knows to read the user's own metrics.
    pub fn evaluation_due(&self, now: Timestamp) -> bool {
        let Some(plan) = &self.plan else { return false };
        let period = jiff::SignedDuration::try_from(plan.evaluation_period()).unwrap_or(jiff::SignedDuration::MAX);
        self.phase == Phase::Progressing
            && self.hold.is_none()
            && self.window_start.checked_add(period).is_ok_and(|due| now >= due)
    }

    /// Which checks the controller must run now and report in [`crate::Observations::checks`].
    pub fn checks_due(&self) -> Option<CheckStage> {
        if self.hold.is_some() {
            return None;
        }
        match (self.phase, self.exposure()) {
            (Phase::Isolation, _) => Some(CheckStage::Isolation),
            (
                Phase::Progressing,
                Some(Exposure::BlueGreen {
                    pre_promotion: Some(_), ..
                }),
            ) => Some(CheckStage::PrePromotion),
            _ => None,
        }
    }

    /// The webhook kinds the controller must call now and report in [`crate::Observations::hooks`]: the gate
    /// the rollout waits at, and while users are served the rollout and rollback hooks, once per evaluation.
    pub fn hooks_due(&self, now: Timestamp) -> Vec<WebhookKind> {
        let Some(plan) = &self.plan else { return Vec::new() };
        let period = jiff::SignedDuration::try_from(plan.evaluation_interval).unwrap_or(jiff::SignedDuration::MAX);
        if self.hooks_asked_at.checked_add(period).is_ok_and(|due| now < due) {
            return Vec::new();
        }
        let kinds = match (&self.hold, self.phase) {
            (
                Some(Hold {
                    reason: HoldReason::Gate { kind },
                    ..
                }),
                _,
            ) => vec![*kind],
            (Some(_), _) => Vec::new(),
            (None, Phase::Progressing) => vec![WebhookKind::Rollout, WebhookKind::Rollback],
            (None, Phase::Isolation | Phase::Shadow) => vec![WebhookKind::Rollback],
            (None, Phase::Finalising) if self.can_switch_back() => vec![WebhookKind::Rollback],
            (None, _) => Vec::new(),
        };
        kinds.into_iter().filter(|kind| plan.release.has_hook(*kind)).collect()
    }

    /// The revision whose health decides the rollout now: the candidate under analysis, or after a blue/green
    /// switch the new stable revision, until the old one is scaled down.
    pub fn under_analysis(&self) -> Option<&RevisionRef> {
        match self.phase {
            Phase::Initializing | Phase::Deploying | Phase::Isolation | Phase::Shadow | Phase::Progressing => {
                self.candidate.as_ref()
            }
            Phase::Finalising if self.can_switch_back() => self.stable.as_ref(),
            _ => None,
        }
    }

    /// The (baseline, candidate) revisions whose traffic is compared now, if any is.
    pub fn analysed_pair(&self) -> Option<(&RevisionRef, &RevisionRef)> {
        match self.phase {
            Phase::Progressing if !matches!(self.exposure(), Some(Exposure::BlueGreen { .. })) => {
                Some((self.stable.as_ref()?, self.candidate.as_ref()?))
            }
            Phase::Finalising if self.can_switch_back() => Some((self.retired.as_ref()?, self.stable.as_ref()?)),
            _ => None,
        }
    }

    /// Whether a blue/green switch can still be undone at once: the old revision still runs.
    pub fn can_switch_back(&self) -> bool {
        self.phase == Phase::Finalising
            && self.retired.is_some()
            && matches!(self.exposure(), Some(Exposure::BlueGreen { .. }))
    }

    pub(crate) fn exposure(&self) -> Option<&Exposure> {
        self.plan.as_ref().map(|plan| &plan.release.exposure)
    }

    /// The phase as a user reads it: `Paused` while held, the phase otherwise.
    pub fn display_phase(&self) -> String {
        let Some(hold) = &self.hold else {
            return self.phase.to_string();
        };
        let why = match hold.reason {
            HoldReason::Operator => "by an operator".to_owned(),
            HoldReason::FailedAnalysis { .. } => "failed analysis".to_owned(),
            HoldReason::Inconclusive { .. } => "inconclusive analysis".to_owned(),
            HoldReason::MetricsUnavailable => "metrics unavailable".to_owned(),
            HoldReason::Gate { kind } => format!("waiting at the {kind} gate"),
        };
        format!("Paused ({}, {why})", self.phase)
    }
}

fn epoch() -> Timestamp {
    Timestamp::UNIX_EPOCH
}

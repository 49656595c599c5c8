//! What the controller tells the engine about the world.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sluice_analysis::Window;
use sluice_spec::{RevisionRef, WebhookKind};

use crate::{Command, Plan};

/// The health of a revision's instances, as the platform reports it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum Health {
    /// Not observed (the controller had no report this time).
    #[default]
    Unknown,
    /// Instances are starting or not yet answering their readiness probe.
    Starting,
    /// Every instance answers its readiness probe.
    Ready,
    /// An instance exited or keeps crashing; the reason is for humans.
    Failed { reason: String },
}

/// The revision the user wants, with the plan to release it by.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Desired {
    /// The revision the latest applied spec describes.
    pub revision: RevisionRef,
    /// How to release it.
    pub plan: Plan,
}

/// The value of one of the user's own metrics at an evaluation, or why it could not be read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomReading {
    /// The metric's name, as in the spec.
    pub name: String,
    /// Its value, or what went wrong reading it (never a stand-in zero).
    pub value: Result<f64, String>,
}

/// Which set of checks a result belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CheckStage {
    /// The isolation stage: smoke checks, load test and pre-rollout webhooks against the candidate alone.
    Isolation,
    /// Blue/green's checks against the preview address before the switch.
    PrePromotion,
}

/// The outcome of the checks a phase asked for ([`crate::Rollout::checks_due`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckResult {
    /// Which checks ran.
    pub stage: CheckStage,
    /// Whether every check passed.
    pub passed: bool,
    /// One line for the events: what failed, with its numbers, or what passed.
    pub summary: String,
}

/// Where the shadow stage's comparison stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShadowTally {
    /// Mirrored requests answered by all three of primary, secondary and candidate, and compared.
    pub compared: u64,
    /// Of those, requests with a difference beyond the stable-vs-stable noise.
    pub differing: u64,
    /// The fields behind the differences, for the events.
    pub summary: String,
}

/// The answer of one webhook call ([`crate::Rollout::hooks_due`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HookResult {
    /// The webhook's name.
    pub name: String,
    /// Its kind.
    pub kind: WebhookKind,
    /// Whether it answered 2xx (after its retries).
    pub passed: bool,
    /// What it answered, for humans.
    pub detail: String,
    /// When the call went out: the next one is due an evaluation after this, however late the answer came.
    pub asked_at: Timestamp,
}

/// Everything the engine is told in one step.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observations {
    /// The latest applied spec's revision and plan.
    pub desired: Option<Desired>,
    /// The candidate's health.
    pub candidate: Health,
    /// Both revisions' traffic since [`crate::Rollout::window_start`].
    pub window: Option<Window>,
    /// Operator commands, in the order they arrived.
    pub commands: Vec<Command>,
    /// The user's own metrics, read when an evaluation is due ([`crate::Rollout::evaluation_due`]).
    pub custom: Vec<CustomReading>,
    /// The result of the checks the phase asked for, once they finished.
    pub checks: Option<CheckResult>,
    /// The shadow comparison so far, while in the shadow stage.
    pub shadow: Option<ShadowTally>,
    /// The answers of the webhooks that were due.
    pub hooks: Vec<HookResult>,
}

impl Observations {
    /// Observations carrying only the desired revision.
    pub fn desired(desired: Desired) -> Self {
        Observations {
            desired: Some(desired),
            ..Default::default()
        }
    }
}

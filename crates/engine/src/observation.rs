//! What the controller tells the engine about the world.

use serde::{Deserialize, Serialize};
use sluice_analysis::Window;
use sluice_spec::RevisionRef;

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

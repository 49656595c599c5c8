//! Operator commands.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::{HoldReason, Phase, Rollout};

/// What an operator can ask of a rollout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Command {
    /// Hold the rollout at its current weight.
    Pause,
    /// End a hold and continue the analysis.
    Resume,
    /// Skip the rest of the analysis and promote the candidate.
    Promote,
    /// Roll back now.
    Abort,
    /// Open the gate the rollout waits at, as a 2xx from its webhook would.
    Approve,
    /// Start the rollout of a rolled-back candidate again.
    Retry,
}

/// Why a command cannot be carried out in the rollout's current state.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("cannot {command:?} the rollout of {service} in phase {phase}: {why}")]
pub struct CommandRejected {
    /// The service.
    pub service: String,
    /// The command.
    pub command: Command,
    /// The phase the rollout was in.
    pub phase: Phase,
    /// What would have to be true.
    pub why: &'static str,
}

impl Rollout {
    /// Checks that `command` makes sense now, so the API can refuse it at once instead of queueing a no-op.
    pub fn accepts(&self, command: Command) -> Result<(), CommandRejected> {
        let reject = |why| {
            Err(CommandRejected {
                service: self.service.clone(),
                command,
                phase: self.phase,
                why,
            })
        };
        let in_analysis = matches!(
            self.phase,
            Phase::Deploying | Phase::Isolation | Phase::Shadow | Phase::Progressing
        );
        let gated = self
            .hold
            .as_ref()
            .is_some_and(|hold| matches!(hold.reason, HoldReason::Gate { .. }));
        match command {
            Command::Pause if !in_analysis => reject("only a rollout under analysis can be paused"),
            Command::Pause if self.hold.is_some() => reject("it is already held"),
            Command::Resume if self.hold.is_none() => reject("it is not held"),
            Command::Resume if gated => reject("it waits at a gate: approve it instead"),
            Command::Promote if !in_analysis => reject("only a rollout under analysis can be promoted"),
            Command::Abort if !in_analysis && !self.can_switch_back() => reject(
                "only a rollout under analysis, or a blue/green switch within its scale-down delay, can be aborted",
            ),
            Command::Approve if !gated => reject("it does not wait at a gate"),
            Command::Retry if self.phase != Phase::RolledBack => reject("only a rolled-back rollout can be retried"),
            _ => Ok(()),
        }
    }
}

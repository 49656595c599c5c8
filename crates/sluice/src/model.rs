//! The JSON documents of the daemon's HTTP API, shared by the server and the command-line client.

use serde::{Deserialize, Serialize};
use sluice_analysis::CheckOutcome;
use std::collections::BTreeMap;

use sluice_checks::CheckReport;
use sluice_engine::{Hold, Phase, Rollout};
use sluice_notify::HookOutcome;
use sluice_shadow::DiffReport;
use sluice_spec::RevisionRef;
use sluice_store::StoredEvent;

/// A service and its rollout, as `GET /v1/services/{name}` serves it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    /// The service.
    pub name: String,
    /// The revision the latest applied spec describes.
    pub desired: RevisionRef,
    /// The phase.
    pub phase: Phase,
    /// The phase as a user reads it (`Paused (Progressing, by an operator)`).
    pub display_phase: String,
    /// The revision serving users.
    pub stable: Option<RevisionRef>,
    /// The revision being released or, after a rollback, left running for inspection.
    pub candidate: Option<RevisionRef>,
    /// The candidate's share of traffic in percent.
    pub weight: u8,
    /// The last weight before promotion.
    pub max_weight: u8,
    /// Failed checks so far and the threshold that fails the rollout.
    pub failed_checks: u32,
    /// The threshold of failed checks.
    pub threshold: u32,
    /// The hold, when paused.
    pub hold: Option<Hold>,
    /// The checks of the last analysis.
    pub last_checks: Vec<CheckOutcome>,
    /// The most recent events, oldest first.
    pub events: Vec<StoredEvent>,
    /// The running instances of the stable and candidate revisions (a rolled-back candidate's included, for
    /// inspection).
    pub instances: Vec<InstanceView>,
    /// The latest reports of the stages before users: isolation checks, the preview's checks, the shadow diff.
    pub reports: Reports,
}

/// The latest report of each stage that ran.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reports {
    /// The isolation stage: smoke checks, load test, pre-rollout webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<StageReport>,
    /// Blue/green's checks against the preview.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_promotion: Option<StageReport>,
    /// The shadow stage's comparison of answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<DiffReport>,
}

/// What a stage's checks found.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StageReport {
    /// The smoke checks and load test, if the stage has any.
    #[serde(default)]
    pub checks: Option<CheckReport>,
    /// The webhooks called (pre-rollout).
    #[serde(default)]
    pub webhooks: Vec<HookOutcome>,
}

impl Reports {
    /// The reports the store keeps, by kind; one that no longer parses is left out rather than failing the status.
    pub fn from_stored(mut stored: BTreeMap<String, serde_json::Value>) -> Self {
        fn take<T: for<'de> Deserialize<'de>>(
            stored: &mut BTreeMap<String, serde_json::Value>,
            kind: &str,
        ) -> Option<T> {
            stored.remove(kind).and_then(|value| serde_json::from_value(value).ok())
        }
        Reports {
            isolation: take(&mut stored, "isolation"),
            pre_promotion: take(&mut stored, "prePromotion"),
            shadow: take(&mut stored, "shadow"),
        }
    }
}

/// One running instance, where to reach it and where its log is.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceView {
    /// Its revision.
    pub revision: String,
    /// Its position in the revision.
    pub index: u32,
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// Its process.
    pub pid: u32,
    /// Its stdout and stderr.
    pub log: std::path::PathBuf,
}

impl ServiceStatus {
    /// Builds the status document from the stored rollout.
    pub fn new(
        desired: RevisionRef,
        rollout: &Rollout,
        events: Vec<StoredEvent>,
        instances: Vec<InstanceView>,
        reports: BTreeMap<String, serde_json::Value>,
    ) -> Self {
        let plan = rollout.plan.as_ref();
        ServiceStatus {
            name: rollout.service.clone(),
            desired,
            phase: rollout.phase,
            display_phase: rollout.display_phase(),
            stable: rollout.stable.clone(),
            candidate: rollout.candidate.clone(),
            weight: rollout.weight,
            max_weight: plan.map_or(0, |p| p.max_weight()),
            failed_checks: rollout.failed_checks,
            threshold: plan.map_or(0, |p| p.threshold),
            hold: rollout.hold.clone(),
            last_checks: rollout.last_checks.clone(),
            events,
            instances,
            reports: Reports::from_stored(reports),
        }
    }

    /// How the rollout of `revision` ended, if it has.
    pub fn outcome_for(&self, revision: &RevisionRef) -> Option<Outcome> {
        let is_candidate = self.candidate.as_ref() == Some(revision);
        let is_stable = self.stable.as_ref() == Some(revision);
        // A gate opens on its own when its webhook answers 2xx; only the other holds wait for a human.
        let waits_for_human = self
            .hold
            .as_ref()
            .is_some_and(|hold| !matches!(hold.reason, sluice_engine::HoldReason::Gate { .. }));
        if waits_for_human && is_candidate {
            return Some(Outcome::Held);
        }
        match self.phase {
            Phase::Succeeded if is_stable => Some(Outcome::Promoted),
            Phase::RolledBack | Phase::Failed if is_candidate => Some(Outcome::RolledBack),
            _ if !is_candidate && !is_stable && self.desired != *revision => Some(Outcome::Superseded),
            _ => None,
        }
    }
}

/// How a rollout ended, for `apply --wait` and `status --watch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The revision serves all traffic.
    Promoted,
    /// The revision was rolled back (or never became ready).
    RolledBack,
    /// The rollout waits for a human.
    Held,
    /// Another revision was applied meanwhile.
    Superseded,
}

impl Outcome {
    /// The exit code pipelines gate on.
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Promoted => 0,
            Outcome::RolledBack => 2,
            Outcome::Held => 3,
            Outcome::Superseded => 5,
        }
    }
}

/// A service in `GET /v1/services`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSummary {
    /// The service.
    pub name: String,
    /// The phase as a user reads it.
    pub phase: String,
    /// The stable revision's name.
    pub stable: Option<String>,
    /// The candidate revision's name.
    pub candidate: Option<String>,
    /// The candidate's weight.
    pub weight: u8,
}

/// The answer to `POST /v1/services`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    /// The service.
    pub service: String,
    /// The revision the spec describes.
    pub revision: RevisionRef,
    /// Whether this revision is new (a rollout starts) or already known (nothing changes).
    pub new_revision: bool,
}

/// An error answer: a message, and for a rejected spec every field error.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// What went wrong.
    pub error: String,
    /// Each problem of a rejected spec, `path: message`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

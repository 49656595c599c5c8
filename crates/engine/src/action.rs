//! What the engine asks the controller to do. Every action is idempotent.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sluice_spec::{RevisionRef, WebhookKind};

/// The part a revision plays, which decides how its platform treats a crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Role {
    /// Serves users: crashed instances are restarted.
    Stable,
    /// Under analysis: a crash is reported, not hidden.
    Candidate,
}

/// How serious an event is. `Error` events are alerts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Severity {
    /// Progress.
    Info,
    /// Something to look at; the rollout goes on.
    Warning,
    /// The rollout failed or needs a human: raise an alert.
    Error,
}

/// One line of a rollout's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// When the engine decided it.
    pub at: Timestamp,
    /// How serious it is.
    pub severity: Severity,
    /// Flagger's wording where Flagger has one.
    pub message: String,
}

/// How the candidate in a route is reached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RouteMode {
    /// The candidate gets `weight` percent of requests.
    #[default]
    Weighted,
    /// The candidate gets only requests matching the A/B test's rules.
    Matched,
    /// Users stay on stable; the shadow stage's share of requests is copied to the comparison listener.
    Mirrored,
    /// Users stay on stable; the candidate answers on the blue/green preview address.
    Preview,
}

/// A change to bring about in the world.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum Action {
    /// Run the revision's instances (no-op when they run).
    StartRevision { revision: RevisionRef, role: Role },
    /// Treat a running revision as playing `role` from now on.
    SetRole { revision: RevisionRef, role: Role },
    /// Route `weight` percent of traffic to `candidate` and the rest to `stable`. `draining` stays in the
    /// table with no new traffic so its in-flight requests finish.
    SetRoute {
        stable: RevisionRef,
        candidate: Option<RevisionRef>,
        weight: u8,
        draining: Option<RevisionRef>,
        #[serde(default)]
        mode: RouteMode,
    },
    /// Start comparing mirrored traffic: a second stable instance and the comparison listener (no-op when they run).
    StartShadow {
        stable: RevisionRef,
        candidate: RevisionRef,
    },
    /// Stop the shadow stage's second stable instance and comparison listener (no-op when stopped).
    StopShadow { stable: RevisionRef },
    /// Call the webhooks of a kind whose answer changes nothing (post-rollout), without waiting for them.
    NotifyWebhooks { kind: WebhookKind },
    /// Stop the revision's instances gracefully (no-op when they are stopped).
    StopRevision { revision: RevisionRef },
    /// Append to the rollout's history; `Error` events also raise an alert.
    Record(Event),
}

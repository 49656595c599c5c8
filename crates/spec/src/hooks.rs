//! What Sluice tells the outside world: webhooks (Flagger's eight kinds, signed) and notifications.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::syntax::{HTTP_URL_PATTERN, NAME_MAX_LENGTH, NAME_PATTERN};

/// When a webhook is called, with Flagger's names and meanings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum WebhookKind {
    /// A gate before the candidate is started; asked every evaluation until it answers 2xx.
    ConfirmRollout,
    /// Before any user traffic (part of the isolation stage); a failure rolls back.
    PreRollout,
    /// At every evaluation while users are served; a failure counts as a failed check.
    Rollout,
    /// A gate before each weight increase.
    ConfirmTrafficIncrease,
    /// A gate before promotion.
    ConfirmPromotion,
    /// After promotion or rollback; its answer changes nothing.
    PostRollout,
    /// Asked every evaluation while the candidate is analysed: a 2xx answer rolls back.
    Rollback,
    /// Every event of the rollout; its answer changes nothing.
    Event,
}

impl WebhookKind {
    /// Whether the rollout waits for this hook to answer 2xx.
    pub fn is_gate(self) -> bool {
        matches!(
            self,
            Self::ConfirmRollout | Self::ConfirmTrafficIncrease | Self::ConfirmPromotion
        )
    }
}

impl fmt::Display for WebhookKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::ConfirmRollout => "confirm-rollout",
            Self::PreRollout => "pre-rollout",
            Self::Rollout => "rollout",
            Self::ConfirmTrafficIncrease => "confirm-traffic-increase",
            Self::ConfirmPromotion => "confirm-promotion",
            Self::PostRollout => "post-rollout",
            Self::Rollback => "rollback",
            Self::Event => "event",
        };
        f.write_str(name)
    }
}

/// An HTTP endpoint called at a moment of the rollout, with a signed JSON payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Webhook {
    /// A name for events and `sluice status`.
    #[schemars(regex(pattern = NAME_PATTERN), length(max = NAME_MAX_LENGTH))]
    pub name: String,
    /// When it is called.
    #[serde(rename = "type")]
    pub kind: WebhookKind,
    /// Where to POST, an `http://` or `https://` URL.
    #[schemars(regex(pattern = HTTP_URL_PATTERN))]
    pub url: String,
    /// How long one attempt may take.
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
    /// Attempts after the first one fails, before the call counts as failed.
    #[serde(default = "default_retries")]
    #[schemars(range(min = 0, max = 10))]
    pub retries: u32,
    /// Free-form values sent in the payload.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Where the HMAC key that signs every call comes from. Unsigned calls carry no signature header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_from: Option<SecretRef>,
}

/// A secret kept out of the spec and the database: read when needed from the daemon's environment or a file.
/// Exactly one of the two.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretRef {
    /// An environment variable of the daemon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub env: Option<String>,
    /// A file whose content (trailing newline removed) is the secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
}

/// Where notifications of a rollout's events go.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Alert {
    /// The kind of endpoint, which decides the message's JSON shape.
    pub provider: AlertProvider,
    /// Where the endpoint's URL comes from; notification URLs carry their credentials, so never in the spec.
    pub url_from: SecretRef,
    /// The least severe events sent.
    #[serde(default)]
    pub severity: AlertSeverity,
    /// Channel override (Slack).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Sender name override (Slack, Discord).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

/// A notification endpoint's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum AlertProvider {
    /// A Slack incoming webhook.
    Slack,
    /// A Microsoft Teams incoming webhook.
    Teams,
    /// A Discord webhook.
    Discord,
    /// Any endpoint taking the event as JSON.
    Generic,
}

/// How serious an event must be to be sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum AlertSeverity {
    /// Every event.
    #[default]
    Info,
    /// Warnings and errors.
    Warning,
    /// Errors only: rollbacks, timeouts, holds for a human.
    Error,
}

fn default_timeout() -> Duration {
    Duration(std::time::Duration::from_secs(10))
}

fn default_retries() -> u32 {
    2
}

//! Calling a [`Webhook`]: its JSON payload, the signed POST with retries, and the outcome the engine needs
//! (passed or not) with a detail for people.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sluice_spec::{Webhook, WebhookKind};
use thiserror::Error;

use crate::post::{Post, Signing, post};
use crate::secret;

/// The metadata key of an `event` hook's message, as Flagger names it.
pub const EVENT_MESSAGE: &str = "eventMessage";
/// The metadata key of an `event` hook's event type (`info`, `warning`, `error`), as Flagger names it.
pub const EVENT_TYPE: &str = "eventType";

/// The JSON body of a webhook call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookPayload {
    /// The service being rolled out.
    pub service: String,
    /// The candidate revision's name.
    pub revision: String,
    /// The rollout's phase when the hook is called.
    pub phase: String,
    /// The candidate revision's checksum.
    pub checksum: String,
    /// When the hook is called (`pre-rollout`, `event`, …).
    #[serde(rename = "type")]
    pub kind: WebhookKind,
    /// The hook's own metadata, with the caller's entries on top.
    pub metadata: BTreeMap<String, String>,
}

impl WebhookPayload {
    /// The payload for a call of `hook`, its metadata the hook's own.
    pub fn for_hook(
        hook: &Webhook,
        service: impl Into<String>,
        revision: impl Into<String>,
        phase: impl Into<String>,
        checksum: impl Into<String>,
    ) -> Self {
        Self {
            service: service.into(),
            revision: revision.into(),
            phase: phase.into(),
            checksum: checksum.into(),
            kind: hook.kind,
            metadata: hook.metadata.clone(),
        }
    }

    /// Adds entries to the metadata; on a clash the caller's entry wins, since it describes this call.
    pub fn with_metadata(mut self, extra: impl IntoIterator<Item = (String, String)>) -> Self {
        self.metadata.extend(extra);
        self
    }

    /// Adds an event's type and message under Flagger's keys ([`EVENT_TYPE`], [`EVENT_MESSAGE`]), for `event`
    /// hooks.
    pub fn with_event(self, event_type: impl Into<String>, message: impl Into<String>) -> Self {
        self.with_metadata([
            (EVENT_TYPE.to_owned(), event_type.into()),
            (EVENT_MESSAGE.to_owned(), message.into()),
        ])
    }
}

/// How a webhook call ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HookOutcome {
    /// The hook's name.
    pub hook: String,
    /// The hook's kind.
    pub kind: WebhookKind,
    /// The last attempt was answered 2xx.
    pub passed: bool,
    /// The last attempt's HTTP status, when it got an answer.
    pub status: Option<u16>,
    /// Attempts made; 0 when the call could not be made at all (its secret could not be read).
    pub attempts: u32,
    /// What happened, for people: `200 after 1 attempt`, `503 after 3 attempts: <start of the body>`,
    /// `timed out after 5s`, `connection refused (3 attempts)`, `secret env HOOK_KEY is not set`.
    pub detail: String,
}

/// The HTTP client could not be built.
#[derive(Debug, Error)]
#[error("cannot build the HTTP client for webhooks and notifications: {0}")]
pub struct ClientError(#[source] reqwest::Error);

/// Calls webhooks. One client (and its connection pool) serves every call; clones share it.
#[derive(Clone, Debug)]
pub struct WebhookClient {
    http: reqwest::Client,
    backoff: Duration,
}

impl WebhookClient {
    /// The pause after a hook's first failed attempt unless [`WebhookClient::with_backoff`] says otherwise.
    pub const DEFAULT_BACKOFF: Duration = Duration::from_millis(200);

    /// A client that does not follow redirects: a signed POST is for the URL the spec names, and a redirected
    /// POST would become a GET. A 3xx answer therefore fails the call.
    ///
    /// `https://` endpoints (Slack, Teams, Discord) are reached through rustls, with the system's trust store.
    pub fn new() -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(ClientError)?;
        Ok(Self::from_client(http))
    }

    /// A client on an HTTP client built elsewhere (with TLS settings of the daemon's choosing, say).
    pub fn from_client(http: reqwest::Client) -> Self {
        Self {
            http,
            backoff: Self::DEFAULT_BACKOFF,
        }
    }

    /// Sets the pause after the first failed attempt; it doubles after each further one, up to 5 s.
    pub fn with_backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// The HTTP client, for other calls that should share its connections.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// POSTs the payload as JSON: at most `1 + hook.retries` attempts of at most `hook.timeout` each; the call
    /// passes on a 2xx answer. With `secret_from`, every attempt carries `X-Sluice-Signature` for the wall-clock
    /// time `now_unix` plus the time spent since the call began; a secret that cannot be read fails the call
    /// without sending anything, never an unsigned call instead.
    pub async fn call(&self, hook: &Webhook, payload: &WebhookPayload, now_unix: i64) -> HookOutcome {
        let key = match &hook.secret_from {
            Some(secret_ref) => match secret::resolve_async(secret_ref).await {
                Ok(key) => Some(key),
                Err(error) => return not_sent(hook, format!("secret {error}")),
            },
            None => None,
        };
        let body = match serde_json::to_vec(payload) {
            Ok(body) => Bytes::from(body),
            Err(error) => return not_sent(hook, format!("payload is not JSON: {error}")),
        };
        let posted = post(
            &self.http,
            Post {
                url: &hook.url,
                body,
                timeout: hook.timeout.0,
                attempts: hook.retries.saturating_add(1),
                backoff: self.backoff,
                signing: key.as_ref().map(|key| Signing {
                    key,
                    start_unix: now_unix,
                }),
            },
        )
        .await;
        HookOutcome {
            hook: hook.name.clone(),
            kind: hook.kind,
            passed: posted.passed,
            status: posted.status,
            attempts: posted.attempts,
            detail: posted.detail,
        }
    }
}

fn not_sent(hook: &Webhook, detail: String) -> HookOutcome {
    HookOutcome {
        hook: hook.name.clone(),
        kind: hook.kind,
        passed: false,
        status: None,
        attempts: 0,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(kind: WebhookKind) -> Webhook {
        Webhook {
            name: "notify-team".to_owned(),
            kind,
            url: "http://127.0.0.1:1/".to_owned(),
            timeout: sluice_spec::Duration(Duration::from_secs(1)),
            retries: 0,
            metadata: BTreeMap::from([
                ("team".to_owned(), "payments".to_owned()),
                (EVENT_TYPE.to_owned(), "from-spec".to_owned()),
            ]),
            secret_from: None,
        }
    }

    #[test]
    fn the_payload_is_flaggers_shape_with_the_callers_metadata_on_top() {
        let payload = WebhookPayload::for_hook(&hook(WebhookKind::Event), "web", "web-2", "Progressing", "abc123")
            .with_event("warning", "Halt advancement web-2: error rate 4% > 1%");
        let json: serde_json::Value = serde_json::to_value(&payload).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({
                "service": "web",
                "revision": "web-2",
                "phase": "Progressing",
                "checksum": "abc123",
                "type": "event",
                "metadata": {
                    "team": "payments",
                    "eventType": "warning",
                    "eventMessage": "Halt advancement web-2: error rate 4% > 1%",
                },
            })
        );
    }

    #[test]
    fn kinds_are_kebab_case_in_the_payload() {
        let payload = WebhookPayload::for_hook(&hook(WebhookKind::ConfirmTrafficIncrease), "web", "r", "p", "c");
        let json = serde_json::to_value(&payload).expect("serializes");
        assert_eq!(json["type"], "confirm-traffic-increase");
    }
}

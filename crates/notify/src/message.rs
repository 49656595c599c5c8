//! Notification bodies, one JSON shape per provider, and the severity filter.
//!
//! Every provider gets the same content, as Flagger sends it: a headline (`<service>: <message>`), facts (service,
//! revision, phase, severity) and a colour by severity. The shapes are the providers' documented incoming-webhook
//! formats: Slack's message with a legacy attachment (the coloured bar), Teams' `MessageCard`, and Discord's
//! execute-webhook body with one embed.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sluice_spec::{Alert, AlertProvider, AlertSeverity};

/// One event of a rollout, worth telling people about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// The service.
    pub service: String,
    /// The revision concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// The rollout's phase.
    pub phase: String,
    /// How serious the event is.
    pub severity: AlertSeverity,
    /// What happened, in a sentence.
    pub message: String,
    /// When it happened.
    pub at: Timestamp,
}

/// Whether `alert` receives events of `severity`: those at or above the alert's own severity.
pub fn accepts(alert: &Alert, severity: AlertSeverity) -> bool {
    severity >= alert.severity
}

/// The body to POST to the alert's endpoint.
pub fn body(alert: &Alert, notification: &Notification) -> Value {
    match alert.provider {
        AlertProvider::Slack => slack(notification, alert.channel.as_deref(), alert.username.as_deref()),
        AlertProvider::Teams => teams(notification),
        AlertProvider::Discord => discord(notification, alert.username.as_deref()),
        AlertProvider::Generic => generic(notification),
    }
}

/// The provider's name in logs and messages.
pub fn provider_name(provider: AlertProvider) -> &'static str {
    match provider {
        AlertProvider::Slack => "slack",
        AlertProvider::Teams => "teams",
        AlertProvider::Discord => "discord",
        AlertProvider::Generic => "generic",
    }
}

/// A Slack incoming-webhook message: `text` is the headline (what notifications and screen readers show), one
/// attachment carries the colour bar, the facts as short fields and the event's time.
pub fn slack(notification: &Notification, channel: Option<&str>, username: Option<&str>) -> Value {
    let fields: Vec<Value> = facts(notification)
        .into_iter()
        .map(|(title, value)| json!({ "title": title, "value": slack_escape(&value), "short": true }))
        .collect();
    let headline = slack_escape(&headline(notification));
    let mut message = Map::new();
    message.insert("text".to_owned(), Value::String(headline.clone()));
    if let Some(channel) = channel {
        message.insert("channel".to_owned(), json!(channel));
    }
    if let Some(username) = username {
        message.insert("username".to_owned(), json!(username));
    }
    message.insert(
        "attachments".to_owned(),
        json!([{
            "color": format!("#{:06X}", colour(notification.severity)),
            "fallback": headline,
            "fields": fields,
            "ts": notification.at.as_second(),
        }]),
    );
    Value::Object(message)
}

/// A Microsoft Teams incoming-webhook `MessageCard`: the headline as summary, the message as the section's
/// title, the service as its subtitle, the facts as facts.
pub fn teams(notification: &Notification) -> Value {
    let facts: Vec<Value> = facts(notification)
        .into_iter()
        .map(|(name, value)| json!({ "name": name, "value": value }))
        .collect();
    json!({
        "@type": "MessageCard",
        "@context": "http://schema.org/extensions",
        "themeColor": format!("{:06X}", colour(notification.severity)),
        "summary": headline(notification),
        "sections": [{
            "activityTitle": notification.message,
            "activitySubtitle": notification.service,
            "facts": facts,
        }],
    })
}

/// A Discord execute-webhook body: the headline as `content`, one embed with the colour, the facts as inline
/// fields and the event's time. Mentions in the text are not turned into pings.
pub fn discord(notification: &Notification, username: Option<&str>) -> Value {
    let fields: Vec<Value> = facts(notification)
        .into_iter()
        .map(|(name, value)| json!({ "name": name, "value": truncate(&value, DISCORD_FIELD_VALUE), "inline": true }))
        .collect();
    let mut message = Map::new();
    message.insert(
        "content".to_owned(),
        json!(truncate(&headline(notification), DISCORD_CONTENT)),
    );
    if let Some(username) = username {
        message.insert("username".to_owned(), json!(username));
    }
    message.insert(
        "embeds".to_owned(),
        json!([{
            "title": truncate(&notification.service, DISCORD_TITLE),
            "color": colour(notification.severity),
            "fields": fields,
            "timestamp": notification.at.to_string(),
        }]),
    );
    message.insert("allowed_mentions".to_owned(), json!({ "parse": [] }));
    Value::Object(message)
}

/// Any endpoint: the notification itself, as JSON.
pub fn generic(notification: &Notification) -> Value {
    // A struct of strings and a timestamp always serializes.
    serde_json::to_value(notification).unwrap_or(Value::Null)
}

/// Discord's limits, in characters; a longer message is refused with a 400.
const DISCORD_CONTENT: usize = 2000;
const DISCORD_TITLE: usize = 256;
const DISCORD_FIELD_VALUE: usize = 1024;

fn headline(notification: &Notification) -> String {
    format!("{}: {}", notification.service, notification.message)
}

fn facts(notification: &Notification) -> Vec<(&'static str, String)> {
    let mut facts = vec![("Service", notification.service.clone())];
    if let Some(revision) = &notification.revision {
        facts.push(("Revision", revision.clone()));
    }
    facts.push(("Phase", notification.phase.clone()));
    facts.push(("Severity", severity_name(notification.severity).to_owned()));
    facts
}

fn severity_name(severity: AlertSeverity) -> &'static str {
    match severity {
        AlertSeverity::Info => "info",
        AlertSeverity::Warning => "warning",
        AlertSeverity::Error => "error",
    }
}

/// One palette for all providers: Flagger's Teams blue for information, amber, red.
fn colour(severity: AlertSeverity) -> u32 {
    match severity {
        AlertSeverity::Info => 0x0076D7,
        AlertSeverity::Warning => 0xFFA500,
        AlertSeverity::Error => 0xFF0000,
    }
}

/// Slack reads `&`, `<` and `>` as markup (links, mentions), so a message like `p99 > 500ms` must escape them.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => {
            let mut short: String = text[..cut].chars().take(max_chars.saturating_sub(1)).collect();
            short.push('…');
            short
        }
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_whole_characters_within_the_limit() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("ééééé", 5), "ééééé");
        assert_eq!(truncate("éééééé", 5), "éééé…");
        assert_eq!(
            truncate(&"x".repeat(3000), DISCORD_CONTENT).chars().count(),
            DISCORD_CONTENT
        );
    }

    #[test]
    fn slack_markup_characters_are_escaped() {
        assert_eq!(slack_escape("p99 <1s> & more"), "p99 &lt;1s&gt; &amp; more");
    }
}

//! Each provider's body, parsed the way its receiver parses it, field by field; and the severity filter.
//!
//! The receiver types below refuse unknown fields, so a field added by mistake fails here too.

use jiff::Timestamp;
use serde::Deserialize;
use sluice_notify::Notification;
use sluice_notify::message::{self, accepts};
use sluice_spec::{Alert, AlertProvider, AlertSeverity, SecretRef};

fn notification(severity: AlertSeverity) -> Notification {
    Notification {
        service: "web".to_owned(),
        revision: Some("web-2".to_owned()),
        phase: "RolledBack".to_owned(),
        severity,
        message: "Rolled back web-2: error rate 4.1% > 1% & p99 1.2s".to_owned(),
        at: "2026-03-01T12:30:00Z".parse::<Timestamp>().expect("a timestamp"),
    }
}

pub fn alert(provider: AlertProvider, severity: AlertSeverity) -> Alert {
    Alert {
        provider,
        url_from: SecretRef {
            env: Some("ALERT_URL".to_owned()),
            file: None,
        },
        severity,
        channel: None,
        username: None,
    }
}

/// Serializes and parses again, as the body travels.
fn received<T: for<'de> Deserialize<'de>>(alert: &Alert, notification: &Notification) -> T {
    let bytes = serde_json::to_vec(&message::body(alert, notification)).expect("serializes");
    serde_json::from_slice(&bytes).expect("the receiver parses the body")
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SlackMessage {
    text: String,
    channel: Option<String>,
    username: Option<String>,
    attachments: Vec<SlackAttachment>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SlackAttachment {
    color: String,
    fallback: String,
    fields: Vec<SlackField>,
    ts: i64,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct SlackField {
    title: String,
    value: String,
    short: bool,
}

#[test]
fn slack_gets_a_headline_and_a_coloured_attachment_with_the_facts() {
    let alert = Alert {
        channel: Some("#deploys".to_owned()),
        username: Some("sluice".to_owned()),
        ..alert(AlertProvider::Slack, AlertSeverity::Info)
    };
    let slack: SlackMessage = received(&alert, &notification(AlertSeverity::Error));
    // `&`, `<` and `>` are Slack markup, so they arrive escaped.
    assert_eq!(
        slack.text,
        "web: Rolled back web-2: error rate 4.1% &gt; 1% &amp; p99 1.2s"
    );
    assert_eq!(slack.channel.as_deref(), Some("#deploys"));
    assert_eq!(slack.username.as_deref(), Some("sluice"));
    let [attachment] = slack.attachments.as_slice() else {
        panic!("one attachment: {slack:?}")
    };
    assert_eq!(attachment.color, "#FF0000");
    assert_eq!(attachment.fallback, slack.text);
    assert_eq!(attachment.ts, 1_772_368_200);
    let field = |title: &str, value: &str| SlackField {
        title: title.to_owned(),
        value: value.to_owned(),
        short: true,
    };
    assert_eq!(
        attachment.fields,
        [
            field("Service", "web"),
            field("Revision", "web-2"),
            field("Phase", "RolledBack"),
            field("Severity", "error")
        ]
    );

    let without_overrides: SlackMessage = received(&alert_without_overrides(), &notification(AlertSeverity::Info));
    assert_eq!((without_overrides.channel, without_overrides.username), (None, None));
    assert_eq!(without_overrides.attachments[0].color, "#0076D7");
}

fn alert_without_overrides() -> Alert {
    alert(AlertProvider::Slack, AlertSeverity::Info)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct MessageCard {
    #[serde(rename = "@type")]
    kind: String,
    #[serde(rename = "@context")]
    context: String,
    theme_color: String,
    summary: String,
    sections: Vec<CardSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CardSection {
    activity_title: String,
    activity_subtitle: String,
    facts: Vec<CardFact>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct CardFact {
    name: String,
    value: String,
}

#[test]
fn teams_gets_a_message_card_with_facts() {
    let alert = alert(AlertProvider::Teams, AlertSeverity::Info);
    let card: MessageCard = received(&alert, &notification(AlertSeverity::Warning));
    assert_eq!(card.kind, "MessageCard");
    assert_eq!(card.context, "http://schema.org/extensions");
    assert_eq!(card.theme_color, "FFA500");
    assert_eq!(card.summary, "web: Rolled back web-2: error rate 4.1% > 1% & p99 1.2s");
    let [section] = card.sections.as_slice() else {
        panic!("one section: {card:?}")
    };
    assert_eq!(
        section.activity_title,
        "Rolled back web-2: error rate 4.1% > 1% & p99 1.2s"
    );
    assert_eq!(section.activity_subtitle, "web");
    let fact = |name: &str, value: &str| CardFact {
        name: name.to_owned(),
        value: value.to_owned(),
    };
    assert_eq!(
        section.facts,
        [
            fact("Service", "web"),
            fact("Revision", "web-2"),
            fact("Phase", "RolledBack"),
            fact("Severity", "warning")
        ]
    );
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DiscordMessage {
    content: String,
    username: Option<String>,
    embeds: Vec<DiscordEmbed>,
    allowed_mentions: AllowedMentions,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DiscordEmbed {
    title: String,
    color: u32,
    fields: Vec<EmbedField>,
    timestamp: Timestamp,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct EmbedField {
    name: String,
    value: String,
    inline: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowedMentions {
    parse: Vec<String>,
}

#[test]
fn discord_gets_content_and_a_coloured_embed_and_pings_nobody() {
    let alert = Alert {
        username: Some("sluice".to_owned()),
        ..alert(AlertProvider::Discord, AlertSeverity::Info)
    };
    let event = notification(AlertSeverity::Error);
    let discord: DiscordMessage = received(&alert, &event);
    assert_eq!(
        discord.content,
        "web: Rolled back web-2: error rate 4.1% > 1% & p99 1.2s"
    );
    assert_eq!(discord.username.as_deref(), Some("sluice"));
    assert!(discord.allowed_mentions.parse.is_empty());
    let [embed] = discord.embeds.as_slice() else {
        panic!("one embed: {discord:?}")
    };
    assert_eq!(embed.title, "web");
    assert_eq!(embed.color, 0xFF0000);
    assert_eq!(embed.timestamp, event.at);
    let field = |name: &str, value: &str| EmbedField {
        name: name.to_owned(),
        value: value.to_owned(),
        inline: true,
    };
    assert_eq!(
        embed.fields,
        [
            field("Service", "web"),
            field("Revision", "web-2"),
            field("Phase", "RolledBack"),
            field("Severity", "error")
        ]
    );
}

#[test]
fn discord_content_stays_within_discords_limit() {
    let alert = alert(AlertProvider::Discord, AlertSeverity::Info);
    let long = Notification {
        message: "x".repeat(5000),
        ..notification(AlertSeverity::Info)
    };
    let discord: DiscordMessage = received(&alert, &long);
    assert_eq!(discord.content.chars().count(), 2000);
    assert!(discord.content.ends_with('…'));
}

#[test]
fn a_generic_endpoint_gets_the_notification_itself() {
    let alert = alert(AlertProvider::Generic, AlertSeverity::Info);
    let event = notification(AlertSeverity::Warning);
    let json: serde_json::Value = received(&alert, &event);
    assert_eq!(
        json,
        serde_json::json!({
            "service": "web",
            "revision": "web-2",
            "phase": "RolledBack",
            "severity": "warning",
            "message": "Rolled back web-2: error rate 4.1% > 1% & p99 1.2s",
            "at": "2026-03-01T12:30:00Z",
        })
    );
    let parsed: Notification = received(&alert, &event);
    assert_eq!(parsed, event);

    let without_revision = Notification {
        revision: None,
        ..event
    };
    let json: serde_json::Value = received(&alert, &without_revision);
    assert!(json.get("revision").is_none());
}

#[test]
fn an_alert_receives_events_at_or_above_its_severity() {
    use AlertSeverity::{Error, Info, Warning};
    let cases = [
        (Info, Info, true),
        (Info, Warning, true),
        (Info, Error, true),
        (Warning, Info, false),
        (Warning, Warning, true),
        (Warning, Error, true),
        (Error, Info, false),
        (Error, Warning, false),
        (Error, Error, true),
    ];
    for (alert_severity, event_severity, expected) in cases {
        let alert = alert(AlertProvider::Slack, alert_severity);
        assert_eq!(
            accepts(&alert, event_severity),
            expected,
            "alert {alert_severity:?}, event {event_severity:?}"
        );
    }
}

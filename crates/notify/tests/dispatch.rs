//! The dispatcher against real receivers, a closed port and a server that never answers: dispatching returns at
//! once, other endpoints get their messages promptly, failures are counted and logged without URLs, and a full
//! queue drops and counts.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use sluice_notify::webhook::EVENT_MESSAGE;
use sluice_notify::{
    Counters, DispatchConfig, Dispatched, Dispatcher, Notification, SIGNATURE_HEADER, WebhookClient, WebhookPayload,
    verify,
};
use sluice_spec::{Alert, AlertProvider, AlertSeverity, SecretRef, WebhookKind};
use tokio::time::Instant;
use tracing_subscriber::fmt::MakeWriter;

use crate::server::{Receiver, closed_port_url};
use crate::webhooks::{payload, signed_hook};

/// How long a message to a healthy endpoint may take while others are down.
const PROMPTLY: Duration = Duration::from_secs(1);

fn config() -> DispatchConfig {
    DispatchConfig {
        timeout: Duration::from_secs(3),
        backoff: Duration::from_millis(20),
        ..DispatchConfig::default()
    }
}

fn dispatcher(config: DispatchConfig) -> Dispatcher {
    Dispatcher::new(
        config,
        WebhookClient::new()
            .expect("client")
            .with_backoff(Duration::from_millis(20)),
    )
}

/// An alert whose URL is read from a file in `dir`, as notification URLs are kept.
fn alert(dir: &Path, name: &str, provider: AlertProvider, url: &str) -> Alert {
    let path = dir.join(name);
    std::fs::write(&path, format!("{url}\n")).expect("write the URL");
    Alert {
        provider,
        url_from: SecretRef {
            env: None,
            file: Some(path),
        },
        severity: AlertSeverity::Info,
        channel: None,
        username: None,
    }
}

fn event(severity: AlertSeverity) -> Notification {
    Notification {
        service: "web".to_owned(),
        revision: Some("web-2".to_owned()),
        phase: "Progressing".to_owned(),
        severity,
        message: "Advance web-2 canary weight 20".to_owned(),
        at: Timestamp::from_second(1_700_000_000).expect("a timestamp"),
    }
}

async fn until(within: Duration, done: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    done()
}

/// Log lines written while the guard lives, on this thread (the tests' runtime has one thread).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn capture(&self) -> tracing::subscriber::DefaultGuard {
        let subscriber = tracing_subscriber::fmt()
            .with_writer(self.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("logs")).into_owned()
    }
}

impl Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("logs").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Logs {
    type Writer = Logs;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn endpoints_that_are_down_or_hang_delay_nothing() {
    let logs = Logs::default();
    let _guard = logs.capture();
    let dir = tempfile::tempdir().expect("temporary directory");
    let hanging = Receiver::hanging().await;
    let closed = closed_port_url();
    let mut slack = Receiver::ok().await;
    let mut hooks = Receiver::ok().await;
    let to_hanging = alert(dir.path(), "hanging-url", AlertProvider::Teams, &hanging.url);
    let to_closed = alert(dir.path(), "closed-url", AlertProvider::Generic, &closed);
    let to_slack = alert(dir.path(), "slack-url", AlertProvider::Slack, &slack.url);
    let hook = signed_hook(dir.path(), &hooks.url, WebhookKind::Event);
    let dispatcher = dispatcher(config());

    let started = Instant::now();
    let mut results = Vec::new();
    for _ in 0..5 {
        results.push(dispatcher.notify(&to_hanging, &event(AlertSeverity::Info)));
        results.push(dispatcher.notify(&to_closed, &event(AlertSeverity::Info)));
    }
    results.push(dispatcher.notify(&to_slack, &event(AlertSeverity::Warning)));
    let hook_payload = payload(&hook).with_event("info", "Advance web-2 canary weight 20");
    results.push(dispatcher.fire(&hook, hook_payload.clone(), 1_700_000_000));
    let dispatching = started.elapsed();
    assert!(
        dispatching < Duration::from_millis(100),
        "12 dispatches took {dispatching:?}"
    );
    assert!(
        results.iter().all(|result| *result == Dispatched::Queued),
        "{results:?}"
    );

    let message = slack
        .next(PROMPTLY)
        .await
        .expect("Slack got its message while the others were down");
    let body: serde_json::Value = message.json();
    assert_eq!(body["text"], "web: Advance web-2 canary weight 20");

    let call = hooks
        .next(PROMPTLY)
        .await
        .expect("the event hook was called while the others were down");
    let received: WebhookPayload = call.json();
    assert_eq!(received, hook_payload);
    assert_eq!(received.metadata[EVENT_MESSAGE], "Advance web-2 canary weight 20");
    let signature = call.header(SIGNATURE_HEADER).expect("signed");
    assert_eq!(
        verify(signature, &call.body, b"s3cret-hook-key", 1_700_000_000, 300),
        Ok(())
    );

    // Five deliveries to the closed port, each tried three times.
    assert!(
        until(Duration::from_secs(3), || dispatcher.counters().failed == 5).await,
        "{:?}",
        dispatcher.counters()
    );
    assert_eq!(
        dispatcher.counters(),
        Counters {
            delivered: 2,
            failed: 5,
            dropped: 0
        }
    );

    let logs = logs.text();
    assert!(logs.contains("notification not delivered"), "{logs}");
    assert!(logs.contains("provider=\"generic\""), "{logs}");
    assert!(
        logs.contains(&format!("url_from=file {}", dir.path().join("closed-url").display())),
        "{logs}"
    );
    assert!(logs.contains("connection refused (3 attempts)"), "{logs}");
    let port = closed.trim_start_matches("http://127.0.0.1:").trim_end_matches("/hook");
    assert!(
        !logs.contains(&closed) && !logs.contains(port),
        "the URL is never logged: {logs}"
    );
}

#[tokio::test]
async fn a_full_queue_drops_and_counts() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut receiver = Receiver::ok().await;
    let to_receiver = alert(dir.path(), "url", AlertProvider::Generic, &receiver.url);
    let dispatcher = dispatcher(DispatchConfig { queue: 2, ..config() });

    // The runtime has one thread and nothing here awaits, so the dispatcher's task cannot empty the queue meanwhile.
    let results: Vec<_> = (0..10)
        .map(|_| dispatcher.notify(&to_receiver, &event(AlertSeverity::Info)))
        .collect();
    assert_eq!(results[..2], [Dispatched::Queued; 2]);
    assert_eq!(results[2..], [Dispatched::Dropped; 8]);
    assert_eq!(
        dispatcher.counters(),
        Counters {
            delivered: 0,
            failed: 0,
            dropped: 8
        }
    );

    let counters = dispatcher.drain(Duration::from_secs(2)).await;
    assert_eq!(
        counters,
        Counters {
            delivered: 2,
            failed: 0,
            dropped: 8
        }
    );
    assert_eq!(receiver.received().len(), 2);
    assert_eq!(
        dispatcher.notify(&to_receiver, &event(AlertSeverity::Info)),
        Dispatched::Closed
    );
}

#[tokio::test]
async fn a_hanging_endpoint_holds_a_bounded_backlog_and_others_still_get_through() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut hanging = Receiver::hanging().await;
    let mut healthy = Receiver::ok().await;
    let to_hanging = alert(dir.path(), "hanging-url", AlertProvider::Discord, &hanging.url);
    let to_healthy = alert(dir.path(), "healthy-url", AlertProvider::Generic, &healthy.url);
    let dispatcher = dispatcher(DispatchConfig {
        backlog_per_endpoint: 2,
        ..config()
    });

    for _ in 0..5 {
        assert_eq!(
            dispatcher.notify(&to_hanging, &event(AlertSeverity::Info)),
            Dispatched::Queued
        );
    }
    assert!(
        until(PROMPTLY, || dispatcher.counters().dropped == 3).await,
        "{:?}",
        dispatcher.counters()
    );

    assert_eq!(
        dispatcher.notify(&to_healthy, &event(AlertSeverity::Info)),
        Dispatched::Queued
    );
    assert!(
        healthy.next(PROMPTLY).await.is_some(),
        "the healthy endpoint got its message"
    );
    assert!(
        hanging.next(PROMPTLY).await.is_some(),
        "the hanging endpoint got its first message"
    );
    let second = hanging.next(Duration::from_millis(200)).await;
    assert!(second.is_none(), "one delivery at a time to the hanging endpoint");
}

/// Regression: each delivery was a task racing for its endpoint's turn, so on a multi-thread runtime the events
/// of one decision reached an `event` hook in any order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_endpoint_gets_its_deliveries_in_the_order_they_were_dispatched() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut hooks = Receiver::ok().await;
    let hook = signed_hook(dir.path(), &hooks.url, WebhookKind::Event);
    let dispatcher = dispatcher(config());
    let messages: Vec<String> = (0..40).map(|i| format!("event {i}")).collect();
    for message in &messages {
        let payload = payload(&hook).with_event("info", message.clone());
        assert_eq!(dispatcher.fire(&hook, payload, 1_700_000_000), Dispatched::Queued);
    }
    let mut received = Vec::new();
    while received.len() < messages.len() {
        let Some(call) = hooks.next(Duration::from_secs(5)).await else {
            break;
        };
        let payload: WebhookPayload = call.json();
        received.push(payload.metadata[EVENT_MESSAGE].clone());
    }
    assert_eq!(received, messages);
}

#[tokio::test]
async fn events_below_an_alerts_severity_and_gates_are_not_dispatched() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut receiver = Receiver::ok().await;
    let errors_only = Alert {
        severity: AlertSeverity::Error,
        ..alert(dir.path(), "url", AlertProvider::Slack, &receiver.url)
    };
    let dispatcher = dispatcher(config());

    assert_eq!(
        dispatcher.notify(&errors_only, &event(AlertSeverity::Warning)),
        Dispatched::BelowSeverity
    );
    assert_eq!(
        dispatcher.notify(&errors_only, &event(AlertSeverity::Error)),
        Dispatched::Queued
    );
    let body: serde_json::Value = receiver.next(PROMPTLY).await.expect("the error was sent").json();
    assert_eq!(body["attachments"][0]["color"], "#FF0000");
    assert!(
        receiver.next(Duration::from_millis(200)).await.is_none(),
        "the warning was not sent"
    );

    for kind in [
        WebhookKind::ConfirmRollout,
        WebhookKind::Rollout,
        WebhookKind::Rollback,
        WebhookKind::PreRollout,
    ] {
        let gate = signed_hook(dir.path(), &receiver.url, kind);
        assert_eq!(
            dispatcher.fire(&gate, payload(&gate), 0),
            Dispatched::NotFireAndForget,
            "{kind}"
        );
    }
    let post_rollout = signed_hook(dir.path(), &receiver.url, WebhookKind::PostRollout);
    assert_eq!(
        dispatcher.fire(&post_rollout, payload(&post_rollout), 0),
        Dispatched::Queued
    );
}

#[tokio::test]
async fn an_alert_whose_url_cannot_be_read_fails_and_says_where_it_looked() {
    let logs = Logs::default();
    let _guard = logs.capture();
    let alert = Alert {
        provider: AlertProvider::Teams,
        url_from: SecretRef {
            env: Some("SLUICE_NOTIFY_TEST_NEVER_SET".to_owned()),
            file: None,
        },
        severity: AlertSeverity::Info,
        channel: None,
        username: None,
    };
    let dispatcher = dispatcher(config());
    assert_eq!(
        dispatcher.notify(&alert, &event(AlertSeverity::Error)),
        Dispatched::Queued
    );
    let counters = dispatcher.drain(Duration::from_secs(2)).await;
    assert_eq!(
        counters,
        Counters {
            delivered: 0,
            failed: 1,
            dropped: 0
        }
    );
    let logs = logs.text();
    assert!(logs.contains("provider=\"teams\""), "{logs}");
    assert!(logs.contains("env SLUICE_NOTIFY_TEST_NEVER_SET is not set"), "{logs}");
}

#[tokio::test]
async fn a_url_that_is_not_a_url_fails_without_being_logged() {
    let logs = Logs::default();
    let _guard = logs.capture();
    let dir = tempfile::tempdir().expect("temporary directory");
    let alert = alert(
        dir.path(),
        "url",
        AlertProvider::Slack,
        "hooks.example/T000/B000/XXXXsecretXXXX",
    );
    let dispatcher = dispatcher(DispatchConfig {
        attempts: 1,
        ..config()
    });
    assert_eq!(
        dispatcher.notify(&alert, &event(AlertSeverity::Error)),
        Dispatched::Queued
    );
    let counters = dispatcher.drain(Duration::from_secs(2)).await;
    assert_eq!(
        counters,
        Counters {
            delivered: 0,
            failed: 1,
            dropped: 0
        }
    );
    let logs = logs.text();
    assert!(
        logs.contains("detail=invalid request: relative URL without a base"),
        "{logs}"
    );
    assert!(!logs.contains("XXXXsecretXXXX"), "{logs}");
}

//! Webhooks, gates, operator commands and notifications, seen from the endpoints a user would run: a receiving
//! server on loopback records every call the daemon makes and answers each path as the test says. Moments are
//! checked against the rollout's own timeline (the events API), signatures with `sluice_notify::verify`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use jiff::Timestamp;
use serde_json::Value;
use tokio::time::Instant;

use super::support::*;

/// The HMAC key every hook is signed with, as the key file holds it (its trailing newline is not part of it).
const KEY: &str = "hook-signing-key";

/// How the receiver answers a path.
#[derive(Clone, Copy, Debug)]
enum Answer {
    Status(u16),
    /// Accepts the request and never answers (within any test's lifetime).
    Hang,
}

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Call {
    path: String,
    signature: Option<String>,
    body: Bytes,
    at: Timestamp,
}

impl Call {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{} sent a body that is not JSON ({e}): {:?}", self.path, self.body))
    }
}

#[derive(Default)]
struct Book {
    calls: Vec<Call>,
    answers: HashMap<String, Answer>,
}

/// A loopback HTTP server standing in for webhook and notification endpoints. Every path answers 200 unless told
/// otherwise.
struct Receiver {
    addr: SocketAddr,
    book: Arc<Mutex<Book>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let book = Arc::new(Mutex::new(Book::default()));
        let app = axum::Router::new().fallback(record).with_state(book.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { addr, book }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn answer(&self, path: &str, answer: Answer) {
        self.book.lock().unwrap().answers.insert(path.to_string(), answer);
    }

    fn all(&self) -> Vec<Call> {
        self.book.lock().unwrap().calls.clone()
    }

    fn calls(&self, path: &str) -> Vec<Call> {
        self.all().into_iter().filter(|c| c.path == path).collect()
    }

    /// Waits until `path` got at least `count` calls; panics after `limit`.
    async fn wait_for_calls(&self, path: &str, count: usize, limit: Duration) -> Vec<Call> {
        let deadline = Instant::now() + limit;
        loop {
            let calls = self.calls(path);
            if calls.len() >= count {
                return calls;
            }
            assert!(
                Instant::now() < deadline,
                "{path} got {} calls in {limit:?}, expected {count}; all calls: {:?}",
                calls.len(),
                self.all().iter().map(|c| &c.path).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn record(State(book): State<Arc<Mutex<Book>>>, uri: Uri, headers: HeaderMap, body: Bytes) -> StatusCode {
    let call = Call {
        path: uri.path().to_string(),
        signature: headers
            .get(sluice_notify::SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(String::from),
        body,
        at: Timestamp::now(),
    };
    let answer = {
        let mut book = book.lock().unwrap();
        let answer = book.answers.get(&call.path).copied();
        book.calls.push(call);
        answer.unwrap_or(Answer::Status(200))
    };
    match answer {
        Answer::Status(code) => StatusCode::from_u16(code).unwrap(),
        Answer::Hang => {
            tokio::time::sleep(Duration::from_secs(300)).await;
            StatusCode::OK
        }
    }
}

/// Writes a secret to a file in the data directory, with the trailing newline an editor would add.
fn secret_file(sluice: &Sluice, name: &str, value: &str) -> PathBuf {
    let path = sluice.data_dir().join(name);
    std::fs::write(&path, format!("{value}\n")).unwrap();
    path
}

/// A `webhooks:` block with one hook per kind, each at the receiver's path `/<kind>`, signed with the key file.
fn webhooks(receiver: &Receiver, key: &Path, kinds: &[&str]) -> String {
    let mut yaml = String::from("  webhooks:\n");
    for kind in kinds {
        yaml.push_str(&format!(
            "    - name: {kind}-hook\n      type: {kind}\n      url: {url}\n      timeout: 2s\n      retries: 0\n      \
             metadata: {{ team: payments }}\n      secretFrom: {{ file: \"{key}\" }}\n",
            url = receiver.url(&format!("/{kind}")),
            key = key.display(),
        ));
    }
    yaml
}

/// An `alerts:` block of generic JSON endpoints whose URLs are in the given files.
fn alerts(url_files: &[&Path], severity: &str) -> String {
    let mut yaml = String::from("  alerts:\n");
    for file in url_files {
        yaml.push_str(&format!(
            "    - provider: generic\n      urlFrom: {{ file: \"{}\" }}\n      severity: {severity}\n",
            file.display()
        ));
    }
    yaml
}

/// The demo service's spec with extra settings in its `analysis` block and extra blocks at the end.
fn spec_with(sluice: &Sluice, revision: &str, error_rate: f64, steps: &str, analysis: &str, blocks: &str) -> String {
    let base = spec(sluice.listen, revision, error_rate, steps);
    let with_analysis = base.replace("  analysis:\n", &format!("  analysis:\n{analysis}"));
    format!("{with_analysis}{blocks}")
}

/// One event of the rollout's history, as the events API serves it.
#[derive(Debug)]
struct Event {
    at: Timestamp,
    severity: String,
    message: String,
}

/// The service's history from the first event starting with `from` on, oldest first.
struct Timeline(Vec<Event>);

impl Timeline {
    async fn fetch(sluice: &Sluice, from: &str) -> Timeline {
        let info: Value =
            serde_json::from_str(&std::fs::read_to_string(sluice.data_dir().join("daemon.json")).unwrap()).unwrap();
        let url = format!(
            "http://{}/v1/services/web/events?after=0",
            info["api"].as_str().unwrap()
        );
        let events: Vec<Value> = reqwest::get(url).await.unwrap().json().await.unwrap();
        let events: Vec<Event> = events
            .iter()
            .map(|e| Event {
                at: e["at"].as_str().unwrap().parse().unwrap(),
                severity: e["severity"].as_str().unwrap_or_default().to_string(),
                message: e["message"].as_str().unwrap_or_default().to_string(),
            })
            .collect();
        let start = events
            .iter()
            .position(|e| e.message.starts_with(from))
            .unwrap_or_else(|| panic!("no event starts with {from:?} in {events:#?}"));
        Timeline(events.into_iter().skip(start).collect())
    }

    fn all(&self, prefix: &str) -> Vec<&Event> {
        self.0.iter().filter(|e| e.message.starts_with(prefix)).collect()
    }

    /// The first event starting with `prefix`.
    fn first(&self, prefix: &str) -> &Event {
        self.0
            .iter()
            .find(|e| e.message.starts_with(prefix))
            .unwrap_or_else(|| panic!("no event starts with {prefix:?} in {self}"))
    }

    fn at(&self, prefix: &str) -> Timestamp {
        self.first(prefix).at
    }

    fn messages(&self) -> Vec<&str> {
        self.0.iter().map(|e| e.message.as_str()).collect()
    }
}

impl std::fmt::Display for Timeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for event in &self.0 {
            writeln!(f, "{} {:7} {}", event.at, event.severity, event.message)?;
        }
        Ok(())
    }
}

/// Asserts that every call of `path` happened within `[after, before]`.
fn all_between(calls: &[Call], after: Timestamp, before: Timestamp, timeline: &Timeline) {
    assert!(!calls.is_empty(), "no call to check");
    for call in calls {
        assert!(
            after <= call.at && call.at <= before,
            "{} called at {}, outside {after}..={before}; timeline:\n{timeline}",
            call.path,
            call.at
        );
    }
}

/// Checks a call as a receiver must: the signature verifies against the body with the shared key, and the body
/// is the documented payload for this kind of hook.
fn check_signed_payload(call: &Call, revision: &str, checksum: &str) -> Value {
    let signature = call
        .signature
        .as_deref()
        .unwrap_or_else(|| panic!("{} was called without {}", call.path, sluice_notify::SIGNATURE_HEADER));
    sluice_notify::verify(signature, &call.body, KEY.as_bytes(), Timestamp::now().as_second(), 300)
        .unwrap_or_else(|e| panic!("{}: {e}", call.path));
    let body = call.json();
    let kind = call.path.trim_start_matches('/');
    assert_eq!(body["type"], kind, "{body:#}");
    assert_eq!(body["service"], "web", "{body:#}");
    assert_eq!(body["revision"], revision, "{body:#}");
    assert_eq!(body["checksum"], checksum, "{body:#}");
    assert_eq!(body["metadata"]["team"], "payments", "{body:#}");
    assert!(!body["phase"].as_str().unwrap_or_default().is_empty(), "{body:#}");
    body
}

/// The daemon's log as a person reads it: without the terminal colour codes it is written with.
fn plain_log(sluice: &Sluice) -> String {
    let log = sluice.daemon_log();
    let mut plain = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // An escape sequence ends at its first letter (`ESC [ 3 m`).
            chars.by_ref().find(char::is_ascii_alphabetic);
        } else {
            plain.push(c);
        }
    }
    plain
}

/// When the daemon's log says the revision's first instance was started.
fn first_instance_started(sluice: &Sluice, revision: &str) -> Timestamp {
    let log = plain_log(sluice);
    let line = log
        .lines()
        .find(|l| l.contains(&format!("instance started revision={revision} ")))
        .unwrap_or_else(|| panic!("no instance of {revision} was started:\n{log}"));
    line.split_whitespace()
        .next()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no timestamp at the start of {line:?}"))
}

fn requests_served_by(stats: &sluice_demo::load::LoadStats, revision: &str) -> u64 {
    stats
        .snapshot()
        .revisions
        .iter()
        .find(|r| r.revision == revision)
        .map_or(0, |r| r.requests)
}

const ALL_KINDS: [&str; 8] = [
    "confirm-rollout",
    "pre-rollout",
    "rollout",
    "confirm-traffic-increase",
    "confirm-promotion",
    "post-rollout",
    "rollback",
    "event",
];

/// Flagger's eight kinds on one canary, promoted: each is called at its moment of the timeline, every call is
/// signed, and its body says which service, revision, phase and kind it is about.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_webhook_kind_is_called_at_its_moment_with_a_signature_that_verifies() {
    let receiver = Receiver::start().await;
    // Anything but 2xx: the rollback hook is asked, and says no.
    receiver.answer("/rollback", Answer::Status(404));
    let (sluice, _) = Sluice::serving_v1("[20, 50]").await;
    let key = secret_file(&sluice, "hook.key", KEY);
    let users = sluice.users(50.0, 45);
    let stats = users.stats();
    let v2 = spec_with(
        &sluice,
        "v2",
        0.0,
        "[20, 50]",
        "",
        &webhooks(&receiver, &key, &ALL_KINDS),
    );
    let applied = sluice.apply(&v2);
    assert!(applied.status.success(), "{}", String::from_utf8_lossy(&applied.stderr));

    // Until the promotion ends, remember the last moment v2 had served no user: every call before it was made
    // before any user traffic reached the candidate.
    let mut no_user_on_v2_at = Timestamp::now();
    let deadline = Instant::now() + Duration::from_secs(40);
    let status = loop {
        let status = sluice.status("web").await.unwrap();
        if requests_served_by(&stats, "v2") == 0 {
            no_user_on_v2_at = Timestamp::now();
        }
        if phase(&status) == "Succeeded" && stable(&status) == "v2" {
            break status;
        }
        assert!(Instant::now() < deadline, "no promotion: {status:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let checksum = status["stable"]["checksum"].as_str().unwrap().to_string();
    receiver
        .wait_for_calls("/post-rollout", 1, Duration::from_secs(5))
        .await;
    let timeline = Timeline::fetch(&sluice, "New revision detected, starting canary analysis of web v2").await;

    // confirm-rollout: while the gate was closed, before the candidate's first instance was started.
    let opened = timeline.at("Gate confirm-rollout opened: webhook confirm-rollout-hook answered 2xx");
    let confirm_rollout = receiver.calls("/confirm-rollout");
    all_between(
        &confirm_rollout,
        timeline.at("Waiting for approval: the confirm-rollout gate"),
        opened,
        &timeline,
    );
    let started = first_instance_started(&sluice, "web/v2");
    assert!(
        confirm_rollout.iter().all(|c| c.at < started),
        "v2 was started at {started}, before the gate was asked: {confirm_rollout:?}"
    );

    // pre-rollout: once, in the isolation stage, before any user request reached the candidate.
    let pre_rollout = receiver.calls("/pre-rollout");
    assert_eq!(pre_rollout.len(), 1, "{pre_rollout:?}");
    all_between(
        &pre_rollout,
        timeline.at("Isolation: checking v2 alone"),
        timeline.at("Isolation checks passed"),
        &timeline,
    );
    assert!(
        pre_rollout[0].at <= no_user_on_v2_at,
        "v2 served users before the pre-rollout hook was called at {}",
        pre_rollout[0].at
    );
    let promoting = timeline.at("Promoting v2");

    // rollout: at evaluations while users are served; rollback: asked while the candidate is analysed.
    let rollout = receiver.calls("/rollout");
    all_between(
        &rollout,
        timeline.at("Starting canary analysis for web"),
        promoting,
        &timeline,
    );
    let rollback = receiver.calls("/rollback");
    all_between(
        &rollback,
        timeline.at("Isolation: checking v2 alone"),
        promoting,
        &timeline,
    );
    assert!(
        rollback.iter().any(|c| c.at >= timeline.at("Advance canary weight 20")),
        "the rollback hook is asked while progressing: {rollback:?}\n{timeline}"
    );
    assert!(timeline.all("Canary failed!").is_empty(), "{timeline}");

    // confirm-traffic-increase: before the weight increase (the first step is no increase), until it opens.
    let (first_step, increased) = (
        timeline.at("Advance canary weight 20"),
        timeline.at("Advance canary weight 50"),
    );
    all_between(
        &receiver.calls("/confirm-traffic-increase"),
        first_step,
        increased,
        &timeline,
    );
    assert!(
        timeline.at("Gate confirm-traffic-increase opened: webhook confirm-traffic-increase-hook answered 2xx")
            <= increased,
        "{timeline}"
    );

    // confirm-promotion: after the last step, before the promotion.
    all_between(&receiver.calls("/confirm-promotion"), increased, promoting, &timeline);
    assert!(
        timeline.at("Gate confirm-promotion opened: webhook confirm-promotion-hook answered 2xx") <= promoting,
        "{timeline}"
    );

    // post-rollout: once, after the promotion finished.
    let post = receiver.calls("/post-rollout");
    assert_eq!(post.len(), 1, "{post:?}");
    all_between(
        &post,
        timeline.at("Canary analysis completed successfully, promotion finished"),
        Timestamp::now(),
        &timeline,
    );

    // event: every event of the timeline, in order, its message in the metadata.
    let expected = timeline.messages();
    let deadline = Instant::now() + Duration::from_secs(5);
    let told = loop {
        let told: Vec<String> = receiver
            .calls("/event")
            .iter()
            .map(|c| {
                c.json()["metadata"]["eventMessage"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        if told.len() >= expected.len() || Instant::now() > deadline {
            break told;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(told, expected, "event hook calls against the timeline");

    // Every call of every kind is signed, and says what it is about.
    for call in receiver.all() {
        let body = check_signed_payload(&call, "v2", &checksum);
        let phase = body["phase"].as_str().unwrap();
        let expected_phase = match call.path.as_str() {
            "/confirm-rollout" => "Deploying",
            "/pre-rollout" => "Isolation",
            "/rollout" | "/confirm-traffic-increase" | "/confirm-promotion" => "Progressing",
            "/post-rollout" => "Succeeded",
            "/rollback" if phase.contains("Isolation") => "Isolation",
            "/rollback" => "Progressing",
            "/event" => "",
            other => panic!("unexpected call to {other}"),
        };
        assert!(phase.contains(expected_phase), "{} in phase {phase}", call.path);
    }
    for kind in ALL_KINDS {
        assert!(
            !receiver.calls(&format!("/{kind}")).is_empty(),
            "{kind} was never called"
        );
    }

    users.stop();
    let total = users.finish().await;
    assert_eq!(total.total.transport_errors, 0, "{total:?}");
    assert_eq!(total.total.server_errors, 0, "{total:?}");
}

/// A rollback hook that answers 2xx while the candidate is analysed rolls it back; post-rollout hooks hear of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_webhook_answering_2xx_rolls_back_and_post_rollout_follows() {
    let receiver = Receiver::start().await;
    let (mut sluice, _) = Sluice::serving_v1("[20, 50]").await;
    let key = secret_file(&sluice, "hook.key", KEY);
    let users = sluice.users(50.0, 20);
    let hooks = webhooks(&receiver, &key, &["rollback", "post-rollout"]);
    assert!(
        sluice
            .apply(&spec_with(&sluice, "v2", 0.0, "[20, 50]", "", &hooks))
            .status
            .success()
    );
    let status = sluice
        .wait_for("web", Duration::from_secs(15), |s| phase(s) == "RolledBack")
        .await;
    assert_eq!((stable(&status), weight(&status)), ("v1", 0), "{status:#}");
    let checksum = status["candidate"]["checksum"].as_str().unwrap().to_string();
    receiver
        .wait_for_calls("/post-rollout", 1, Duration::from_secs(5))
        .await;
    let timeline = Timeline::fetch(&sluice, "New revision detected, starting canary analysis of web v2").await;
    let failed = timeline.first("Canary failed! Rolling back web to v1: rollback requested by webhook rollback-hook");
    assert_eq!(failed.severity, "error", "a rollback raises an alert");

    let rollback = receiver.calls("/rollback");
    assert_eq!(rollback.len(), 1, "the first 2xx rolls back: {rollback:?}");
    all_between(&rollback, timeline.at("Advance canary weight 20"), failed.at, &timeline);
    let post = receiver.calls("/post-rollout");
    assert_eq!(post.len(), 1, "{post:?}");
    all_between(&post, timeline.at("Rollback finished"), Timestamp::now(), &timeline);
    for call in receiver.all() {
        check_signed_payload(&call, "v2", &checksum);
    }
    assert_eq!(post[0].json()["phase"], "RolledBack");
    users.stop();
}

/// A confirm-promotion gate that keeps answering 403 is asked again while it stays closed, until `holdTimeout`;
/// then the rollout rolls back and an error-severity alert says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_left_closed_rolls_back_at_its_hold_timeout_with_an_error_alert() {
    let receiver = Receiver::start().await;
    receiver.answer("/confirm-promotion", Answer::Status(403));
    let (mut sluice, _) = Sluice::serving_v1("[50]").await;
    let key = secret_file(&sluice, "hook.key", KEY);
    let alert_url = secret_file(&sluice, "alert.url", &receiver.url("/alert"));
    let users = sluice.users(50.0, 20);
    let blocks = webhooks(&receiver, &key, &["confirm-promotion"]) + &alerts(&[&alert_url], "error");
    let v2 = spec_with(&sluice, "v2", 0.0, "[50]", "    holdTimeout: 5s\n", &blocks);
    assert!(sluice.apply(&v2).status.success());
    let status = sluice
        .wait_for("web", Duration::from_secs(20), |s| phase(s) == "RolledBack")
        .await;
    assert_eq!((stable(&status), weight(&status)), ("v1", 0), "{status:#}");

    let timeline = Timeline::fetch(&sluice, "New revision detected, starting canary analysis of web v2").await;
    let closed = timeline.at("Waiting for approval: the confirm-promotion gate of web v2 is closed");
    let timed_out = timeline.first("Hold timed out after 5s: the confirm-promotion gate stayed closed for 5s");
    assert_eq!(timed_out.severity, "error");
    let held = timed_out.at.duration_since(closed);
    assert!(
        held >= jiff::SignedDuration::from_secs(5) && held < jiff::SignedDuration::from_millis(7500),
        "held for {held:#}\n{timeline}"
    );
    assert!(
        timeline.at("Canary failed! Rolling back web to v1: the confirm-promotion gate stayed closed for 5s")
            >= timed_out.at,
        "{timeline}"
    );
    let asked = receiver.calls("/confirm-promotion");
    assert!(
        asked.iter().filter(|c| c.at < timed_out.at).count() >= 2,
        "a closed gate is asked again while it stays closed: {asked:?}\n{timeline}"
    );
    // The round that times the hold out may still ask once (the controller asks before deciding); never later.
    all_between(&asked, closed, timeline.at("Rollback finished"), &timeline);

    // The alert: a generic JSON notification of error severity, and nothing less severe.
    let alerts = receiver.wait_for_calls("/alert", 1, Duration::from_secs(5)).await;
    let bodies: Vec<Value> = alerts.iter().map(Call::json).collect();
    assert!(bodies.iter().all(|b| b["severity"] == "error"), "{bodies:#?}");
    let said = bodies
        .iter()
        .find(|b| {
            b["message"]
                .as_str()
                .unwrap_or_default()
                .contains("confirm-promotion gate stayed closed")
        })
        .unwrap_or_else(|| panic!("no alert says the gate stayed closed: {bodies:#?}"));
    assert_eq!(
        (said["service"].as_str(), said["revision"].as_str()),
        (Some("web"), Some("v2")),
        "{said:#}"
    );
    users.stop();
}

/// `sluice approve` opens a gate its webhook keeps closed: behind a closed confirm-rollout gate the candidate is
/// not even started; once approved it starts and the rollout goes on to promotion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_opens_a_closed_gate_and_the_rollout_proceeds() {
    let receiver = Receiver::start().await;
    receiver.answer("/confirm-rollout", Answer::Status(403));
    let (mut sluice, _) = Sluice::serving_v1("[50]").await;
    let key = secret_file(&sluice, "hook.key", KEY);
    let users = sluice.users(50.0, 20);
    let early = sluice.cli(&["approve", "web"]);
    assert!(!early.status.success(), "nothing to approve yet");
    assert!(
        String::from_utf8_lossy(&early.stderr).contains("does not wait at a gate"),
        "{}",
        String::from_utf8_lossy(&early.stderr)
    );
    let hooks = webhooks(&receiver, &key, &["confirm-rollout"]);
    assert!(
        sluice
            .apply(&spec_with(&sluice, "v2", 0.0, "[50]", "", &hooks))
            .status
            .success()
    );
    receiver
        .wait_for_calls("/confirm-rollout", 1, Duration::from_secs(10))
        .await;
    let gated = sluice.status("web").await.unwrap();
    assert!(
        gated["displayPhase"]
            .as_str()
            .unwrap()
            .contains("waiting at the confirm-rollout gate"),
        "{gated:#}"
    );
    assert!(
        pids(&gated, "v2").is_empty(),
        "v2 started behind a closed gate: {gated:#}"
    );
    assert!(!plain_log(&sluice).contains("instance started revision=web/v2 "));

    let approved = sluice.cli(&["approve", "web"]);
    assert!(
        approved.status.success(),
        "{}",
        String::from_utf8_lossy(&approved.stderr)
    );
    sluice
        .wait_for("web", Duration::from_secs(10), |s| stable(s) == "v2")
        .await;
    let timeline = Timeline::fetch(&sluice, "New revision detected, starting canary analysis of web v2").await;
    let opened = timeline.at("Gate confirm-rollout opened: approved by an operator");
    assert!(first_instance_started(&sluice, "web/v2") >= opened, "{timeline}");
    assert!(
        timeline.at("Promoting v2") > timeline.at("Advance canary weight 50"),
        "{timeline}"
    );
    users.stop();
    let total = users.finish().await;
    assert_eq!(total.total.transport_errors, 0, "{total:?}");
}

/// Notifications never hold a rollout up: with one endpoint refusing connections and one that never answers,
/// the time from apply to promotion is what it is without alerts, and the daemon logs the failed delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_endpoint_that_is_down_or_hangs_delays_nothing() {
    let receiver = Receiver::start().await;
    receiver.answer("/alert", Answer::Hang);
    let (mut sluice, _) = Sluice::serving_v1("[20, 50]").await;
    let users = sluice.users(50.0, 30);

    assert!(
        sluice
            .apply(&spec(sluice.listen, "v2", 0.0, "[20, 50]"))
            .status
            .success()
    );
    sluice
        .wait_for("web", Duration::from_secs(20), |s| {
            phase(s) == "Succeeded" && stable(s) == "v2"
        })
        .await;
    let quiet = Timeline::fetch(&sluice, "New revision detected, starting canary analysis of web v2").await;
    let without_alerts = quiet
        .at("Promoting v2")
        .duration_since(quiet.at("New revision detected"));

    let down = secret_file(&sluice, "down.url", &format!("http://127.0.0.1:{}/alert", free_port()));
    let hanging = secret_file(&sluice, "hanging.url", &receiver.url("/alert"));
    let v3 = spec_with(&sluice, "v3", 0.0, "[20, 50]", "", &alerts(&[&down, &hanging], "info"));
    assert!(sluice.apply(&v3).status.success());
    sluice
        .wait_for("web", Duration::from_secs(15), |s| stable(s) == "v3")
        .await;
    let alerted = Timeline::fetch(&sluice, "New revision detected, starting canary analysis of web v3").await;
    let with_alerts = alerted
        .at("Promoting v3")
        .duration_since(alerted.at("New revision detected"));
    assert!(
        (with_alerts - without_alerts).abs() <= jiff::SignedDuration::from_millis(1500),
        "apply to promotion took {with_alerts:#} with alerts, {without_alerts:#} without\n{quiet}\n{alerted}"
    );
    assert!(
        !receiver.calls("/alert").is_empty(),
        "the hanging endpoint was being notified meanwhile"
    );

    // The endpoint that is down is logged after its last attempt, named by where its URL comes from.
    let deadline = Instant::now() + Duration::from_secs(10);
    let line = loop {
        let log = plain_log(&sluice);
        if let Some(line) = log.lines().find(|l| l.contains("notification not delivered")) {
            break line.to_string();
        }
        assert!(Instant::now() < deadline, "the failed delivery is not logged:\n{log}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        line.contains("generic")
            && line.contains(&format!("url_from=file {}", down.display()))
            && line.contains("connection refused"),
        "{line}"
    );
    users.stop();
    let total = users.finish().await;
    assert_eq!(total.total.transport_errors, 0, "{total:?}");
}

/// `sluice retry` after a rollback starts the same candidate's rollout again; here a rollout hook failed it the
/// first time and passes the second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_a_rollback_starts_the_candidates_rollout_again() {
    let receiver = Receiver::start().await;
    receiver.answer("/rollout", Answer::Status(500));
    let (mut sluice, _) = Sluice::serving_v1("[50]").await;
    let key = secret_file(&sluice, "hook.key", KEY);
    let users = sluice.users(50.0, 25);
    let v2 = spec_with(
        &sluice,
        "v2",
        0.0,
        "[20, 50]",
        "",
        &webhooks(&receiver, &key, &["rollout"]),
    )
    .replace("threshold: 2", "threshold: 1");
    assert!(sluice.apply(&v2).status.success());
    sluice
        .wait_for("web", Duration::from_secs(15), |s| phase(s) == "RolledBack")
        .await;
    let failed = Timeline::fetch(&sluice, "New revision detected, starting canary analysis of web v2").await;
    failed.first("Halt advancement: rollout webhook rollout-hook failed: 500");
    failed.first("Canary failed! Rolling back web to v1: Failed checks threshold reached 1");

    receiver.answer("/rollout", Answer::Status(200));
    let retried = sluice.cli(&["retry", "web"]);
    assert!(retried.status.success(), "{}", String::from_utf8_lossy(&retried.stderr));
    let status = sluice
        .wait_for("web", Duration::from_secs(15), |s| stable(s) == "v2")
        .await;
    assert_eq!(candidate(&status), "", "{status:#}");
    let timeline = Timeline::fetch(&sluice, "Retry requested by an operator: restarting the rollout of v2").await;
    assert!(
        timeline.at("Promoting v2") > timeline.at("Advance canary weight 50"),
        "{timeline}"
    );
    let again = sluice.cli(&["retry", "web"]);
    assert!(!again.status.success(), "only a rolled-back rollout can be retried");
    users.stop();
    let total = users.finish().await;
    assert_eq!(total.total.transport_errors, 0, "{total:?}");
}

/// `sluice undo` after a promotion is a new rollout of the revision the promotion replaced, ending with it stable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undo_after_a_promotion_rolls_back_to_the_previous_revision() {
    let (mut sluice, _) = Sluice::serving_v1("[50]").await;
    let users = sluice.users(50.0, 30);
    assert!(sluice.apply(&spec(sluice.listen, "v2", 0.0, "[50]")).status.success());
    sluice
        .wait_for("web", Duration::from_secs(10), |s| candidate(s) == "v2")
        .await;
    let early = sluice.cli(&["undo", "web"]);
    assert!(!early.status.success(), "undo before the promotion finished");
    assert!(
        String::from_utf8_lossy(&early.stderr).contains("only a promoted rollout can be undone"),
        "{}",
        String::from_utf8_lossy(&early.stderr)
    );
    sluice
        .wait_for("web", Duration::from_secs(15), |s| {
            phase(s) == "Succeeded" && stable(s) == "v2"
        })
        .await;

    let undone = sluice.cli(&["undo", "web"]);
    assert!(undone.status.success(), "{}", String::from_utf8_lossy(&undone.stderr));
    let status = sluice
        .wait_for("web", Duration::from_secs(15), |s| {
            phase(s) == "Succeeded" && stable(s) == "v1"
        })
        .await;
    assert_eq!(status["desired"]["name"], "v1", "{status:#}");
    let timeline = Timeline::fetch(&sluice, "New revision detected, starting canary analysis of web v1").await;
    assert!(
        timeline.at("Promoting v1") > timeline.at("Advance canary weight 50"),
        "{timeline}"
    );
    timeline.first("Canary analysis completed successfully, promotion finished");
    users.stop();
    let total = users.finish().await;
    assert_eq!(total.total.transport_errors, 0, "{total:?}");
}

/// With `onFailure: hold` a failing candidate is held at its weight for a human, not rolled back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_failure_hold_pauses_for_a_human_instead_of_rolling_back() {
    let (mut sluice, _) = Sluice::serving_v1("[50]").await;
    let users = sluice.users(100.0, 20);
    let v3 = spec_with(
        &sluice,
        "v3",
        0.3,
        "[50]",
        "    onFailure: hold\n    holdTimeout: 1m\n",
        "",
    )
    .replace("threshold: 2", "threshold: 1");
    assert!(sluice.apply(&v3).status.success());
    let held = sluice
        .wait_for("web", Duration::from_secs(15), |s| !s["hold"].is_null())
        .await;
    assert!(
        held["displayPhase"].as_str().unwrap().contains("failed analysis"),
        "{held:#}"
    );
    let timeline = Timeline::fetch(&sluice, "New revision detected, starting canary analysis of web v3").await;
    let holding = timeline
        .0
        .iter()
        .find(|e| e.message.contains("holding for a human"))
        .unwrap_or_else(|| panic!("{timeline}"));
    assert_eq!(holding.severity, "error", "a hold for a human raises an alert");

    // It stays: same phase, same weight, no rollback, while nobody decides.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let still = sluice.status("web").await.unwrap();
    assert_eq!(
        (phase(&still), candidate(&still), weight(&still)),
        ("Progressing", "v3", weight(&held)),
        "{still:#}"
    );
    assert!(!still["hold"].is_null(), "{still:#}");
    assert!(
        !messages(&still).iter().any(|m| m.starts_with("Canary failed!")),
        "{still:#}"
    );

    // The human decides.
    assert!(sluice.cli(&["abort", "web"]).status.success());
    let status = sluice
        .wait_for("web", Duration::from_secs(5), |s| phase(s) == "RolledBack")
        .await;
    assert_eq!(stable(&status), "v1");
    users.stop();
}

//! The path before and around users: isolation checks, blue/green and A/B testing, as users see them. Users keep
//! sending traffic through the proxy throughout; what they saw is counted by the `x-revision` header.

use std::time::Duration;

use serde_json::Value;
use sluice_demo::load::{LoadHandle, RequestTemplate};

use super::support::*;

const CANARY: &str = "  strategy:\n    canary:\n      stepWeights: [50]\n      interval: 1s";

/// A daemon serving `web` at v1 (the healthy demo app), released with `release`.
async fn serving_v1(release: &str) -> Sluice {
    let mut sluice = Sluice::start().await;
    let applied = sluice.apply(&release_spec(sluice.listen, "v1", &demo_command("v1", 0.0), release));
    assert!(applied.status.success(), "{}", String::from_utf8_lossy(&applied.stderr));
    sluice
        .wait_for("web", Duration::from_secs(20), |s| phase(s) == "Succeeded")
        .await;
    sluice
}

/// Applies `web` at `revision`, running `command` and released with `release`.
fn apply(sluice: &Sluice, revision: &str, command: &str, release: &str) {
    let applied = sluice.apply(&release_spec(sluice.listen, revision, command, release));
    assert!(applied.status.success(), "{}", String::from_utf8_lossy(&applied.stderr));
}

/// Asserts the candidate was rolled back and is still running, answering on its own address.
async fn left_running(status: &Value, revision: &str) {
    let instances = pids(status, revision);
    assert!(!instances.is_empty(), "{revision} is left running: {status:#}");
    assert!(instances.iter().all(|pid| alive(*pid)), "{status:#}");
    for instance in status["instances"].as_array().unwrap() {
        if instance["revision"] == revision {
            let addr = instance["addr"].as_str().unwrap();
            let health = reqwest::get(format!("http://{addr}/healthz")).await.unwrap();
            assert!(health.status().is_success(), "{revision} at {addr} answers");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_a_candidate_failing_a_smoke_check_is_rolled_back_before_serving_a_single_user() {
    let mut sluice = serving_v1(CANARY).await;
    let users = sluice.users(100.0, 20);
    let isolation = format!(
        "{CANARY}\n  stages:\n    isolation:\n      smoke:\n        - path: /healthz\n        - path: /\n          expectBody: hello"
    );
    apply(&sluice, "v2", &demo_command("v2", 1.0), &isolation);
    let status = sluice
        .wait_for("web", Duration::from_secs(15), |s| phase(s) == "RolledBack")
        .await;
    users.stop();
    let total = users.finish().await;

    let events = messages(&status).join("\n");
    assert!(
        events.contains("isolation checks failed") && events.contains("GET /: expected 200, got 500"),
        "the event names the failed check: {events}"
    );
    assert!(
        !events.contains("GET /healthz: expected"),
        "the passing check is not blamed: {events}"
    );
    assert_eq!(status["reports"]["isolation"]["checks"]["passed"], false, "{status:#}");
    assert_eq!(stable(&status), "v1");
    assert!(total.total.requests > 300, "users kept sending: {total:?}");
    assert_eq!(
        served_by(&total.revisions, "v2"),
        0,
        "users reached the candidate: {total:?}"
    );
    assert_eq!(total.total.transport_errors + total.total.server_errors, 0, "{total:?}");
    left_running(&status, "v2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_a_candidate_over_the_load_tests_p99_is_rolled_back_and_left_running() {
    let mut sluice = serving_v1(CANARY).await;
    let users = sluice.users(100.0, 20);
    let isolation = format!(
        "{CANARY}\n  stages:\n    isolation:\n      loadTest:\n        requests: [{{ path: / }}]\n        rate: 20\n        duration: 2s\n        slo: {{ p99: 100ms }}"
    );
    apply(
        &sluice,
        "v2",
        &demo_command_with("v2", &["--latency", "300ms"]),
        &isolation,
    );
    let status = sluice
        .wait_for("web", Duration::from_secs(20), |s| phase(s) == "RolledBack")
        .await;
    users.stop();
    let total = users.finish().await;

    let events = messages(&status).join("\n");
    let failure = messages(&status)
        .into_iter()
        .find(|m| m.contains("isolation checks failed"))
        .unwrap_or_else(|| panic!("no isolation failure: {events}"));
    // `... load test failed: p99 301 ms > 100 ms over 40 requests`
    let p99: f64 = failure
        .split("p99 ")
        .nth(1)
        .and_then(|rest| rest.split(" ms > 100 ms").next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("the event names the p99 and its limit: {failure}"));
    assert!((300.0..1500.0).contains(&p99), "{failure}");
    assert_eq!(stable(&status), "v1");
    assert!(total.total.requests > 300, "users kept sending: {total:?}");
    assert_eq!(
        served_by(&total.revisions, "v2"),
        0,
        "users reached the candidate: {total:?}"
    );
    assert_eq!(total.total.transport_errors + total.total.server_errors, 0, "{total:?}");
    left_running(&status, "v2").await;
}

/// Blue/green under constant load: the preview answers from v2 while users only get v1, then one switch moves
/// everybody at once, with no failed request; v1 is stopped after the scale-down delay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_blue_green_switches_all_users_at_once_without_a_failed_request() {
    let mut sluice = serving_v1(CANARY).await;
    let v1 = pids(&sluice.status("web").await.unwrap(), "v1");
    let users = sluice.users(200.0, 25);
    let user = Prober::start(sluice.listen, &[], Duration::from_millis(5), 5_000);
    let preview = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    // The preview's load test keeps the rollout before the switch long enough to look at the preview.
    let blue_green = format!(
        "  strategy:\n    blueGreen:\n      previewListen: {preview}\n      scaleDownDelay: 2s\n      prePromotion:\n        loadTest:\n          requests: [{{ path: / }}]\n          rate: 20\n          duration: 3s"
    );
    apply(&sluice, "v2", &demo_command("v2", 0.0), &blue_green);
    sluice
        .wait_for("web", Duration::from_secs(10), |s| phase(s) == "Progressing")
        .await;

    let client = reqwest::Client::new();
    let mut previewed = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while previewed.len() < 5 && tokio::time::Instant::now() < deadline {
        if let Ok(answer) = client.get(format!("http://{preview}/")).send().await {
            previewed.push(answer.headers()["x-revision"].to_str().unwrap().to_string());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = sluice.status("web").await.unwrap();
    assert_eq!(phase(&status), "Progressing", "still before the switch: {status:#}");
    assert_eq!(previewed, ["v2"; 5], "the preview answers from v2");

    let switched = sluice
        .wait_for("web", Duration::from_secs(15), |s| stable(s) == "v2")
        .await;
    assert!(
        v1.iter().all(|pid| alive(*pid)),
        "v1 keeps running during the scale-down delay: {switched:#}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let seen = user.stop().await;
    let status = sluice
        .wait_for("web", Duration::from_secs(10), |s| phase(s) == "Succeeded")
        .await;
    users.stop();
    let total = users.finish().await;

    let runs = runs(&seen);
    assert!(
        runs.len() == 2 && runs[0].0 == "v1" && runs[1].0 == "v2",
        "one user saw v1, then only v2: {runs:?}"
    );
    assert!(runs[0].1 > 20 && runs[1].1 > 20, "{runs:?}");
    assert_eq!(total.total.transport_errors + total.total.server_errors, 0, "{total:?}");
    assert!(
        served_by(&total.revisions, "v1") > 100 && served_by(&total.revisions, "v2") > 100,
        "{total:?}"
    );
    let events = messages(&status);
    assert!(
        events.iter().any(|m| m.starts_with("Pre-promotion checks passed")),
        "{events:?}"
    );
    assert!(
        events.iter().any(|m| m == "Promoting v2: routing all traffic to it"),
        "{events:?}"
    );
    // The stop is decided with the end of the delay and carried out just after (SIGTERM, then a grace).
    let stopping = tokio::time::Instant::now();
    while v1.iter().any(|pid| alive(*pid)) {
        assert!(
            stopping.elapsed() < Duration::from_secs(7),
            "v1 is stopped after the scale-down delay"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Blue/green: a new revision failing after the switch (it errs on user requests, which it sees only then) is
/// switched back at once to the old one, which kept running; users are on v1 again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_blue_green_switches_back_at_once_on_a_failure_during_the_scale_down_delay() {
    let mut sluice = serving_v1(CANARY).await;
    let v1 = pids(&sluice.status("web").await.unwrap(), "v1");
    let users = sluice.users(200.0, 20);
    let stats = users.stats();
    let blue_green = "  strategy:\n    blueGreen:\n      scaleDownDelay: 30s";
    apply(&sluice, "v2", &demo_command("v2", 0.5), blue_green);
    sluice
        .wait_for("web", Duration::from_secs(10), |s| stable(s) == "v2")
        .await;
    let switched = tokio::time::Instant::now();
    let status = sluice
        .wait_for("web", Duration::from_secs(10), |s| phase(s) == "RolledBack")
        .await;
    assert!(
        switched.elapsed() < Duration::from_secs(5),
        "switched back within seconds, not at the end of the 30s delay: {:?}",
        switched.elapsed()
    );
    assert_eq!(stable(&status), "v1");
    assert_eq!(
        pids(&status, "v1"),
        v1,
        "the old revision kept running and takes the traffic back"
    );
    let events = messages(&status).join("\n");
    assert!(
        // The first window after the switch holds about half failures; its exact share depends on its size.
        events.contains("web to v1: failed after the switch: request-success-rate"),
        "{events}"
    );

    tokio::time::sleep(Duration::from_millis(300)).await;
    let mark = stats.snapshot();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = stats.window(&mark);
    assert!(after.total.requests > 100, "{after:?}");
    assert_eq!(served_by(&after.revisions, "v2"), 0, "users are back on v1: {after:?}");
    assert_eq!(after.total.server_errors + after.total.transport_errors, 0, "{after:?}");
    users.stop();
    let total = users.finish().await;
    assert_eq!(total.total.transport_errors, 0, "{total:?}");
    left_running(&status, "v2").await;
}

/// A/B: while the test runs only requests matching a rule (a header, or a cookie) reach v2, others never do; after
/// its iterations v2 is promoted and everybody gets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_ab_test_sends_only_matching_requests_to_the_candidate_then_promotes_it() {
    let sluice = serving_v1(CANARY).await;
    let others = sluice.users_sending(
        vec![
            get_with(&[]),
            get_with(&[("x-beta", "no")]),
            get_with(&[("cookie", "beta=off; theme=dark")]),
        ],
        150.0,
        25,
    );
    let testers = sluice.users_sending(
        vec![
            get_with(&[("x-beta", "yes")]),
            get_with(&[("cookie", "theme=dark; beta=on")]),
        ],
        100.0,
        25,
    );
    let ab = "  strategy:\n    abTest:\n      iterations: 3\n      interval: 1s\n      match:\n        - headers: { x-beta: { exact: \"yes\" } }\n        - cookies: { beta: { regex: \"^on$\" } }";
    apply(&sluice, "v2", &demo_command("v2", 0.0), ab);

    // Other requests are counted until the promotion; matching ones over windows wholly inside the A/B test (its
    // route settled before the window began).
    let (others_stats, testers_stats) = (others.stats(), testers.stats());
    let (mut others_seen, mut testers_seen) = (Vec::new(), Vec::new());
    let mut progressing_since: Option<tokio::time::Instant> = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let before = sluice.status("web").await.unwrap();
        let marks = (others_stats.snapshot(), testers_stats.snapshot());
        tokio::time::sleep(Duration::from_millis(300)).await;
        let after = sluice.status("web").await.unwrap();
        // The promotion is persisted before its route is applied: until the status shows it, nobody else was
        // routed to v2.
        let promoting = matches!(phase(&after), "Promoting" | "Finalising" | "Succeeded");
        if !promoting {
            others_seen.extend(others_stats.window(&marks.0).revisions);
        }
        if phase(&before) == "Progressing" {
            let since = *progressing_since.get_or_insert_with(tokio::time::Instant::now);
            if !promoting && since.elapsed() > Duration::from_millis(600) {
                testers_seen.extend(testers_stats.window(&marks.1).revisions);
            }
        }
        if phase(&after) == "Succeeded" && stable(&after) == "v2" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no promotion: {after:#}");
    }
    assert!(
        served_by(&testers_seen, "v2") > 100,
        "matching requests reached v2: {testers_seen:?}"
    );
    assert_eq!(
        served_by(&testers_seen, "v1"),
        0,
        "matching requests went to v1: {testers_seen:?}"
    );
    assert!(served_by(&others_seen, "v1") > 150, "{others_seen:?}");
    assert_eq!(
        served_by(&others_seen, "v2"),
        0,
        "other requests reached v2: {others_seen:?}"
    );

    let status = sluice.status("web").await.unwrap();
    let events = messages(&status);
    assert!(
        events.iter().any(|m| m == "Advance A/B test iteration 3/3"),
        "{events:?}"
    );
    let mark = others_stats.snapshot();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let promoted = others_stats.window(&mark);
    assert!(
        promoted.total.requests > 100 && served_by(&promoted.revisions, "v2") == promoted.total.requests,
        "everybody gets v2 after the promotion: {promoted:?}"
    );
    others.stop();
    testers.stop();
    for load in [others.finish().await, testers.finish().await] {
        assert_eq!(load.total.transport_errors + load.total.server_errors, 0, "{load:?}");
    }
}

/// A shadow stage of `duration` mirroring every request (of `methods`, when given) before a one-step canary.
fn shadowed(duration: &str, methods: Option<&str>) -> String {
    let methods = methods.map_or_else(String::new, |m| format!("\n      methods: {m}"));
    format!(
        "{CANARY}\n  stages:\n    shadow:\n      share: 100\n      duration: {duration}\n      maxDiffRate: 1{methods}"
    )
}

/// Users reading items and placing an order now and then.
fn shoppers(sluice: &Sluice, rate: f64, seconds: u64) -> LoadHandle {
    let order = RequestTemplate::post("/api/items/3", r#"{"quantity":1}"#);
    sluice.users_sending(
        vec![
            RequestTemplate::get("/api/items/1"),
            RequestTemplate::get("/api/items/2"),
            order,
            RequestTemplate::get("/api/items/4"),
        ],
        rate,
        seconds,
    )
}

/// The shadow report's field `name`, if it differed at all.
fn shadow_field<'a>(status: &'a Value, name: &str) -> Option<&'a Value> {
    status["reports"]["shadow"]["fields"]
        .as_array()?
        .iter()
        .find(|f| f["field"] == name)
}

/// A changed price is a real difference and fails the shadow stage; the request id and timestamp, which differ
/// between any two stable answers too, are noise. Users only ever get v1's answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_shadow_flags_a_changed_price_but_not_per_answer_noise_and_rolls_back() {
    let mut sluice = serving_v1(CANARY).await;
    let users = shoppers(&sluice, 100.0, 20);
    apply(
        &sluice,
        "v2",
        &demo_command_with("v2", &["--price-change", "5"]),
        &shadowed("3s", None),
    );
    let status = sluice
        .wait_for("web", Duration::from_secs(20), |s| phase(s) == "RolledBack")
        .await;
    users.stop();
    let total = users.finish().await;

    let events = messages(&status).join("\n");
    assert!(
        events.contains("shadow diff rate too high") && events.contains("$.price (candidate 100.00%"),
        "the event names the field: {events}"
    );
    let price = shadow_field(&status, "$.price").unwrap_or_else(|| panic!("{status:#}"));
    assert_eq!(price["real"], true, "{price:#}");
    for noise in ["$.requestId", "$.servedAt"] {
        let field = shadow_field(&status, noise).unwrap_or_else(|| panic!("{noise} differs: {status:#}"));
        assert_eq!(field["real"], false, "{noise} is noise: {field:#}");
    }
    let report = &status["reports"]["shadow"];
    assert!(report["compared"].as_u64().unwrap() > 100, "{report:#}");
    let shown = sluice.cli(&["status", "web"]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.lines().any(|l| l.contains("$.price") && l.contains("REAL"))
            && shown.lines().any(|l| l.contains("$.requestId") && l.contains("noise")),
        "sluice status shows the diff: {shown}"
    );
    assert!(total.total.requests > 300, "{total:?}");
    assert_eq!(
        served_by(&total.revisions, "v2"),
        0,
        "users got a candidate answer: {total:?}"
    );
    assert_eq!(total.total.transport_errors + total.total.server_errors, 0, "{total:?}");
    left_running(&status, "v2").await;
}

/// A candidate that answers reads like stable passes the shadow stage, although it fails every order: orders are
/// not idempotent, so none is mirrored (the comparison never sees one) and users get only v1 during the stage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_shadow_passes_a_candidate_that_reads_like_stable_and_never_mirrors_a_post() {
    let sluice = serving_v1(CANARY).await;
    let users = shoppers(&sluice, 100.0, 20);
    let stats = users.stats();
    let fails_orders = demo_command_with("v2", &["--fail-methods", "POST", "--error-rate", "1"]);
    apply(&sluice, "v2", &fails_orders, &shadowed("3s", None));

    // Users' answers until the stage ends: the release is persisted before its route applies, so until the status
    // shows it no user was routed to v2.
    let mut before_release = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        let mark = stats.snapshot();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let status = sluice.status("web").await.unwrap();
        if messages(&status).iter().any(|m| m.starts_with("Shadow stage passed")) {
            break status;
        }
        before_release.extend(stats.window(&mark).revisions);
        assert!(
            tokio::time::Instant::now() < deadline,
            "the shadow stage did not pass: {status:#}"
        );
    };
    users.stop();

    let report = &status["reports"]["shadow"];
    assert!(report["compared"].as_u64().unwrap() > 100, "{report:#}");
    assert_eq!(report["withRealDifference"], 0, "{report:#}");
    assert!(
        shadow_field(&status, "status").is_none(),
        "no failed order was compared: {report:#}"
    );
    assert_eq!(report["refused"], 0, "no order reached the comparison: {report:#}");
    assert_eq!(
        shadow_field(&status, "$.requestId").map(|f| &f["real"]),
        Some(&Value::Bool(false))
    );
    assert!(served_by(&before_release, "v1") > 300, "{before_release:?}");
    assert_eq!(
        served_by(&before_release, "v2"),
        0,
        "users got a candidate answer: {before_release:?}"
    );
}

/// With POST among the shadowed methods, orders are mirrored too: the candidate's failed orders show as a real
/// `status` difference and roll it back, while users' orders, answered by v1, all succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_shadow_mirrors_posts_only_when_the_spec_says_so() {
    let mut sluice = serving_v1(CANARY).await;
    let users = shoppers(&sluice, 100.0, 20);
    let fails_orders = demo_command_with("v2", &["--fail-methods", "POST", "--error-rate", "1"]);
    apply(&sluice, "v2", &fails_orders, &shadowed("2s", Some("[GET, POST]")));
    let status = sluice
        .wait_for("web", Duration::from_secs(20), |s| phase(s) == "RolledBack")
        .await;
    users.stop();
    let total = users.finish().await;

    let events = messages(&status).join("\n");
    assert!(
        events.contains("shadow diff rate too high") && events.contains("status"),
        "{events}"
    );
    let differs = shadow_field(&status, "status").unwrap_or_else(|| panic!("{status:#}"));
    assert_eq!(differs["real"], true, "{differs:#}");
    assert_eq!(served_by(&total.revisions, "v2"), 0, "{total:?}");
    assert_eq!(
        total.total.transport_errors + total.total.server_errors,
        0,
        "users' orders succeeded: {total:?}"
    );
}

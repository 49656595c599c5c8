//! Whole rollouts as users see them: the split the revisions served, promotion, rollback, deadlines.

use std::time::Duration;

use super::support::*;

/// Shares the users' traffic by revision over each second, with the weight in force during it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_candidate_is_promoted_and_the_split_moves_step_by_step() {
    let (sluice, first) = Sluice::serving_v1("[20, 50]").await;
    let v1 = pids(&first, "v1");
    assert_eq!(v1.len(), 2, "{first:#}");

    let users = sluice.users(200.0, 60);
    let stats = users.stats();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        sluice
            .apply(&spec(sluice.listen, "v2", 0.0, "[20, 50]"))
            .status
            .success()
    );

    // Sample what users saw at each weight, skipping a quarter second after each change.
    let mut observed: Vec<(u64, f64)> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let before = sluice.status("web").await.unwrap();
        let mark = stats.snapshot();
        tokio::time::sleep(Duration::from_millis(400)).await;
        let after = sluice.status("web").await.unwrap();
        let window = stats.window(&mark);
        if phase(&before) == "Progressing" && before["weight"] == after["weight"] && window.total.requests > 40 {
            let v2 = window
                .revisions
                .iter()
                .find(|r| r.revision == "v2")
                .map_or(0, |r| r.requests);
            observed.push((weight(&before), v2 as f64 / window.total.requests as f64));
        }
        if phase(&after) == "Succeeded" && stable(&after) == "v2" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no promotion: {after:#}");
    }
    let at = |w: u64| {
        observed
            .iter()
            .filter(|(weight, _)| *weight == w)
            .map(|(_, share)| *share)
            .collect::<Vec<_>>()
    };
    for (w, expected) in [(20, 0.2), (50, 0.5)] {
        let shares = at(w);
        assert!(!shares.is_empty(), "never observed weight {w}: {observed:?}");
        for share in shares {
            assert!(
                (share - expected).abs() < 0.08,
                "at weight {w} users saw v2 {share:.3}: {observed:?}"
            );
        }
    }
    // After promotion everything goes to v2 and v1 is stopped.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mark = stats.snapshot();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let window = stats.window(&mark);
    assert!(
        window.revisions.iter().all(|r| r.revision == "v2" || r.requests == 0),
        "{:?}",
        window.revisions
    );
    let status = sluice.status("web").await.unwrap();
    assert!(
        v1.iter().all(|pid| !alive(*pid)),
        "v1's processes should be stopped after draining"
    );
    let events = messages(&status);
    assert!(events.iter().any(|m| m == "Advance canary weight 50"), "{events:?}");
    assert!(
        events
            .iter()
            .any(|m| m == "Canary analysis completed successfully, promotion finished"),
        "{events:?}"
    );

    users.stop();
    let total = users.finish().await;
    assert_eq!(
        total.total.transport_errors, 0,
        "requests failed during the rollout: {total:?}"
    );
    assert_eq!(total.total.server_errors, 0, "{total:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_candidate_is_rolled_back_and_left_running_for_inspection() {
    let (mut sluice, _) = Sluice::serving_v1("[20, 50]").await;
    let users = sluice.users(200.0, 30);
    let stats = users.stats();
    assert!(
        sluice
            .apply(&spec(sluice.listen, "v3", 0.2, "[20, 50]"))
            .status
            .success()
    );
    let status = sluice
        .wait_for("web", Duration::from_secs(30), |s| phase(s) == "RolledBack")
        .await;
    assert_eq!(stable(&status), "v1");
    assert_eq!(weight(&status), 0);
    let events = messages(&status);
    assert!(
        events
            .iter()
            .any(|m| m.starts_with("Halt advancement: request-success-rate")),
        "{events:?}"
    );
    assert!(
        events.iter().any(|m| m == "Failed checks threshold reached 2"),
        "{events:?}"
    );
    let alerts: Vec<_> = status["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["severity"] == "error")
        .collect();
    assert!(!alerts.is_empty(), "a rollback raises an alert");

    // All traffic is back on v1 ...
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mark = stats.snapshot();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let window = stats.window(&mark);
    assert!(window.total.requests > 100);
    assert!(
        window.revisions.iter().all(|r| r.revision == "v1" || r.requests == 0),
        "{:?}",
        window.revisions
    );
    // ... and v3 is still running, answering on its own address.
    let v3: Vec<_> = status["instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["revision"] == "v3")
        .collect();
    assert_eq!(v3.len(), 2, "{status:#}");
    for instance in v3 {
        let addr = instance["addr"].as_str().unwrap();
        let health = reqwest::get(format!("http://{addr}/healthz")).await.unwrap();
        assert!(health.status().is_success());
    }
    users.stop();
    let total = users.finish().await;
    assert_eq!(total.total.transport_errors, 0, "{total:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_that_exits_at_start_is_rolled_back() {
    let (mut sluice, _) = Sluice::serving_v1("[50]").await;
    let crashing = spec_with_command(
        sluice.listen,
        "v2",
        r#"["sh", "-c", "echo starting on {port}; exit 3"]"#,
        "[50]",
    );
    assert!(sluice.apply(&crashing).status.success());
    let status = sluice
        .wait_for("web", Duration::from_secs(10), |s| phase(s) == "RolledBack")
        .await;
    let events = messages(&status).join("\n");
    assert!(
        events.contains("status 3"),
        "the reason names the exit status: {events}"
    );
    assert_eq!(stable(&status), "v1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_that_never_becomes_ready_is_rolled_back_at_the_progress_deadline() {
    let (mut sluice, _) = Sluice::serving_v1("[50]").await;
    let applied_at = tokio::time::Instant::now();
    let hanging = spec_with_command(
        sluice.listen,
        "v2",
        r#"["sh", "-c", "exec sleep 120 # {port}"]"#,
        "[50]",
    );
    assert!(sluice.apply(&hanging).status.success());
    let status = sluice
        .wait_for("web", Duration::from_secs(15), |s| phase(s) == "RolledBack")
        .await;
    assert!(
        applied_at.elapsed() >= Duration::from_secs(5),
        "rolled back before the 5s deadline"
    );
    assert!(
        messages(&status)
            .iter()
            .any(|m| m.contains("Progress deadline exceeded")),
        "{status:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_wait_exits_with_the_outcome() {
    let sluice = Sluice::start().await;
    let file = sluice.data_dir().join("v1.yaml");
    std::fs::write(&file, spec(sluice.listen, "v1", 0.0, "[50]")).unwrap();
    let first = sluice.cli(&["apply", "-f", file.to_str().unwrap(), "--wait"]);
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stdout)
    );
    let users = sluice.users(100.0, 30);

    std::fs::write(&file, spec(sluice.listen, "v2", 0.0, "[50]")).unwrap();
    let good = sluice.cli(&["apply", "-f", file.to_str().unwrap(), "--wait"]);
    let out = String::from_utf8_lossy(&good.stdout);
    assert_eq!(good.status.code(), Some(0), "{out}");
    assert!(out.contains("promoted"), "{out}");

    std::fs::write(&file, spec(sluice.listen, "v3", 0.5, "[50]")).unwrap();
    let bad = sluice.cli(&["apply", "-f", file.to_str().unwrap(), "--wait"]);
    let out = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(2), "{out}");
    assert!(out.contains("rolled back"), "{out}");
    users.stop();
}

/// The default judge compares the candidate with stable as evidence accrues: a regression is rolled back within
/// seconds, with the evidence in the events, and a healthy candidate is promoted once shown not worse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_judge_rolls_back_a_regression_in_seconds_and_promotes_a_healthy_candidate() {
    let (mut sluice, _) = Sluice::serving_v1("[10, 50]").await;
    let users = sluice.users(300.0, 60);
    // Promotion needs evidence: about 700 candidate requests before a 1.5-point margin is shown.
    let healthy = spec_judged(sluice.listen, "v2", &demo_command("v2", 0.0), "[20, 50]", "sequential")
        .replace("interval: 1s", "interval: 4s");
    assert!(sluice.apply(&healthy).status.success());
    let promoted = sluice
        .wait_for("web", Duration::from_secs(30), |s| {
            phase(s) == "Succeeded" && stable(s) == "v2"
        })
        .await;
    assert!(
        messages(&promoted).iter().any(|m| m.contains("not worse than stable")),
        "{promoted:#}"
    );

    let applied = tokio::time::Instant::now();
    let failing = spec_judged(sluice.listen, "v3", &demo_command("v3", 0.1), "[10, 50]", "sequential");
    assert!(sluice.apply(&failing).status.success());
    let status = sluice
        .wait_for("web", Duration::from_secs(20), |s| phase(s) == "RolledBack")
        .await;
    assert!(
        applied.elapsed() < Duration::from_secs(10),
        "took {:?}",
        applied.elapsed()
    );
    let events = messages(&status).join("\n");
    assert!(events.contains("Halt advancement: errors: candidate"), "{events}");
    assert!(events.contains("e-value"), "the verdict names its evidence: {events}");
    let errors = status["lastChecks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["metric"] == "errors")
        .unwrap()
        .clone();
    assert!(
        errors["candidateRequests"].as_u64().unwrap() > 0 && errors["evidence"].as_f64().unwrap() >= 20.0,
        "{errors:#}"
    );
    users.stop();
    let total = users.finish().await;
    assert_eq!(total.total.transport_errors, 0, "{total:?}");
}

/// A metric of the user's own, read from a web endpoint at every evaluation, fails the rollout when out of range.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_web_metric_out_of_range_rolls_the_candidate_back() {
    let value = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(5));
    let served = value.clone();
    let app = axum::Router::new().route(
        "/kpi",
        axum::routing::get(move || {
            let served = served.clone();
            async move {
                axum::Json(
                    serde_json::json!({ "data": { "value": served.load(std::sync::atomic::Ordering::Relaxed) } }),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let kpi = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let (mut sluice, _) = Sluice::serving_v1("[10, 20, 30, 40, 50]").await;
    let users = sluice.users(100.0, 30);
    let with_kpi = |revision: &str| {
        spec(sluice.listen, revision, 0.0, "[10, 20, 30, 40, 50]").replace(
            "  analysis:\n",
            &format!(
                "  analysis:\n    customMetrics:\n      - name: kpi\n        web: {{ url: \"http://{kpi}/kpi\", jsonPath: $.data.value }}\n        thresholdRange: {{ max: 10 }}\n"
            ),
        )
    };
    assert!(sluice.apply(&with_kpi("v2")).status.success());
    sluice
        .wait_for("web", Duration::from_secs(10), |s| weight(s) >= 20)
        .await;
    value.store(50, std::sync::atomic::Ordering::Relaxed);
    let status = sluice
        .wait_for("web", Duration::from_secs(15), |s| phase(s) == "RolledBack")
        .await;
    let events = messages(&status).join("\n");
    assert!(events.contains("kpi 50 outside <= 10"), "{events}");
    users.stop();
}

/// With `sessionAffinity`, a user who reached the candidate stays on it while its weight grows: nobody goes back
/// from v2 to v1 during the rollout, and users move over step by step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_users_keep_the_candidate_as_its_weight_grows() {
    let (sluice, _) = Sluice::serving_v1("[10, 20, 30, 40, 50]").await;
    let sticky = spec(sluice.listen, "v2", 0.0, "[10, 20, 30, 40, 50]").replace(
        "      interval: 1s\n",
        "      interval: 1s\n      sessionAffinity: { header: x-user }\n",
    );
    assert!(sluice.apply(&sticky).status.success());
    let client = reqwest::Client::new();
    let users = 60;
    let mut on_candidate = vec![false; users];
    let mut moved_at_weights = std::collections::BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let status = sluice.status("web").await.unwrap();
        let settled = phase(&status) == "Succeeded" && stable(&status) == "v2";
        for (user, on) in on_candidate.iter_mut().enumerate() {
            let response = client
                .get(format!("http://{}/", sluice.listen))
                .header("x-user", format!("user-{user}"))
                .send()
                .await
                .unwrap();
            let revision = response.headers()["x-revision"].to_str().unwrap().to_string();
            assert!(
                !(*on && revision == "v1"),
                "user-{user} went back from v2 to v1: {status:#}"
            );
            if !*on && revision == "v2" {
                *on = true;
                moved_at_weights.insert(weight(&status));
            }
        }
        if settled {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no promotion");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        on_candidate.iter().all(|on| *on),
        "everyone is on v2 after the promotion"
    );
    assert!(
        moved_at_weights.len() >= 3,
        "users moved over step by step, at weights {moved_at_weights:?}"
    );
}

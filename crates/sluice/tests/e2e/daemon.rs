//! The daemon's process model: traffic never depends on it, restarts adopt what runs, `down` stops everything.

use std::time::Duration;

use super::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_flows_while_the_daemon_is_down_and_a_restarted_daemon_adopts_the_processes() {
    let (mut sluice, before) = Sluice::serving_v1("[50]").await;
    let v1 = pids(&before, "v1");
    let proxy = sluice.store().process("proxy").unwrap().unwrap().pid;
    let users = sluice.users(200.0, 20);

    sluice.kill_daemon();
    tokio::time::sleep(Duration::from_secs(2)).await;
    sluice.spawn_daemon(None).await;
    let after = sluice
        .wait_for("web", Duration::from_secs(10), |s| phase(s) == "Succeeded")
        .await;
    assert_eq!(
        pids(&after, "v1"),
        v1,
        "the restarted daemon adopted v1's processes instead of starting new ones"
    );
    assert_eq!(
        sluice.store().process("proxy").unwrap().unwrap().pid,
        proxy,
        "the proxy was adopted"
    );

    users.stop();
    let total = users.finish().await;
    assert!(total.total.requests > 300, "{total:?}");
    assert_eq!(total.total.transport_errors + total.total.server_errors, 0, "{total:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_that_dies_is_restarted_with_its_routes() {
    let (sluice, _) = Sluice::serving_v1("[50]").await;
    let proxy = sluice.store().process("proxy").unwrap().unwrap().pid;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(proxy as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let client = reqwest::Client::new();
    let url = format!("http://{}/", sluice.listen);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(response) = client.get(&url).send().await {
            assert_eq!(response.headers()["x-revision"], "v1");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the proxy was not restarted:\n{}",
            sluice.daemon_log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_ne!(sluice.store().process("proxy").unwrap().unwrap().pid, proxy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_stops_everything_started_for_the_data_directory() {
    let (mut sluice, status) = Sluice::serving_v1("[50]").await;
    let mut all = pids(&status, "v1");
    all.push(u64::from(sluice.store().process("proxy").unwrap().unwrap().pid));
    let down = sluice.cli(&["down"]);
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    for pid in all {
        assert!(!alive(pid), "pid {pid} still runs after down");
    }
    assert!(sluice.daemon_died());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutating_calls_need_the_token_and_metrics_are_served() {
    let sluice = Sluice::start().await;
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sluice.data_dir().join("daemon.json")).unwrap()).unwrap();
    let api = info["api"].as_str().unwrap();
    let client = reqwest::Client::new();
    let refused = client
        .post(format!("http://{api}/v1/services"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let wrong = client
        .post(format!("http://{api}/v1/services"))
        .bearer_auth("nope")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(sluice.apply(&spec(sluice.listen, "v1", 0.0, "[50]")).status.success());
    let metrics = client
        .get(format!("http://{api}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("sluice_rollouts{phase=\"Succeeded\"}")
            || metrics.contains("sluice_rollouts{phase=\"Initializing\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("sluice_canary_weight{service=\"web\"}"), "{metrics}");
}

//! The command line: validation, schema, rejected specs changing nothing, operator commands.

use std::time::Duration;

use super::support::*;

const BAD: &str = r#"apiVersion: sluice.dev/v1alpha1
kind: Service
metadata:
  name: web
spec:
  listen: 127.0.0.1:9
  revision:
    process:
      command: ["./app"]
      instncs: 2
  strategy:
    canary:
      stepWeight: 0
      interval: 1s
"#;

#[test]
fn validate_reports_every_error_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(&file, BAD).unwrap();
    let out = std::process::Command::new(SLUICE)
        .args(["validate", "-f", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "spec.strategy.canary.stepWeight: must be 1..=100, got 0",
        "spec.revision.process.instncs: unknown field",
        "spec.revision.process.command: must contain the placeholder {port}",
    ] {
        assert!(stderr.contains(expected), "missing {expected:?} in:\n{stderr}");
    }
}

#[test]
fn schema_prints_the_json_schema() {
    let out = std::process::Command::new(SLUICE).arg("schema").output().unwrap();
    assert!(out.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(schema["properties"]["spec"].is_object(), "{schema:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_spec_is_rejected_whole_and_changes_nothing() {
    let (sluice, _) = Sluice::serving_v1("[50]").await;
    let out = sluice.apply(BAD);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing was applied"));
    // The daemon also refuses it, for callers of the API that skip the CLI's check.
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sluice.data_dir().join("daemon.json")).unwrap()).unwrap();
    let token = std::fs::read_to_string(sluice.data_dir().join("token")).unwrap();
    let response = reqwest::Client::new()
        .post(format!("http://{}/v1/services", info["api"].as_str().unwrap()))
        .bearer_auth(token.trim())
        .body(BAD)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["errors"].as_array().unwrap().len() >= 3, "{body:#}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let status = sluice.status("web").await.unwrap();
    assert_eq!(
        (phase(&status), stable(&status), candidate(&status)),
        ("Succeeded", "v1", "")
    );
    assert_eq!(status["desired"]["name"], "v1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_pause_resume_and_abort() {
    let (mut sluice, _) = Sluice::serving_v1("[10, 20, 30, 40, 50]").await;
    let users = sluice.users(100.0, 30);
    assert!(
        sluice
            .apply(&spec(sluice.listen, "v2", 0.0, "[10, 20, 30, 40, 50]"))
            .status
            .success()
    );
    sluice
        .wait_for("web", Duration::from_secs(10), |s| phase(s) == "Progressing")
        .await;
    assert!(sluice.cli(&["pause", "web"]).status.success());
    let paused = sluice
        .wait_for("web", Duration::from_secs(5), |s| !s["hold"].is_null())
        .await;
    let held_at = weight(&paused);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let still = sluice.status("web").await.unwrap();
    assert_eq!(weight(&still), held_at, "a paused rollout does not advance");
    assert!(still["displayPhase"].as_str().unwrap().starts_with("Paused"));
    let again = sluice.cli(&["pause", "web"]);
    assert!(!again.status.success(), "pausing twice is refused");
    assert!(sluice.cli(&["resume", "web"]).status.success());
    sluice
        .wait_for("web", Duration::from_secs(5), |s| weight(s) > held_at)
        .await;
    assert!(sluice.cli(&["abort", "web"]).status.success());
    let status = sluice
        .wait_for("web", Duration::from_secs(5), |s| phase(s) == "RolledBack")
        .await;
    assert!(messages(&status).iter().any(|m| m.contains("aborted by an operator")));
    users.stop();
    let total = users.finish().await;
    assert_eq!(total.total.transport_errors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_another_service_listens_on_is_refused_naming_the_field() {
    let (sluice, _) = Sluice::serving_v1("[50]").await;
    let other = spec(sluice.listen, "v1", 0.0, "[50]").replace("name: web", "name: other");
    let out = sluice.apply(&other);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "spec.listen: {} is already an address of service web",
            sluice.listen
        )),
        "{stderr}"
    );
    let preview = format!("127.0.0.1:{}", free_port());
    let blue_green = spec(preview.parse().unwrap(), "v1", 0.0, "[50]")
        .replace("name: web", "name: other")
        .replace(
            "canary:\n      stepWeights: [50]\n      interval: 1s",
            &format!("blueGreen:\n      previewListen: {}", sluice.listen),
        );
    let out = sluice.apply(&blue_green);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("spec.strategy.blueGreen.previewListen: ") && stderr.contains("nothing was applied"),
        "{stderr}"
    );
}

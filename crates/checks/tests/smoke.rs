//! Smoke checks: each request judged on its status and body, every one run and reported.

use std::time::Duration;

use serde_json::json;
use sluice_checks::run;

use crate::support::{checks, hanging_server, options, refused_addr, run_with, scripted_server, target};

#[tokio::test]
async fn requests_that_get_the_expected_answer_pass() {
    let addr = scripted_server().await;
    let checks = checks(json!({"smoke": [
        {"path": "/healthz", "expectBody": "ready"},
        {"method": "POST", "path": "/echo", "headers": {"x-test": "yes"}, "body": "hello",
         "expectBody": "POST host=preview.example x-test=yes body=hello"},
        {"path": "/unavailable", "expectStatus": 503},
    ]}));

    let report = run(&checks, &target(addr).with_host("preview.example")).await;

    assert!(report.passed, "{report:#?}");
    let reasons: Vec<&str> = report.smoke.iter().map(|outcome| outcome.reason.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "GET /healthz: 200 with \"ready\" in the body",
            "POST /echo: 200 with \"POST host=preview.example x-test=yes body=hello\" in the body",
            "GET /unavailable: 503 as expected",
        ]
    );
    assert_eq!(report.summary(), "checks passed: 3 smoke checks passed");
}

#[tokio::test]
async fn a_wrong_status_fails_with_what_came_back() {
    let addr = scripted_server().await;
    let report = run(&checks(json!({"smoke": [{"path": "/unavailable"}]})), &target(addr)).await;

    assert!(!report.passed);
    let outcome = &report.smoke[0];
    assert_eq!((outcome.passed, outcome.status), (false, Some(503)));
    assert_eq!(outcome.reason, "GET /unavailable: expected 200, got 503 (\"db down\")");
}

#[tokio::test]
async fn missing_body_text_fails() {
    let addr = scripted_server().await;
    let report = run(
        &checks(json!({"smoke": [{"path": "/healthz", "expectBody": "all systems go"}]})),
        &target(addr),
    )
    .await;

    assert!(!report.passed);
    assert_eq!(report.smoke[0].status, Some(200));
    assert_eq!(
        report.smoke[0].reason,
        "GET /healthz: body does not contain \"all systems go\""
    );
}

#[tokio::test]
async fn a_refused_connection_fails() {
    let addr = refused_addr().await;
    let report = run(&checks(json!({"smoke": [{"path": "/"}]})), &target(addr)).await;

    assert!(!report.passed);
    assert_eq!(report.smoke[0].status, None);
    assert_eq!(report.smoke[0].reason, "GET /: connection refused");
}

#[tokio::test]
async fn a_target_that_never_answers_fails_at_the_timeout() {
    let addr = hanging_server().await;
    let (report, took) = run_with(
        options(Duration::from_millis(300)),
        &checks(json!({"smoke": [{"path": "/"}]})),
        &target(addr),
    )
    .await;

    assert_eq!(report.smoke[0].reason, "GET /: no answer within 300ms");
    assert!(took < Duration::from_secs(1), "{took:?}");
}

#[tokio::test]
async fn every_smoke_check_runs_and_a_failure_skips_the_load_test() {
    let addr = scripted_server().await;
    let checks = checks(json!({
        "smoke": [{"path": "/unavailable"}, {"path": "/healthz"}, {"path": "/nowhere"}],
        "loadTest": {"requests": [{"path": "/healthz"}], "rate": 10, "duration": "10s"},
    }));

    let (report, took) = run_with(options(Duration::from_secs(2)), &checks, &target(addr)).await;

    let passed: Vec<bool> = report.smoke.iter().map(|outcome| outcome.passed).collect();
    assert_eq!(passed, [false, true, false]);
    assert!(
        !report.passed && report.load.is_none() && report.load_skipped,
        "{report:#?}"
    );
    assert!(
        took < Duration::from_secs(2),
        "the load test must not have run: {took:?}"
    );
    assert_eq!(
        report.summary(),
        "checks failed: GET /unavailable: expected 200, got 503 (\"db down\"); \
         GET /nowhere: expected 200, got 404; load test not run"
    );
}

#[tokio::test]
async fn a_request_that_cannot_be_built_fails_with_the_reason() {
    let addr = scripted_server().await;
    let report = run(
        &checks(json!({"smoke": [{"path": "/healthz", "headers": {"bad header": "x"}}]})),
        &target(addr),
    )
    .await;

    assert_eq!(
        report.smoke[0].reason,
        "GET /healthz: cannot be sent: request header name \"bad header\" is invalid"
    );
}

#[tokio::test]
async fn nothing_to_check_passes() {
    let report = run(&checks(json!({})), &target(refused_addr().await)).await;
    assert!(report.passed);
    assert_eq!(report.summary(), "no checks to run");
}

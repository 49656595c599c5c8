//! The load test: open loop at the spec's rate, judged on success rate and p99, and bounded in time.

use std::time::Duration;

use serde_json::json;
use sluice_checks::{CheckOptions, CheckReport, LoadOutcome};

use crate::support::{checks, demo_app, hanging_server, options, run_with, scripted_server, target};

fn load_test(rate: u32, duration: &str, slo: serde_json::Value) -> sluice_spec::Checks {
    checks(json!({"loadTest": {"requests": [{"path": "/hello"}], "rate": rate, "duration": duration, "slo": slo}}))
}

fn load_outcome(report: &CheckReport) -> &LoadOutcome {
    report.load.as_ref().expect("the load test ran")
}

#[tokio::test]
async fn a_fast_target_passes_with_the_scheduled_number_of_requests() {
    let app = demo_app(Duration::ZERO, 0.0).await;
    let checks = load_test(100, "1s", json!({"successRate": 99.0, "p99": "1s"}));

    let (report, took) = run_with(options(Duration::from_secs(2)), &checks, &target(app.addr())).await;

    let load = load_outcome(&report);
    assert!(report.passed && load.passed, "{load:#?}");
    assert!((90..=110).contains(&load.scheduled), "about rate × duration: {load:#?}");
    assert_eq!((load.sent, load.succeeded), (load.scheduled, load.scheduled));
    assert_eq!(load.success_rate, 100.0);
    let (p50, p90, p99) = (load.p50_ms.unwrap(), load.p90_ms.unwrap(), load.p99_ms.unwrap());
    assert!(0.0 < p50 && p50 <= p90 && p90 <= p99 && p99 < 1000.0, "{load:#?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    let summary = report.summary();
    assert!(
        summary.starts_with(&format!(
            "checks passed: load test passed: {} requests at 100/s for 1s, 100% succeeded, p50 ",
            load.scheduled
        )),
        "{summary}"
    );

    let json = serde_json::to_string(&report).unwrap();
    assert_eq!(serde_json::from_str::<CheckReport>(&json).unwrap(), report, "{json}");
}

#[tokio::test]
async fn a_slow_target_fails_on_p99_with_the_numbers() {
    let app = demo_app(Duration::from_millis(300), 0.0).await;
    let checks = load_test(50, "1s", json!({"successRate": 99.0, "p99": "200ms"}));

    let (report, _) = run_with(options(Duration::from_secs(2)), &checks, &target(app.addr())).await;

    let load = load_outcome(&report);
    assert!(!report.passed && !load.passed);
    assert!(
        load.p99_ms.unwrap() >= 300.0,
        "latency counts from each request's due time: {load:#?}"
    );
    assert_eq!(load.succeeded, load.scheduled, "only p99 fails: {load:#?}");
    let [failure] = load.failures.as_slice() else {
        panic!("one failed term: {load:#?}")
    };
    let expected_end = format!(" ms > 200 ms over {} requests", load.scheduled);
    assert!(
        failure.starts_with("p99 3") && failure.ends_with(&expected_end),
        "{failure}"
    );
    assert_eq!(report.summary(), format!("checks failed: load test failed: {failure}"));
}

#[tokio::test]
async fn a_target_that_queues_requests_shows_the_queueing_in_its_latency() {
    // Serving one request per 100 ms, at 20 requests per second the queue grows by one every 100 ms: the last
    // request is answered about a second after it was due, though the server spent 100 ms on it.
    let addr = scripted_server().await;
    let checks = checks(json!({"loadTest": {"requests": [{"path": "/serial"}], "rate": 20, "duration": "1s"}}));

    let (report, _) = run_with(options(Duration::from_secs(3)), &checks, &target(addr)).await;

    let load = load_outcome(&report);
    assert_eq!(load.succeeded, load.scheduled, "{load:#?}");
    assert!(
        load.p99_ms.unwrap() > 800.0,
        "measured from the due time, not the send: {load:#?}"
    );
}

#[tokio::test]
async fn a_target_failing_one_request_in_ten_fails_on_success_rate() {
    let app = demo_app(Duration::ZERO, 0.1).await;
    let checks = load_test(100, "1s", json!({"successRate": 99.0}));

    let (report, _) = run_with(options(Duration::from_secs(2)), &checks, &target(app.addr())).await;

    let load = load_outcome(&report);
    assert!(!report.passed);
    assert_eq!(load.server_errors, load.scheduled / 10, "{load:#?}");
    // The demo app fails exactly every tenth request.
    assert!((89.0..=90.0).contains(&load.success_rate), "{load:#?}");
    let [failure] = load.failures.as_slice() else {
        panic!("one failed term: {load:#?}")
    };
    if load.scheduled == 100 {
        assert_eq!(
            failure,
            "success rate 90% < 99% (90 of 100 requests succeeded: 10 got 5xx)"
        );
    } else {
        let counts = format!(
            "% < 99% ({} of {} requests succeeded: {} got 5xx)",
            load.succeeded, load.scheduled, load.server_errors
        );
        assert!(
            failure.starts_with("success rate ") && failure.ends_with(&counts),
            "{failure}"
        );
    }
}

#[tokio::test]
async fn a_hanging_target_ends_the_test_at_duration_plus_timeout() {
    let addr = hanging_server().await;
    let checks = load_test(100, "1s", json!({"p99": "1s"}));

    let (report, took) = run_with(limits(512), &checks, &target(addr)).await;

    let load = load_outcome(&report);
    assert!(took < Duration::from_millis(1400 + 300), "{took:?}");
    assert!(!report.passed && load.scheduled > 0);
    assert_eq!(load.succeeded, 0);
    assert_eq!(load.transport_errors + load.unfinished, load.sent, "{load:#?}");
    assert_eq!((load.p99_ms, load.success_rate), (None, 0.0));
    let [success, p99] = load.failures.as_slice() else {
        panic!("both terms fail: {load:#?}")
    };
    assert!(success.starts_with("success rate 0% < 99% (0 of "), "{success}");
    assert_eq!(p99, "p99 cannot be measured: no request was answered");
}

#[tokio::test]
async fn requests_beyond_the_in_flight_limit_count_as_failures() {
    let addr = hanging_server().await;
    let checks = load_test(100, "1s", json!({}));

    let (report, _) = run_with(limits(5), &checks, &target(addr)).await;

    let load = load_outcome(&report);
    assert!(load.not_started > 50, "{load:#?}");
    assert_eq!(load.sent + load.not_started, load.scheduled);
    let failure = &load.failures[0];
    assert!(failure.contains("could not start (5 already in flight)"), "{failure}");
}

/// A 400 ms request timeout and `max_in_flight` requests at once.
fn limits(max_in_flight: usize) -> CheckOptions {
    CheckOptions {
        max_in_flight,
        ..options(Duration::from_millis(400))
    }
}

#[tokio::test]
async fn a_load_test_that_cannot_be_built_fails_without_sending() {
    let app = demo_app(Duration::ZERO, 0.0).await;
    let checks = checks(json!({"loadTest": {
        "requests": [{"path": "/hello", "headers": {"bad header": "x"}}], "rate": 10, "duration": "1s",
    }}));

    let (report, took) = run_with(options(Duration::from_secs(1)), &checks, &target(app.addr())).await;

    let load = load_outcome(&report);
    assert_eq!(load.sent, 0);
    assert_eq!(
        load.failures,
        ["cannot run: request header name \"bad header\" is invalid"]
    );
    assert!(took < Duration::from_millis(500), "{took:?}");
}

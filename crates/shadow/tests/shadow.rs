//! The shadow listener fanning real requests out to real instances and judging their answers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{Method, StatusCode};
use sluice_shadow::{DiffReport, Limits, ShadowHandle, ShadowServer, ShadowTargets, ShadowVerdict};
use sluice_spec::{NoiseMargin, Shadow};
use tokio::sync::watch;

use crate::instance::{Instance, Mirror, Reply, closed_port};

/// Requests sent per test: enough for rates, few enough for a second.
const REQUESTS: usize = 100;

fn spec() -> Shadow {
    Shadow {
        share: 10,
        duration: "1m".parse().expect("a duration"),
        max_diff_rate: 1.0,
        ignore: Vec::new(),
        headers: Vec::new(),
        methods: vec!["GET".to_owned(), "HEAD".to_owned(), "OPTIONS".to_owned()],
        max_body_bytes: 1 << 20,
        noise: NoiseMargin::default(),
    }
}

/// A JSON answer with a random request id and the current time, as real services have.
fn answer_with_total(total: u32) -> Reply {
    let id = getrandom::u64().expect("random bytes");
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_nanos())
        .unwrap_or_default();
    Reply::json(format!(
        r#"{{"requestId": "{id:016x}", "timestamp": {nanos}, "total": {total}}}"#
    ))
}

async fn stable() -> Instance {
    Instance::start(|_| answer_with_total(10)).await
}

fn targets(primary: &[&Instance], secondary: &Instance, candidate: &[&Instance]) -> ShadowTargets {
    ShadowTargets {
        primary: primary.iter().map(|instance| instance.addr).collect(),
        secondary: secondary.addr,
        candidate: candidate.iter().map(|instance| instance.addr).collect(),
    }
}

/// Mirrors `count` GETs through the listener, then shuts it down once every fan-out has finished.
async fn mirror_gets(shadow: ShadowHandle, count: usize) -> DiffReport {
    let mirror = Mirror::new(shadow.addr());
    for request in 0..count {
        assert_eq!(
            mirror.get(&format!("/items/{request}?token=secret")).await,
            StatusCode::NO_CONTENT
        );
    }
    shadow.shutdown().await
}

fn real_fields(report: &DiffReport) -> Vec<&str> {
    report
        .fields
        .iter()
        .filter(|field| field.real)
        .map(|field| field.field.as_str())
        .collect()
}

fn noise_fields(report: &DiffReport) -> Vec<&str> {
    report
        .fields
        .iter()
        .filter(|field| !field.real)
        .map(|field| field.field.as_str())
        .collect()
}

#[tokio::test]
async fn a_changed_json_field_is_flagged_but_request_ids_and_timestamps_are_not() {
    let (primary, secondary) = (stable().await, stable().await);
    let candidate = Instance::start(|_| answer_with_total(11)).await;
    let shadow = ShadowServer::start(&spec(), targets(&[&primary], &secondary, &[&candidate]))
        .await
        .expect("starts");

    let report = mirror_gets(shadow, REQUESTS).await;

    assert_eq!(report.compared, REQUESTS as u64, "{report:?}");
    assert_eq!(real_fields(&report), ["$.total"]);
    assert_eq!(noise_fields(&report), ["$.requestId", "$.timestamp"]);
    assert_eq!(report.diff_rate, 100.0);
    let total = &report.fields[0];
    assert_eq!((total.candidate_rate, total.noise_rate), (100.0, 0.0));
    assert_eq!(total.examples.len(), 3);
    assert_eq!(total.examples[0].request, "GET /items/0");
    assert_eq!(
        (total.examples[0].primary.as_str(), total.examples[0].candidate.as_str()),
        ("10", "11")
    );
    let ShadowVerdict::Fail { summary } = report.verdict(1.0) else {
        panic!("a candidate that changes every answer fails: {}", report.summary());
    };
    assert!(
        summary.starts_with("100 of 100 compared requests (100.00%) differ for real: $.total"),
        "{summary}"
    );
    // Each instance saw every request.
    for instance in [&primary, &secondary, &candidate] {
        assert_eq!(instance.seen().len(), REQUESTS);
    }
}

#[tokio::test]
async fn an_ignored_field_is_not_flagged() {
    let (primary, secondary) = (stable().await, stable().await);
    let candidate = Instance::start(|_| answer_with_total(11)).await;
    let mut spec = spec();
    spec.ignore = vec!["$.total".to_owned()];
    let shadow = ShadowServer::start(&spec, targets(&[&primary], &secondary, &[&candidate]))
        .await
        .expect("starts");

    let report = mirror_gets(shadow, REQUESTS).await;

    assert_eq!(report.compared, REQUESTS as u64);
    assert!(real_fields(&report).is_empty(), "{}", report.summary());
    assert_eq!(report.with_real_difference, 0);
    assert_eq!(report.verdict(0.0), ShadowVerdict::Pass);
}

#[tokio::test]
async fn a_byte_wise_difference_in_a_text_body_is_flagged() {
    let primary = Instance::start(|_| Reply::text("hello from v1")).await;
    let secondary = Instance::start(|_| Reply::text("hello from v1")).await;
    let candidate = Instance::start(|_| Reply::text("hello from v2")).await;
    let shadow = ShadowServer::start(&spec(), targets(&[&primary], &secondary, &[&candidate]))
        .await
        .expect("starts");

    let report = mirror_gets(shadow, REQUESTS).await;

    assert_eq!(real_fields(&report), ["body"]);
    assert!(noise_fields(&report).is_empty());
    let example = &report.fields[0].examples[0];
    assert_eq!(
        (example.primary.as_str(), example.candidate.as_str()),
        ("hello from v1 (13 bytes)", "hello from v2 (13 bytes)")
    );
}

#[tokio::test]
async fn a_candidate_that_does_not_answer_differs_in_status() {
    let (primary, secondary) = (stable().await, stable().await);
    let candidate = closed_port().await;
    let mut targets = targets(&[&primary], &secondary, &[]);
    targets.candidate = vec![candidate];
    let shadow = ShadowServer::start(&spec(), targets).await.expect("starts");

    let report = mirror_gets(shadow, 10).await;

    assert_eq!(report.compared, 10);
    assert_eq!(real_fields(&report), ["status"]);
    assert_eq!(report.fields[0].examples[0].candidate, "(no answer)");
}

#[tokio::test]
async fn a_post_is_not_shadowed_unless_its_method_is_configured() {
    let (primary, secondary, candidate) = (stable().await, stable().await, stable().await);
    let shadow = ShadowServer::start(&spec(), targets(&[&primary], &secondary, &[&candidate]))
        .await
        .expect("starts");
    let mirror = Mirror::new(shadow.addr());
    assert_eq!(
        mirror.send(Method::POST, "/orders", &[], "{}").await,
        StatusCode::METHOD_NOT_ALLOWED
    );
    let report = shadow.shutdown().await;
    assert_eq!((report.refused, report.compared), (1, 0));
    assert_eq!(report.verdict(1.0), ShadowVerdict::NoTraffic);
    for instance in [&primary, &secondary, &candidate] {
        assert!(instance.seen().is_empty());
    }

    let mut spec = spec();
    spec.methods.push("POST".to_owned());
    let shadow = ShadowServer::start(&spec, targets(&[&primary], &secondary, &[&candidate]))
        .await
        .expect("starts");
    let mirror = Mirror::new(shadow.addr());
    assert_eq!(
        mirror.send(Method::POST, "/orders", &[], r#"{"item": 1}"#).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(shadow.shutdown().await.compared, 1);
    for instance in [&primary, &secondary, &candidate] {
        let seen = instance.seen();
        assert_eq!(seen.len(), 1);
        assert_eq!((&seen[0].method, seen[0].path.as_str()), (&Method::POST, "/orders"));
        assert_eq!(seen[0].body, r#"{"item": 1}"#);
    }
}

#[tokio::test]
async fn hop_by_hop_headers_are_not_forwarded() {
    let (primary, secondary, candidate) = (stable().await, stable().await, stable().await);
    let shadow = ShadowServer::start(&spec(), targets(&[&primary], &secondary, &[&candidate]))
        .await
        .expect("starts");
    let mirror = Mirror::new(shadow.addr());
    let headers = [
        ("connection", "x-secret"),
        ("x-secret", "1"),
        ("proxy-authorization", "basic x"),
        ("x-kept", "1"),
    ];
    assert_eq!(
        mirror.send(Method::GET, "/", &headers, "").await,
        StatusCode::NO_CONTENT
    );
    shadow.shutdown().await;
    for instance in [&primary, &secondary, &candidate] {
        let seen = &instance.seen()[0];
        assert!(seen.headers.get("x-secret").is_none(), "{:?}", seen.headers);
        assert!(seen.headers.get("proxy-authorization").is_none(), "{:?}", seen.headers);
        assert_eq!(
            seen.headers.get("x-kept").map(|value| value.as_bytes()),
            Some(&b"1"[..])
        );
    }
}

#[tokio::test]
async fn instances_take_turns_and_new_targets_take_effect() {
    let (first, second, secondary) = (stable().await, stable().await, stable().await);
    let (candidate_a, candidate_b, replacement) = (stable().await, stable().await, stable().await);
    let shadow = ShadowServer::start(
        &spec(),
        targets(&[&first, &second], &secondary, &[&candidate_a, &candidate_b]),
    )
    .await
    .expect("starts");
    let mirror = Mirror::new(shadow.addr());
    for _ in 0..10 {
        mirror.get("/").await;
    }
    shadow
        .set_targets(targets(&[&first], &secondary, &[&replacement]))
        .expect("valid targets");
    for _ in 0..4 {
        mirror.get("/").await;
    }
    assert!(shadow.set_targets(targets(&[], &secondary, &[&replacement])).is_err());
    let report = shadow.shutdown().await;

    assert_eq!(report.compared, 14);
    assert!(real_fields(&report).is_empty());
    let seen = |instance: &Instance| instance.seen().len();
    assert_eq!((seen(&first), seen(&second), seen(&secondary)), (9, 5, 14));
    assert_eq!((seen(&candidate_a), seen(&candidate_b), seen(&replacement)), (5, 5, 4));
}

#[tokio::test]
async fn requests_beyond_the_in_flight_cap_are_dropped_and_counted() {
    let (open, gate) = watch::channel(false);
    let primary = Instance::start_gated(|_| answer_with_total(10), gate).await;
    let (secondary, candidate) = (stable().await, stable().await);
    let limits = Limits {
        max_in_flight: 1,
        timeout: Duration::from_secs(5),
    };
    let shadow = ShadowServer::start_with_limits(&spec(), targets(&[&primary], &secondary, &[&candidate]), limits)
        .await
        .expect("starts");
    let mirror = Mirror::new(shadow.addr());

    // The first request holds the one slot while the primary holds its answer.
    assert_eq!(mirror.get("/first").await, StatusCode::NO_CONTENT);
    assert_eq!(mirror.get("/second").await, StatusCode::SERVICE_UNAVAILABLE);
    open.send_replace(true);
    let report = shadow.shutdown().await;

    assert_eq!((report.received, report.compared, report.dropped), (2, 1, 1));
    assert!(
        report.summary().contains("1 dropped (too many in flight)"),
        "{}",
        report.summary()
    );
}

#[tokio::test]
async fn answers_over_the_body_cap_are_skipped() {
    let (primary, secondary, candidate) = (stable().await, stable().await, stable().await);
    let mut spec = spec();
    spec.max_body_bytes = 16;
    let shadow = ShadowServer::start(&spec, targets(&[&primary], &secondary, &[&candidate]))
        .await
        .expect("starts");
    let mirror = Mirror::new(shadow.addr());
    assert_eq!(
        mirror.send(Method::GET, "/", &[], &"x".repeat(17)).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let report = mirror_gets(shadow, 5).await;

    assert_eq!((report.compared, report.skipped), (0, 6));
    assert_eq!(report.verdict(1.0), ShadowVerdict::NoTraffic);
}

#[tokio::test]
async fn a_stable_instance_without_an_answer_leaves_the_request_uncompared() {
    let primary = stable().await;
    let candidate = stable().await;
    let mut targets = targets(&[&primary], &primary, &[&candidate]);
    targets.secondary = closed_port().await;
    let shadow = ShadowServer::start(&spec(), targets).await.expect("starts");

    let report = mirror_gets(shadow, 3).await;

    assert_eq!((report.compared, report.unanswered), (0, 3));
}

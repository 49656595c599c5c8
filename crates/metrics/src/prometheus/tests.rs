//! The source against a fake Prometheus: what it asks, and how it reads each kind of answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use super::*;
use crate::test_server::{FakeServer, Recorded};

fn source(url: String) -> PrometheusSource {
    let mut config = PrometheusConfig::new(url);
    config.max_gap = Duration::from_secs(3);
    config.retry = RetryPolicy {
        max_attempts: 3,
        initial_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(10),
        max_elapsed: Duration::from_secs(5),
    };
    PrometheusSource::new(config).unwrap()
}

fn success(result_type: &str, result: &str) -> (u16, String) {
    (
        200,
        format!(r#"{{"status":"success","data":{{"resultType":"{result_type}","result":{result}}}}}"#),
    )
}

fn param<'a>(request: &'a Recorded, name: &str) -> Option<&'a str> {
    request.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn template(text: &str) -> QueryTemplate {
    QueryTemplate::parse(text).unwrap()
}

const VARS: TemplateVars<'static> = TemplateVars {
    service: "web",
    revision: "v\"2",
    interval: Duration::from_secs(60),
};

#[test]
fn the_builtin_templates_parse() {
    let queries = WindowQueries::builtin_proxy();
    assert_eq!(
        queries.requests.render(&VARS),
        r#"sum(increase(sluice_proxy_requests_total{service="web",revision="v\"2"}[60s]))"#
    );
    assert!(queries.latency_buckets.is_some());
}

#[tokio::test]
async fn query_value_sends_the_rendered_query_to_the_api() {
    let server = FakeServer::start(|_| success("vector", r#"[{"metric":{},"value":[1700000000,"0.995"]}]"#)).await;
    let source = source(server.url() + "/prometheus");
    let value = source
        .query_value(&template(r#"sum(rate(x{a="{{revision}}"}[{{interval}}]))"#), &VARS)
        .await
        .unwrap();
    assert_eq!(value, 0.995);
    let request = &server.requests()[0];
    assert_eq!(request.method, "GET");
    assert_eq!(request.path, "/prometheus/api/v1/query");
    assert_eq!(param(request, "query"), Some(r#"sum(rate(x{a="v\"2"}[60s]))"#));
}

#[tokio::test]
async fn query_value_reads_a_scalar() {
    let server = FakeServer::start(|_| success("scalar", r#"[1700000000,"3"]"#)).await;
    let value = source(server.url()).query_value(&template("scalar(1+2)"), &VARS).await;
    assert_eq!(value.unwrap(), 3.0);
}

#[tokio::test]
async fn an_empty_result_is_an_error_not_zero() {
    let server = FakeServer::start(|_| success("vector", "[]")).await;
    let error = source(server.url())
        .query_value(&template("missing_metric"), &VARS)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "metrics: Prometheus query `missing_metric` returned an empty result"
    );
    assert_eq!(server.requests().len(), 1, "an empty result is not retried");
}

#[tokio::test]
async fn a_bad_query_is_a_status_error_with_prometheus_explanation() {
    let server = FakeServer::start(|_| {
        (
            400,
            r#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unclosed left parenthesis"}"#.into(),
        )
    })
    .await;
    let error = source(server.url())
        .query_value(&template("sum(x"), &VARS)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "metrics: Prometheus query `sum(x` answered status 400: bad_data: 1:5: parse error: unclosed left parenthesis"
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_server_error_is_retried_until_it_answers() {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let server = FakeServer::start(move |_| {
        if counter.fetch_add(1, Ordering::SeqCst) < 2 {
            (
                503,
                r#"{"status":"error","errorType":"unavailable","error":"busy"}"#.into(),
            )
        } else {
            success("scalar", r#"[1700000000,"1"]"#)
        }
    })
    .await;
    let value = source(server.url()).query_value(&template("vector(1)"), &VARS).await;
    assert_eq!(value.unwrap(), 1.0);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn an_unparsable_answer_is_a_parse_error() {
    let server = FakeServer::start(|_| (200, "<html>proxy login</html>".into())).await;
    let error = source(server.url())
        .query_value(&template("up"), &VARS)
        .await
        .unwrap_err();
    assert!(matches!(error, MetricsError::Parse { .. }), "{error}");
}

#[tokio::test]
async fn an_unreachable_prometheus_is_a_request_error() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let error = source(format!("http://{closed}"))
        .query_value(&template("up"), &VARS)
        .await
        .unwrap_err();
    assert!(matches!(error, MetricsError::Request { .. }), "{error}");
}

#[tokio::test]
async fn range_queries_send_the_range_and_read_the_matrix() {
    let server = FakeServer::start(|request| {
        if param(request, "query") == Some("absent_series") {
            success("matrix", "[]")
        } else {
            success(
                "matrix",
                r#"[{"metric":{"revision":"v2"},"values":[[1700000000,"1"],[1700000010,"2"]]}]"#,
            )
        }
    })
    .await;
    let source = source(server.url());
    let start = Timestamp::from_millisecond(1_700_000_000_000).unwrap();
    let end = Timestamp::from_millisecond(1_700_000_010_250).unwrap();
    let series = source
        .range_query("rate(x[1m])", start, end, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(series.len(), 1);
    assert_eq!(series[0].samples.len(), 2);
    let request = &server.requests()[0];
    assert_eq!(request.path, "/api/v1/query_range");
    assert_eq!(param(request, "start"), Some("1700000000.000"));
    assert_eq!(param(request, "end"), Some("1700000010.250"));
    assert_eq!(param(request, "step"), Some("10.000"));
    let empty = source
        .range_query("absent_series", start, end, Duration::from_secs(10))
        .await;
    assert!(matches!(empty, Err(MetricsError::Empty { .. })), "{empty:?}");
}

#[test]
fn invalid_urls_are_refused() {
    for url in ["127.0.0.1:9090", "ftp://127.0.0.1/", ""] {
        let error = PrometheusSource::new(PrometheusConfig::new(url)).unwrap_err();
        assert!(matches!(error, ConfigError::Url { .. }), "{url}: {error}");
    }
}

/// A fake Prometheus for windows: the coverage query gets samples every 2 s up to `last_ago` seconds before
/// the evaluation time; the other queries answer fixed counts per revision.
async fn window_server(first_ago: f64, last_ago: f64) -> FakeServer {
    FakeServer::start(move |request| {
        let query = param(request, "query").unwrap_or_default();
        let time: f64 = param(request, "time").and_then(|t| t.parse().ok()).unwrap_or(0.0);
        let candidate = query.contains(r#"revision="v2""#);
        if query.contains("class=\"2xx\"}[") {
            let mut values = Vec::new();
            let mut ago = first_ago;
            while ago >= last_ago {
                values.push(format!(r#"[{},"5"]"#, time - ago));
                ago -= 2.0;
            }
            let values = values.join(",");
            success("matrix", &format!(r#"[{{"metric":{{}},"values":[{values}]}}]"#))
        } else if query.contains("_bucket") {
            let total = if candidate { 100 } else { 900 };
            success(
                "vector",
                &format!(
                    r#"[{{"metric":{{"le":"0.05"}},"value":[{time},"{}"]}},{{"metric":{{"le":"+Inf"}},"value":[{time},"{total}"]}}]"#,
                    total - 2
                ),
            )
        } else if query.contains("5xx") {
            success("vector", &format!(r#"[{{"metric":{{}},"value":[{time},"{}"]}}]"#, if candidate { 9.6 } else { 1.0 }))
        } else {
            success("vector", &format!(r#"[{{"metric":{{}},"value":[{time},"{}"]}}]"#, if candidate { 100 } else { 900 }))
        }
    })
    .await
}

fn window_query(since_ago: SignedDuration) -> WindowQuery {
    WindowQuery {
        service: "web".into(),
        stable: "v1".into(),
        candidate: "v2".into(),
        since: Timestamp::now() - since_ago,
    }
}

#[tokio::test]
async fn a_covered_window_counts_both_revisions_at_their_last_sample() {
    let server = window_server(9.0, 1.0).await;
    let source = source(server.url());
    let window = source
        .window(&window_query(SignedDuration::from_secs(10)))
        .await
        .unwrap();
    assert!(window.complete);
    assert_eq!((window.stable.requests, window.stable.errors), (900, 1));
    assert_eq!((window.candidate.requests, window.candidate.errors), (100, 10));
    // 99th of 100: rank 99 of 100 lies in (50 ms, +Inf]: histogram_quantile answers the last finite bound.
    assert_eq!(window.candidate.p99_ms, Some(50.0));
    let latency = window.candidate.latency.unwrap();
    assert_eq!((latency.bounds(), latency.counts()), (&[50.0][..], &[98, 2][..]));
    assert_eq!(window.stable.latency.unwrap().count(), 900);

    // Counts are evaluated at the newest sample, over the window up to it (about 9 s).
    let requests = server.requests();
    let coverage_time: f64 = param(&requests[0], "time").unwrap().parse().unwrap();
    for counted in requests
        .iter()
        .filter(|r| !param(r, "query").unwrap().contains("class=\"2xx\"}["))
    {
        let time: f64 = param(counted, "time").unwrap().parse().unwrap();
        assert!((coverage_time - 1.0 - time).abs() < 0.01, "{counted:?}");
        let query = param(counted, "query").unwrap();
        assert!(query.contains("[8") || query.contains("[9"), "{query}");
    }
}

#[tokio::test]
async fn a_window_whose_samples_start_late_is_incomplete() {
    let server = window_server(9.0, 1.0).await;
    let window = source(server.url())
        .window(&window_query(SignedDuration::from_secs(30)))
        .await
        .unwrap();
    assert!(!window.complete);
    assert_eq!(window.candidate.requests, 100);
}

#[tokio::test]
async fn a_window_whose_samples_stopped_is_incomplete() {
    let server = window_server(9.0, 7.0).await;
    let window = source(server.url())
        .window(&window_query(SignedDuration::from_secs(10)))
        .await
        .unwrap();
    assert!(!window.complete);
}

#[tokio::test]
async fn a_window_younger_than_a_scrape_is_empty_and_incomplete() {
    let server = window_server(-1.0, 0.0).await;
    let window = source(server.url())
        .window(&window_query(SignedDuration::from_secs(1)))
        .await
        .unwrap();
    assert_eq!(window, Window::default());
    assert_eq!(server.requests().len(), 2, "only the coverage queries");
}

#[tokio::test]
async fn a_revision_without_samples_is_an_empty_result() {
    let server = window_server(-1.0, 0.0).await;
    let error = source(server.url())
        .window(&window_query(SignedDuration::from_secs(20)))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, MetricsError::Empty { detail, .. } if detail.contains("no sample of web/v")),
        "{error}"
    );
}

#[tokio::test]
async fn a_coverage_query_that_is_not_a_range_selector_is_refused() {
    let server = FakeServer::start(|_| success("vector", "[]")).await;
    let mut config = PrometheusConfig::new(server.url());
    config.queries.coverage = template(r#"up{job="{{service}}"}"#);
    let error = PrometheusSource::new(config)
        .unwrap()
        .window(&window_query(SignedDuration::from_secs(10)))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("must be a range selector"), "{error}");
}

#[tokio::test]
async fn without_a_latency_query_the_p99_is_unknown() {
    let server = window_server(9.0, 1.0).await;
    let mut config = PrometheusConfig::new(server.url());
    config.max_gap = Duration::from_secs(3);
    config.queries.latency_buckets = None;
    let window = PrometheusSource::new(config)
        .unwrap()
        .window(&window_query(SignedDuration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(window.candidate.p99_ms, None);
    assert_eq!(window.candidate.latency, None);
    assert_eq!(window.candidate.requests, 100);
}

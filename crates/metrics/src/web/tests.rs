use serde_json::json;

use super::*;
use crate::test_server::FakeServer;

fn quick(mut config: WebConfig) -> WebConfig {
    config.retry = RetryPolicy {
        max_attempts: 3,
        initial_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(10),
        max_elapsed: Duration::from_secs(5),
    };
    config
}

fn path(text: &str) -> JsonPath {
    JsonPath::parse(text).unwrap()
}

#[tokio::test]
async fn get_reads_the_number_at_the_path() {
    let server = FakeServer::start(|_| (200, r#"{"data":{"value":0.25,"items":[{"n":"7"}]}}"#.into())).await;
    let source = WebSource::new(quick(WebConfig::get(server.url() + "/stats?x=1", "$.data.value"))).unwrap();
    assert_eq!(source.value().await.unwrap(), 0.25);
    let quoted = WebSource::new(quick(WebConfig::get(server.url(), "data.items[0].n"))).unwrap();
    assert_eq!(quoted.value().await.unwrap(), 7.0);
    let requests = server.requests();
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].path, "/stats");
    assert_eq!(requests[0].query, vec![("x".to_owned(), "1".to_owned())]);
    assert_eq!(requests[0].body, "");
}

#[tokio::test]
async fn post_sends_the_json_body_and_headers() {
    let server = FakeServer::start(|request| {
        let echoed: Value = serde_json::from_str(&request.body).unwrap_or(Value::Null);
        (200, json!({ "got": echoed["threshold"] }).to_string())
    })
    .await;
    let mut config = WebConfig::get(server.url() + "/check", "got");
    config.method = WebMethod::Post;
    config.body = Some(json!({"threshold": 12.5}));
    config.headers = vec![("Authorization".into(), "Bearer secret".into())];
    let source = WebSource::new(quick(config)).unwrap();
    assert_eq!(source.value().await.unwrap(), 12.5);
    let request = &server.requests()[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.headers["authorization"], "Bearer secret");
    assert_eq!(request.headers["content-type"], "application/json");
    assert!(!format!("{source:?}").contains("secret"), "{source:?}");
}

#[tokio::test]
async fn a_non_2xx_answer_is_a_status_error_and_5xx_is_retried() {
    let server = FakeServer::start(|_| (503, "overloaded".into())).await;
    let source = WebSource::new(quick(WebConfig::get(server.url(), "a"))).unwrap();
    let error = source.value().await.unwrap_err();
    assert!(
        matches!(&error, MetricsError::Status { status: 503, detail, .. } if detail == "overloaded"),
        "{error}"
    );
    assert_eq!(server.requests().len(), 3, "retried up to max_attempts");

    let server = FakeServer::start(|_| (404, "no such page".into())).await;
    let source = WebSource::new(quick(WebConfig::get(server.url(), "a"))).unwrap();
    assert!(matches!(
        source.value().await,
        Err(MetricsError::Status { status: 404, .. })
    ));
    assert_eq!(server.requests().len(), 1, "a 404 would only repeat");
}

#[tokio::test]
async fn an_unreachable_url_is_a_request_error() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let source = WebSource::new(quick(WebConfig::get(format!("http://{closed}/"), "a"))).unwrap();
    let error = source.value().await.unwrap_err();
    assert!(matches!(error, MetricsError::Request { .. }), "{error}");
}

#[tokio::test]
async fn a_slow_server_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts and never answers.
    let hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            open.push(stream);
        }
    });
    let mut config = WebConfig::get(format!("http://{addr}/"), "a");
    config.timeout = Duration::from_millis(200);
    config.retry = RetryPolicy::once(Duration::from_secs(5));
    let source = WebSource::new(config).unwrap();
    let started = tokio::time::Instant::now();
    let error = source.value().await.unwrap_err();
    assert!(matches!(error, MetricsError::Request { .. }), "{error}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    hold.abort();
}

#[tokio::test]
async fn an_answer_that_is_not_json_is_a_parse_error() {
    let server = FakeServer::start(|_| (200, "<html>".into())).await;
    let source = WebSource::new(quick(WebConfig::get(server.url(), "a"))).unwrap();
    let error = source.value().await.unwrap_err();
    assert!(
        matches!(&error, MetricsError::Parse { detail, .. } if detail.starts_with("not JSON")),
        "{error}"
    );
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn absent_null_and_non_numbers_are_errors_never_zero() {
    let answer = json!({"a": null, "b": true, "c": [1], "d": {}, "e": "x", "f": "NaN", "g": " 3 ", "h": -2});
    let cases = [
        ("missing", "metrics: GET u returned an empty result; nothing at missing"),
        ("a", "metrics: GET u returned an empty result; nothing at a"),
        (
            "b",
            "metrics: cannot parse the answer to GET u: a boolean at b; expected a number",
        ),
        (
            "c",
            "metrics: cannot parse the answer to GET u: an array at c; expected a number",
        ),
        (
            "d",
            "metrics: cannot parse the answer to GET u: an object at d; expected a number",
        ),
        (
            "e",
            "metrics: cannot parse the answer to GET u: \"x\" at e is not a number",
        ),
        ("f", "metrics: GET u returned NaN"),
    ];
    for (at, message) in cases {
        assert_eq!(number_at(&answer, &path(at), "GET u").unwrap_err().to_string(), message);
    }
    assert_eq!(number_at(&answer, &path("g"), "GET u").unwrap(), 3.0);
    assert_eq!(number_at(&answer, &path("h"), "GET u").unwrap(), -2.0);
}

#[test]
fn bad_configuration_is_refused() {
    let cases = [
        (WebConfig::get("not a url", "a"), "metrics: invalid URL \"not a url\""),
        (
            WebConfig::get("ftp://127.0.0.1/", "a"),
            "expected an http:// or https:// URL",
        ),
        (WebConfig::get("http://127.0.0.1/", "a..b"), "expected a name after `.`"),
        (
            WebConfig {
                headers: vec![("bad header".into(), "v".into())],
                ..WebConfig::get("http://127.0.0.1/", "a")
            },
            "metrics: invalid header \"bad header\"",
        ),
        (
            WebConfig {
                headers: vec![("x-token".into(), "line\nbreak".into())],
                ..WebConfig::get("http://127.0.0.1/", "a")
            },
            "metrics: invalid header \"x-token\"",
        ),
    ];
    for (config, message) in cases {
        let error = WebSource::new(config).unwrap_err().to_string();
        assert!(error.contains(message), "{error}");
        assert!(
            !error.contains("line\nbreak"),
            "a header value is never repeated: {error}"
        );
    }
}

//! A real Prometheus scraping a real proxy: the Prometheus source counts what was sent.
//!
//! Needs the `prometheus` binary (Debian package `prometheus`; `.ci/run` installs it). Everything listens on
//! loopback; Prometheus is killed by pid when the test ends, whatever the outcome.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use jiff::{SignedDuration, Timestamp};
use sluice_metrics::prometheus::QueryResult;
use sluice_metrics::{
    MetricSource, MetricsError, PrometheusConfig, PrometheusSource, QueryTemplate, RetryPolicy, TemplateVars,
    WindowQuery,
};
use sluice_proxy::{Backend, ProxyConfig, ProxyHandle, RouteTable, ServiceRoute};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// Requests sent through the proxy, split evenly between the two revisions.
const REQUESTS: u64 = 300;
/// The candidate answers 500 to every 10th request it gets.
const CANDIDATE_FAIL_EVERY: u64 = 10;
/// Every wait in this test gives up after this long.
const WAIT: Duration = Duration::from_secs(60);

/// A backend answering 200, or 500 to every `fail_every`-th request.
struct TestBackend {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl TestBackend {
    async fn start(fail_every: Option<u64>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind backend");
        let addr = listener.local_addr().expect("backend address");
        let hits = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let hits = hits.clone();
                let service = service_fn(move |_request| {
                    let hit = hits.fetch_add(1, Ordering::SeqCst) + 1;
                    let status = match fail_every {
                        Some(n) if hit.is_multiple_of(n) => StatusCode::INTERNAL_SERVER_ERROR,
                        _ => StatusCode::OK,
                    };
                    let response = Response::builder()
                        .status(status)
                        .body(Full::new(Bytes::from_static(b"ok")));
                    async move { Ok::<_, Infallible>(response.expect("response")) }
                });
                connections.spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        TestBackend { addr, task }
    }
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A Prometheus process with its configuration and storage in a temporary directory; killed by pid on drop.
struct Prometheus {
    child: Child,
    url: String,
    dir: TempDir,
}

impl Prometheus {
    /// Starts Prometheus on a free loopback port, scraping `target` every second.
    fn start(target: SocketAddr) -> Self {
        let binary = find_prometheus();
        let dir = tempfile::tempdir().expect("temporary directory");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: sluice-proxy\n    \
                 scrape_interval: 1s\n    scrape_timeout: 1s\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .expect("write prometheus.yml");
        let listen = free_addr();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={listen}"))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        Prometheus {
            child,
            url: format!("http://{listen}"),
            dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// Waits until Prometheus answers `/-/ready`.
    async fn ready(&mut self) {
        let client = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Ok(response) = client.get(format!("{}/-/ready", self.url)).send().await
                && response.status().is_success()
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("prometheus exited with {status}:\n{}", self.log());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "prometheus not ready:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        // Child::kill signals this child's pid only.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_prometheus() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("prometheus"))
        .chain([PathBuf::from("/usr/bin/prometheus")])
        .find(|path| path.is_file());
    on_path.unwrap_or_else(|| {
        panic!(
            "the `prometheus` binary is not installed; this test needs the Debian package `prometheus` \
             (apt-get install -y prometheus; .ci/run installs it)"
        )
    })
}

/// A loopback address that was free a moment ago.
fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind probe");
    listener.local_addr().expect("probe address")
}

async fn start_proxy(listen: SocketAddr, stable: SocketAddr, candidate: SocketAddr) -> ProxyHandle {
    let backend = |revision: &str, instance| Backend {
        revision: revision.to_owned(),
        weight: 50,
        instances: vec![instance],
    };
    let table = RouteTable {
        version: 1,
        services: vec![ServiceRoute::new(
            "web".into(),
            listen,
            vec![backend("v1", stable), backend("v2", candidate)],
        )],
    };
    sluice_proxy::start(ProxyConfig {
        admin: "127.0.0.1:0".parse().expect("admin address"),
        state_file: None,
        initial: Some(table),
        workers: None,
    })
    .await
    .expect("proxy starts")
}

fn template(text: &str) -> QueryTemplate {
    QueryTemplate::parse(text).expect("template parses")
}

fn vars(service: &str) -> TemplateVars<'_> {
    TemplateVars {
        service,
        revision: "",
        interval: Duration::from_secs(60),
    }
}

/// Polls `query_value` until it answers `want` (Prometheus scrapes on its own schedule).
async fn wait_for_value(source: &PrometheusSource, query: &QueryTemplate, want: f64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let got = source.query_value(query, &vars("web")).await;
        if matches!(got, Ok(value) if value == want) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} never reached {want}: {got:?}",
            query.as_str()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Polls until Prometheus holds a sample of the proxy's series taken after `since`.
async fn wait_for_scrape_after(source: &PrometheusSource, since: Timestamp) {
    let newest = template(r#"max(timestamp(sluice_proxy_requests_total{service="{{service}}"}))"#);
    let since_seconds = since.as_millisecond() as f64 / 1000.0;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let got = source.query_value(&newest, &vars("web")).await;
        if matches!(got, Ok(at) if at > since_seconds) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no scrape after {since}: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_source_counts_what_the_proxy_served() {
    let stable = TestBackend::start(None).await;
    let candidate = TestBackend::start(Some(CANDIDATE_FAIL_EVERY)).await;
    let listen = free_addr();
    let proxy = start_proxy(listen, stable.addr, candidate.addr).await;
    let mut prometheus = Prometheus::start(proxy.admin_addr());
    prometheus.ready().await;

    let mut config = PrometheusConfig::new(prometheus.url.clone());
    config.max_gap = Duration::from_secs(5);
    config.retry = RetryPolicy::once(Duration::from_secs(10));
    let source = PrometheusSource::new(config).expect("source");

    // The revisions' series exist (at zero) once the proxy has been scraped; the window starts after that,
    // and a scrape at zero falls inside it before any request is sent, so the counts are exact.
    let total = template(r#"sum(sluice_proxy_requests_total{service="{{service}}"})"#);
    wait_for_value(&source, &total, 0.0).await;
    let since = Timestamp::now();
    wait_for_scrape_after(&source, since).await;

    let client = reqwest::Client::new();
    let mut server_errors = 0;
    tokio::time::timeout(WAIT, async {
        for _ in 0..REQUESTS {
            let response = client
                .get(format!("http://{listen}/"))
                .send()
                .await
                .expect("proxy answers");
            server_errors += u64::from(response.status().is_server_error());
        }
    })
    .await
    .expect("requests finish in time");
    // Smooth weighted round-robin splits 50/50 exactly; the candidate fails 1 in 10 of its 150.
    assert_eq!(server_errors, REQUESTS / 2 / CANDIDATE_FAIL_EVERY);

    // query_value: the total reaches what was sent once Prometheus has scraped it.
    wait_for_value(&source, &total, REQUESTS as f64).await;
    let seen = Timestamp::now();

    let query = WindowQuery {
        service: "web".into(),
        stable: "v1".into(),
        candidate: "v2".into(),
        since,
    };
    let window = source.window(&query).await.expect("window");
    assert!(window.complete, "{window:?}\n{}", prometheus.log());
    assert_eq!((window.stable.requests, window.stable.errors), (150, 0), "{window:?}");
    assert_eq!(
        (window.candidate.requests, window.candidate.errors),
        (150, 15),
        "{window:?}"
    );
    for revision in [&window.stable, &window.candidate] {
        let latency = revision.latency.as_ref().expect("latency buckets");
        assert_eq!(latency.count(), 150);
        assert_eq!(latency.bounds(), &sluice_proxy::LATENCY_BOUNDS_MS);
        assert_eq!(revision.p99_ms, latency.quantile(0.99));
        assert!(
            revision.p99_ms.is_some_and(|p99| p99 > 0.0 && p99 <= 10_000.0),
            "{revision:?}"
        );
    }

    // A window that starts long before Prometheus first scraped the proxy is not covered.
    let early = WindowQuery {
        since: since - SignedDuration::from_secs(120),
        ..query.clone()
    };
    let window = source.window(&early).await.expect("early window");
    assert!(!window.complete, "{window:?}");

    // A revision Prometheus never saw is an empty result, not zero traffic (once the window is older than a
    // tolerated gap: a younger one may simply not have been scraped yet).
    let missing = WindowQuery {
        candidate: "v9".into(),
        since: since - SignedDuration::from_secs(10),
        ..query.clone()
    };
    let error = source.window(&missing).await.expect_err("no such revision");
    assert!(
        matches!(&error, MetricsError::Empty { detail, .. } if detail.contains("web/v9")),
        "{error}"
    );
    let error = source
        .query_value(&total, &vars("no-such-service"))
        .await
        .expect_err("no such service");
    assert!(matches!(error, MetricsError::Empty { .. }), "{error}");

    // Escaping holds in Prometheus' own parser: quotes, backslashes and newlines stay inside the label value,
    // and a regex matcher matches the name literally.
    let absent = template(r#"absent(sluice_proxy_requests_total{service="{{service}}"})"#);
    let nasty = "we\"b\\ or vector(2)\n{";
    assert_eq!(source.query_value(&absent, &vars(nasty)).await.expect("absent"), 1.0);
    let by_regex = template(r#"sum(sluice_proxy_requests_total{service=~"{{service}}"})"#);
    assert_eq!(
        source.query_value(&by_regex, &vars("web")).await.expect("regex"),
        REQUESTS as f64
    );
    let error = source
        .query_value(&by_regex, &vars("w.b"))
        .await
        .expect_err("a dot is not a wildcard");
    assert!(matches!(error, MetricsError::Empty { .. }), "{error}");

    // A bad query is Prometheus' error, with its explanation.
    let error = source.instant_query("sum(", None).await.expect_err("parse error");
    assert!(
        matches!(&error, MetricsError::Status { status: 400, detail, .. } if detail.starts_with("bad_data")),
        "{error}"
    );

    // Range queries: steps from start to end; the last step is at `seen`, when the total was already visible.
    let series = source
        .range_query(
            r#"sum(sluice_proxy_requests_total{service="web"})"#,
            seen - SignedDuration::from_secs(1),
            seen,
            Duration::from_secs(1),
        )
        .await
        .expect("range query");
    assert_eq!(series.len(), 1, "{series:?}");
    let times: Vec<_> = series[0]
        .samples
        .iter()
        .map(|s| seen.duration_since(s.at).as_secs())
        .collect();
    assert_eq!(times, vec![1, 0], "{series:?}");
    assert_eq!(series[0].samples[1].value, REQUESTS as f64, "{series:?}");
    // An instant query of a range selector returns raw samples, as the coverage check reads them.
    let raw = source
        .instant_query(r#"sluice_proxy_requests_total{service="web",class="2xx"}[10s]"#, None)
        .await
        .expect("raw samples");
    let QueryResult::Matrix(series) = raw else {
        panic!("a range selector gives a matrix: {raw:?}")
    };
    assert_eq!(series.len(), 2, "one series per revision: {series:?}");
    let last_2xx = |revision: &str| {
        let series = series
            .iter()
            .find(|s| s.labels.get("revision").map(String::as_str) == Some(revision));
        series.and_then(|s| s.samples.last()).map(|sample| sample.value)
    };
    assert_eq!(
        (last_2xx("v1"), last_2xx("v2")),
        (Some(150.0), Some(135.0)),
        "{series:?}"
    );

    proxy.shutdown().await.expect("proxy stops");
}

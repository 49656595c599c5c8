//! `/snapshot` and `/metrics` count exactly what the clients saw.

use http::StatusCode;
use sluice_proxy::LATENCY_BOUNDS_MS;
use sluice_proxy::snapshot::{RevisionSnapshot, StatusClassCounts};

use crate::common::*;

fn revision<'a>(revisions: &'a [RevisionSnapshot], name: &str) -> &'a RevisionSnapshot {
    revisions
        .iter()
        .find(|r| r.revision == name)
        .unwrap_or_else(|| panic!("revision {name} in snapshot"))
}

#[tokio::test]
async fn snapshot_and_metrics_count_every_response() {
    let flaky = TestBackend::start_with(
        "flaky",
        Behaviour {
            fail_every: Some(4),
            ..Behaviour::default()
        },
    )
    .await;
    let listen = free_addr();
    let proxy = start_proxy(Some(table(
        1,
        vec![service("web", listen, &[("v1", 100, &[flaky.addr])])],
    )))
    .await;
    let admin = proxy.admin_addr();
    let client = client();

    let statuses = get_many(&client, listen, 100).await;
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::INTERNAL_SERVER_ERROR)
            .count(),
        25
    );

    // The revision leaves the table; its history must stay.
    let (status, _) = put_routes(&client, admin, &table(2, vec![])).await;
    assert_eq!(status, StatusCode::OK);

    let snapshot = snapshot(&client, admin).await;
    assert_eq!(snapshot.routes_version, 2);
    let v1 = revision(&snapshot.revisions, "v1");
    assert_eq!(v1.service, "web");
    assert_eq!(
        v1.requests,
        StatusClassCounts {
            success: 75,
            server_error: 25,
            ..StatusClassCounts::default()
        }
    );
    assert_eq!(v1.latency_buckets_ms.len(), LATENCY_BOUNDS_MS.len() + 1);
    let last = v1.latency_buckets_ms.last().expect("+Inf bucket");
    assert_eq!((last.le, last.count), (f64::INFINITY, 100));
    assert!(
        v1.latency_buckets_ms.windows(2).all(|w| w[0].count <= w[1].count),
        "cumulative"
    );
    let hdr = v1.decode_hdr().expect("hdr decodes");
    assert_eq!(hdr.len(), 100);
    assert!(v1.latency_sum_ms > 0.0);
    let mean_from_sum = v1.latency_sum_ms * 1000.0 / 100.0;
    assert!((hdr.mean() - mean_from_sum).abs() <= mean_from_sum * 0.01 + 1.0);

    let (status, text) = get(&client, admin, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    for line in [
        "# TYPE sluice_proxy_requests counter",
        r#"sluice_proxy_requests_total{service="web",revision="v1",class="2xx"} 75"#,
        r#"sluice_proxy_requests_total{service="web",revision="v1",class="5xx"} 25"#,
        "# TYPE sluice_proxy_request_duration_seconds histogram",
        r#"sluice_proxy_request_duration_seconds_bucket{le="+Inf",service="web",revision="v1"} 100"#,
        r#"sluice_proxy_request_duration_seconds_count{service="web",revision="v1"} 100"#,
        "sluice_proxy_routes_version 2",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
    proxy.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn an_unreachable_instance_answers_502_counted_for_its_revision() {
    let down = free_addr();
    let listen = free_addr();
    let proxy = start_proxy(Some(table(1, vec![service("web", listen, &[("v2", 100, &[down])])]))).await;
    let client = client();

    for _ in 0..3 {
        let (status, body) = get(&client, listen, "/").await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        assert!(
            body.starts_with(&format!("revision v2: cannot connect to instance {down}")),
            "{body}"
        );
    }
    let snapshot = snapshot(&client, proxy.admin_addr()).await;
    assert_eq!(revision(&snapshot.revisions, "v2").requests.server_error, 3);
    proxy.shutdown().await.expect("clean shutdown");
}

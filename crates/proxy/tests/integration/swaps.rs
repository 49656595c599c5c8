//! Swapping tables under load fails no request and closes no client connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::common::*;

const CLIENT_TASKS: usize = 4;
const MAX_REQUESTS_PER_TASK: usize = 20_000;
const SWAPS: u64 = 100;

#[tokio::test]
async fn hundred_swaps_and_a_promotion_under_concurrent_load_fail_no_request() {
    swaps_and_a_promotion_under_load(1).await;
}

#[tokio::test]
async fn hundred_swaps_and_a_promotion_fail_no_request_on_pipelined_connections() {
    swaps_and_a_promotion_under_load(8).await;
}

async fn swaps_and_a_promotion_under_load(pipeline_depth: u32) {
    let stable = TestBackend::start("stable").await;
    let canary = TestBackend::start("canary").await;
    let listen = free_addr();
    let web = |backends: &[(&str, u32, &[std::net::SocketAddr])]| {
        let mut web = service("web", listen, backends);
        web.pipeline_depth = pipeline_depth;
        web
    };
    let split = |version: u64| {
        let canary_weight = [10, 50, 90, 0][(version % 4) as usize];
        table(
            version,
            vec![web(&[
                ("stable", 100 - canary_weight, &[stable.addr]),
                ("canary", canary_weight, &[canary.addr]),
            ])],
        )
    };
    let proxy = start_proxy(Some(split(1))).await;
    let admin = proxy.admin_addr();
    let swapping_done = Arc::new(AtomicBool::new(false));

    // Pooled clients: a failed request would surface as an error or a non-200.
    let mut load = Vec::new();
    for _ in 0..CLIENT_TASKS {
        let done = swapping_done.clone();
        load.push(tokio::spawn(async move {
            let client = client();
            let mut sent = 0;
            // Keeps going for 200 requests after the promotion, so the new table is loaded too.
            let mut after_promotion = 0;
            while sent < MAX_REQUESTS_PER_TASK && (sent < 100 || after_promotion < 200) {
                let (status, body) = get(&client, listen, "/").await;
                assert_eq!(status, StatusCode::OK, "request {sent} failed: {body}");
                sent += 1;
                if done.load(Ordering::SeqCst) {
                    after_promotion += 1;
                }
            }
            sent
        }));
    }

    // One connection held open across every swap: it must never be closed under the client.
    let stream = TcpStream::connect(listen).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    let connection = tokio::spawn(connection);

    let swapper = async {
        let client = client();
        for version in 2..2 + SWAPS {
            let (status, answer) = put_routes(&client, admin, &split(version)).await;
            assert_eq!(status, StatusCode::OK, "swap to {version}: {answer}");
            let request = Request::get("/")
                .header("host", listen.to_string())
                .body(Full::<Bytes>::default())
                .expect("request");
            let response = sender
                .send_request(request)
                .await
                .unwrap_or_else(|e| panic!("kept-alive connection failed after swap {version}: {e}"));
            assert_eq!(response.status(), StatusCode::OK);
            response.into_body().collect().await.expect("body");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    tokio::time::timeout(LOAD_DEADLINE, swapper)
        .await
        .expect("swaps finish before the deadline");

    // Promotion: the canary takes everything and the old stable leaves the table, still under load.
    let promoted = table(2 + SWAPS, vec![web(&[("canary", 100, &[canary.addr])])]);
    let (status, answer) = put_routes(&client(), admin, &promoted).await;
    assert_eq!(status, StatusCode::OK, "promotion: {answer}");
    // What was routed to stable before the promotion: answered by now (so counted by the backend, read
    // second) or still in flight in the proxy (read first), where a pipelined request may wait its turn.
    let stable_in_flight = snapshot(&client(), admin)
        .await
        .revisions
        .iter()
        .find(|r| r.revision == "stable")
        .map_or(0, |r| r.in_flight);
    let routed_to_stable = stable.hits() + u64::try_from(stable_in_flight).expect("in flight is never negative");
    swapping_done.store(true, Ordering::SeqCst);

    let mut total = 0;
    for task in load {
        total += tokio::time::timeout(LOAD_DEADLINE, task)
            .await
            .expect("load finishes before the deadline")
            .expect("no client task failed");
    }
    assert_eq!(stable.hits() + canary.hits(), total as u64 + SWAPS);
    assert_eq!(get_routes(&client(), admin).await.version, 2 + SWAPS);
    assert!(
        stable.hits() <= routed_to_stable,
        "nothing routed after the promotion reaches stable: {} hits, {routed_to_stable} routed before",
        stable.hits()
    );
    let snapshot = snapshot(&client(), admin).await;
    let retired = snapshot
        .revisions
        .iter()
        .find(|r| r.revision == "stable")
        .expect("history kept");
    assert_eq!(retired.in_flight, 0, "the retired revision has drained");
    let failed: u64 = snapshot.revisions.iter().map(|r| r.requests.server_error).sum();
    assert_eq!(failed, 0);

    drop(sender);
    connection.abort();
    proxy.shutdown().await.expect("clean shutdown");
}

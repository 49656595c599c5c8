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
async fn hundred_swaps_under_concurrent_load_fail_no_request() {
    let stable = TestBackend::start("stable").await;
    let canary = TestBackend::start("canary").await;
    let listen = free_addr();
    let split = |version: u64| {
        let canary_weight = [10, 50, 90, 0][(version % 4) as usize];
        table(
            version,
            vec![service(
                "web",
                listen,
                &[
                    ("stable", 100 - canary_weight, &[stable.addr]),
                    ("canary", canary_weight, &[canary.addr]),
                ],
            )],
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
            while sent < MAX_REQUESTS_PER_TASK && (sent < 100 || !done.load(Ordering::SeqCst)) {
                let (status, body) = get(&client, listen, "/").await;
                assert_eq!(status, StatusCode::OK, "request {sent} failed: {body}");
                sent += 1;
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
        swapping_done.store(true, Ordering::SeqCst);
    };
    tokio::time::timeout(LOAD_DEADLINE, swapper)
        .await
        .expect("swaps finish before the deadline");

    let mut total = 0;
    for task in load {
        total += tokio::time::timeout(LOAD_DEADLINE, task)
            .await
            .expect("load finishes before the deadline")
            .expect("no client task failed");
    }
    assert_eq!(stable.hits() + canary.hits(), total as u64 + SWAPS);
    assert_eq!(get_routes(&client(), admin).await.version, 1 + SWAPS);

    drop(sender);
    connection.abort();
    proxy.shutdown().await.expect("clean shutdown");
}

//! Mirroring: copies reach the mirror revision, their answers never reach users, and they cost users nothing.

use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use sluice_proxy::Mirror;

use crate::common::*;

fn mirrored(
    listen: std::net::SocketAddr,
    stable: &TestBackend,
    shadow: &TestBackend,
    percent: Option<u32>,
) -> sluice_proxy::RouteTable {
    let mut web = service(
        "web",
        listen,
        &[("stable", 100, &[stable.addr]), ("shadow", 0, &[shadow.addr])],
    );
    web.mirror = percent.map(|percent| Mirror {
        revision: "shadow".into(),
        percent,
        methods: vec!["GET".into(), "HEAD".into(), "OPTIONS".into()],
        max_body_bytes: 64 * 1024,
        max_in_flight: 1024,
    });
    table(1, vec![web])
}

/// Waits (bounded) until the mirror revision has seen `count` copies.
async fn wait_for_hits(backend: &TestBackend, count: u64) {
    let waited = tokio::time::timeout(LOAD_DEADLINE, async {
        while backend.hits() < count {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "mirror saw {} of {count} copies", backend.hits());
}

#[tokio::test]
async fn copies_reach_the_mirror_but_users_only_see_their_revision_and_post_is_not_copied() {
    let stable = TestBackend::start("stable").await;
    let shadow = TestBackend::start("shadow").await;
    let listen = free_addr();
    let proxy = start_proxy(Some(mirrored(listen, &stable, &shadow, Some(50)))).await;
    let client = client();

    for _ in 0..40 {
        let (status, body) = get(&client, listen, "/").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "stable"));
    }
    wait_for_hits(&shadow, 20).await;
    for _ in 0..10 {
        let request = Request::post(format!("http://{listen}/orders"))
            .body(Full::new(Bytes::from_static(b"{}")))
            .expect("request");
        let (status, headers, _) = send(&client, request).await;
        assert_eq!(
            (status, headers["x-backend"].to_str().ok()),
            (StatusCode::OK, Some("stable"))
        );
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(shadow.hits(), 20, "exactly half the GETs and no POST were copied");
    assert_eq!(stable.hits(), 50);

    let snapshot = snapshot(&client, proxy.admin_addr()).await;
    let shadow_stats = snapshot
        .revisions
        .iter()
        .find(|r| r.revision == "shadow")
        .expect("shadow");
    assert_eq!(shadow_stats.requests.total(), 0, "copies are not user requests");
    assert_eq!(shadow_stats.mirror.requests.success, 20);
    assert_eq!((shadow_stats.mirror.dropped, shadow_stats.mirror.skipped), (0, 0));
    proxy.shutdown().await.expect("clean shutdown");
}

/// The median over `rounds` of each address's p99 (µs) of `count` interleaved GETs: a round in which the machine
/// stalled the test (another process, the scheduler) moves neither figure.
async fn median_p99_us(
    client: &TestClient,
    addrs: [std::net::SocketAddr; 2],
    rounds: usize,
    count: usize,
) -> [u128; 2] {
    let mut per_round = [Vec::with_capacity(rounds), Vec::with_capacity(rounds)];
    for _ in 0..rounds {
        let p99s = interleaved_p99_us(client, addrs, count).await;
        for (p99, all) in p99s.into_iter().zip(per_round.iter_mut()) {
            all.push(p99);
        }
    }
    per_round.each_mut().map(|all| {
        all.sort_unstable();
        all[rounds / 2]
    })
}

/// p99 (µs) of `count` sequential GETs to each address, sent alternately so both see the same machine.
async fn interleaved_p99_us(client: &TestClient, addrs: [std::net::SocketAddr; 2], count: usize) -> [u128; 2] {
    let mut latencies = tokio::time::timeout(LOAD_DEADLINE, async {
        let mut latencies = [Vec::with_capacity(count), Vec::with_capacity(count)];
        for _ in 0..count {
            for (addr, measured) in addrs.iter().zip(latencies.iter_mut()) {
                let started = Instant::now();
                let (status, _) = get(client, *addr, "/").await;
                measured.push(started.elapsed().as_micros());
                assert_eq!(status, StatusCode::OK);
            }
        }
        latencies
    })
    .await
    .expect("requests finish before the deadline");
    latencies.each_mut().map(|measured| {
        measured.sort_unstable();
        measured[count * 99 / 100]
    })
}

#[tokio::test]
async fn a_mirror_answering_in_two_seconds_does_not_slow_users_down() {
    const ROUNDS: usize = 5;
    const REQUESTS_PER_ROUND: usize = 400;
    let stable = TestBackend::start("stable").await;
    // The mirror target is another server: it gets a runtime of its own, so its thousand sleeping answers are not
    // charged to the test thread that times the users' requests.
    let mirror_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("mirror runtime");
    let slow_shadow = mirror_runtime
        .spawn(TestBackend::start_with(
            "shadow",
            Behaviour {
                delay: Duration::from_secs(2),
                ..Behaviour::default()
            },
        ))
        .await
        .expect("mirror starts");
    let plain_listen = free_addr();
    let mirrored_listen = free_addr();
    // The baseline mirrors 0%: no copies, but the same forwarding path as the mirrored service (mirroring
    // services are served by hyper, the others by the lean path), so the difference is the copies' alone. Each
    // proxy serves on a worker thread of its own, as `sluice proxy --workers 1` does, so the copies' cost lands
    // on the proxy that makes them.
    let one_worker = std::num::NonZeroUsize::MIN;
    let plain = start_proxy_on(
        Some(mirrored(plain_listen, &stable, &slow_shadow, Some(0))),
        Some(one_worker),
    )
    .await;
    let with_mirror = start_proxy_on(
        Some(mirrored(mirrored_listen, &stable, &slow_shadow, Some(100))),
        Some(one_worker),
    )
    .await;
    let client = client();
    // Warm both paths (client and upstream connections) before measuring.
    get_many(&client, plain_listen, 20).await;
    get_many(&client, mirrored_listen, 20).await;

    let [without, with] = median_p99_us(&client, [plain_listen, mirrored_listen], ROUNDS, REQUESTS_PER_ROUND).await;
    assert!(
        with <= without + 1_000,
        "p99 with a 2 s mirror {with} µs, without {without} µs"
    );
    let snapshot = snapshot(&client, with_mirror.admin_addr()).await;
    let shadow = snapshot
        .revisions
        .iter()
        .find(|r| r.revision == "shadow")
        .expect("shadow");
    assert!(
        shadow.mirror.in_flight > 0,
        "copies were still waiting for the slow mirror"
    );
    plain.shutdown().await.expect("clean shutdown");
    with_mirror.shutdown().await.expect("clean shutdown");
    drop(slow_shadow);
    mirror_runtime.shutdown_background();
}

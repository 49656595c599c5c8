//! Pipelined instance connections (`pipelineDepth` above 1): many users' requests share connections and each
//! user still gets exactly their own answer; requests a connection lost go again; a `POST` never waits behind
//! others or has others behind it; a request that times out takes nobody's answer with it; requests that come
//! while a batch is in flight go out together once it is answered; an instance that holds back its answers
//! until acknowledged does not stall them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use sluice_proxy::Timeouts;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};

use crate::common::*;

/// How a hand-written pipelining backend behaves.
#[derive(Clone, Default)]
struct Conduct {
    /// Closes a connection, without a word, after answering this many requests on it.
    answers_per_connection: Option<usize>,
    /// `/gate` is answered once this is notified.
    gate: Option<Arc<Notify>>,
}

/// What the backend saw.
#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    requests: AtomicUsize,
    /// The most requests that arrived in one read: above 1 means requests were pipelined.
    most_in_one_read: AtomicUsize,
    /// A request arrived on a connection while a `POST` on it was unanswered, or together with a `POST`.
    post_shared: AtomicBool,
    /// Bytes arrived on a connection while its `/gate` was unanswered.
    sent_behind_gate: AtomicBool,
}

/// A backend that reads requests as they come, several per read when they were pipelined, and answers each
/// in order with its path as the body: alternately with a length and chunked, none to `HEAD`. `POST`s are
/// answered after 200 ms; `/gate` once the conduct's gate opens; `/hang` never (nor anything after it on its
/// connection).
struct PipeliningBackend {
    addr: SocketAddr,
    seen: Arc<Seen>,
    task: JoinHandle<()>,
}

impl PipeliningBackend {
    async fn start(conduct: Conduct) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind backend");
        let addr = listener.local_addr().expect("backend address");
        let seen = Arc::new(Seen::default());
        let counters = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counters.connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream, conduct.clone(), counters.clone()));
            }
        });
        Self { addr, seen, task }
    }
}

impl Drop for PipeliningBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut stream: tokio::net::TcpStream, conduct: Conduct, seen: Arc<Seen>) {
    let mut buf = Vec::new();
    let mut answered = 0;
    loop {
        let mut chunk = [0_u8; 16 * 1024];
        let Ok(read) = stream.read(&mut chunk).await else {
            return;
        };
        if read == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..read]);
        let mut requests = Vec::new();
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head: Vec<u8> = buf.drain(..end + 4).collect();
            let line = String::from_utf8_lossy(&head)
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned();
            let mut words = line.split(' ');
            let method = words.next().unwrap_or_default().to_owned();
            let path = words.next().unwrap_or_default().to_owned();
            requests.push((method, path));
        }
        seen.requests.fetch_add(requests.len(), Ordering::SeqCst);
        seen.most_in_one_read.fetch_max(requests.len(), Ordering::SeqCst);
        if requests.len() > 1 && requests.iter().any(|(method, _)| method == "POST") {
            seen.post_shared.store(true, Ordering::SeqCst);
        }
        let mut out = Vec::new();
        for (method, path) in requests {
            if conduct.answers_per_connection.is_some_and(|most| answered == most) {
                let _ = stream.write_all(&out).await;
                return;
            }
            if path == "/hang" {
                let _ = stream.write_all(&out).await;
                // Holds the connection open, answering nothing more on it.
                tokio::time::sleep(LOAD_DEADLINE).await;
                return;
            }
            if method == "POST" {
                tokio::time::sleep(Duration::from_millis(200)).await;
                // Whatever came while the POST was unanswered shared its connection.
                if arrived(&stream).await {
                    seen.post_shared.store(true, Ordering::SeqCst);
                }
            }
            if path == "/gate"
                && let Some(gate) = &conduct.gate
            {
                gate.notified().await;
                if arrived(&stream).await {
                    seen.sent_behind_gate.store(true, Ordering::SeqCst);
                }
            }
            answered += 1;
            if method == "HEAD" {
                out.extend_from_slice(format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", path.len()).as_bytes());
            } else if answered % 2 == 0 {
                out.extend_from_slice(
                    format!(
                        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{path}\r\n0\r\n\r\n",
                        path.len()
                    )
                    .as_bytes(),
                );
            } else {
                out.extend_from_slice(
                    format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{path}", path.len()).as_bytes(),
                );
            }
        }
        if stream.write_all(&out).await.is_err() {
            return;
        }
    }
}

/// Whether unread bytes wait on `stream`.
async fn arrived(stream: &tokio::net::TcpStream) -> bool {
    let mut probe = [0_u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_millis(1), stream.peek(&mut probe)).await,
        Ok(Ok(1..))
    )
}

/// A proxy in front of `backend` pipelining up to 8 requests per connection, with a request timeout.
async fn pipelining_proxy(backend: SocketAddr, request_ms: u64) -> (sluice_proxy::ProxyHandle, SocketAddr) {
    let listen = free_addr();
    let mut web = service("web", listen, &[("v1", 100, &[backend])]);
    web.pipeline_depth = 8;
    web.timeouts = Timeouts {
        connect_ms: 5_000,
        request_ms,
    };
    let proxy = start_proxy(Some(table(1, vec![web]))).await;
    (proxy, listen)
}

/// `users` concurrent users sending `each` GETs (every fifth a HEAD) to paths of their own; panics unless
/// every answer is 200 with the user's own path as its body.
async fn users_get_their_own_answers(listen: SocketAddr, users: usize, each: usize) {
    let mut tasks = JoinSet::new();
    for user in 0..users {
        tasks.spawn(async move {
            let client = client();
            for n in 0..each {
                let path = format!("/user-{user}/request-{n}");
                let head = n % 5 == 4;
                let method = if head { http::Method::HEAD } else { http::Method::GET };
                let request = Request::builder()
                    .method(method)
                    .uri(format!("http://{listen}{path}"))
                    .body(Full::new(Bytes::new()))
                    .expect("request");
                let (status, headers, body) = send(&client, request).await;
                assert_eq!(status, StatusCode::OK, "{path}: {body}");
                if head {
                    assert_eq!(body, "", "{path}: a HEAD answer has no body");
                    assert_eq!(
                        headers["content-length"].to_str().ok(),
                        Some(path.len().to_string().as_str())
                    );
                } else {
                    assert_eq!(body, path, "{path} got another user's answer");
                }
            }
        });
    }
    tokio::time::timeout(LOAD_DEADLINE, async {
        while let Some(done) = tasks.join_next().await {
            done.expect("a user's requests all succeed");
        }
    })
    .await
    .expect("users finish before the deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_users_share_pipelined_connections_and_each_gets_their_own_answer() {
    let backend = PipeliningBackend::start(Conduct::default()).await;
    let (proxy, listen) = pipelining_proxy(backend.addr, 60_000).await;

    users_get_their_own_answers(listen, 40, 25).await;

    let seen = &backend.seen;
    assert_eq!(seen.requests.load(Ordering::SeqCst), 1000);
    assert!(
        seen.most_in_one_read.load(Ordering::SeqCst) > 1,
        "requests of different users went out together"
    );
    // Users that arrive together before any connection is up each open one; never more than that.
    assert!(
        seen.connections.load(Ordering::SeqCst) <= 40,
        "at most one instance connection per user: {}",
        seen.connections.load(Ordering::SeqCst)
    );
    let snapshot = snapshot(&client(), proxy.admin_addr()).await;
    let v1 = snapshot.revisions.iter().find(|r| r.revision == "v1").expect("v1");
    assert_eq!((v1.requests.success, v1.requests.total()), (1000, 1000));
    proxy.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_a_closing_instance_left_unanswered_go_again_and_none_fails() {
    let backend = PipeliningBackend::start(Conduct {
        answers_per_connection: Some(3),
        ..Conduct::default()
    })
    .await;
    let (proxy, listen) = pipelining_proxy(backend.addr, 60_000).await;

    users_get_their_own_answers(listen, 20, 10).await;

    assert!(
        backend.seen.requests.load(Ordering::SeqCst) > 200,
        "some requests were lost with their connection and sent again"
    );
    proxy.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_never_shares_its_connection_while_gets_are_pipelined() {
    let backend = PipeliningBackend::start(Conduct::default()).await;
    let (proxy, listen) = pipelining_proxy(backend.addr, 60_000).await;
    let post = move |n: usize| async move {
        let path = format!("/post-{n}");
        let request = Request::post(format!("http://{listen}{path}"))
            .body(Full::new(Bytes::new()))
            .expect("request");
        let (status, _, body) = send(&client(), request).await;
        assert_eq!((status, body), (StatusCode::OK, path));
    };

    // The first request is a POST the instance holds for 200 ms: were it pipelined, its connection would be
    // the only one the GETs that follow could join.
    let first = tokio::spawn(post(0));
    tokio::time::sleep(Duration::from_millis(50)).await;
    users_get_their_own_answers(listen, 5, 1).await;
    first.await.expect("the POST is answered");
    assert!(
        !backend.seen.post_shared.load(Ordering::SeqCst),
        "no GET went behind the held POST"
    );

    // And under load, with POSTs among many users' GETs.
    let posts = tokio::spawn(async move {
        for n in 1..5 {
            post(n).await;
        }
    });
    users_get_their_own_answers(listen, 20, 20).await;
    posts.await.expect("posts are answered");
    assert!(
        !backend.seen.post_shared.load(Ordering::SeqCst),
        "no request was sent on a connection with a POST in flight"
    );
    proxy.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_come_while_a_batch_is_in_flight_go_out_together_once_it_is_answered() {
    let gate = Arc::new(Notify::new());
    let backend = PipeliningBackend::start(Conduct {
        gate: Some(gate.clone()),
        ..Conduct::default()
    })
    .await;
    let (proxy, listen) = pipelining_proxy(backend.addr, 60_000).await;
    let client = client();
    let in_flight = async |count: i64| {
        let snapshot = snapshot(&client, proxy.admin_addr()).await;
        snapshot.revisions.iter().map(|r| r.in_flight).sum::<i64>() == count
    };

    let first = tokio::spawn({
        let client = client.clone();
        async move { get(&client, listen, "/gate").await }
    });
    eventually(|| async { backend.seen.requests.load(Ordering::SeqCst) == 1 }).await;
    let behind: Vec<_> = (0..5)
        .map(|n| {
            let client = client.clone();
            tokio::spawn(async move { get(&client, listen, &format!("/behind-{n}")).await })
        })
        .collect();
    eventually(|| in_flight(6)).await;
    // Were they written as they came, they would be on the instance's side within this.
    tokio::time::sleep(Duration::from_millis(100)).await;
    gate.notify_one();

    assert_eq!(first.await.expect("task"), (StatusCode::OK, "/gate".to_owned()));
    for (n, answer) in behind.into_iter().enumerate() {
        assert_eq!(answer.await.expect("task"), (StatusCode::OK, format!("/behind-{n}")));
    }
    let seen = &backend.seen;
    assert!(
        !seen.sent_behind_gate.load(Ordering::SeqCst),
        "nothing was written while the first answer was awaited"
    );
    assert_eq!(
        seen.connections.load(Ordering::SeqCst),
        1,
        "they joined the busy connection"
    );
    assert_eq!(
        seen.most_in_one_read.load(Ordering::SeqCst),
        5,
        "the five went out together"
    );
    proxy.shutdown().await.expect("clean shutdown");
}

/// Waits, within [`LOAD_DEADLINE`], until `holds` answers true.
async fn eventually<F, Fut>(holds: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    tokio::time::timeout(LOAD_DEADLINE, async {
        while !holds().await {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the condition holds before the deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_waits_for_acknowledgements_does_not_stall_pipelined_connections() {
    // hyper's server leaves Nagle's algorithm on: an answer written while the one before is unacknowledged
    // waits for that ACK, which the proxy's side delays by up to 40 ms unless it acknowledges at once.
    let backend = TestBackend::start("v1").await;
    let listen = free_addr();
    let mut web = service("web", listen, &[("v1", 100, &[backend.addr])]);
    web.pipeline_depth = 8;
    let proxy = start_proxy(Some(table(1, vec![web]))).await;

    let mut users = JoinSet::new();
    for _ in 0..8 {
        users.spawn(async move {
            let client = client();
            let mut took = Vec::new();
            for _ in 0..25 {
                let started = tokio::time::Instant::now();
                let (status, body) = get(&client, listen, "/").await;
                assert_eq!(status, StatusCode::OK, "{body}");
                took.push(started.elapsed());
            }
            took
        });
    }
    let mut took = Vec::new();
    while let Some(user) = users.join_next().await {
        took.extend(user.expect("a user's requests all succeed"));
    }
    took.sort();
    let median = took[took.len() / 2];
    assert!(
        median < Duration::from_millis(20),
        "median {median:?}: pipelined answers waited for delayed acknowledgements"
    );
    proxy.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_request_that_times_out_gets_504_and_those_behind_it_go_again() {
    let backend = PipeliningBackend::start(Conduct::default()).await;
    let (proxy, listen) = pipelining_proxy(backend.addr, 500).await;
    let client = client();
    // Warm one connection so the next requests pipeline behind `/hang` on it.
    assert_eq!(
        get(&client, listen, "/warm").await,
        (StatusCode::OK, "/warm".to_owned())
    );

    let hang = {
        let client = client.clone();
        tokio::spawn(async move { get(&client, listen, "/hang").await })
    };
    // Give `/hang` a head start so it is written first.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let behind: Vec<_> = (0..3)
        .map(|n| {
            let client = client.clone();
            tokio::spawn(async move { get(&client, listen, &format!("/behind-{n}")).await })
        })
        .collect();

    let (status, body) = hang.await.expect("hang task");
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert!(body.contains("request timeout"), "{body}");
    for (n, answer) in behind.into_iter().enumerate() {
        let (status, body) = answer.await.expect("task");
        assert_eq!((status, body), (StatusCode::OK, format!("/behind-{n}")));
    }
    proxy.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_pipelined_answer_carries_a_new_users_affinity_cookie_and_the_clients_close() {
    let backend = PipeliningBackend::start(Conduct::default()).await;
    let listen = free_addr();
    let mut web = service("web", listen, &[("v1", 100, &[backend.addr])]);
    web.pipeline_depth = 8;
    web.session_affinity = Some(sluice_proxy::SessionAffinity::CookieName("sluice-canary".into()));
    let proxy = start_proxy(Some(table(1, vec![web]))).await;

    let request = Request::get(format!("http://{listen}/first"))
        .header("connection", "close")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let (status, headers, body) = send(&client(), request).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "/first"));
    let cookie = headers["set-cookie"].to_str().expect("ascii");
    assert!(cookie.starts_with("sluice-canary="), "{cookie}");
    assert_eq!(headers["connection"], "close", "the client asked to close");
    proxy.shutdown().await.expect("clean shutdown");
}

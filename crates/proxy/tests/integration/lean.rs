//! The lean HTTP/1.1 path, byte for byte: pipelining, answers framed every way, pooled connections the
//! instance dropped, and requests it leaves to hyper on the same connection.

use std::net::SocketAddr;
use std::time::Duration;

use http::StatusCode;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::common::*;

/// Every exchange with a raw socket in these tests gives up after this long.
const DEADLINE: Duration = Duration::from_secs(10);

/// A backend written by hand: for each request head it reads, it writes `answer`. With `one_per_connection`
/// it answers only the first request of each connection and closes at the next, without a word (as a
/// backend does whose keep-alive timeout strikes as a request arrives).
struct RawBackend {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl RawBackend {
    async fn start(answer: &'static [u8], one_per_connection: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind raw backend");
        let addr = listener.local_addr().expect("raw backend address");
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut answered = 0;
                    while read_head(&mut stream).await.is_some() {
                        if one_per_connection && answered == 1 {
                            return;
                        }
                        if stream.write_all(answer).await.is_err() {
                            return;
                        }
                        answered += 1;
                        if is_close_delimited(answer) {
                            return;
                        }
                    }
                });
            }
        });
        Self { addr, task }
    }
}

impl Drop for RawBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn is_close_delimited(answer: &[u8]) -> bool {
    let head = String::from_utf8_lossy(answer).to_ascii_lowercase();
    !head.contains("content-length") && !head.contains("transfer-encoding")
}

/// Reads one request head (these tests send no request bodies to raw backends).
async fn read_head(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0_u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    Some(head)
}

/// Writes `request` to the proxy and reads until it closes the connection.
async fn exchange(listen: SocketAddr, request: &[u8]) -> String {
    tokio::time::timeout(DEADLINE, async {
        let mut stream = TcpStream::connect(listen).await.expect("connect to the proxy");
        stream.write_all(request).await.expect("write");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.expect("read");
        String::from_utf8(answer).expect("utf-8 answers")
    })
    .await
    .expect("the proxy answers and closes before the deadline")
}

/// One proxied service in front of `backend`.
async fn proxy_for(backend: SocketAddr) -> (sluice_proxy::ProxyHandle, SocketAddr) {
    let listen = free_addr();
    let proxy = start_proxy(Some(table(1, vec![service("web", listen, &[("v1", 100, &[backend])])]))).await;
    (proxy, listen)
}

async fn v1(proxy: &sluice_proxy::ProxyHandle) -> sluice_proxy::snapshot::RevisionSnapshot {
    let snapshot = snapshot(&client(), proxy.admin_addr()).await;
    snapshot
        .revisions
        .into_iter()
        .find(|r| r.revision == "v1")
        .expect("v1 is reported")
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let backend = TestBackend::start("v1").await;
    let (proxy, listen) = proxy_for(backend.addr).await;

    let answers = exchange(
        listen,
        b"GET /one HTTP/1.1\r\nHost: a\r\n\r\nGET /two HTTP/1.1\r\nHost: a\r\n\r\n\
          GET /three HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    let paths: Vec<&str> = answers
        .lines()
        .filter_map(|line| line.strip_prefix("x-seen-path: "))
        .collect();
    assert_eq!(paths, ["/one", "/two", "/three"], "{answers}");
    assert_eq!(answers.matches("HTTP/1.1 200 OK").count(), 3, "{answers}");
    assert!(
        answers.contains("connection: close\r\n"),
        "the last answer says the connection ends"
    );
    proxy.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn chunked_and_close_delimited_answers_are_relayed_whole_and_counted() {
    let cases: [(&'static [u8], &str); 2] = [
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
            "hello world",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end",
            "until the end",
        ),
    ];
    for (answer, body) in cases {
        let backend = RawBackend::start(answer, false).await;
        let (proxy, listen) = proxy_for(backend.addr).await;
        let client = client();
        for _ in 0..3 {
            assert_eq!(get(&client, listen, "/").await, (StatusCode::OK, body.to_owned()));
        }
        let v1 = v1(&proxy).await;
        assert_eq!(v1.requests.success, 3);
        assert_eq!(
            v1.bytes_sent,
            3 * body.len() as u64,
            "body bytes, without the chunk framing"
        );
        proxy.shutdown().await.expect("clean shutdown");
    }
}

#[tokio::test]
async fn a_get_on_a_pooled_connection_the_instance_dropped_is_sent_again_but_a_post_is_not() {
    let backend = RawBackend::start(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true).await;
    let (proxy, listen) = proxy_for(backend.addr).await;
    let client = client();

    // Each GET after the first finds the pooled connection dropped as it is sent, and goes again.
    let statuses = get_many(&client, listen, 10).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::OK), "{statuses:?}");

    // A POST may have been processed for all the proxy knows: the client gets the 502.
    let answer = exchange(
        listen,
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{answer}");
    assert!(answer.contains("failed to answer from instance"), "{answer}");
    let v1 = v1(&proxy).await;
    assert_eq!((v1.requests.success, v1.requests.server_error), (10, 1));
    proxy.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn requests_the_lean_path_leaves_to_hyper_are_served_on_the_same_connection() {
    let backend = TestBackend::start("echo").await;
    let (proxy, listen) = proxy_for(backend.addr).await;

    // A plain GET, then a chunked POST (hyper's from here on), then HTTP/1.0.
    let answers = exchange(
        listen,
        b"GET /lean HTTP/1.1\r\nHost: a\r\n\r\n\
          POST /chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\n\r\n\
          GET /old HTTP/1.0\r\nHost: a\r\n\r\n",
    )
    .await;
    let paths: Vec<&str> = answers
        .lines()
        .filter_map(|line| line.strip_prefix("x-seen-path: "))
        .collect();
    assert_eq!(paths, ["/lean", "/chunked", "/old"], "{answers}");
    assert!(
        answers.contains("\r\n\r\nbody"),
        "the chunked body was forwarded: {answers}"
    );
    proxy.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn an_answer_to_head_has_no_body_and_the_connection_goes_on() {
    let backend = TestBackend::start("v1").await;
    let (proxy, listen) = proxy_for(backend.addr).await;

    let answers = exchange(
        listen,
        b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    let (head_answer, get_answer) = answers.split_once("\r\n\r\n").expect("two answers");
    assert!(head_answer.contains("content-length: 2"), "{head_answer}");
    assert!(
        get_answer.starts_with("HTTP/1.1 200 OK\r\n"),
        "no body after the HEAD answer: {answers}"
    );
    assert!(get_answer.ends_with("\r\n\r\nv1"), "{answers}");
    proxy.shutdown().await.expect("clean shutdown");
}

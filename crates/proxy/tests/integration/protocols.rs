//! HTTP/2 and gRPC towards backends, upgraded connections, TLS towards clients, and worker threads.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject as _;
use sluice_proxy::{ProxyConfig, Tls, UpstreamProtocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::*;

/// A body of fixed frames: data, then trailers.
struct Frames(VecDeque<Frame<Bytes>>);

impl Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(Ok))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }
}

/// A gRPC-like HTTP/2 backend: the path's last segment is the `grpc-status` it sends in the trailers.
async fn start_grpc_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = service_fn(|request: Request<Incoming>| async move {
                let code = request.uri().path().rsplit('/').next().unwrap_or("0").to_owned();
                let te = request.headers().get("te").cloned();
                let _ = request.into_body().collect().await;
                let mut trailers = HeaderMap::new();
                trailers.insert("grpc-status", HeaderValue::from_str(&code).expect("digits"));
                let body = Frames(VecDeque::from([
                    Frame::data(Bytes::from_static(b"\0\0\0\0\0")),
                    Frame::trailers(trailers),
                ]));
                let mut response = Response::new(body);
                response
                    .headers_mut()
                    .insert("content-type", HeaderValue::from_static("application/grpc"));
                if let Some(te) = te {
                    response.headers_mut().insert("x-seen-te", te);
                }
                Ok::<_, Infallible>(response)
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn grpc_over_http2_is_counted_by_the_status_in_its_trailers() {
    let backend = start_grpc_backend().await;
    let listen = free_addr();
    let mut web = service("grpc", listen, &[("v1", 100, &[backend])]);
    web.upstream_protocol = UpstreamProtocol::Http2;
    let proxy = start_proxy(Some(table(1, vec![web]))).await;
    let h2: TestClient = Client::builder(TokioExecutor::new()).http2_only(true).build_http();

    for (code, times) in [("0", 3), ("14", 2), ("5", 1)] {
        for _ in 0..times {
            let request = Request::post(format!("http://{listen}/pkg.Service/Method/{code}"))
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .body(Full::new(Bytes::from_static(b"\0\0\0\0\0")))
                .expect("request");
            let response = h2.request(request).await.expect("proxy answers");
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(response.headers()["x-seen-te"], "trailers");
            let collected = response.into_body().collect().await.expect("body");
            let trailers = collected.trailers().expect("trailers pass through");
            assert_eq!(trailers["grpc-status"], code);
        }
    }

    let snapshot = snapshot(&client(), proxy.admin_addr()).await;
    let v1 = &snapshot.revisions[0];
    let statuses: Vec<(&str, u64)> = v1.grpc_status.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(statuses, [("0", 3), ("14", 2), ("5", 1)]);
    assert_eq!(
        (v1.requests.success, v1.requests.client_error, v1.requests.server_error),
        (3, 1, 2),
        "OK is a success, NOT_FOUND the caller's error, UNAVAILABLE the server's"
    );
    let (_, metrics) = get(&client(), proxy.admin_addr(), "/metrics").await;
    let line = r#"sluice_proxy_grpc_responses_total{service="grpc",revision="v1",route="default",grpc_status="14"} 2"#;
    assert!(metrics.lines().any(|l| l == line), "missing {line:?} in\n{metrics}");
    proxy.shutdown().await.expect("clean shutdown");
}

/// An HTTP/1.1 backend that accepts `Upgrade: echo` and then echoes bytes back.
async fn start_echo_upgrade_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = service_fn(|mut request: Request<Incoming>| async move {
                let upgrade = request.headers().get("upgrade").cloned();
                let Some(protocol) = upgrade else {
                    return Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"plain"))));
                };
                let on_upgrade = hyper::upgrade::on(&mut request);
                tokio::spawn(async move {
                    if let Ok(upgraded) = on_upgrade.await {
                        let mut io = TokioIo::new(upgraded);
                        let mut buffer = [0_u8; 64];
                        while let Ok(read) = io.read(&mut buffer).await {
                            if read == 0 || io.write_all(&buffer[..read]).await.is_err() {
                                break;
                            }
                        }
                    }
                });
                let mut response = Response::new(Full::default());
                *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
                response.headers_mut().insert("upgrade", protocol);
                response
                    .headers_mut()
                    .insert("connection", HeaderValue::from_static("upgrade"));
                Ok(response)
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn upgraded_connections_pass_through_and_are_counted() {
    let backend = start_echo_upgrade_backend().await;
    let listen = free_addr();
    let proxy = start_proxy(Some(table(1, vec![service("ws", listen, &[("v1", 100, &[backend])])]))).await;

    let mut stream = TcpStream::connect(listen).await.expect("connect");
    stream
        .write_all(b"GET /socket HTTP/1.1\r\nHost: ws.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
        .await
        .expect("send upgrade");
    let mut head = Vec::new();
    let mut byte = [0_u8; 1];
    let read_head = tokio::time::timeout(LOAD_DEADLINE, async {
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).await.expect("head");
            head.push(byte[0]);
        }
    });
    read_head.await.expect("101 arrives");
    let head = String::from_utf8_lossy(&head).to_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: echo"), "{head}");
    for message in [&b"ping"[..], b"second message"] {
        stream.write_all(message).await.expect("write");
        let mut echoed = vec![0_u8; message.len()];
        tokio::time::timeout(LOAD_DEADLINE, stream.read_exact(&mut echoed))
            .await
            .expect("echo arrives")
            .expect("read");
        assert_eq!(echoed, message);
    }
    drop(stream);

    let (status, body) = get(&client(), listen, "/").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "plain"));
    let snapshot = snapshot(&client(), proxy.admin_addr()).await;
    let v1 = &snapshot.revisions[0];
    assert_eq!(v1.upgrades, 1);
    assert_eq!((v1.requests.informational, v1.requests.success), (1, 1));
    proxy.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn tls_clients_are_served_and_forwarded_as_https_with_a_request_id() {
    let backend = TestBackend::start("v1").await;
    let listen = free_addr();
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut web = service("web", listen, &[("v1", 100, &[backend.addr])]);
    web.tls = Some(Tls {
        cert_file: fixtures.join("localhost.crt"),
        key_file: fixtures.join("localhost.key"),
    });
    let proxy = start_proxy(Some(table(1, vec![web]))).await;

    let certificate =
        rustls::pki_types::CertificateDer::from_pem_file(fixtures.join("localhost.crt")).expect("certificate");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certificate).expect("trusted");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(listen).await.expect("connect");
    let name = rustls::pki_types::ServerName::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]).into());
    let tls = connector.connect(name, tcp).await.expect("TLS handshake");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("HTTP handshake");
    tokio::spawn(connection);
    let request = Request::get("/secure")
        .header("host", "localhost")
        .body(Full::<Bytes>::default())
        .expect("request");
    let response = sender.send_request(request).await.expect("answer");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-seen-forwarded-proto"], "https");
    let request_id = response.headers()["x-seen-request-id"].to_str().expect("ascii");
    assert_eq!(request_id.len(), 16, "{request_id}");
    drop(sender);
    proxy.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn worker_threads_share_the_listen_address_and_the_split_stays_exact() {
    let stable = TestBackend::start("stable").await;
    let canary = TestBackend::start("canary").await;
    let listen = free_addr();
    let proxy = sluice_proxy::start(ProxyConfig {
        admin: "127.0.0.1:0".parse().expect("admin address"),
        state_file: None,
        initial: Some(table(
            1,
            vec![service(
                "web",
                listen,
                &[("stable", 90, &[stable.addr]), ("canary", 10, &[canary.addr])],
            )],
        )),
        workers: std::num::NonZeroUsize::new(2),
    })
    .await
    .expect("proxy starts");

    // Separate clients open separate connections, which the kernel spreads over both workers' sockets.
    let mut tasks = Vec::new();
    for _ in 0..4 {
        tasks.push(tokio::spawn(async move { get_many(&client(), listen, 250).await }));
    }
    for task in tasks {
        let statuses = task.await.expect("client task");
        assert!(statuses.iter().all(|s| *s == StatusCode::OK));
    }
    assert_eq!(stable.hits() + canary.hits(), 1000);
    assert_eq!(canary.hits(), 100, "one shared schedule: exactly one in ten");
    let snapshot = snapshot(&client(), proxy.admin_addr()).await;
    let total: u64 = snapshot.revisions.iter().map(|r| r.requests.total()).sum();
    assert_eq!(total, 1000, "every worker's shard is in the snapshot");
    proxy.shutdown().await.expect("clean shutdown");
}

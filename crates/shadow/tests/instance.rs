//! A real HTTP server on loopback standing in for a revision's instance: it answers through a closure and
//! keeps every request it received.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// A request as an instance received it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// What an instance answers.
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Reply {
    pub fn json(body: String) -> Self {
        Reply {
            status: 200,
            content_type: "application/json",
            body,
        }
    }

    pub fn text(body: &str) -> Self {
        Reply {
            status: 200,
            content_type: "text/plain",
            body: body.to_owned(),
        }
    }
}

type Respond = dyn Fn(&Seen) -> Reply + Send + Sync;

/// A running instance; dropping it closes its listener and connections.
pub struct Instance {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

impl Instance {
    pub async fn start(respond: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Instance {
        let (_, open) = watch::channel(true);
        Self::start_gated(respond, open).await
    }

    /// An instance that holds every answer until `gate` is true.
    pub async fn start_gated(
        respond: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
        gate: watch::Receiver<bool>,
    ) -> Instance {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind an instance");
        let addr = listener.local_addr().expect("instance address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let respond: Arc<Respond> = Arc::new(respond);
        let task = tokio::spawn(serve(listener, respond, Arc::clone(&seen), gate));
        Instance { addr, seen, task }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(listener: TcpListener, respond: Arc<Respond>, seen: Arc<Mutex<Vec<Seen>>>, gate: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    while let Ok((stream, _)) = listener.accept().await {
        let (respond, seen, gate) = (Arc::clone(&respond), Arc::clone(&seen), gate.clone());
        let service = service_fn(move |request: Request<Incoming>| {
            let (respond, seen, mut gate) = (Arc::clone(&respond), Arc::clone(&seen), gate.clone());
            async move {
                let (parts, body) = request.into_parts();
                let body = body
                    .collect()
                    .await
                    .map(|collected| collected.to_bytes())
                    .unwrap_or_default();
                let request = Seen {
                    method: parts.method,
                    path: parts.uri.path().to_owned(),
                    headers: parts.headers,
                    body,
                };
                seen.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(request.clone());
                let _ = gate.wait_for(|open| *open).await;
                let reply = respond(&request);
                let mut response = Response::new(Full::new(Bytes::from(reply.body)));
                *response.status_mut() = StatusCode::from_u16(reply.status).expect("a status");
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static(reply.content_type));
                Ok::<_, Infallible>(response)
            }
        });
        connections.spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
    }
}

/// An address nothing listens on: bound, then closed.
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("bind");
    listener.local_addr().expect("address")
}

/// Sends requests to the shadow listener as the proxy's mirror does.
pub struct Mirror {
    client: Client<HttpConnector, Full<Bytes>>,
    to: SocketAddr,
}

impl Mirror {
    pub fn new(to: SocketAddr) -> Self {
        Mirror {
            client: Client::builder(TokioExecutor::new()).build_http(),
            to,
        }
    }

    pub async fn get(&self, path: &str) -> StatusCode {
        self.send(Method::GET, path, &[], "").await
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&'static str, &'static str)],
        body: &str,
    ) -> StatusCode {
        let mut request = Request::new(Full::new(Bytes::from(body.to_owned())));
        *request.method_mut() = method;
        *request.uri_mut() = format!("http://{}{path}", self.to).parse().expect("a uri");
        for (name, value) in headers {
            request.headers_mut().append(*name, HeaderValue::from_static(value));
        }
        let response = tokio::time::timeout(Duration::from_secs(5), self.client.request(request))
            .await
            .expect("the shadow listener answers at once")
            .expect("the shadow listener answers");
        response.status()
    }
}

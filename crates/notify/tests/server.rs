//! A receiving HTTP server on loopback that records every request and answers from a script.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How the server answers one request.
#[derive(Clone, Debug)]
pub enum Answer {
    /// This status and body.
    Status(u16, &'static str),
    /// Never answers (the connection stays open).
    Hang,
}

/// A request as the server received it.
#[derive(Debug)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    pub fn json<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body).expect("the body parses as the receiver expects")
    }
}

struct Script {
    /// Answers for the next requests, in order; the last one repeats.
    answers: Mutex<VecDeque<Answer>>,
    requests: mpsc::UnboundedSender<Received>,
}

pub struct Receiver {
    pub url: String,
    requests: mpsc::UnboundedReceiver<Received>,
    task: JoinHandle<()>,
}

impl Receiver {
    /// A server answering 200 "ok" to everything.
    pub async fn ok() -> Self {
        Self::start([Answer::Status(200, "ok")]).await
    }

    /// A server that never answers.
    pub async fn hanging() -> Self {
        Self::start([Answer::Hang]).await
    }

    /// A server answering from `answers` in order, repeating the last one.
    pub async fn start(answers: impl IntoIterator<Item = Answer>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the receiver");
        let addr = listener.local_addr().expect("receiver address");
        let (sender, requests) = mpsc::unbounded_channel();
        let script = Arc::new(Script {
            answers: Mutex::new(answers.into_iter().collect()),
            requests: sender,
        });
        let app = Router::new().fallback(answer).with_state(script);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url: format!("http://{addr}/hook"),
            requests,
            task,
        }
    }

    /// The next request received, waiting at most `within`.
    pub async fn next(&mut self, within: Duration) -> Option<Received> {
        tokio::time::timeout(within, self.requests.recv()).await.ok().flatten()
    }

    /// The requests received so far, without waiting.
    pub fn received(&mut self) -> Vec<Received> {
        let mut received = Vec::new();
        while let Ok(request) = self.requests.try_recv() {
            received.push(request);
        }
        received
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(State(script): State<Arc<Script>>, headers: HeaderMap, body: Bytes) -> (StatusCode, &'static str) {
    let _ = script.requests.send(Received { headers, body });
    let next = {
        let mut answers = script.answers.lock().expect("script lock");
        if answers.len() > 1 {
            answers.pop_front()
        } else {
            answers.front().cloned()
        }
    };
    match next {
        Some(Answer::Status(code, body)) => (StatusCode::from_u16(code).expect("a valid status"), body),
        Some(Answer::Hang) | None => std::future::pending().await,
    }
}

/// A loopback URL where nothing listens: connections are refused at once.
pub fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("address");
    drop(listener);
    format!("http://{addr}/hook")
}

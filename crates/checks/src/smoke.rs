//! Smoke checks: one request each, judged on its status and on text in its body.

use std::error::Error;
use std::io;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use serde::{Deserialize, Serialize};
use sluice_spec::SmokeCheck;

use crate::request::{describe, template};
use crate::{CheckOptions, Target};

/// The client smoke checks share; the load test has its own pool, sized for its in-flight bound.
pub(crate) type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// How one smoke check went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SmokeOutcome {
    /// The request, as `GET /healthz`.
    pub request: String,
    /// Whether the answer was the expected one.
    pub passed: bool,
    /// The status of the answer, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// What happened, for people: `GET /healthz: expected 200, got 503`.
    pub reason: String,
}

/// What came back, up to the body size limit.
struct Answer {
    status: u16,
    body: Bytes,
    truncated: bool,
}

/// Why no answer came back.
enum NoAnswer {
    /// The request could not be built from the spec.
    Invalid(String),
    /// Connecting, sending or receiving failed.
    Transport(String),
    /// Nothing complete within the timeout.
    Timeout(Duration),
}

/// Sends `check`'s request to `target` and judges the answer; never fails, every problem is a failed outcome.
pub(crate) async fn run(
    client: &HttpClient,
    check: &SmokeCheck,
    target: &Target,
    options: &CheckOptions,
) -> SmokeOutcome {
    let name = describe(&check.request());
    let outcome = |passed, status, reason: String| SmokeOutcome {
        request: name.clone(),
        passed,
        status,
        reason: format!("{name}: {reason}"),
    };
    let answer = match exchange(client, check, target, options).await {
        Ok(answer) => answer,
        Err(NoAnswer::Invalid(why)) => return outcome(false, None, format!("cannot be sent: {why}")),
        Err(NoAnswer::Transport(why)) => return outcome(false, None, why),
        Err(NoAnswer::Timeout(timeout)) => {
            return outcome(false, None, format!("no answer within {}", seconds(timeout)));
        }
    };
    let status = Some(answer.status);
    if answer.status != check.expect_status {
        let reason = format!(
            "expected {}, got {}{}",
            check.expect_status,
            answer.status,
            excerpt(&answer.body)
        );
        return outcome(false, status, reason);
    }
    match &check.expect_body {
        Some(text) if !String::from_utf8_lossy(&answer.body).contains(text.as_str()) => {
            let scope = if answer.truncated {
                format!("the first {} bytes of the body", options.max_body_bytes)
            } else {
                "body".to_owned()
            };
            outcome(false, status, format!("{scope} does not contain {text:?}"))
        }
        Some(text) => outcome(true, status, format!("{} with {text:?} in the body", answer.status)),
        None => outcome(true, status, format!("{} as expected", answer.status)),
    }
}

async fn exchange(
    client: &HttpClient,
    check: &SmokeCheck,
    target: &Target,
    options: &CheckOptions,
) -> Result<Answer, NoAnswer> {
    let request = template(&check.request(), target)
        .map_err(|error| NoAnswer::Invalid(error.to_string()))?
        .to_request(target.addr())
        .map_err(|error| NoAnswer::Invalid(error.to_string()))?;
    let receive = async {
        let response = client.request(request).await.map_err(|error| transport(&error))?;
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let mut received = BytesMut::new();
        // Reading stops at the limit: a candidate streaming without end must not hold the check or fill memory.
        while received.len() < options.max_body_bytes {
            let Some(frame) = body.frame().await else {
                return Ok(Answer {
                    status,
                    body: received.freeze(),
                    truncated: false,
                });
            };
            if let Some(data) = frame.map_err(|error| transport(&error))?.data_ref() {
                received.extend_from_slice(data);
            }
        }
        received.truncate(options.max_body_bytes);
        Ok(Answer {
            status,
            body: received.freeze(),
            truncated: true,
        })
    };
    tokio::time::timeout(options.request_timeout, receive)
        .await
        .unwrap_or(Err(NoAnswer::Timeout(options.request_timeout)))
}

/// The plain words for the usual network failures, the error chain for the rest.
fn transport(error: &(dyn Error + 'static)) -> NoAnswer {
    let mut chain = Vec::new();
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(io_error) = error.downcast_ref::<io::Error>() {
            match io_error.kind() {
                io::ErrorKind::ConnectionRefused => return NoAnswer::Transport("connection refused".to_owned()),
                io::ErrorKind::ConnectionReset => return NoAnswer::Transport("connection reset".to_owned()),
                io::ErrorKind::TimedOut => return NoAnswer::Transport("connection timed out".to_owned()),
                _ => {}
            }
        }
        let text = error.to_string();
        // Wrappers often repeat their source's message; once is enough.
        if chain.last() != Some(&text) {
            chain.push(text);
        }
        current = error.source();
    }
    NoAnswer::Transport(chain.join(": "))
}

/// A short quote of an unexpected answer's body, which often says why (`database unreachable`).
fn excerpt(body: &[u8]) -> String {
    const LONGEST: usize = 80;
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return String::new();
    }
    let mut quoted: String = text.chars().take(LONGEST).collect();
    if quoted.len() < text.len() {
        quoted.push('…');
    }
    format!(" ({quoted:?})")
}

/// `10s`, `1.5s`, `250ms`.
pub(crate) fn seconds(duration: Duration) -> String {
    if duration < Duration::from_secs(1) {
        format!("{}ms", duration.as_millis())
    } else {
        format!("{}s", duration.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_short_and_quoted() {
        assert_eq!(excerpt(b""), "");
        assert_eq!(excerpt(b" db down\n"), " (\"db down\")");
        let long = excerpt("x".repeat(200).as_bytes());
        assert_eq!(long.chars().filter(|c| *c == 'x').count(), 80);
        assert!(long.ends_with("…\")"), "{long}");
    }

    #[test]
    fn timeouts_read_as_people_write_them() {
        assert_eq!(seconds(Duration::from_secs(10)), "10s");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5s");
        assert_eq!(seconds(Duration::from_millis(250)), "250ms");
    }
}

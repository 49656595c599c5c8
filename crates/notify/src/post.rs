//! One JSON POST with a per-attempt timeout, bounded retries and a short backoff, shared by webhook calls and
//! notifications, and what happened in words a person reads in `sluice status` or a log line.
//!
//! Descriptions never contain the URL: notification URLs carry their credentials, and reqwest's own error
//! messages name the URL, so only the innermost cause of a transport error is kept.

use std::error::Error as _;
use std::io;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, USER_AGENT};
use tokio::time::Instant;

use crate::secret::Secret;
use crate::signature::{SIGNATURE_HEADER, sign};

/// How much of a failed answer's body is quoted in its description.
const QUOTED_BODY_BYTES: usize = 200;
/// The longest pause between two attempts, however many there were.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A POST to make.
pub(crate) struct Post<'a> {
    pub url: &'a str,
    pub body: Bytes,
    /// The limit of each attempt, from sending to the end of the answer's body.
    pub timeout: Duration,
    /// Attempts in all, at least one.
    pub attempts: u32,
    /// The pause after the first failed attempt; it doubles after each further one.
    pub backoff: Duration,
    pub signing: Option<Signing<'a>>,
}

/// Signs every attempt at its own time, so a late retry is not refused as a replay.
pub(crate) struct Signing<'a> {
    pub key: &'a Secret,
    /// The caller's wall clock when the first attempt starts, in unix seconds.
    pub start_unix: i64,
}

/// What the POST came to.
#[derive(Debug)]
pub(crate) struct Posted {
    /// The last attempt got a 2xx answer.
    pub passed: bool,
    /// The last attempt's status, when it got an answer.
    pub status: Option<u16>,
    pub attempts: u32,
    pub detail: String,
}

/// Makes the POST, retrying every failure (non-2xx or no answer) until `attempts` are used up.
pub(crate) async fn post(client: &reqwest::Client, post: Post<'_>) -> Posted {
    let started = Instant::now();
    let attempts = post.attempts.max(1);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut request = client
            .post(post.url)
            .timeout(post.timeout)
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, concat!("sluice/", env!("CARGO_PKG_VERSION")))
            .body(post.body.clone());
        if let Some(signing) = &post.signing {
            let elapsed = i64::try_from(started.elapsed().as_secs()).unwrap_or(i64::MAX);
            let t = signing.start_unix.saturating_add(elapsed);
            request = request.header(SIGNATURE_HEADER, sign(signing.key.expose().as_bytes(), t, &post.body));
        }
        let (status, failure) = match request.send().await {
            Ok(response) if response.status().is_success() => {
                let status = response.status().as_u16();
                return Posted {
                    passed: true,
                    status: Some(status),
                    attempts: attempt,
                    detail: format!("{status} after {}", count(attempt)),
                };
            }
            Ok(response) => {
                let status = response.status().as_u16();
                let quoted = quote_body(response).await;
                let mut detail = format!("{status} after {}", count(attempt));
                if !quoted.is_empty() {
                    detail.push_str(": ");
                    detail.push_str(&quoted);
                }
                (Some(status), detail)
            }
            Err(error) => {
                let mut detail = describe(&error, post.timeout);
                if attempt > 1 {
                    detail.push_str(&format!(" ({})", count(attempt)));
                }
                (None, detail)
            }
        };
        if attempt >= attempts {
            return Posted {
                passed: false,
                status,
                attempts: attempt,
                detail: failure,
            };
        }
        tokio::time::sleep(backoff(post.backoff, attempt)).await;
    }
}

fn count(attempts: u32) -> String {
    if attempts == 1 {
        "1 attempt".to_owned()
    } else {
        format!("{attempts} attempts")
    }
}

/// The pause after failed attempt number `attempt` (1-based): `base`, then doubling, at most [`MAX_BACKOFF`].
fn backoff(base: Duration, attempt: u32) -> Duration {
    let factor = 1u32 << attempt.saturating_sub(1).min(8);
    base.saturating_mul(factor).min(MAX_BACKOFF)
}

/// The start of a failed answer's body on one line: receivers often explain themselves there.
async fn quote_body(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < QUOTED_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            // A body cut short still tells what it managed to.
            Ok(None) | Err(_) => break,
        }
    }
    bytes.truncate(QUOTED_BODY_BYTES);
    String::from_utf8_lossy(&bytes)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// A transport failure in a few words, without the URL.
fn describe(error: &reqwest::Error, timeout: Duration) -> String {
    if error.is_timeout() {
        return format!("timed out after {}", sluice_spec::Duration(timeout));
    }
    let mut innermost = None;
    let mut cause = error.source();
    while let Some(next) = cause {
        if let Some(io) = next.downcast_ref::<io::Error>() {
            match io.kind() {
                io::ErrorKind::ConnectionRefused => return "connection refused".to_owned(),
                io::ErrorKind::ConnectionReset => return "connection reset".to_owned(),
                io::ErrorKind::ConnectionAborted => return "connection aborted".to_owned(),
                io::ErrorKind::TimedOut => return format!("timed out after {}", sluice_spec::Duration(timeout)),
                _ => {}
            }
        }
        innermost = Some(next);
        cause = next.source();
    }
    let kind = if error.is_connect() {
        "could not connect"
    } else if error.is_builder() {
        "invalid request"
    } else if error.is_body() || error.is_decode() {
        "the answer could not be read"
    } else {
        "request failed"
    };
    // reqwest's own message names the URL, so only its causes are quoted.
    match innermost {
        Some(cause) => format!("{kind}: {cause}"),
        None => kind.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        let base = Duration::from_millis(200);
        let pauses: Vec<_> = (1..=7).map(|attempt| backoff(base, attempt).as_millis()).collect();
        assert_eq!(pauses, [200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(backoff(base, u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn attempts_are_counted_in_words() {
        assert_eq!(count(1), "1 attempt");
        assert_eq!(count(3), "3 attempts");
    }
}

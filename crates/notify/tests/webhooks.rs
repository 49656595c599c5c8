//! Webhook calls against a real receiver: signatures the receiver can check, retries, timeouts, failures.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};
use sluice_notify::{HookOutcome, SIGNATURE_HEADER, SignatureError, WebhookClient, WebhookPayload, verify};
use sluice_spec::{SecretRef, Webhook, WebhookKind};

use crate::server::{Answer, Receiver, closed_port_url};

const NOW: i64 = 1_700_000_000;
const KEY: &str = "s3cret-hook-key";
const WAIT: Duration = Duration::from_secs(2);

pub fn hook(url: &str, kind: WebhookKind, timeout: Duration, retries: u32) -> Webhook {
    Webhook {
        name: "load-test".to_owned(),
        kind,
        url: url.to_owned(),
        timeout: sluice_spec::Duration(timeout),
        retries,
        metadata: BTreeMap::from([("cmd".to_owned(), "hey -z 1m http://web/".to_owned())]),
        secret_from: None,
    }
}

/// A hook signed with [`KEY`], read from a file in `dir`.
pub fn signed_hook(dir: &Path, url: &str, kind: WebhookKind) -> Webhook {
    let path = dir.join("hook-key");
    std::fs::write(&path, format!("{KEY}\n")).expect("write the key");
    Webhook {
        secret_from: Some(SecretRef {
            env: None,
            file: Some(path),
        }),
        ..hook(url, kind, Duration::from_secs(2), 0)
    }
}

pub fn payload(hook: &Webhook) -> WebhookPayload {
    WebhookPayload::for_hook(hook, "web", "web-2", "Progressing", "9f2c1e")
}

fn client() -> WebhookClient {
    WebhookClient::new()
        .expect("client")
        .with_backoff(Duration::from_millis(10))
}

/// HMAC-SHA256 written out from RFC 2104, so the check does not share code with the crate's signing.
fn independent_hmac_hex(key: &[u8], message: &[u8]) -> String {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let inner_pad: Vec<u8> = block.iter().map(|byte| byte ^ 0x36).collect();
    let outer_pad: Vec<u8> = block.iter().map(|byte| byte ^ 0x5c).collect();
    let inner = Sha256::new().chain_update(&inner_pad).chain_update(message).finalize();
    let outer = Sha256::new().chain_update(&outer_pad).chain_update(inner).finalize();
    hex::encode(outer)
}

#[tokio::test]
async fn a_signed_call_is_checked_by_the_receiver_and_a_replay_is_refused() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut receiver = Receiver::ok().await;
    let hook = signed_hook(dir.path(), &receiver.url, WebhookKind::PreRollout);

    let outcome = client().call(&hook, &payload(&hook), NOW).await;
    assert_eq!(
        outcome,
        HookOutcome {
            hook: "load-test".to_owned(),
            kind: WebhookKind::PreRollout,
            passed: true,
            status: Some(200),
            attempts: 1,
            detail: "200 after 1 attempt".to_owned(),
        }
    );

    let request = receiver.next(WAIT).await.expect("the receiver got the call");
    assert_eq!(request.header("content-type"), Some("application/json"));
    let received: WebhookPayload = request.json();
    assert_eq!(received, payload(&hook));

    let header = request.header(SIGNATURE_HEADER).expect("signed");
    assert_eq!(verify(header, &request.body, KEY.as_bytes(), NOW + 1, 300), Ok(()));

    let (t, v1) = header
        .split_once(',')
        .and_then(|(t, v1)| Some((t.strip_prefix("t=")?, v1.strip_prefix("v1=")?)))
        .expect("t=<seconds>,v1=<hex>");
    assert_eq!(t, NOW.to_string());
    let signed = [t.as_bytes(), b".", &request.body].concat();
    assert_eq!(v1, independent_hmac_hex(KEY.as_bytes(), &signed));

    // The same request played again ten minutes later.
    assert!(matches!(
        verify(header, &request.body, KEY.as_bytes(), NOW + 600, 300),
        Err(SignatureError::OutsideTolerance { distance: 600, .. })
    ));
}

#[tokio::test]
async fn an_unsigned_hook_sends_no_signature() {
    let mut receiver = Receiver::ok().await;
    let hook = hook(&receiver.url, WebhookKind::Rollout, Duration::from_secs(2), 0);
    assert!(client().call(&hook, &payload(&hook), NOW).await.passed);
    let request = receiver.next(WAIT).await.expect("called");
    assert_eq!(request.header(SIGNATURE_HEADER), None);
}

#[tokio::test]
async fn a_500_then_a_200_passes_on_the_second_attempt() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut receiver = Receiver::start([Answer::Status(500, "busy"), Answer::Status(200, "ok")]).await;
    let hook = Webhook {
        retries: 2,
        ..signed_hook(dir.path(), &receiver.url, WebhookKind::ConfirmPromotion)
    };

    let outcome = client().call(&hook, &payload(&hook), NOW).await;
    assert!(outcome.passed, "{outcome:?}");
    assert_eq!((outcome.status, outcome.attempts), (Some(200), 2));
    assert_eq!(outcome.detail, "200 after 2 attempts");

    let requests = [
        receiver.next(WAIT).await.expect("first"),
        receiver.next(WAIT).await.expect("second"),
    ];
    for request in &requests {
        let header = request.header(SIGNATURE_HEADER).expect("every attempt is signed");
        assert_eq!(verify(header, &request.body, KEY.as_bytes(), NOW, 300), Ok(()));
    }
}

#[tokio::test]
async fn a_non_2xx_answer_fails_with_its_status_and_the_start_of_its_body() {
    let mut receiver = Receiver::start([Answer::Status(503, "maintenance\n  until 10:00")]).await;
    let hook = hook(&receiver.url, WebhookKind::Rollout, Duration::from_secs(2), 2);

    let outcome = client().call(&hook, &payload(&hook), NOW).await;
    assert!(!outcome.passed);
    assert_eq!((outcome.status, outcome.attempts), (Some(503), 3));
    assert_eq!(outcome.detail, "503 after 3 attempts: maintenance until 10:00");
    assert_eq!(receiver.received().len(), 3);
}

#[tokio::test]
async fn a_long_error_body_is_quoted_up_to_200_bytes() {
    const LONG: &str = concat!(
        "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789",
        "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789",
        "this part is not quoted"
    );
    let receiver = Receiver::start([Answer::Status(400, LONG)]).await;
    let hook = hook(&receiver.url, WebhookKind::Rollout, Duration::from_secs(2), 0);
    let outcome = client().call(&hook, &payload(&hook), NOW).await;
    assert_eq!(outcome.detail, format!("400 after 1 attempt: {}", &LONG[..200]));
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let receiver = Receiver::start([Answer::Status(307, "")]).await;
    let hook = hook(&receiver.url, WebhookKind::ConfirmRollout, Duration::from_secs(2), 0);
    let outcome = client().call(&hook, &payload(&hook), NOW).await;
    assert!(!outcome.passed);
    assert_eq!(outcome.detail, "307 after 1 attempt");
}

#[tokio::test(start_paused = true)]
async fn a_hook_that_does_not_answer_times_out() {
    let receiver = Receiver::hanging().await;
    let hook = hook(&receiver.url, WebhookKind::Rollback, Duration::from_secs(5), 0);
    let outcome = client().call(&hook, &payload(&hook), NOW).await;
    assert!(!outcome.passed);
    assert_eq!((outcome.status, outcome.attempts), (None, 1));
    assert_eq!(outcome.detail, "timed out after 5s");

    let hook = Webhook { retries: 1, ..hook };
    let outcome = client().call(&hook, &payload(&hook), NOW).await;
    assert_eq!(outcome.detail, "timed out after 5s (2 attempts)");
}

#[tokio::test]
async fn a_closed_port_is_a_refused_connection() {
    let hook = hook(&closed_port_url(), WebhookKind::PreRollout, Duration::from_secs(2), 2);
    let outcome = client().call(&hook, &payload(&hook), NOW).await;
    assert!(!outcome.passed);
    assert_eq!((outcome.status, outcome.attempts), (None, 3));
    assert_eq!(outcome.detail, "connection refused (3 attempts)");
}

#[tokio::test]
async fn a_secret_that_cannot_be_read_fails_the_call_without_sending_it() {
    let mut receiver = Receiver::ok().await;
    let hook = Webhook {
        secret_from: Some(SecretRef {
            env: Some("SLUICE_NOTIFY_TEST_NEVER_SET".to_owned()),
            file: None,
        }),
        ..hook(&receiver.url, WebhookKind::ConfirmRollout, Duration::from_secs(2), 2)
    };
    let outcome = client().call(&hook, &payload(&hook), NOW).await;
    assert!(!outcome.passed);
    assert_eq!((outcome.status, outcome.attempts), (None, 0));
    assert_eq!(outcome.detail, "secret env SLUICE_NOTIFY_TEST_NEVER_SET is not set");
    assert!(
        receiver.next(Duration::from_millis(200)).await.is_none(),
        "no unsigned call"
    );
}

/// Slack, Teams and Discord URLs are `https://`: the call must open a TLS session, not refuse the scheme.
#[tokio::test]
async fn an_https_endpoint_is_reached_over_tls() {
    use tokio::io::AsyncReadExt;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}/hook", listener.local_addr().unwrap());
    let first_byte = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).await.map(|_| byte[0])
    });
    let client = WebhookClient::new().unwrap();
    let outcome = client
        .call(
            &hook(&url, WebhookKind::Event, Duration::from_secs(2), 0),
            &payload(&hook(&url, WebhookKind::Event, Duration::from_secs(2), 0)),
            NOW,
        )
        .await;
    // 0x16 opens a TLS handshake record (the ClientHello); the listener answers nothing, so the call fails.
    assert_eq!(first_byte.await.unwrap().unwrap(), 0x16);
    assert!(!outcome.passed);
    assert!(!outcome.detail.contains("scheme"), "{}", outcome.detail);
}

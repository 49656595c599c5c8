//! Upgrade pass-through (WebSocket and any other `Upgrade` protocol over HTTP/1.1).
//!
//! The client's `Upgrade` request is forwarded with its `Upgrade` header and `Connection: upgrade`; when the
//! instance answers `101 Switching Protocols`, both connections are taken over from HTTP and bytes are copied
//! both ways until either side closes. The `101` counts as a `1xx` answer of the revision, and the
//! revision's `upgrades` counter grows by one.

use http::header::{self, HeaderMap};
use http::{Request, Response, Version};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::routes::UpstreamProtocol;

/// The client side of a requested upgrade, when the request asks for one the proxy can pass through.
pub(crate) fn requested(request: &mut Request<Incoming>, protocol: UpstreamProtocol) -> Option<OnUpgrade> {
    // Upgrades are an HTTP/1.1 mechanism, towards the instance too.
    if request.version() != Version::HTTP_11 || protocol != UpstreamProtocol::Http1 {
        return None;
    }
    if !request.headers().contains_key(header::UPGRADE) || !connection_has_upgrade(request.headers()) {
        return None;
    }
    Some(hyper::upgrade::on(request))
}

fn connection_has_upgrade(headers: &HeaderMap) -> bool {
    headers.get_all(header::CONNECTION).iter().any(|value| {
        value
            .as_bytes()
            .split(|b| *b == b',')
            .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"upgrade"))
    })
}

/// Once both sides have switched protocols, copies bytes between them until either closes.
pub(crate) fn tunnel(client: OnUpgrade, upstream: &mut Response<Incoming>) {
    let upstream = hyper::upgrade::on(upstream);
    tokio::spawn(async move {
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(both) => both,
            Err(error) => {
                tracing::debug!(%error, "upgrade failed");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            tracing::debug!(%error, "upgraded connection ended with an error");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn connection_tokens_are_matched_case_insensitively() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, Upgrade"));
        assert!(connection_has_upgrade(&headers));
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade-insecure"));
        assert!(!connection_has_upgrade(&headers));
    }
}

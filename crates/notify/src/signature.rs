//! The `X-Sluice-Signature` header: `t=<unix seconds>,v1=<lowercase hex HMAC-SHA256 of "<t>.<body>">`.
//!
//! The timestamp is inside the MAC, so a receiver that checks both the MAC and the timestamp's distance from its
//! own clock refuses a recorded call replayed later. The scheme is Stripe's: unknown `key=value` items are
//! ignored and several `v1` values may be present (one per key while a key is rotated); one match is enough.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use thiserror::Error;

/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "X-Sluice-Signature";

type HmacSha256 = Hmac<Sha256>;

/// Why a signature was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum SignatureError {
    /// The header is not `t=<unix seconds>,v1=<hex>`; the text says what is wrong.
    #[error("malformed signature header: {0}")]
    Malformed(&'static str),
    /// No `v1` value is the MAC of this body and timestamp under this key.
    #[error("signature does not match the body")]
    Mismatch,
    /// The MAC is right but the timestamp is too far from now: a replay, or clocks far apart.
    #[error("signature time {timestamp} is {distance}s from now ({now}), more than the {tolerance}s allowed")]
    OutsideTolerance {
        /// The signed timestamp, unix seconds.
        timestamp: i64,
        /// The receiver's time, unix seconds.
        now: i64,
        /// Seconds between the two.
        distance: u64,
        /// The largest distance accepted, in seconds.
        tolerance: u64,
    },
}

/// The header value for a call made at `unix_seconds` with this body.
pub fn sign(key: &[u8], unix_seconds: i64, body: &[u8]) -> String {
    let digest = mac(key, unix_seconds, body).finalize().into_bytes();
    format!("t={unix_seconds},v1={}", hex::encode(digest))
}

/// Checks a header against the body received: the MAC (compared in constant time), then that the timestamp is
/// within `tolerance_secs` of `now_unix` in either direction.
pub fn verify(header: &str, body: &[u8], key: &[u8], now_unix: i64, tolerance_secs: u64) -> Result<(), SignatureError> {
    let parsed = parse(header)?;
    let matches = parsed
        .signatures
        .iter()
        .any(|signature| mac(key, parsed.timestamp, body).verify_slice(signature).is_ok());
    if !matches {
        return Err(SignatureError::Mismatch);
    }
    let distance = now_unix.abs_diff(parsed.timestamp);
    if distance > tolerance_secs {
        return Err(SignatureError::OutsideTolerance {
            timestamp: parsed.timestamp,
            now: now_unix,
            distance,
            tolerance: tolerance_secs,
        });
    }
    Ok(())
}

struct Parsed {
    timestamp: i64,
    signatures: Vec<Vec<u8>>,
}

fn parse(header: &str) -> Result<Parsed, SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for item in header.split(',') {
        let (key, value) = item
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed("expected comma-separated key=value items"))?;
        match key {
            "t" => {
                if timestamp.is_some() {
                    return Err(SignatureError::Malformed("more than one t="));
                }
                let t = value
                    .parse::<i64>()
                    .map_err(|_| SignatureError::Malformed("t= is not a whole number of unix seconds"))?;
                timestamp = Some(t);
            }
            "v1" => {
                let signature = hex::decode(value).map_err(|_| SignatureError::Malformed("v1= is not hexadecimal"))?;
                signatures.push(signature);
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed("no t=<unix seconds>"))?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed("no v1=<hex HMAC-SHA256>"));
    }
    Ok(Parsed { timestamp, signatures })
}

fn mac(key: &[u8], unix_seconds: i64, body: &[u8]) -> HmacSha256 {
    // HMAC hashes or pads a key of any length, so this never fails.
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(unix_seconds.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"hook-key";
    const BODY: &[u8] = br#"{"service":"web"}"#;
    const T: i64 = 1_700_000_000;

    #[test]
    fn a_signed_body_verifies_within_the_tolerance_either_side() {
        let header = sign(KEY, T, BODY);
        assert!(header.starts_with("t=1700000000,v1="), "{header}");
        assert_eq!(verify(&header, BODY, KEY, T, 300), Ok(()));
        assert_eq!(verify(&header, BODY, KEY, T + 300, 300), Ok(()));
        assert_eq!(verify(&header, BODY, KEY, T - 300, 300), Ok(()));
    }

    #[test]
    fn a_changed_body_key_or_timestamp_is_a_mismatch() {
        let header = sign(KEY, T, BODY);
        assert_eq!(verify(&header, b"{}", KEY, T, 300), Err(SignatureError::Mismatch));
        assert_eq!(verify(&header, BODY, b"other", T, 300), Err(SignatureError::Mismatch));
        // Moving the timestamp forward to pass the replay check breaks the MAC.
        let moved = header.replacen("t=1700000000", "t=1700000600", 1);
        assert_eq!(verify(&moved, BODY, KEY, T + 600, 300), Err(SignatureError::Mismatch));
    }

    #[test]
    fn an_old_or_future_timestamp_is_refused() {
        let header = sign(KEY, T, BODY);
        let error = verify(&header, BODY, KEY, T + 301, 300).expect_err("replayed");
        assert_eq!(
            error.to_string(),
            "signature time 1700000000 is 301s from now (1700000301), more than the 300s allowed"
        );
        assert!(matches!(
            verify(&header, BODY, KEY, T - 301, 300),
            Err(SignatureError::OutsideTolerance { distance: 301, .. })
        ));
    }

    #[test]
    fn one_matching_signature_among_several_is_enough() {
        let good = sign(KEY, T, BODY);
        let old_key = sign(b"old", T, BODY);
        let old_v1 = old_key.split_once(",v1=").map(|(_, v)| v).expect("v1");
        let header = format!("{good},v1={old_v1},v0=ignored");
        assert_eq!(verify(&header, BODY, KEY, T, 300), Ok(()));
        assert_eq!(verify(&header, BODY, b"old", T, 300), Ok(()));
    }

    #[test]
    fn malformed_headers_say_what_is_wrong() {
        let cases = [
            ("", "expected comma-separated key=value items"),
            ("v1=00", "no t=<unix seconds>"),
            ("t=1700000000", "no v1=<hex HMAC-SHA256>"),
            ("t=soon,v1=00", "t= is not a whole number of unix seconds"),
            ("t=1,t=2,v1=00", "more than one t="),
            ("t=1,v1=xyz", "v1= is not hexadecimal"),
        ];
        for (header, reason) in cases {
            assert_eq!(
                verify(header, BODY, KEY, T, 300),
                Err(SignatureError::Malformed(reason)),
                "{header:?}"
            );
        }
    }
}

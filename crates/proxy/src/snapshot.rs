//! The JSON document served on `GET /snapshot`, shared with the daemon that deserializes it.
//!
//! Every counter is cumulative since the proxy process started and never resets while it lives,
//! so a reader diffs two consecutive snapshots to get the counts of the window between them.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{DeserializeError, Deserializer};
use serde::{Deserialize, Serialize};

/// Upper bounds, in milliseconds, of the latency buckets of the snapshot and of `/metrics` (where they are in seconds).
pub const LATENCY_BOUNDS_MS: [f64; 19] = [
    0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 150.0, 200.0, 300.0, 400.0, 500.0, 750.0, 1000.0, 2500.0,
    5000.0, 10000.0,
];

/// Everything the proxy measured, at one instant.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// Wall-clock time of the snapshot, milliseconds since the Unix epoch.
    pub taken_at_unix_ms: u64,
    /// Version of the route table in effect.
    pub routes_version: u64,
    /// Every revision in the table or that received requests since the proxy started, sorted by service then revision.
    pub revisions: Vec<RevisionSnapshot>,
    /// Passive health of every instance address in the table, sorted by address.
    #[serde(default)]
    pub instances: Vec<InstanceSnapshot>,
}

/// Passive health of one instance address.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct InstanceSnapshot {
    /// The instance's address.
    pub address: SocketAddr,
    /// Whether it is ejected now (it refused a connection recently and gets no new requests).
    pub ejected: bool,
    /// Connections to it that failed, since the proxy started.
    pub connect_failures: u64,
    /// Times it was ejected, since the proxy started.
    pub ejections: u64,
}

/// The cumulative measurements of one revision of one service.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RevisionSnapshot {
    /// Service name.
    pub service: String,
    /// Revision name.
    pub revision: String,
    /// Responses by status class; the proxy's own 502s for unreachable instances count as 5xx.
    pub requests: StatusClassCounts,
    /// Latency histogram with *cumulative* counts (Prometheus `le` semantics): one bucket per
    /// [`LATENCY_BOUNDS_MS`] bound, then `+Inf`, whose count equals the number of requests.
    pub latency_buckets_ms: Vec<LatencyBucket>,
    /// Sum of all latencies in milliseconds.
    pub latency_sum_ms: f64,
    /// Base64 (standard alphabet, padded) of the HdrHistogram V2 deflate serialization of every
    /// latency in microseconds; decode with [`RevisionSnapshot::decode_hdr`].
    pub hdr: String,
    /// Requests received and not yet answered in full (a drained revision reads 0).
    #[serde(default)]
    pub in_flight: i64,
    /// Request body bytes received from clients.
    #[serde(default)]
    pub bytes_received: u64,
    /// Response body bytes sent to clients.
    #[serde(default)]
    pub bytes_sent: u64,
    /// gRPC answers by `grpc-status` code (from the trailers, or the headers of a trailers-only answer);
    /// codes never seen are absent. These answers are also in `requests`, by the class of their code.
    #[serde(default)]
    pub grpc_status: BTreeMap<String, u64>,
    /// Connections to an instance that failed (refused, reset or timed out) while the request was then sent
    /// to another instance of the revision: not in `requests`, since the revision's code never saw them.
    #[serde(default)]
    pub connect_failures: u64,
    /// Connections upgraded (WebSocket) and tunnelled; their `101` answers count as `1xx` in `requests`.
    #[serde(default)]
    pub upgrades: u64,
    /// The same measurements split by route: `default` for the weighted split, a `match` rule's name for
    /// the requests it sent. The fields above are their sums.
    #[serde(default)]
    pub routes: Vec<RouteSnapshot>,
    /// Mirrored copies sent to this revision, never part of the fields above.
    #[serde(default)]
    pub mirror: MirrorSnapshot,
}

/// One route's share of a revision's measurements; the fields mean what they mean in [`RevisionSnapshot`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RouteSnapshot {
    /// `default` (the weighted split) or the `match` rule's name.
    pub route: String,
    /// Responses by status class.
    pub requests: StatusClassCounts,
    /// Cumulative latency histogram.
    pub latency_buckets_ms: Vec<LatencyBucket>,
    /// Sum of latencies in milliseconds.
    pub latency_sum_ms: f64,
    /// HDR histogram, as in [`RevisionSnapshot::hdr`].
    pub hdr: String,
    /// Requests in flight.
    pub in_flight: i64,
    /// Request body bytes received.
    pub bytes_received: u64,
    /// Response body bytes sent.
    pub bytes_sent: u64,
    /// gRPC answers by code.
    pub grpc_status: BTreeMap<String, u64>,
}

/// Mirrored copies of users' requests sent to one revision; their answers were dropped.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct MirrorSnapshot {
    /// Answers to copies by status class (a copy that got no answer counts as 5xx).
    pub requests: StatusClassCounts,
    /// Cumulative latency histogram of the copies.
    pub latency_buckets_ms: Vec<LatencyBucket>,
    /// Sum of the copies' latencies in milliseconds.
    pub latency_sum_ms: f64,
    /// HDR histogram of the copies' latencies, as in [`RevisionSnapshot::hdr`].
    pub hdr: String,
    /// Copies in flight.
    pub in_flight: i64,
    /// Copies not sent because `maxInFlight` copies were already in flight.
    pub dropped: u64,
    /// Copies not sent because the request's body was larger than `maxBodyBytes` or of unknown length.
    pub skipped: u64,
}

/// Response counts by status class (1xx..5xx).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct StatusClassCounts {
    /// 1xx responses.
    #[serde(rename = "1xx")]
    pub informational: u64,
    /// 2xx responses.
    #[serde(rename = "2xx")]
    pub success: u64,
    /// 3xx responses.
    #[serde(rename = "3xx")]
    pub redirection: u64,
    /// 4xx responses.
    #[serde(rename = "4xx")]
    pub client_error: u64,
    /// 5xx responses.
    #[serde(rename = "5xx")]
    pub server_error: u64,
}

impl StatusClassCounts {
    /// Number of responses of every class.
    pub fn total(&self) -> u64 {
        self.informational + self.success + self.redirection + self.client_error + self.server_error
    }
}

/// One histogram bucket: how many latencies were at most `le` milliseconds.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct LatencyBucket {
    /// Upper bound in milliseconds; `f64::INFINITY` for the last bucket, written `"+Inf"` in JSON
    /// because JSON numbers cannot be infinite.
    #[serde(with = "upper_bound")]
    pub le: f64,
    /// Cumulative count of latencies at most `le`.
    pub count: u64,
}

/// Why a snapshot's `hdr` field could not be turned back into a histogram.
#[derive(Debug, thiserror::Error)]
pub enum HdrDecodeError {
    /// The field is not valid base64.
    #[error("hdr of {service}/{revision} is not valid base64: {source}")]
    Base64 {
        /// Service of the revision.
        service: String,
        /// The revision.
        revision: String,
        /// The decoder's complaint.
        source: base64::DecodeError,
    },
    /// The bytes are not an HdrHistogram serialization.
    #[error("hdr of {service}/{revision} is not an HdrHistogram V2 serialization: {source}")]
    Histogram {
        /// Service of the revision.
        service: String,
        /// The revision.
        revision: String,
        /// The deserializer's complaint.
        source: DeserializeError,
    },
}

impl RevisionSnapshot {
    /// The exact latency distribution (microseconds) since the proxy started; subtract an earlier
    /// snapshot's histogram to get a window's quantiles.
    pub fn decode_hdr(&self) -> Result<Histogram<u64>, HdrDecodeError> {
        let bytes = STANDARD.decode(&self.hdr).map_err(|source| HdrDecodeError::Base64 {
            service: self.service.clone(),
            revision: self.revision.clone(),
            source,
        })?;
        Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|source| HdrDecodeError::Histogram {
                service: self.service.clone(),
                revision: self.revision.clone(),
                source,
            })
    }
}

mod upper_bound {
    //! `+Inf` as a string, every finite bound as a number.

    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    const INFINITY: &str = "+Inf";

    pub(super) fn serialize<S: Serializer>(bound: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        if bound.is_infinite() && bound.is_sign_positive() {
            serializer.serialize_str(INFINITY)
        } else {
            serializer.serialize_f64(*bound)
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Bound {
        Finite(f64),
        Named(String),
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        match Bound::deserialize(deserializer)? {
            Bound::Finite(bound) => Ok(bound),
            Bound::Named(name) if name == INFINITY => Ok(f64::INFINITY),
            Bound::Named(name) => Err(D::Error::custom(format!(
                "bucket bound must be a number or \"{INFINITY}\", got {name:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infinite_bound_round_trips_as_plus_inf() {
        let buckets = vec![
            LatencyBucket { le: 0.5, count: 1 },
            LatencyBucket {
                le: f64::INFINITY,
                count: 2,
            },
        ];
        let json = serde_json::to_string(&buckets).expect("serializes");
        assert_eq!(json, r#"[{"le":0.5,"count":1},{"le":"+Inf","count":2}]"#);
        let back: Vec<LatencyBucket> = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, buckets);
    }

    #[test]
    fn snapshots_without_the_newer_fields_still_parse() {
        let json = r#"{"takenAtUnixMs": 1, "routesVersion": 2, "revisions": [{"service": "web", "revision": "v1",
            "requests": {"1xx": 0, "2xx": 1, "3xx": 0, "4xx": 0, "5xx": 0},
            "latencyBucketsMs": [{"le": "+Inf", "count": 1}], "latencySumMs": 0.5, "hdr": ""}]}"#;
        let snapshot: Snapshot = serde_json::from_str(json).expect("an older snapshot parses");
        assert_eq!(snapshot.revisions[0].routes, Vec::new());
        assert_eq!(snapshot.instances, Vec::new());
    }

    #[test]
    fn other_named_bounds_are_rejected() {
        let error = serde_json::from_str::<LatencyBucket>(r#"{"le":"-Inf","count":0}"#)
            .expect_err("-Inf is not a bucket bound");
        assert!(error.to_string().contains("got \"-Inf\""), "{error}");
    }

    #[test]
    fn status_classes_are_named_like_http() {
        let counts = StatusClassCounts {
            informational: 1,
            success: 2,
            redirection: 3,
            client_error: 4,
            server_error: 5,
        };
        assert_eq!(
            serde_json::to_value(counts).expect("serializes"),
            serde_json::json!({"1xx": 1, "2xx": 2, "3xx": 3, "4xx": 4, "5xx": 5})
        );
        assert_eq!(counts.total(), 15);
    }

    #[test]
    fn corrupt_hdr_names_the_revision() {
        let snapshot = RevisionSnapshot {
            service: "web".into(),
            revision: "v2".into(),
            requests: StatusClassCounts::default(),
            latency_buckets_ms: Vec::new(),
            latency_sum_ms: 0.0,
            hdr: "bm90IGEgaGlzdG9ncmFt".into(),
            in_flight: 0,
            bytes_received: 0,
            bytes_sent: 0,
            grpc_status: BTreeMap::new(),
            connect_failures: 0,
            upgrades: 0,
            routes: Vec::new(),
            mirror: MirrorSnapshot::default(),
        };
        let error = snapshot.decode_hdr().expect_err("not a histogram");
        assert!(
            error.to_string().starts_with("hdr of web/v2 is not an HdrHistogram"),
            "{error}"
        );
    }
}

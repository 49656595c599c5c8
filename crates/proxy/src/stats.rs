//! Per-revision request counts and latencies, recorded on the hot path and read by `/snapshot` and `/metrics`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Serializer as _, V2DeflateSerializeError, V2DeflateSerializer};
use http::StatusCode;

use crate::snapshot::{LATENCY_BOUNDS_MS, LatencyBucket, RevisionSnapshot, StatusClassCounts};

/// Bucket bounds in whole microseconds, so a latency is placed by integer comparison.
const LATENCY_BOUNDS_US: [u64; LATENCY_BOUNDS_MS.len()] = {
    let mut bounds = [0; LATENCY_BOUNDS_MS.len()];
    let mut i = 0;
    while i < bounds.len() {
        bounds[i] = (LATENCY_BOUNDS_MS[i] * 1000.0) as u64;
        i += 1;
    }
    bounds
};

/// One per bound plus `+Inf`.
const BUCKET_COUNT: usize = LATENCY_BOUNDS_MS.len() + 1;

/// Latencies above an hour are recorded as an hour: nothing a canary analysis cares about is that slow.
const HDR_MAX_US: u64 = 3_600_000_000;
const HDR_SIGNIFICANT_DIGITS: u8 = 3;

/// Counts of one revision; `buckets` are per bucket, not cumulative.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) by_class: [u64; 5],
    pub(crate) buckets: [u64; BUCKET_COUNT],
    pub(crate) latency_sum_us: u64,
}

impl Counts {
    pub(crate) fn status_classes(&self) -> StatusClassCounts {
        let [informational, success, redirection, client_error, server_error] = self.by_class;
        StatusClassCounts {
            informational,
            success,
            redirection,
            client_error,
            server_error,
        }
    }
}

/// Counters and histogram live under one lock (taken once per request anyway for the HDR
/// histogram) so every reader sees the same set of requests in the counts, buckets and HDR.
#[derive(Clone)]
struct Recorded {
    counts: Counts,
    hdr: Histogram<u64>,
}

/// Everything measured for one (service, revision).
pub(crate) struct RevisionStats {
    service: String,
    revision: String,
    recorded: Mutex<Recorded>,
}

/// Why a snapshot could not be produced.
#[derive(Debug, thiserror::Error)]
#[error("cannot serialize the latency histogram of {service}/{revision}: {source}")]
pub(crate) struct SnapshotError {
    service: String,
    revision: String,
    source: V2DeflateSerializeError,
}

impl RevisionStats {
    fn new(service: &str, revision: &str) -> Self {
        let hdr = Histogram::new_with_bounds(1, HDR_MAX_US, HDR_SIGNIFICANT_DIGITS)
            .expect("constant histogram bounds are valid");
        Self {
            service: service.to_owned(),
            revision: revision.to_owned(),
            recorded: Mutex::new(Recorded {
                counts: Counts::default(),
                hdr,
            }),
        }
    }

    pub(crate) fn service(&self) -> &str {
        &self.service
    }

    pub(crate) fn revision(&self) -> &str {
        &self.revision
    }

    /// Records one response; statuses outside 100..=599 count in the nearest class.
    pub(crate) fn record(&self, status: StatusCode, latency: Duration) {
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let bucket = LATENCY_BOUNDS_US.partition_point(|bound| *bound < micros);
        let mut recorded = self.lock();
        recorded.counts.by_class[class] += 1;
        recorded.counts.buckets[bucket] += 1;
        recorded.counts.latency_sum_us = recorded.counts.latency_sum_us.saturating_add(micros);
        recorded.hdr.saturating_record(micros);
    }

    pub(crate) fn counts(&self) -> Counts {
        self.lock().counts
    }

    fn total_requests(&self) -> u64 {
        self.lock().counts.by_class.iter().sum()
    }

    pub(crate) fn snapshot(&self) -> Result<RevisionSnapshot, SnapshotError> {
        // Clone under the lock and compress outside it, so requests never wait for deflate.
        let Recorded { counts, hdr } = self.lock().clone();
        let mut serialized = Vec::new();
        V2DeflateSerializer::new()
            .serialize(&hdr, &mut serialized)
            .map_err(|source| SnapshotError {
                service: self.service.clone(),
                revision: self.revision.clone(),
                source,
            })?;
        Ok(RevisionSnapshot {
            service: self.service.clone(),
            revision: self.revision.clone(),
            requests: counts.status_classes(),
            latency_buckets_ms: cumulative_buckets(&counts.buckets),
            latency_sum_ms: counts.latency_sum_us as f64 / 1000.0,
            hdr: STANDARD.encode(serialized),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Recorded> {
        // Recording cannot panic half-way, so a poisoned lock still guards consistent data.
        self.recorded.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn cumulative_buckets(per_bucket: &[u64; BUCKET_COUNT]) -> Vec<LatencyBucket> {
    let bounds = LATENCY_BOUNDS_MS.iter().copied().chain([f64::INFINITY]);
    let mut running = 0;
    bounds
        .zip(per_bucket)
        .map(|(le, count)| {
            running += count;
            LatencyBucket { le, count: running }
        })
        .collect()
}

/// All revisions the proxy measures, keyed by (service, revision).
#[derive(Default)]
pub(crate) struct StatsRegistry {
    revisions: Mutex<BTreeMap<(String, String), Arc<RevisionStats>>>,
}

impl StatsRegistry {
    /// The stats of a revision, created on first use so a re-added revision keeps its history.
    pub(crate) fn revision(&self, service: &str, revision: &str) -> Arc<RevisionStats> {
        let mut revisions = self.lock();
        revisions
            .entry((service.to_owned(), revision.to_owned()))
            .or_insert_with(|| Arc::new(RevisionStats::new(service, revision)))
            .clone()
    }

    /// Forgets revisions that no route table references and that never received a request,
    /// so a long-lived proxy does not accumulate every revision it was ever shown.
    pub(crate) fn forget_unused(&self) {
        // Only the registry can hand out new references, and it holds the lock, so a count of one
        // means no table and no in-flight request can still record into the entry.
        self.lock()
            .retain(|_, stats| Arc::strong_count(stats) > 1 || stats.total_requests() > 0);
    }

    /// Every measured revision, sorted by service then revision.
    pub(crate) fn all(&self) -> Vec<Arc<RevisionStats>> {
        self.lock().values().cloned().collect()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<(String, String), Arc<RevisionStats>>> {
        // The map is only inserted into or filtered, which leaves it consistent after a panic.
        self.revisions.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_bounds_are_inclusive() {
        let stats = RevisionStats::new("web", "v1");
        stats.record(StatusCode::OK, Duration::from_micros(500));
        stats.record(StatusCode::OK, Duration::from_micros(501));
        stats.record(StatusCode::OK, Duration::from_secs(11));
        let counts = stats.counts();
        assert_eq!(counts.buckets[0], 1, "0.5 ms is in le=0.5");
        assert_eq!(counts.buckets[1], 1, "0.501 ms is in le=1");
        assert_eq!(counts.buckets[BUCKET_COUNT - 1], 1, "11 s is in +Inf");
    }

    #[test]
    fn snapshot_counts_agree_with_each_other() {
        let stats = RevisionStats::new("web", "v1");
        for (status, millis) in [(200, 1), (201, 30), (404, 3), (503, 700), (302, 2)] {
            stats.record(
                StatusCode::from_u16(status).expect("valid status"),
                Duration::from_millis(millis),
            );
        }
        let snapshot = stats.snapshot().expect("snapshot");
        assert_eq!(
            snapshot.requests,
            StatusClassCounts {
                informational: 0,
                success: 2,
                redirection: 1,
                client_error: 1,
                server_error: 1,
            }
        );
        let last = snapshot.latency_buckets_ms.last().expect("+Inf bucket");
        assert_eq!((last.le, last.count), (f64::INFINITY, 5));
        assert_eq!(snapshot.latency_buckets_ms[1].count, 1, "only 1 ms is <= 1 ms");
        assert_eq!(snapshot.latency_sum_ms, 736.0);
        let hdr = snapshot.decode_hdr().expect("hdr decodes");
        assert_eq!(hdr.len(), 5);
        assert_eq!(hdr.max(), hdr.highest_equivalent(700_000));
    }

    #[test]
    fn unused_revisions_are_forgotten_but_measured_ones_kept() {
        let registry = StatsRegistry::default();
        registry.revision("web", "idle");
        registry
            .revision("web", "busy")
            .record(StatusCode::OK, Duration::from_millis(1));
        let held = registry.revision("web", "held");
        registry.forget_unused();
        let names: Vec<String> = registry.all().iter().map(|s| s.revision().to_owned()).collect();
        assert_eq!(names, ["busy", "held"]);
        drop(held);
    }
}

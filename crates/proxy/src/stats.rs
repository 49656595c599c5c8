//! Per-revision request counts and latencies, recorded on the hot path and read by `/snapshot` and `/metrics`.
//!
//! Each (service, revision) keeps one [`Recorder`] per route (the weighted split, each `match` rule) and one for
//! mirrored copies. A recorder is sharded by worker: a worker only ever locks its own shard, so the lock is
//! uncontended except for the instant a snapshot copies it, and readers merge the shards.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Serializer as _, V2DeflateSerializeError, V2DeflateSerializer};

use crate::snapshot::{
    LATENCY_BOUNDS_MS, LatencyBucket, MirrorSnapshot, RevisionSnapshot, RouteSnapshot, StatusClassCounts,
};
use crate::worker;

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

/// gRPC status codes 0 (`OK`) to 16 (`UNAUTHENTICATED`).
pub(crate) const GRPC_CODES: usize = 17;

/// gRPC's `UNKNOWN`, which a gRPC answer without a valid `grpc-status` counts as.
pub(crate) const GRPC_UNKNOWN: u8 = 2;

/// Latencies above an hour are recorded as an hour: nothing a canary analysis cares about is that slow.
const HDR_MAX_US: u64 = 3_600_000_000;
const HDR_SIGNIFICANT_DIGITS: u8 = 3;

/// Counts of one route or revision; `buckets` are per bucket, not cumulative.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) by_class: [u64; 5],
    pub(crate) buckets: [u64; BUCKET_COUNT],
    pub(crate) latency_sum_us: u64,
    pub(crate) grpc: [u64; GRPC_CODES],
    pub(crate) bytes_received: u64,
    pub(crate) bytes_sent: u64,
}

impl Default for Counts {
    fn default() -> Self {
        Self {
            by_class: [0; 5],
            buckets: [0; BUCKET_COUNT],
            latency_sum_us: 0,
            grpc: [0; GRPC_CODES],
            bytes_received: 0,
            bytes_sent: 0,
        }
    }
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

    pub(crate) fn total(&self) -> u64 {
        self.by_class.iter().sum()
    }

    pub(crate) fn add(&mut self, other: &Counts) {
        let pairs = self.by_class.iter_mut().zip(other.by_class);
        let pairs = pairs.chain(self.buckets.iter_mut().zip(other.buckets));
        for (mine, theirs) in pairs.chain(self.grpc.iter_mut().zip(other.grpc)) {
            *mine += theirs;
        }
        self.latency_sum_us = self.latency_sum_us.saturating_add(other.latency_sum_us);
        self.bytes_received += other.bytes_received;
        self.bytes_sent += other.bytes_sent;
    }

    /// gRPC statuses seen, by code, zero counts left out.
    fn grpc_statuses(&self) -> BTreeMap<String, u64> {
        self.grpc
            .iter()
            .enumerate()
            .filter(|(_, count)| **count > 0)
            .map(|(code, count)| (code.to_string(), *count))
            .collect()
    }
}

/// What one finished request contributes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Outcome {
    /// Index of the status class: 0 for 1xx … 4 for 5xx.
    pub(crate) class: usize,
    /// The gRPC status, for gRPC answers.
    pub(crate) grpc: Option<u8>,
    /// From receiving the request to sending the response headers.
    pub(crate) latency: Duration,
    pub(crate) bytes_received: u64,
    pub(crate) bytes_sent: u64,
}

/// The status class index of an HTTP status; statuses outside 100..=599 count in the nearest class.
pub(crate) fn class_of(status: http::StatusCode) -> usize {
    usize::from(status.as_u16() / 100).clamp(1, 5) - 1
}

/// Counters and histogram live under one lock (taken once per request anyway for the HDR
/// histogram) so every reader sees the same set of requests in the counts, buckets and HDR.
#[derive(Clone)]
struct Recorded {
    counts: Counts,
    hdr: Histogram<u64>,
}

impl Recorded {
    fn new() -> Self {
        let hdr = Histogram::new_with_bounds(1, HDR_MAX_US, HDR_SIGNIFICANT_DIGITS)
            .expect("constant histogram bounds are valid");
        Self {
            counts: Counts::default(),
            hdr,
        }
    }

    fn merge(&mut self, other: &Recorded) {
        self.counts.add(&other.counts);
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.hdr.add(&other.hdr);
    }
}

/// One worker's share of a recorder; aligned so two workers' shards never share a cache line.
#[repr(align(128))]
struct Shard {
    recorded: Mutex<Recorded>,
    in_flight: AtomicI64,
}

/// Everything measured for one route of one revision (or its mirrored copies).
pub(crate) struct Recorder {
    shards: Box<[Shard]>,
}

/// A request being measured: started on one shard, finished on the same one.
pub(crate) struct InFlight {
    shard: usize,
}

impl Recorder {
    fn new(shards: usize) -> Self {
        let shards = (0..shards.max(1))
            .map(|_| Shard {
                recorded: Mutex::new(Recorded::new()),
                in_flight: AtomicI64::new(0),
            })
            .collect();
        Self { shards }
    }

    fn shard(&self, index: usize) -> &Shard {
        // Every worker has a shard; anything else (an index past the end) shares the last one.
        &self.shards[index.min(self.shards.len() - 1)]
    }

    /// Counts a request as in flight until [`Recorder::finish`].
    pub(crate) fn start(&self) -> InFlight {
        let shard = worker::current();
        self.shard(shard).in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight { shard }
    }

    /// Records a request started with [`Recorder::start`].
    pub(crate) fn finish(&self, started: InFlight, outcome: Outcome) {
        let shard = self.shard(started.shard);
        shard.in_flight.fetch_sub(1, Ordering::Relaxed);
        let micros = u64::try_from(outcome.latency.as_micros()).unwrap_or(u64::MAX);
        let bucket = LATENCY_BOUNDS_US.partition_point(|bound| *bound < micros);
        let mut recorded = lock(&shard.recorded);
        let counts = &mut recorded.counts;
        counts.by_class[outcome.class] += 1;
        counts.buckets[bucket] += 1;
        counts.latency_sum_us = counts.latency_sum_us.saturating_add(micros);
        if let Some(code) = outcome.grpc {
            counts.grpc[usize::from(code).min(GRPC_CODES - 1)] += 1;
        }
        counts.bytes_received += outcome.bytes_received;
        counts.bytes_sent += outcome.bytes_sent;
        recorded.hdr.saturating_record(micros);
    }

    /// Requests started and not yet finished.
    pub(crate) fn in_flight(&self) -> i64 {
        self.shards.iter().map(|s| s.in_flight.load(Ordering::Relaxed)).sum()
    }

    pub(crate) fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for shard in &self.shards {
            counts.add(&lock(&shard.recorded).counts);
        }
        counts
    }

    fn merged(&self) -> Recorded {
        let mut merged = Recorded::new();
        for shard in &self.shards {
            // Copy under the lock and merge outside it, so a worker waits only for the copy.
            let copy = lock(&shard.recorded).clone();
            merged.merge(&copy);
        }
        merged
    }
}

fn lock(recorded: &Mutex<Recorded>) -> MutexGuard<'_, Recorded> {
    // Recording cannot panic half-way, so a poisoned lock still guards consistent data.
    recorded.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Everything measured for one (service, revision).
pub(crate) struct RevisionStats {
    service: String,
    revision: String,
    shards: usize,
    /// By route name; created when a table first routes that way, kept while the revision is.
    routes: Mutex<BTreeMap<String, Arc<Recorder>>>,
    mirror: Arc<Recorder>,
    mirror_dropped: AtomicU64,
    mirror_skipped: AtomicU64,
    connect_failures: AtomicU64,
    upgrades: AtomicU64,
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
    fn new(service: &str, revision: &str, shards: usize) -> Self {
        Self {
            service: service.to_owned(),
            revision: revision.to_owned(),
            shards,
            routes: Mutex::new(BTreeMap::new()),
            mirror: Arc::new(Recorder::new(shards)),
            mirror_dropped: AtomicU64::new(0),
            mirror_skipped: AtomicU64::new(0),
            connect_failures: AtomicU64::new(0),
            upgrades: AtomicU64::new(0),
        }
    }

    pub(crate) fn service(&self) -> &str {
        &self.service
    }

    pub(crate) fn revision(&self) -> &str {
        &self.revision
    }

    /// The recorder of one route, created on first use.
    pub(crate) fn route(&self, route: &str) -> Arc<Recorder> {
        let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(recorder) = routes.get(route) {
            return recorder.clone();
        }
        let recorder = Arc::new(Recorder::new(self.shards));
        routes.insert(route.to_owned(), recorder.clone());
        recorder
    }

    /// Every route's recorder, sorted by route name.
    pub(crate) fn routes(&self) -> Vec<(String, Arc<Recorder>)> {
        let routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        routes.iter().map(|(name, r)| (name.clone(), r.clone())).collect()
    }

    /// Where mirrored copies sent to this revision are measured.
    pub(crate) fn mirror(&self) -> &Arc<Recorder> {
        &self.mirror
    }

    /// A copy was not sent because too many were in flight.
    pub(crate) fn mirror_dropped(&self) {
        self.mirror_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// A copy was not sent because the request body was too large or of unknown length.
    pub(crate) fn mirror_skipped(&self) {
        self.mirror_skipped.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection to one of the revision's instances failed and the request went elsewhere.
    pub(crate) fn connect_failed(&self) {
        self.connect_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection was upgraded (e.g. to WebSocket) and is now tunnelled.
    pub(crate) fn upgraded(&self) {
        self.upgrades.fetch_add(1, Ordering::Relaxed);
    }

    /// Counters that are not per route: connect failures, upgrades, mirror drops and skips.
    pub(crate) fn side_counts(&self) -> SideCounts {
        SideCounts {
            connect_failures: self.connect_failures.load(Ordering::Relaxed),
            upgrades: self.upgrades.load(Ordering::Relaxed),
            mirror_dropped: self.mirror_dropped.load(Ordering::Relaxed),
            mirror_skipped: self.mirror_skipped.load(Ordering::Relaxed),
        }
    }

    fn total_requests(&self) -> u64 {
        let routed: u64 = self.routes().iter().map(|(_, r)| r.counts().total()).sum();
        routed + self.mirror.counts().total()
    }

    pub(crate) fn snapshot(&self) -> Result<RevisionSnapshot, SnapshotError> {
        let mut total = Recorded::new();
        let mut in_flight = 0;
        let mut routes = Vec::new();
        for (route, recorder) in self.routes() {
            let recorded = recorder.merged();
            total.merge(&recorded);
            let route_in_flight = recorder.in_flight();
            in_flight += route_in_flight;
            let counts = recorded.counts;
            routes.push(RouteSnapshot {
                route,
                requests: counts.status_classes(),
                latency_buckets_ms: cumulative_buckets(&counts.buckets),
                latency_sum_ms: counts.latency_sum_us as f64 / 1000.0,
                hdr: self.encode(&recorded.hdr)?,
                in_flight: route_in_flight,
                bytes_received: counts.bytes_received,
                bytes_sent: counts.bytes_sent,
                grpc_status: counts.grpc_statuses(),
            });
        }
        let mirror = self.mirror.merged();
        let side = self.side_counts();
        let counts = total.counts;
        Ok(RevisionSnapshot {
            service: self.service.clone(),
            revision: self.revision.clone(),
            requests: counts.status_classes(),
            latency_buckets_ms: cumulative_buckets(&counts.buckets),
            latency_sum_ms: counts.latency_sum_us as f64 / 1000.0,
            hdr: self.encode(&total.hdr)?,
            in_flight,
            bytes_received: counts.bytes_received,
            bytes_sent: counts.bytes_sent,
            grpc_status: counts.grpc_statuses(),
            connect_failures: side.connect_failures,
            upgrades: side.upgrades,
            routes,
            mirror: MirrorSnapshot {
                requests: mirror.counts.status_classes(),
                latency_buckets_ms: cumulative_buckets(&mirror.counts.buckets),
                latency_sum_ms: mirror.counts.latency_sum_us as f64 / 1000.0,
                hdr: self.encode(&mirror.hdr)?,
                in_flight: self.mirror.in_flight(),
                dropped: side.mirror_dropped,
                skipped: side.mirror_skipped,
            },
        })
    }

    fn encode(&self, hdr: &Histogram<u64>) -> Result<String, SnapshotError> {
        let mut serialized = Vec::new();
        V2DeflateSerializer::new()
            .serialize(hdr, &mut serialized)
            .map_err(|source| SnapshotError {
                service: self.service.clone(),
                revision: self.revision.clone(),
                source,
            })?;
        Ok(STANDARD.encode(serialized))
    }

    /// Exact latency quantiles (seconds) over every route, for `/metrics`.
    pub(crate) fn quantiles(&self, quantiles: &[f64]) -> Vec<(f64, f64)> {
        let mut total = Recorded::new();
        for (_, recorder) in self.routes() {
            total.merge(&recorder.merged());
        }
        quantiles
            .iter()
            .map(|q| (*q, total.hdr.value_at_quantile(*q) as f64 / 1_000_000.0))
            .collect()
    }
}

/// Per-revision counters outside the per-route recorders.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SideCounts {
    pub(crate) connect_failures: u64,
    pub(crate) upgrades: u64,
    pub(crate) mirror_dropped: u64,
    pub(crate) mirror_skipped: u64,
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
pub(crate) struct StatsRegistry {
    shards: usize,
    revisions: Mutex<BTreeMap<(String, String), Arc<RevisionStats>>>,
}

impl StatsRegistry {
    /// A registry whose recorders have one shard per worker.
    pub(crate) fn new(shards: usize) -> Self {
        Self {
            shards,
            revisions: Mutex::new(BTreeMap::new()),
        }
    }

    /// The stats of a revision, created on first use so a re-added revision keeps its history.
    pub(crate) fn revision(&self, service: &str, revision: &str) -> Arc<RevisionStats> {
        let mut revisions = self.lock();
        revisions
            .entry((service.to_owned(), revision.to_owned()))
            .or_insert_with(|| Arc::new(RevisionStats::new(service, revision, self.shards)))
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
    use http::StatusCode;

    fn record(recorder: &Recorder, status: u16, latency: Duration) {
        let started = recorder.start();
        let class = class_of(StatusCode::from_u16(status).expect("valid status"));
        recorder.finish(
            started,
            Outcome {
                class,
                grpc: None,
                latency,
                bytes_received: 1,
                bytes_sent: 2,
            },
        );
    }

    #[test]
    fn bucket_bounds_are_inclusive() {
        let recorder = Recorder::new(1);
        record(&recorder, 200, Duration::from_micros(500));
        record(&recorder, 200, Duration::from_micros(501));
        record(&recorder, 200, Duration::from_secs(11));
        let counts = recorder.counts();
        assert_eq!(counts.buckets[0], 1, "0.5 ms is in le=0.5");
        assert_eq!(counts.buckets[1], 1, "0.501 ms is in le=1");
        assert_eq!(counts.buckets[BUCKET_COUNT - 1], 1, "11 s is in +Inf");
    }

    #[test]
    fn snapshot_counts_agree_with_each_other_across_routes_and_shards() {
        let stats = RevisionStats::new("web", "v1", 2);
        let default = stats.route("default");
        let rule = stats.route("insiders");
        for (index, (status, millis)) in [(200, 1), (201, 30), (404, 3), (503, 700), (302, 2)]
            .into_iter()
            .enumerate()
        {
            worker::set_current(index % 2);
            let recorder = if index == 0 { &rule } else { &default };
            record(recorder, status, Duration::from_millis(millis));
        }
        worker::set_current(0);
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
        assert_eq!((snapshot.bytes_received, snapshot.bytes_sent), (5, 10));
        let hdr = snapshot.decode_hdr().expect("hdr decodes");
        assert_eq!(hdr.len(), 5);
        assert_eq!(hdr.max(), hdr.highest_equivalent(700_000));
        let routes: Vec<(&str, u64)> = snapshot
            .routes
            .iter()
            .map(|r| (r.route.as_str(), r.requests.total()))
            .collect();
        assert_eq!(routes, [("default", 4), ("insiders", 1)]);
        assert_eq!(snapshot.in_flight, 0);
    }

    #[test]
    fn in_flight_counts_started_requests_until_they_finish() {
        let recorder = Recorder::new(1);
        let started = recorder.start();
        assert_eq!(recorder.in_flight(), 1);
        recorder.finish(
            started,
            Outcome {
                class: 1,
                grpc: Some(14),
                latency: Duration::from_millis(1),
                bytes_received: 0,
                bytes_sent: 0,
            },
        );
        assert_eq!(recorder.in_flight(), 0);
        assert_eq!(recorder.counts().grpc[14], 1);
    }

    #[test]
    fn unused_revisions_are_forgotten_but_measured_ones_kept() {
        let registry = StatsRegistry::new(1);
        registry.revision("web", "idle");
        record(
            &registry.revision("web", "busy").route("default"),
            200,
            Duration::from_millis(1),
        );
        let held = registry.revision("web", "held");
        registry.forget_unused();
        let names: Vec<String> = registry.all().iter().map(|s| s.revision().to_owned()).collect();
        assert_eq!(names, ["busy", "held"]);
        drop(held);
    }
}

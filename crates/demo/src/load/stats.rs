//! Live statistics of a load run: cheap to update on every response, cheap to read while the run
//! goes on.
//!
//! Figures are cumulative from the start of the run. A display that wants "the last few seconds"
//! keeps earlier [`LoadSnapshot`]s and diffs them with [`LoadSnapshot::since`] (or
//! [`LoadStats::window`]); the latency histograms are diffed too, so a window's p99 covers only the
//! requests answered in it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use hdrhistogram::Histogram;
use http::StatusCode;
use tokio::time::Instant;

/// The key for responses without an `x-revision` header, and for transport errors (which have no
/// response).
pub(crate) const UNKNOWN_REVISION: &str = "?";
/// The key that absorbs revisions beyond [`MAX_TRACKED_REVISIONS`].
const OTHER_REVISIONS: &str = "(other)";
/// A target that made up a new `x-revision` per response must not grow the statistics without
/// bound.
const MAX_TRACKED_REVISIONS: usize = 64;
/// Three significant figures: latencies to within 0.1%.
const SIGNIFICANT_FIGURES: u8 = 3;

/// Statistics of one load run, shared between the run and whoever displays it.
#[derive(Debug)]
pub struct LoadStats {
    started: Instant,
    sent: AtomicU64,
    dropped: AtomicU64,
    tallies: Mutex<Tallies>,
}

/// What a run (or a window of it) looked like for one revision, or for all of them together.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RevisionLoad {
    /// The `x-revision` value; `?` when the header was absent or no response came back.
    pub revision: String,
    /// Requests that completed: responses plus transport errors.
    pub requests: u64,
    /// Responses other than 5xx.
    pub ok: u64,
    /// 4xx responses, already counted in `ok`: they are the caller's fault, not the revision's.
    pub client_errors: u64,
    /// 5xx responses.
    pub server_errors: u64,
    /// Requests that got no response: refused connections, resets, timeouts.
    pub transport_errors: u64,
    /// Median latency of the responses, from the moment each request was scheduled; zero without
    /// responses.
    pub p50: Duration,
    /// 99th-percentile latency of the responses; zero without responses.
    pub p99: Duration,
}

impl RevisionLoad {
    /// Share of completed requests that got a non-5xx response; `None` before any completed.
    pub fn success_ratio(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.ok as f64 / self.requests as f64)
    }

    /// Completed requests per second over `span`; zero for an empty span.
    pub fn request_rate(&self, span: Duration) -> f64 {
        if span.is_zero() {
            0.0
        } else {
            self.requests as f64 / span.as_secs_f64()
        }
    }
}

/// Cumulative figures of a run from its start up to the moment of the snapshot.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadSnapshot {
    /// Time since the run started, on tokio's clock.
    pub elapsed: Duration,
    /// Requests sent so far.
    pub sent: u64,
    /// Scheduled requests not sent because `max_in_flight` requests were already outstanding.
    pub dropped: u64,
    /// Requests sent but not completed yet.
    pub in_flight: u64,
    /// Per revision, ordered by name.
    pub revisions: Vec<RevisionLoad>,
    /// All revisions together, under the name `*`.
    pub total: RevisionLoad,
    #[serde(skip)]
    tallies: Tallies,
}

/// Figures of the part of a run between two snapshots.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LoadWindow {
    /// How long the window lasted; divide counts by it for rates ([`RevisionLoad::request_rate`]).
    pub span: Duration,
    /// Requests sent in the window.
    pub sent: u64,
    /// Requests dropped in the window.
    pub dropped: u64,
    /// Per revision that completed requests in the window, ordered by name.
    pub revisions: Vec<RevisionLoad>,
    /// All revisions together, under the name `*`.
    pub total: RevisionLoad,
}

impl LoadStats {
    pub(crate) fn new(started: Instant) -> Self {
        Self {
            started,
            sent: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            tallies: Mutex::new(Tallies::default()),
        }
    }

    /// The figures so far. Safe to call at any rate while the run goes on; it holds the lock only
    /// to copy.
    pub fn snapshot(&self) -> LoadSnapshot {
        let elapsed = self.started.elapsed();
        // Tallies before counters: a request is counted as sent before it can complete, so reading
        // in this order never shows more completed requests than sent ones.
        let tallies = self.lock_tallies().clone();
        let sent = self.sent.load(Ordering::Acquire);
        let dropped = self.dropped.load(Ordering::Acquire);
        let total = tallies.all.summarize("*");
        LoadSnapshot {
            elapsed,
            sent,
            dropped,
            in_flight: sent.saturating_sub(total.requests),
            revisions: tallies.summarize_revisions(),
            total,
            tallies,
        }
    }

    /// The figures since `earlier`, a snapshot taken before from these same statistics.
    pub fn window(&self, earlier: &LoadSnapshot) -> LoadWindow {
        self.snapshot().since(earlier)
    }

    pub(crate) fn record_sent(&self) {
        self.sent.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn record_dropped(&self) {
        self.dropped.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn record_response(&self, revision: Option<&str>, status: StatusCode, latency: Duration) {
        self.lock_tallies()
            .record(revision.unwrap_or(UNKNOWN_REVISION), |tally| {
                tally.count_response(status, latency)
            });
    }

    pub(crate) fn record_transport_error(&self) {
        self.lock_tallies()
            .record(UNKNOWN_REVISION, |tally| tally.transport_errors += 1);
    }

    fn lock_tallies(&self) -> std::sync::MutexGuard<'_, Tallies> {
        // Tallies are plain counters, consistent after every single update, so a panic elsewhere
        // while the lock was held leaves nothing half-written worth refusing to read.
        self.tallies.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl LoadSnapshot {
    /// The latency at `quantile` (0.0 to 1.0) of all responses so far, from each request's scheduled time;
    /// `None` before the first response.
    pub fn latency_quantile(&self, quantile: f64) -> Option<Duration> {
        let latency = &self.tallies.all.latency;
        (!latency.is_empty()).then(|| Duration::from_micros(latency.value_at_quantile(quantile)))
    }

    /// The figures between `earlier` and this snapshot. `earlier` must come from the same run; if
    /// it does not, counts saturate at zero and latencies cover this snapshot alone rather than
    /// mislead.
    pub fn since(&self, earlier: &LoadSnapshot) -> LoadWindow {
        let tallies = self.tallies.minus(&earlier.tallies);
        LoadWindow {
            span: self.elapsed.saturating_sub(earlier.elapsed),
            sent: self.sent.saturating_sub(earlier.sent),
            dropped: self.dropped.saturating_sub(earlier.dropped),
            revisions: tallies.summarize_revisions(),
            total: tallies.all.summarize("*"),
        }
    }
}

/// Per-revision tallies plus one for all revisions, so totals need no histogram merging.
#[derive(Debug, Clone, Default)]
struct Tallies {
    per_revision: BTreeMap<String, Tally>,
    all: Tally,
}

impl Tallies {
    fn record(&mut self, revision: &str, count: impl Fn(&mut Tally)) {
        count(&mut self.all);
        let key = if self.per_revision.contains_key(revision) || self.per_revision.len() < MAX_TRACKED_REVISIONS {
            revision
        } else {
            OTHER_REVISIONS
        };
        match self.per_revision.get_mut(key) {
            Some(tally) => count(tally),
            None => count(self.per_revision.entry(key.to_owned()).or_default()),
        }
    }

    fn summarize_revisions(&self) -> Vec<RevisionLoad> {
        self.per_revision
            .iter()
            .map(|(revision, tally)| tally.summarize(revision))
            .collect()
    }

    fn minus(&self, earlier: &Tallies) -> Tallies {
        let per_revision = self
            .per_revision
            .iter()
            .map(|(revision, tally)| {
                let delta = match earlier.per_revision.get(revision) {
                    Some(before) => tally.minus(before),
                    None => tally.clone(),
                };
                (revision.clone(), delta)
            })
            .filter(|(_, delta)| delta.requests() > 0)
            .collect();
        Tallies {
            per_revision,
            all: self.all.minus(&earlier.all),
        }
    }
}

/// Counts and latencies of one revision.
#[derive(Debug, Clone)]
struct Tally {
    ok: u64,
    client_errors: u64,
    server_errors: u64,
    transport_errors: u64,
    /// Microseconds.
    latency: Histogram<u64>,
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            ok: 0,
            client_errors: 0,
            server_errors: 0,
            transport_errors: 0,
            latency: Histogram::new(SIGNIFICANT_FIGURES)
                .expect("hdrhistogram supports 0 to 5 significant figures, and this asks for 3"),
        }
    }
}

impl Tally {
    fn count_response(&mut self, status: StatusCode, latency: Duration) {
        if status.is_server_error() {
            self.server_errors += 1;
        } else {
            self.ok += 1;
            if status.is_client_error() {
                self.client_errors += 1;
            }
        }
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        // The histogram grows to fit, so `record` only fails for values too large to index on this
        // platform; clamping those keeps the count right.
        if self.latency.record(micros).is_err() {
            self.latency.saturating_record(micros);
        }
    }

    fn requests(&self) -> u64 {
        self.ok + self.server_errors + self.transport_errors
    }

    fn minus(&self, earlier: &Tally) -> Tally {
        let mut latency = self.latency.clone();
        if latency.subtract(&earlier.latency).is_err() {
            // Only possible when `earlier` is not an earlier state of this tally; a failed
            // subtraction may leave partial results, so start over from the later state.
            latency = self.latency.clone();
        }
        Tally {
            ok: self.ok.saturating_sub(earlier.ok),
            client_errors: self.client_errors.saturating_sub(earlier.client_errors),
            server_errors: self.server_errors.saturating_sub(earlier.server_errors),
            transport_errors: self.transport_errors.saturating_sub(earlier.transport_errors),
            latency,
        }
    }

    fn summarize(&self, revision: &str) -> RevisionLoad {
        let quantile = |q: f64| {
            if self.latency.is_empty() {
                Duration::ZERO
            } else {
                Duration::from_micros(self.latency.value_at_quantile(q))
            }
        };
        RevisionLoad {
            revision: revision.to_owned(),
            requests: self.requests(),
            ok: self.ok,
            client_errors: self.client_errors,
            server_errors: self.server_errors,
            transport_errors: self.transport_errors,
            p50: quantile(0.50),
            p99: quantile(0.99),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record_many(stats: &LoadStats, revision: &str, status: StatusCode, latency_ms: u64, count: u64) {
        for _ in 0..count {
            stats.record_sent();
            stats.record_response(Some(revision), status, Duration::from_millis(latency_ms));
        }
    }

    fn revision<'a>(figures: &'a [RevisionLoad], name: &str) -> &'a RevisionLoad {
        figures.iter().find(|r| r.revision == name).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn snapshots_count_per_revision_and_in_total() {
        let stats = LoadStats::new(Instant::now());
        record_many(&stats, "v1", StatusCode::OK, 10, 8);
        record_many(&stats, "v1", StatusCode::NOT_FOUND, 10, 1);
        record_many(&stats, "v2", StatusCode::SERVICE_UNAVAILABLE, 30, 2);
        stats.record_sent();
        stats.record_transport_error();
        stats.record_sent();
        stats.record_dropped();
        tokio::time::advance(Duration::from_secs(2)).await;

        let snapshot = stats.snapshot();

        assert_eq!(snapshot.elapsed, Duration::from_secs(2));
        assert_eq!((snapshot.sent, snapshot.dropped, snapshot.in_flight), (13, 1, 1));
        let names: Vec<&str> = snapshot.revisions.iter().map(|r| r.revision.as_str()).collect();
        assert_eq!(names, ["?", "v1", "v2"]);
        let v1 = revision(&snapshot.revisions, "v1");
        assert_eq!((v1.requests, v1.ok, v1.client_errors, v1.server_errors), (9, 9, 1, 0));
        assert_eq!(v1.success_ratio(), Some(1.0));
        let v2 = revision(&snapshot.revisions, "v2");
        assert_eq!((v2.requests, v2.ok, v2.server_errors), (2, 0, 2));
        assert_eq!(revision(&snapshot.revisions, "?").transport_errors, 1);
        assert_eq!(
            (snapshot.total.requests, snapshot.total.ok, snapshot.total.server_errors),
            (12, 9, 2)
        );
        assert!(
            (Duration::from_millis(30)..Duration::from_millis(31)).contains(&snapshot.total.p99),
            "{:?}",
            snapshot.total
        );
        assert!(
            (Duration::from_millis(10)..Duration::from_millis(11)).contains(&snapshot.total.p50),
            "{:?}",
            snapshot.total
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_window_covers_only_what_happened_after_the_earlier_snapshot() {
        let stats = LoadStats::new(Instant::now());
        record_many(&stats, "v1", StatusCode::OK, 500, 100);
        record_many(&stats, "v2", StatusCode::OK, 5, 10);
        let earlier = stats.snapshot();
        tokio::time::advance(Duration::from_secs(4)).await;
        record_many(&stats, "v1", StatusCode::OK, 2, 18);
        record_many(&stats, "v1", StatusCode::INTERNAL_SERVER_ERROR, 2, 2);

        let window = stats.window(&earlier);

        assert_eq!(window.span, Duration::from_secs(4));
        assert_eq!(window.sent, 20);
        assert_eq!(
            window.revisions.len(),
            1,
            "v2 had no traffic in the window: {:?}",
            window.revisions
        );
        let v1 = &window.revisions[0];
        assert_eq!((v1.requests, v1.ok, v1.server_errors), (20, 18, 2));
        assert_eq!(v1.success_ratio(), Some(0.9));
        assert_eq!(v1.request_rate(window.span), 5.0);
        assert!(
            v1.p99 < Duration::from_millis(3),
            "the slow requests before the window must not count: {v1:?}"
        );
        assert_eq!(window.total.requests, 20);
    }

    #[tokio::test(start_paused = true)]
    async fn quantiles_cover_every_response_and_none_before_the_first() {
        let stats = LoadStats::new(Instant::now());
        assert_eq!(stats.snapshot().latency_quantile(0.9), None);
        record_many(&stats, "v1", StatusCode::OK, 10, 90);
        record_many(&stats, "v2", StatusCode::INTERNAL_SERVER_ERROR, 100, 10);

        let snapshot = stats.snapshot();

        let at = |q| snapshot.latency_quantile(q).unwrap();
        assert!(
            (Duration::from_millis(10)..Duration::from_millis(11)).contains(&at(0.9)),
            "{:?}",
            at(0.9)
        );
        assert!(
            (Duration::from_millis(100)..Duration::from_millis(101)).contains(&at(0.91)),
            "{:?}",
            at(0.91)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn made_up_revisions_beyond_the_limit_share_one_entry() {
        let stats = LoadStats::new(Instant::now());
        for n in 0..MAX_TRACKED_REVISIONS + 10 {
            record_many(&stats, &format!("r{n}"), StatusCode::OK, 1, 1);
        }
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.revisions.len(), MAX_TRACKED_REVISIONS + 1);
        assert_eq!(revision(&snapshot.revisions, OTHER_REVISIONS).requests, 10);
        assert_eq!(snapshot.total.requests, MAX_TRACKED_REVISIONS as u64 + 10);
    }
}

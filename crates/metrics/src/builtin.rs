//! The built-in source: snapshots of the proxy's cumulative per-revision counters, diffed over the window.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;
use jiff::{SignedDuration, Timestamp};
use sluice_analysis::{RevisionWindow, Window};
use sluice_proxy::snapshot::Snapshot;

use crate::{MetricSource, MetricsError, WindowQuery};

/// The longest gap between two observations that still counts as continuous coverage.
const MAX_GAP: SignedDuration = SignedDuration::from_millis(3_500);

/// One revision's cumulative counts at one instant.
#[derive(Clone, Debug)]
struct Counts {
    requests: u64,
    errors: u64,
    latency_us: Histogram<u64>,
    buckets: Option<sluice_analysis::stats::Histogram>,
}

/// Every revision's cumulative counts at one instant.
#[derive(Clone, Debug)]
struct Sample {
    at: Timestamp,
    revisions: HashMap<(String, String), Counts>,
}

/// Where a service's current window started, and whether observations have covered it since.
#[derive(Debug)]
struct Baseline {
    since: Timestamp,
    sample: Sample,
    last_at: Timestamp,
    continuous: bool,
}

#[derive(Debug, Default)]
struct State {
    /// Recent snapshots, oldest first, kept undecoded (an HDR histogram is large once decoded).
    recent: VecDeque<Snapshot>,
    latest: Option<Sample>,
    baselines: HashMap<String, Baseline>,
}

/// How long snapshots are kept to find the one a new window starts from. The controller asks for its window
/// every second, so the start of any window is found well within this.
const RETENTION: SignedDuration = SignedDuration::from_secs(30);

/// Reads one proxy's `/snapshot` and answers windows by diffing cumulative counts (and subtracting exact HDR
/// histograms, so window quantiles are exact).
pub struct BuiltinSource {
    admin: SocketAddr,
    client: reqwest::Client,
    state: Mutex<State>,
}

impl BuiltinSource {
    /// A source reading the proxy whose admin listener is at `admin`.
    pub fn new(admin: SocketAddr) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        BuiltinSource {
            admin,
            client,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn fetch(&self) -> Result<(Snapshot, Sample), MetricsError> {
        let what = format!("the proxy's snapshot at {}", self.admin);
        let unavailable = |detail: String| MetricsError::Unavailable {
            what: what.clone(),
            detail,
        };
        let response = self
            .client
            .get(format!("http://{}/snapshot", self.admin))
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        if !response.status().is_success() {
            return Err(unavailable(format!("status {}", response.status())));
        }
        let snapshot: Snapshot = response.json().await.map_err(|e| unavailable(e.to_string()))?;
        let sample = sample_of(&snapshot).map_err(unavailable)?;
        Ok((snapshot, sample))
    }

    /// Records a new observation; every window being tracked notes whether coverage stayed continuous.
    fn observe(&self, snapshot: Snapshot, sample: Sample) {
        let mut state = self.state();
        let oldest_kept = sample.at.checked_sub(RETENTION).unwrap_or(sample.at);
        while state.recent.front().is_some_and(|s| at_of(s) < oldest_kept) {
            state.recent.pop_front();
        }
        state.recent.push_back(snapshot);
        for baseline in state.baselines.values_mut() {
            let gap = sample.at.duration_since(baseline.last_at);
            let went_back = sample.revisions.iter().any(|(key, now)| {
                baseline
                    .sample
                    .revisions
                    .get(key)
                    .is_some_and(|then| now.requests < then.requests)
            });
            if gap > MAX_GAP || went_back {
                baseline.continuous = false;
            }
            baseline.last_at = sample.at;
        }
        state.latest = Some(sample);
    }
}

fn at_of(snapshot: &Snapshot) -> Timestamp {
    Timestamp::from_millisecond(snapshot.taken_at_unix_ms as i64).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// The window's starting point: the newest snapshot taken at or before `since` (or, failing that, the oldest
/// kept), with whether the snapshots after it have no gap.
fn baseline_for(recent: &VecDeque<Snapshot>, since: Timestamp, latest: &Sample) -> Result<Baseline, MetricsError> {
    let start = recent.iter().rposition(|s| at_of(s) <= since).unwrap_or(0);
    let Some(first) = recent.get(start) else {
        return Ok(Baseline {
            since,
            sample: latest.clone(),
            last_at: latest.at,
            continuous: true,
        });
    };
    let sample = sample_of(first).map_err(|detail| MetricsError::Unavailable {
        what: "a kept snapshot".into(),
        detail,
    })?;
    let mut last_at = sample.at;
    let mut continuous = true;
    for later in recent.iter().skip(start + 1) {
        continuous &= at_of(later).duration_since(last_at) <= MAX_GAP;
        last_at = at_of(later);
    }
    Ok(Baseline {
        since,
        sample,
        last_at,
        continuous,
    })
}

fn sample_of(snapshot: &Snapshot) -> Result<Sample, String> {
    let at = Timestamp::from_millisecond(snapshot.taken_at_unix_ms as i64).map_err(|e| e.to_string())?;
    let mut revisions = HashMap::new();
    for revision in &snapshot.revisions {
        let latency_us = revision.decode_hdr().map_err(|e| e.to_string())?;
        revisions.insert(
            (revision.service.clone(), revision.revision.clone()),
            Counts {
                requests: revision.requests.total(),
                errors: revision.requests.server_error,
                latency_us,
                buckets: buckets_of(revision),
            },
        );
    }
    Ok(Sample { at, revisions })
}

/// The snapshot's cumulative `le` buckets as per-bucket counts.
fn buckets_of(revision: &sluice_proxy::snapshot::RevisionSnapshot) -> Option<sluice_analysis::stats::Histogram> {
    let bounds: Vec<f64> = revision
        .latency_buckets_ms
        .iter()
        .map(|b| b.le)
        .filter(|le| le.is_finite())
        .collect();
    let mut previous = 0;
    let counts = revision
        .latency_buckets_ms
        .iter()
        .map(|b| {
            let count = b.count.saturating_sub(previous);
            previous = b.count;
            count
        })
        .collect();
    sluice_analysis::stats::Histogram::from_counts(bounds, counts).ok()
}

fn diff(latest: &Sample, base: &Sample, service: &str, revision: &str) -> RevisionWindow {
    let key = (service.to_string(), revision.to_string());
    let Some(now) = latest.revisions.get(&key) else {
        return RevisionWindow::default();
    };
    let mut window = RevisionWindow {
        requests: now.requests,
        errors: now.errors,
        p99_ms: None,
        latency: now.buckets.clone(),
    };
    let mut latency = now.latency_us.clone();
    if let Some(then) = base.revisions.get(&key) {
        window.requests = now.requests.saturating_sub(then.requests);
        window.errors = now.errors.saturating_sub(then.errors);
        if let (Some(buckets), Some(earlier)) = (&mut window.latency, &then.buckets)
            && buckets.subtract(earlier).is_err()
        {
            window.latency = None;
        }
        if latency.subtract(&then.latency_us).is_err() {
            // The proxy restarted between the samples; its counts started over.
            latency = now.latency_us.clone();
        }
    }
    if !latency.is_empty() {
        window.p99_ms = Some(latency.value_at_quantile(0.99) as f64 / 1000.0);
    }
    window
}

impl MetricSource for BuiltinSource {
    async fn refresh(&self) -> Result<(), MetricsError> {
        let (snapshot, sample) = self.fetch().await?;
        self.observe(snapshot, sample);
        Ok(())
    }

    async fn window(&self, query: &WindowQuery) -> Result<Window, MetricsError> {
        let mut state = self.state();
        let latest = state.latest.clone().ok_or(MetricsError::NoData)?;
        if state
            .baselines
            .get(&query.service)
            .is_none_or(|b| b.since != query.since)
        {
            let baseline = baseline_for(&state.recent, query.since, &latest)?;
            state.baselines.insert(query.service.clone(), baseline);
        }
        let baseline = state.baselines.get(&query.service).ok_or(MetricsError::NoData)?;
        // The window is covered only if its first observation was taken close to its start (a daemon that was
        // down when the window began has no such observation) and no gap opened since.
        let started_in_time = baseline.sample.at.duration_since(query.since).abs() <= MAX_GAP;
        let complete = baseline.continuous && started_in_time;
        Ok(Window {
            candidate: diff(&latest, &baseline.sample, &query.service, &query.candidate),
            stable: diff(&latest, &baseline.sample, &query.service, &query.stable),
            complete,
        })
    }
}

//! Metric sources: where the observations that judges look at come from. The engine never reads them itself;
//! the controller asks a source for the [`Window`] since the rollout's `window_start` and hands it in.
//!
//! The embedded default is [`BuiltinSource`]: the built-in proxy's per-revision counters and exact latency
//! histograms, read from its admin listener every second without a Prometheus in between.

mod builtin;

use std::future::Future;

use jiff::Timestamp;
pub use sluice_analysis::Window;
use thiserror::Error;

pub use builtin::BuiltinSource;

/// What a judge needs: one service's stable and candidate revisions since an instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowQuery {
    /// The service.
    pub service: String,
    /// The stable revision's name.
    pub stable: String,
    /// The candidate revision's name.
    pub candidate: String,
    /// Start of the window; it ends at the latest observation.
    pub since: Timestamp,
}

/// Why a source could not observe. A failure is reported as such, never as zero traffic.
#[derive(Debug, Error)]
pub enum MetricsError {
    /// The source could not be reached or answered garbage.
    #[error("metrics: cannot read {what}: {detail}")]
    Unavailable { what: String, detail: String },
    /// The source has not observed anything yet.
    #[error("metrics: no observation yet")]
    NoData,
}

/// A place metrics come from.
pub trait MetricSource: Send + Sync + 'static {
    /// Takes an observation now, for sources that sample (the built-in one); called every second or faster.
    fn refresh(&self) -> impl Future<Output = Result<(), MetricsError>> + Send;
    /// The traffic of both revisions from `query.since` to the latest observation. `complete` is false when the
    /// observations do not cover the whole window.
    fn window(&self, query: &WindowQuery) -> impl Future<Output = Result<Window, MetricsError>> + Send;
}

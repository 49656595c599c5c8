//! Metric sources: where the observations that judges look at come from. The engine never reads them itself;
//! the controller asks a source for the [`Window`] since the rollout's `window_start` and hands it in.
//!
//! - [`BuiltinSource`], the embedded default: the built-in proxy's per-revision counters and exact latency
//!   histograms, read from its admin listener every second without a Prometheus in between.
//! - [`PrometheusSource`]: PromQL over Prometheus' HTTP API, templated like Flagger's MetricTemplate
//!   ([`QueryTemplate`]), for windows and for custom single-value checks.
//! - [`WebSource`]: a number read at a JSON path from any HTTP API.
//!
//! A failed query, a non-2xx answer, an unparsable answer and an empty result are each a [`MetricsError`] that
//! says which, never a zero. Queries are retried by a [`RetryPolicy`]; what still fails reaches the engine as a
//! missing window, and the engine pauses a rollout after 30 evaluations in a row without metrics (the count is
//! part of the persisted rollout state, so it survives a restart).

#![warn(missing_docs)]

mod builtin;
mod error;
pub mod json_path;
pub mod prometheus;
mod retry;
pub mod template;
#[cfg(test)]
mod test_server;
pub mod web;

use std::future::Future;

use jiff::Timestamp;
pub use sluice_analysis::Window;

pub use builtin::BuiltinSource;
pub use error::{ConfigError, MetricsError};
pub use json_path::{JsonPath, JsonPathError};
pub use prometheus::{PrometheusConfig, PrometheusSource, WindowQueries};
pub use retry::RetryPolicy;
pub use template::{QueryTemplate, TemplateError, TemplateVars};
pub use web::{WebConfig, WebMethod, WebSource};

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

/// A place metrics come from.
pub trait MetricSource: Send + Sync + 'static {
    /// Takes an observation now, for sources that sample (the built-in one); called every second or faster.
    fn refresh(&self) -> impl Future<Output = Result<(), MetricsError>> + Send;
    /// The traffic of both revisions from `query.since` to the latest observation. `complete` is false when the
    /// observations do not cover the whole window.
    fn window(&self, query: &WindowQuery) -> impl Future<Output = Result<Window, MetricsError>> + Send;
}

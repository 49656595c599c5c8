//! A metric source over Prometheus' HTTP API: PromQL templated like Flagger's MetricTemplate.
//!
//! [`PrometheusSource::window`](crate::MetricSource::window) answers a window with four queries per revision,
//! by default over the built-in proxy's metrics (see [`WindowQueries`]); users whose services export their own
//! metrics override the templates. The window ends at the revision's newest sample rather than at `now`, and
//! the counts are evaluated there, so Prometheus never extrapolates past what it scraped.

mod response;
mod window;

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use reqwest::Url;
use sluice_analysis::{RevisionWindow, Window};

pub use response::{Labels, QueryResult, Sample, Series, VectorSample};

use crate::template::{QueryTemplate, TemplateVars};
use crate::{ConfigError, MetricSource, MetricsError, RetryPolicy, WindowQuery};
use response::ResponseError;

/// The PromQL a window is computed from. Each template sees one revision (`{{service}}`, `{{revision}}`) and
/// the window's length (`{{interval}}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowQueries {
    /// Requests answered in the window: one value.
    pub requests: QueryTemplate,
    /// Requests that failed (5xx) in the window: one value. An absent series is an error, not zero; add
    /// `or vector(0)` when your 5xx series only appears with the first error.
    pub errors: QueryTemplate,
    /// Cumulative latency buckets in the window: one series per `le` (in seconds, `+Inf` included); they become
    /// the window's `latency` histogram (bounds in ms) and its p99. `None` when the service has no latency
    /// histogram (the window's p99 is then unknown).
    pub latency_buckets: Option<QueryTemplate>,
    /// A range selector whose raw samples show when Prometheus scraped the revision; it tells whether the
    /// window is covered.
    pub coverage: QueryTemplate,
}

impl WindowQueries {
    /// The built-in proxy's metrics: `sluice_proxy_requests_total{service,revision,class}` and
    /// `sluice_proxy_request_duration_seconds_bucket{service,revision,le}`.
    pub fn builtin_proxy() -> Self {
        WindowQueries {
            requests: builtin(
                r#"sum(increase(sluice_proxy_requests_total{service="{{service}}",revision="{{revision}}"}[{{interval}}]))"#,
            ),
            errors: builtin(
                r#"sum(increase(sluice_proxy_requests_total{service="{{service}}",revision="{{revision}}",class="5xx"}[{{interval}}]))"#,
            ),
            latency_buckets: Some(builtin(
                r#"sum by (le) (increase(sluice_proxy_request_duration_seconds_bucket{service="{{service}}",revision="{{revision}}"}[{{interval}}]))"#,
            )),
            // Every class is scraped together; one of them is enough to see when.
            coverage: builtin(
                r#"sluice_proxy_requests_total{service="{{service}}",revision="{{revision}}",class="2xx"}[{{interval}}]"#,
            ),
        }
    }
}

/// A template written in this file; a test parses each, so a failure here is a bug caught before release.
fn builtin(text: &str) -> QueryTemplate {
    QueryTemplate::parse(text).unwrap_or_else(|error| panic!("built-in template {text}: {error}"))
}

/// Where Prometheus is and how to ask it.
#[derive(Clone, Debug)]
pub struct PrometheusConfig {
    /// Prometheus' base URL, e.g. `http://127.0.0.1:9090` (a path prefix such as `/prometheus` is kept).
    pub url: String,
    /// The window's queries.
    pub queries: WindowQueries,
    /// The longest stretch without a sample (between two scrapes, or at either end of the window) that still
    /// counts as covered; about twice the scrape interval.
    pub max_gap: Duration,
    /// Each HTTP request's timeout.
    pub timeout: Duration,
    /// Retries of a failed query.
    pub retry: RetryPolicy,
}

impl PrometheusConfig {
    /// The built-in proxy's metrics scraped every 15 s: gaps up to 30 s, requests time out after 5 s.
    pub fn new(url: impl Into<String>) -> Self {
        PrometheusConfig {
            url: url.into(),
            queries: WindowQueries::builtin_proxy(),
            max_gap: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
        }
    }
}

/// Reads metrics from Prometheus.
#[derive(Clone, Debug)]
pub struct PrometheusSource {
    api: Url,
    client: reqwest::Client,
    queries: WindowQueries,
    max_gap: Duration,
    retry: RetryPolicy,
}

impl PrometheusSource {
    /// A source for the Prometheus at `config.url`; fails on a URL that is not `http(s)://…`.
    pub fn new(config: PrometheusConfig) -> Result<Self, ConfigError> {
        let mut base = crate::error::http_url(&config.url)?;
        // `join` replaces the last path segment unless the path ends with a slash.
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let api = base.join("api/v1/").map_err(|e| ConfigError::Url {
            url: config.url.clone(),
            detail: e.to_string(),
        })?;
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| ConfigError::Client(e.to_string()))?;
        Ok(PrometheusSource {
            api,
            client,
            queries: config.queries,
            max_gap: config.max_gap,
            retry: config.retry,
        })
    }

    /// An instant query (`/api/v1/query`) evaluated at `at`, or at Prometheus' now.
    pub async fn instant_query(&self, query: &str, at: Option<Timestamp>) -> Result<QueryResult, MetricsError> {
        let mut params = vec![("query", query.to_owned())];
        if let Some(at) = at {
            params.push(("time", unix_seconds(at)));
        }
        self.get("query", &params, query).await
    }

    /// A range query (`/api/v1/query_range`): the expression evaluated every `step` from `start` to `end`, one
    /// series per result. Empty when no series matched.
    pub async fn range_query(
        &self,
        query: &str,
        start: Timestamp,
        end: Timestamp,
        step: Duration,
    ) -> Result<Vec<Series>, MetricsError> {
        let params = [
            ("query", query.to_owned()),
            ("start", unix_seconds(start)),
            ("end", unix_seconds(end)),
            ("step", format!("{:.3}", step.as_secs_f64().max(0.001))),
        ];
        match self.get("query_range", &params, query).await? {
            QueryResult::Matrix(series) if series.iter().all(|s| s.samples.is_empty()) => Err(MetricsError::Empty {
                what: what(query),
                detail: String::new(),
            }),
            QueryResult::Matrix(series) => Ok(series),
            other => Err(MetricsError::Parse {
                what: what(query),
                detail: format!("a range query answered {}; expected a matrix", kind(&other)),
            }),
        }
    }

    /// One number for a custom check: `template` rendered with `vars`, evaluated now. It must give a scalar or
    /// exactly one series; no series, several, or NaN are errors.
    pub async fn query_value(&self, template: &QueryTemplate, vars: &TemplateVars<'_>) -> Result<f64, MetricsError> {
        let query = template.render(vars);
        let result = self.instant_query(&query, None).await?;
        window::single_value(result, &what(&query))
    }

    /// The window's counts, p99s, latency buckets (when there is a latency query) and coverage.
    async fn observe(&self, query: &WindowQuery) -> Result<Window, MetricsError> {
        let now = Timestamp::now();
        let span = positive(now.duration_since(query.since));
        let (stable, candidate) = tokio::try_join!(
            self.coverage(&query.service, &query.stable, query.since, now, span),
            self.coverage(&query.service, &query.candidate, query.since, now, span),
        )?;
        let (Some(stable), Some(candidate)) = (stable, candidate) else {
            // The window is younger than a scrape: nothing to count yet, and nothing to conclude.
            return Ok(Window::default());
        };
        // Both revisions are counted at the same instant, the older of their newest samples.
        let end = stable.last.min(candidate.last);
        let interval = positive(end.duration_since(query.since));
        let (stable_window, candidate_window) = tokio::try_join!(
            self.revision(&query.service, &query.stable, end, interval),
            self.revision(&query.service, &query.candidate, end, interval),
        )?;
        Ok(Window {
            candidate: candidate_window,
            stable: stable_window,
            complete: stable.complete && candidate.complete,
        })
    }

    /// How one revision's samples cover `(since, now]`; `None` when the window is too young to have one.
    async fn coverage(
        &self,
        service: &str,
        revision: &str,
        since: Timestamp,
        now: Timestamp,
        span: Duration,
    ) -> Result<Option<window::Coverage>, MetricsError> {
        let vars = TemplateVars {
            service,
            revision,
            interval: span,
        };
        let query = self.queries.coverage.render(&vars);
        let series = match self.instant_query(&query, Some(now)).await? {
            QueryResult::Matrix(series) => series,
            other => {
                return Err(MetricsError::Parse {
                    what: what(&query),
                    detail: format!(
                        "{}; the coverage query must be a range selector `…[{{{{interval}}}}]`",
                        kind(&other)
                    ),
                });
            }
        };
        match window::coverage(&series, since, now, self.max_gap) {
            Some(coverage) => Ok(Some(coverage)),
            None if span <= self.max_gap => Ok(None),
            None => Err(MetricsError::Empty {
                what: what(&query),
                detail: format!("; no sample of {service}/{revision} in the last {span:?}"),
            }),
        }
    }

    /// One revision's counts and latency over `interval` up to `end`.
    async fn revision(
        &self,
        service: &str,
        revision: &str,
        end: Timestamp,
        interval: Duration,
    ) -> Result<RevisionWindow, MetricsError> {
        let vars = TemplateVars {
            service,
            revision,
            interval,
        };
        let single = |template: &QueryTemplate| {
            let query = template.render(&vars);
            async move {
                let result = self.instant_query(&query, Some(end)).await?;
                let what = what(&query);
                window::count(window::single_value(result, &what)?, &what)
            }
        };
        let buckets = async {
            let Some(template) = &self.queries.latency_buckets else {
                return Ok(None);
            };
            let query = template.render(&vars);
            match self.instant_query(&query, Some(end)).await? {
                QueryResult::Vector(buckets) => window::histogram(&buckets, &what(&query)).map(Some),
                other => Err(MetricsError::Parse {
                    what: what(&query),
                    detail: format!("{}; expected an instant vector of buckets", kind(&other)),
                }),
            }
        };
        let (requests, errors, latency) =
            tokio::try_join!(single(&self.queries.requests), single(&self.queries.errors), buckets)?;
        Ok(RevisionWindow {
            requests,
            errors,
            p99_ms: latency.as_ref().and_then(|h| h.quantile(0.99)),
            latency,
        })
    }

    /// One GET of the API, retried by the policy.
    async fn get(&self, endpoint: &str, params: &[(&str, String)], query: &str) -> Result<QueryResult, MetricsError> {
        let what = what(query);
        let mut url = self.api.join(endpoint).map_err(|e| MetricsError::Request {
            what: what.clone(),
            detail: e.to_string(),
        })?;
        url.query_pairs_mut().extend_pairs(params);
        self.retry.run(&what, || self.attempt(url.clone(), &what)).await
    }

    async fn attempt(&self, url: Url, what: &str) -> Result<QueryResult, MetricsError> {
        let request_failed = |e: reqwest::Error| MetricsError::Request {
            what: what.to_owned(),
            detail: e.to_string(),
        };
        let response = self.client.get(url).send().await.map_err(request_failed)?;
        let status = response.status();
        let body = response.text().await.map_err(request_failed)?;
        if !status.is_success() {
            return Err(MetricsError::Status {
                what: what.to_owned(),
                status: status.as_u16(),
                detail: response::error_detail(&body),
            });
        }
        response::parse(&body).map_err(|e| MetricsError::Parse {
            what: what.to_owned(),
            detail: match e {
                ResponseError::Parse(detail) => detail,
                ResponseError::Failed(detail) => format!("Prometheus reported an error: {detail}"),
            },
        })
    }
}

impl MetricSource for PrometheusSource {
    /// Prometheus scrapes on its own schedule: there is nothing to sample here.
    async fn refresh(&self) -> Result<(), MetricsError> {
        Ok(())
    }

    async fn window(&self, query: &WindowQuery) -> Result<Window, MetricsError> {
        self.observe(query).await
    }
}

fn what(query: &str) -> String {
    format!("Prometheus query `{query}`")
}

fn kind(result: &QueryResult) -> &'static str {
    match result {
        QueryResult::Scalar(_) => "a scalar",
        QueryResult::Vector(_) => "an instant vector",
        QueryResult::Matrix(_) => "a range vector",
    }
}

/// Unix seconds with milliseconds, as the API's `time`, `start` and `end` take them.
fn unix_seconds(at: Timestamp) -> String {
    let ms = at.as_millisecond();
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

/// A window's length; a `since` in the future (clock skew) gives the shortest PromQL range instead.
fn positive(duration: SignedDuration) -> Duration {
    Duration::try_from(duration).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests;

//! Why a source could not observe. Every failure is reported as such, never as zero traffic, and says which
//! step failed so that an operator reading an event knows whether to fix a query, a URL or the network.

use thiserror::Error;

/// Why a source could not observe.
#[derive(Debug, Error)]
pub enum MetricsError {
    /// The source could not be reached or answered garbage.
    #[error("metrics: cannot read {what}: {detail}")]
    Unavailable {
        /// What was being read.
        what: String,
        /// Why it failed.
        detail: String,
    },
    /// The source has not observed anything yet.
    #[error("metrics: no observation yet")]
    NoData,
    /// The request could not be sent or got no answer in time (connection refused, timeout).
    #[error("metrics: {what} failed: {detail}")]
    Request {
        /// The query or URL.
        what: String,
        /// The transport's reason.
        detail: String,
    },
    /// The server answered with a status outside 2xx.
    #[error("metrics: {what} answered status {status}: {detail}")]
    Status {
        /// The query or URL.
        what: String,
        /// The HTTP status code.
        status: u16,
        /// The server's explanation, when it gave one (Prometheus' `errorType: error`).
        detail: String,
    },
    /// The answer arrived but is not what the query expects.
    #[error("metrics: cannot parse the answer to {what}: {detail}")]
    Parse {
        /// The query or URL.
        what: String,
        /// What was wrong with the answer.
        detail: String,
    },
    /// The query succeeded but matched nothing: the series does not exist (yet), or the path is absent.
    #[error("metrics: {what} returned an empty result{detail}")]
    Empty {
        /// The query or URL.
        what: String,
        /// Extra context, starting with a separator, or empty.
        detail: String,
    },
    /// One value was expected but the query returned several series.
    #[error("metrics: {what} returned {series} series; expected one (aggregate it, e.g. with sum())")]
    Ambiguous {
        /// The query.
        what: String,
        /// How many series came back.
        series: usize,
    },
    /// The value is NaN (e.g. a ratio with no requests), which no check can compare.
    #[error("metrics: {what} returned NaN")]
    NotANumber {
        /// The query or URL.
        what: String,
    },
}

impl MetricsError {
    /// Whether asking again may give another answer: transport failures, server-side errors (5xx) and rate
    /// limiting (429). A bad query, an unparsable answer or an empty result would only repeat.
    pub fn is_transient(&self) -> bool {
        match self {
            MetricsError::Unavailable { .. } | MetricsError::Request { .. } => true,
            MetricsError::Status { status, .. } => *status >= 500 || *status == 429,
            MetricsError::NoData
            | MetricsError::Parse { .. }
            | MetricsError::Empty { .. }
            | MetricsError::Ambiguous { .. }
            | MetricsError::NotANumber { .. } => false,
        }
    }
}

/// Why a source could not be set up.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The URL does not parse or is not HTTP.
    #[error("metrics: invalid URL {url:?}: {detail}")]
    Url {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The HTTP client could not be built (e.g. no TLS backend for the system).
    #[error("metrics: cannot build the HTTP client: {0}")]
    Client(String),
    /// A header name or value that HTTP does not allow.
    #[error("metrics: invalid header {name:?}: {detail}")]
    Header {
        /// The header's name.
        name: String,
        /// What is wrong with it (the value itself is not repeated: it may be a secret).
        detail: String,
    },
    /// The JSON path does not parse.
    #[error("metrics: {0}")]
    JsonPath(#[from] crate::json_path::JsonPathError),
}

/// Parses `url`, which must be `http://` or `https://`: the check every HTTP-backed source makes.
pub(crate) fn http_url(url: &str) -> Result<reqwest::Url, ConfigError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| ConfigError::Url {
        url: url.to_string(),
        detail: e.to_string(),
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ConfigError::Url {
            url: url.to_string(),
            detail: "expected an http:// or https:// URL".into(),
        });
    }
    Ok(parsed)
}

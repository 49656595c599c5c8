//! A metric read from any JSON API: GET or POST a URL and take the number at a JSON path.

use std::fmt;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use serde_json::Value;

use crate::json_path::JsonPath;
use crate::{ConfigError, MetricsError, RetryPolicy};

/// The HTTP method of a web check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WebMethod {
    /// GET (the default); a body is not sent.
    #[default]
    Get,
    /// POST, with the JSON body if one is given.
    Post,
}

/// What to ask and where the number is in the answer.
#[derive(Clone, Debug, PartialEq)]
pub struct WebConfig {
    /// The URL (`http://` or `https://`).
    pub url: String,
    /// GET or POST.
    pub method: WebMethod,
    /// Extra headers, e.g. `Authorization`.
    pub headers: Vec<(String, String)>,
    /// A JSON body, sent with POST.
    pub body: Option<Value>,
    /// Where the number is, e.g. `$.data.value`.
    pub json_path: String,
    /// Each request's timeout.
    pub timeout: Duration,
    /// Retries of a failed request.
    pub retry: RetryPolicy,
}

impl WebConfig {
    /// A GET of `url` reading `json_path`, with a 5 s timeout and the default retries.
    pub fn get(url: impl Into<String>, json_path: impl Into<String>) -> Self {
        WebConfig {
            url: url.into(),
            method: WebMethod::Get,
            headers: Vec::new(),
            body: None,
            json_path: json_path.into(),
            timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
        }
    }
}

/// One checked web metric, ready to be read.
#[derive(Clone)]
pub struct WebSource {
    url: Url,
    method: WebMethod,
    headers: HeaderMap,
    body: Option<Value>,
    path: JsonPath,
    client: reqwest::Client,
    retry: RetryPolicy,
}

impl fmt::Debug for WebSource {
    /// Header values are left out: they are often credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSource")
            .field("url", &self.url.as_str())
            .field("method", &self.method)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("path", &self.path.to_string())
            .finish_non_exhaustive()
    }
}

impl WebSource {
    /// Checks the URL, the headers and the path.
    pub fn new(config: WebConfig) -> Result<Self, ConfigError> {
        let url = crate::error::http_url(&config.url)?;
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            let invalid = |detail: String| ConfigError::Header {
                name: name.clone(),
                detail,
            };
            let header = HeaderName::from_bytes(name.as_bytes()).map_err(|e| invalid(e.to_string()))?;
            let mut value = HeaderValue::from_str(value).map_err(|e| invalid(e.to_string()))?;
            value.set_sensitive(true);
            headers.append(header, value);
        }
        let path = JsonPath::parse(&config.json_path)?;
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| ConfigError::Client(e.to_string()))?;
        Ok(WebSource {
            url,
            method: config.method,
            headers,
            body: config.body,
            path,
            client,
            retry: config.retry,
        })
    }

    /// Asks (with retries) and reads the number. A JSON number, or a string holding one (some APIs, Prometheus
    /// among them, quote numbers). An absent value or `null` is an empty result; anything else is a parse error.
    pub async fn value(&self) -> Result<f64, MetricsError> {
        let what = match self.method {
            WebMethod::Get => format!("GET {}", self.url),
            WebMethod::Post => format!("POST {}", self.url),
        };
        let answer = self.retry.run(&what, || self.attempt(&what)).await?;
        number_at(&answer, &self.path, &what)
    }

    async fn attempt(&self, what: &str) -> Result<Value, MetricsError> {
        let request_failed = |e: reqwest::Error| MetricsError::Request {
            what: what.to_owned(),
            detail: e.to_string(),
        };
        let method = match self.method {
            WebMethod::Get => Method::GET,
            WebMethod::Post => Method::POST,
        };
        let mut request = self
            .client
            .request(method, self.url.clone())
            .headers(self.headers.clone());
        if let (WebMethod::Post, Some(body)) = (self.method, &self.body) {
            request = request.json(body);
        }
        let response = request.send().await.map_err(request_failed)?;
        let status = response.status();
        let body = response.text().await.map_err(request_failed)?;
        if !status.is_success() {
            return Err(MetricsError::Status {
                what: what.to_owned(),
                status: status.as_u16(),
                detail: body.chars().take(300).collect(),
            });
        }
        serde_json::from_str(&body).map_err(|e| MetricsError::Parse {
            what: what.to_owned(),
            detail: format!("not JSON: {e}"),
        })
    }
}

/// The number at `path` in `answer`.
fn number_at(answer: &Value, path: &JsonPath, what: &str) -> Result<f64, MetricsError> {
    let parse = |detail: String| MetricsError::Parse {
        what: what.to_owned(),
        detail,
    };
    let value = match path.read(answer) {
        None | Some(Value::Null) => {
            return Err(MetricsError::Empty {
                what: what.to_owned(),
                detail: format!("; nothing at {path}"),
            });
        }
        Some(Value::Number(number)) => number
            .as_f64()
            .ok_or_else(|| parse(format!("{number} at {path} is not a finite number")))?,
        Some(Value::String(text)) => text
            .trim()
            .parse::<f64>()
            .map_err(|_| parse(format!("{text:?} at {path} is not a number")))?,
        Some(other) => {
            let kind = match other {
                Value::Bool(_) => "a boolean",
                Value::Array(_) => "an array",
                _ => "an object",
            };
            return Err(parse(format!("{kind} at {path}; expected a number")));
        }
    };
    if value.is_nan() {
        return Err(MetricsError::NotANumber { what: what.to_owned() });
    }
    Ok(value)
}

#[cfg(test)]
mod tests;

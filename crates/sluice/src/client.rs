//! The command-line client of the daemon's API.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;

use crate::datadir::DataDir;
use crate::model::ErrorBody;

/// A client of one daemon, found through its data directory.
pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

/// An API call the daemon answered with an error.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The error message, followed by every field error of a rejected spec.
    pub message: String,
}

impl Client {
    /// Connects to the daemon serving `data_dir`.
    pub fn for_data_dir(data_dir: &DataDir) -> Result<Client> {
        let info = data_dir.daemon_info()?;
        let token = data_dir.token(false)?;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
        Ok(Client {
            base: format!("http://{}", info.api),
            token,
            http,
        })
    }

    /// Calls the API and decodes its JSON answer.
    pub async fn call<T: DeserializeOwned>(&self, method: Method, path: &str, body: Option<String>) -> Result<T> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.header("content-type", "application/yaml").body(body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach the daemon at {} (is it running?)", self.base))?;
        let status = response.status();
        let text = response.text().await.context("the daemon's answer was cut off")?;
        if !status.is_success() {
            let body: ErrorBody = serde_json::from_str(&text).unwrap_or(ErrorBody {
                error: text,
                errors: vec![],
            });
            let mut message = body.error;
            for error in body.errors {
                message.push_str("\n  ");
                message.push_str(&error);
            }
            return Err(ApiError { status, message }.into());
        }
        match serde_json::from_str(&text) {
            Ok(value) => Ok(value),
            Err(error) => bail!("the daemon's answer to {method} {path} is not what this client expects: {error}"),
        }
    }
}

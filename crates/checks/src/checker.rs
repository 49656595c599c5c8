//! Running a spec's checks in order: every smoke check, then the load test if they all passed.

use std::time::Duration;

use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use sluice_spec::Checks;
use tracing::debug;

use crate::smoke::HttpClient;
use crate::{CheckReport, Target, load, smoke};

/// The limits every check runs within.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckOptions {
    /// Longest wait for one request, from connecting to the end of its body; also how long the load test may
    /// run past its duration for the last answers.
    pub request_timeout: Duration,
    /// Most load-test requests outstanding at once; a request due beyond it is not sent and counts as failed.
    pub max_in_flight: usize,
    /// Most bytes of a smoke check's answer read and searched for its expected text.
    pub max_body_bytes: usize,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(10),
            max_in_flight: 512,
            max_body_bytes: 1 << 20,
        }
    }
}

/// Runs checks; holds the smoke checks' HTTP client so its connections are reused between runs.
#[derive(Clone, Debug)]
pub struct Checker {
    options: CheckOptions,
    client: HttpClient,
}

impl Default for Checker {
    fn default() -> Self {
        Self::new(CheckOptions::default())
    }
}

impl Checker {
    /// A checker with these limits.
    pub fn new(options: CheckOptions) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(options.request_timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .build(connector);
        Self { options, client }
    }

    /// The limits this checker runs within.
    pub fn options(&self) -> &CheckOptions {
        &self.options
    }

    /// Runs every smoke check in order, then the load test if they all passed, and reports. Never fails: a
    /// request that cannot be built or sent is a failed check with its reason.
    pub async fn run(&self, checks: &Checks, target: &Target) -> CheckReport {
        let mut smoke = Vec::with_capacity(checks.smoke.len());
        for check in &checks.smoke {
            let outcome = smoke::run(&self.client, check, target, &self.options).await;
            debug!(%target, passed = outcome.passed, reason = %outcome.reason, "smoke check");
            smoke.push(outcome);
        }
        let smoke_passed = smoke.iter().all(|outcome| outcome.passed);
        let load = match &checks.load_test {
            Some(test) if smoke_passed => Some(load::run(test, target, &self.options).await),
            _ => None,
        };
        let load_skipped = checks.load_test.is_some() && !smoke_passed;
        CheckReport {
            passed: smoke_passed && load.as_ref().is_none_or(|load| load.passed),
            smoke,
            load,
            load_skipped,
        }
    }
}

/// Runs `checks` against `target` with the default limits (10 s per request, 512 load requests in flight).
pub async fn run(checks: &Checks, target: &Target) -> CheckReport {
    Checker::default().run(checks, target).await
}

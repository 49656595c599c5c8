//! Running a load: pacing the schedule, enforcing the bounds, sending requests and recording
//! answers.
//!
//! Pacing uses `tokio::time::interval` with [`MissedTickBehavior::Burst`]: when the generator falls
//! behind (a busy runtime, a stalled thread), it catches up on the missed ticks instead of quietly
//! sending fewer requests, so the offered load stays what was asked for. A catch-up burst is still
//! capped by `max_in_flight`, and latencies are measured from each request's *scheduled* time, so
//! the stall shows up in the figures rather than being hidden by them.

use std::future::pending;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::{JoinError, JoinHandle, JoinSet};
use tokio::time::{Instant, MissedTickBehavior, interval_at, sleep_until};
use tracing::debug;

use super::config::{LoadConfig, LoadConfigError, LoadPlan, PreparedRequest};
use super::stats::{LoadSnapshot, LoadStats};

const REVISION_HEADER: &str = "x-revision";

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Starts an open-loop load in the background and returns at once.
///
/// Requests are scheduled at `config.rate` per second until `config.duration` has passed,
/// `config.max_requests` have been scheduled, or [`LoadHandle::stop`] is called. A scheduled
/// request is dropped (and counted) when `config.max_in_flight` are already outstanding. Requests
/// in flight when scheduling ends still complete, each within `config.timeout`, so a run lasts at
/// most `duration + timeout`.
///
/// # Panics
///
/// When called outside a Tokio runtime, like [`tokio::spawn`].
pub fn start(config: LoadConfig) -> Result<LoadHandle, LoadConfigError> {
    let plan = LoadPlan::new(&config)?;
    let started = Instant::now();
    let stats = Arc::new(LoadStats::new(started));
    let (stop, stop_requested) = watch::channel(false);
    let driver = tokio::spawn(drive(plan, started, Arc::clone(&stats), stop_requested));
    Ok(LoadHandle { stats, stop, driver })
}

/// A load run in progress. Dropping the handle stops scheduling, like [`LoadHandle::stop`].
#[derive(Debug)]
pub struct LoadHandle {
    stats: Arc<LoadStats>,
    stop: watch::Sender<bool>,
    driver: JoinHandle<()>,
}

impl LoadHandle {
    /// The live statistics, to read while the run goes on.
    pub fn stats(&self) -> Arc<LoadStats> {
        Arc::clone(&self.stats)
    }

    /// Stops scheduling requests; those in flight still complete (or time out).
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Waits for the run to end, in-flight requests included, and returns the final figures.
    pub async fn finish(mut self) -> LoadSnapshot {
        if let Err(join_error) = (&mut self.driver).await {
            // A cancelled driver means the runtime is shutting down; the figures so far are still
            // true.
            propagate_panic(join_error);
        }
        self.stats.snapshot()
    }
}

async fn drive(plan: LoadPlan, started: Instant, stats: Arc<LoadStats>, mut stop_requested: watch::Receiver<bool>) {
    let client = http_client(&plan);
    // A duration too long to add to an instant is a run without a deadline; the other bounds still
    // hold.
    let deadline = started.checked_add(plan.duration);
    let mut deadline_reached = std::pin::pin!(until(deadline));
    let mut ticker = interval_at(started, plan.period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let free_slots = Arc::new(Semaphore::new(plan.max_in_flight));
    let mut in_flight = JoinSet::new();
    let mut templates = plan.requests.iter().cycle();
    let mut scheduled: u64 = 0;

    while scheduled < plan.max_requests {
        tokio::select! {
            biased;
            // An error means the handle was dropped: nobody is left to want more load.
            _ = stop_requested.changed() => break,
            () = &mut deadline_reached => break,
            Some(finished) = in_flight.join_next() => {
                if let Err(join_error) = finished {
                    propagate_panic(join_error);
                }
            }
            scheduled_at = ticker.tick() => {
                if deadline.is_some_and(|deadline| scheduled_at >= deadline) {
                    break;
                }
                let Some(template) = templates.next() else { break };
                scheduled += 1;
                match Arc::clone(&free_slots).try_acquire_owned() {
                    Ok(slot) => {
                        stats.record_sent();
                        let exchange = Exchange {
                            request: template.clone(),
                            scheduled_at,
                            timeout: plan.timeout,
                        };
                        in_flight.spawn(exchange.run(client.clone(), Arc::clone(&stats), slot));
                    }
                    Err(_) => stats.record_dropped(),
                }
            }
        }
    }
    while let Some(finished) = in_flight.join_next().await {
        if let Err(join_error) = finished {
            propagate_panic(join_error);
        }
    }
}

async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => pending().await,
    }
}

/// A panic in a task is a bug; re-raising it keeps it visible. Cancellation only happens at runtime
/// shutdown and needs no handling.
fn propagate_panic(join_error: JoinError) {
    if join_error.is_panic() {
        std::panic::resume_unwind(join_error.into_panic());
    }
}

/// A keep-alive connection pool sized for the in-flight bound, so connections are reused, not
/// churned.
fn http_client(plan: &LoadPlan) -> HttpClient {
    let mut connector = HttpConnector::new();
    // Requests are small; Nagle's algorithm would add delay that is not the target's.
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(plan.timeout));
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(plan.max_in_flight)
        .pool_timer(TokioTimer::new())
        .build(connector)
}

/// One request and the figures needed to judge its answer.
struct Exchange {
    request: PreparedRequest,
    scheduled_at: Instant,
    timeout: Duration,
}

impl Exchange {
    /// Sends the request and records the outcome; `_slot` keeps an in-flight slot taken until then.
    async fn run(self, client: HttpClient, stats: Arc<LoadStats>, _slot: OwnedSemaphorePermit) {
        match tokio::time::timeout(self.timeout, send(&client, self.request.to_request())).await {
            Ok(Ok(answer)) => {
                stats.record_response(answer.revision.as_deref(), answer.status, self.scheduled_at.elapsed());
            }
            Ok(Err(error)) => {
                debug!(error = ?error, "load request failed");
                stats.record_transport_error();
            }
            Err(_) => {
                debug!(timeout = ?self.timeout, "load request timed out");
                stats.record_transport_error();
            }
        }
    }
}

/// What the load generator keeps of a response.
struct Answer {
    status: StatusCode,
    revision: Option<String>,
}

/// Why a request got no complete response.
#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("sending the request failed: {0}")]
    Request(#[from] hyper_util::client::legacy::Error),
    #[error("reading the response body failed: {0}")]
    Body(#[from] hyper::Error),
}

/// Sends one request and reads the whole response, discarding the body: a request counts as
/// answered only once its body has arrived, and reading it lets the connection be reused.
async fn send(client: &HttpClient, request: Request<Full<Bytes>>) -> Result<Answer, SendError> {
    let response = client.request(request).await?;
    let status = response.status();
    let revision = response
        .headers()
        .get(REVISION_HEADER)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        frame?;
    }
    Ok(Answer { status, revision })
}

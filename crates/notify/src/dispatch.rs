//! Fire-and-forget delivery of notifications and of webhooks whose answer changes nothing (`event`,
//! `post-rollout`), so that a slow or dead endpoint never delays a rollout.
//!
//! [`Dispatcher::dispatch`] only puts the delivery in a bounded queue and returns; a full queue drops it (counted,
//! and logged). A background task takes deliveries off the queue into one lane per endpoint: a lane delivers one
//! at a time, in order, and holds at most `backlog_per_endpoint` deliveries (more are dropped), and at most
//! `concurrency` lanes deliver at once. An endpoint that hangs therefore ties up one delivery slot and its own
//! lane, and every other endpoint keeps getting its messages.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use sluice_spec::{Alert, Webhook, WebhookKind};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tracing::warn;

use crate::message::{self, Notification, provider_name};
use crate::post::{Post, post};
use crate::secret;
use crate::webhook::{WebhookClient, WebhookPayload};

/// How much the dispatcher holds and how hard it tries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DispatchConfig {
    /// Deliveries waiting to be picked up; more are dropped.
    pub queue: usize,
    /// Deliveries under way at once, across all endpoints.
    pub concurrency: usize,
    /// Deliveries one endpoint may have waiting or under way; more are dropped.
    pub backlog_per_endpoint: usize,
    /// Attempts per notification, the first included. (A webhook uses its own `retries` and `timeout`.)
    pub attempts: u32,
    /// The limit of one notification attempt.
    pub timeout: Duration,
    /// The pause after a notification's first failed attempt; it doubles after each further one.
    pub backoff: Duration,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        Self {
            queue: 1024,
            concurrency: 16,
            backlog_per_endpoint: 64,
            attempts: 3,
            timeout: Duration::from_secs(10),
            backoff: Duration::from_secs(1),
        }
    }
}

/// Something to deliver.
#[derive(Clone, Debug)]
pub enum Delivery {
    /// A notification to one alert's endpoint.
    Notification {
        /// Where it goes, and in which shape.
        alert: Alert,
        /// What it says.
        notification: Notification,
    },
    /// A call of an `event` or `post-rollout` webhook, whose answer changes nothing.
    Webhook {
        /// The hook.
        hook: Webhook,
        /// Its payload.
        payload: WebhookPayload,
        /// The wall clock at dispatch, unix seconds; the signature adds the time spent in the queue.
        now_unix: i64,
    },
}

/// What [`Dispatcher::dispatch`] did with a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dispatched {
    /// Queued; it will be delivered in the background.
    Queued,
    /// Not sent: the notification is less severe than the alert asks for.
    BelowSeverity,
    /// Not sent: the hook's answer matters (a gate, `rollout`, `pre-rollout`, `rollback`), so it must be called
    /// with [`WebhookClient::call`] and its outcome awaited.
    NotFireAndForget,
    /// Not sent: the queue was full. Counted in [`Counters::dropped`].
    Dropped,
    /// Not sent: the dispatcher was drained.
    Closed,
}

/// What the dispatcher has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Deliveries answered 2xx.
    pub delivered: u64,
    /// Deliveries that failed every attempt, or whose URL or secret could not be read.
    pub failed: u64,
    /// Deliveries dropped because the queue or their endpoint's backlog was full.
    pub dropped: u64,
}

/// Delivers in the background; see the [module documentation](self).
#[derive(Debug)]
pub struct Dispatcher {
    sender: Mutex<Option<mpsc::Sender<Queued>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
    shared: Arc<Shared>,
}

impl Dispatcher {
    /// Starts the background task on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, as `tokio::spawn` does.
    pub fn new(config: DispatchConfig, client: WebhookClient) -> Self {
        let (sender, receiver) = mpsc::channel(config.queue.max(1));
        let shared = Arc::new(Shared {
            slots: Arc::new(Semaphore::new(config.concurrency.max(1))),
            config,
            client,
            lanes: Mutex::new(HashMap::new()),
            delivered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        });
        let worker = tokio::spawn(run(shared.clone(), receiver));
        Self {
            sender: Mutex::new(Some(sender)),
            worker: Mutex::new(Some(worker)),
            shared,
        }
    }

    /// Queues a delivery and returns at once, whatever the endpoint does.
    pub fn dispatch(&self, delivery: Delivery) -> Dispatched {
        match &delivery {
            Delivery::Notification { alert, notification } if !message::accepts(alert, notification.severity) => {
                return Dispatched::BelowSeverity;
            }
            Delivery::Webhook { hook, .. } if !matches!(hook.kind, WebhookKind::Event | WebhookKind::PostRollout) => {
                return Dispatched::NotFireAndForget;
            }
            _ => {}
        }
        let Some(sender) = lock(&self.sender).clone() else {
            return Dispatched::Closed;
        };
        match sender.try_send(Queued {
            delivery,
            at: Instant::now(),
        }) {
            Ok(()) => Dispatched::Queued,
            Err(mpsc::error::TrySendError::Full(queued)) => {
                self.shared.drop_one(&queued.delivery, "the queue is full");
                Dispatched::Dropped
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Dispatched::Closed,
        }
    }

    /// [`Dispatcher::dispatch`] of a notification to one alert.
    pub fn notify(&self, alert: &Alert, notification: &Notification) -> Dispatched {
        self.dispatch(Delivery::Notification {
            alert: alert.clone(),
            notification: notification.clone(),
        })
    }

    /// [`Dispatcher::dispatch`] of an `event` or `post-rollout` webhook call.
    pub fn fire(&self, hook: &Webhook, payload: WebhookPayload, now_unix: i64) -> Dispatched {
        self.dispatch(Delivery::Webhook {
            hook: hook.clone(),
            payload,
            now_unix,
        })
    }

    /// The counts so far.
    pub fn counters(&self) -> Counters {
        Counters {
            delivered: self.shared.delivered.load(Ordering::Relaxed),
            failed: self.shared.failed.load(Ordering::Relaxed),
            dropped: self.shared.dropped.load(Ordering::Relaxed),
        }
    }

    /// Takes no more deliveries and waits at most `within` for those queued or under way (at shutdown, so
    /// that the last events are not lost). Later dispatches return [`Dispatched::Closed`].
    pub async fn drain(&self, within: Duration) -> Counters {
        drop(lock(&self.sender).take());
        let worker = lock(&self.worker).take();
        if let Some(worker) = worker {
            // What is still under way after `within` carries on in the background until the runtime stops.
            let _ = tokio::time::timeout(within, worker).await;
        }
        self.counters()
    }
}

struct Queued {
    delivery: Delivery,
    at: Instant,
}

#[derive(Debug)]
struct Shared {
    config: DispatchConfig,
    client: WebhookClient,
    /// Delivery slots across all endpoints.
    slots: Arc<Semaphore>,
    /// One lane per endpoint that has deliveries waiting or under way.
    lanes: Mutex<HashMap<String, Lane>>,
    delivered: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
}

#[derive(Debug)]
struct Lane {
    /// Signalled when the endpoint's last admitted delivery is done. Each delivery waits for the one admitted
    /// before it, so the endpoint's deliveries go one at a time in the order they were queued, whatever order
    /// the runtime starts their tasks in.
    tail: Option<oneshot::Receiver<()>>,
    /// Deliveries waiting for their turn or under way.
    pending: usize,
}

impl Shared {
    fn drop_one(&self, delivery: &Delivery, reason: &str) {
        let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        // A dead endpoint under a stream of events would otherwise log every drop.
        if dropped.is_power_of_two() {
            match delivery {
                Delivery::Notification { alert, notification } => warn!(
                    provider = provider_name(alert.provider),
                    url_from = %secret::describe(&alert.url_from),
                    service = %notification.service,
                    dropped,
                    "notification dropped: {reason}"
                ),
                Delivery::Webhook { hook, payload, .. } => warn!(
                    hook = %hook.name,
                    kind = %hook.kind,
                    service = %payload.service,
                    dropped,
                    "webhook call dropped: {reason}"
                ),
            }
        }
    }

    /// A place at the end of the endpoint's lane, or `None` when its backlog is full.
    fn enter(&self, endpoint: &str) -> Option<Turn> {
        let mut lanes = lock(&self.lanes);
        let lane = lanes
            .entry(endpoint.to_owned())
            .or_insert_with(|| Lane { tail: None, pending: 0 });
        if lane.pending >= self.config.backlog_per_endpoint.max(1) {
            return None;
        }
        lane.pending += 1;
        let (done, tail) = oneshot::channel();
        Some(Turn {
            after: lane.tail.replace(tail),
            done,
        })
    }

    fn leave(&self, endpoint: &str) {
        if let Entry::Occupied(mut lane) = lock(&self.lanes).entry(endpoint.to_owned()) {
            lane.get_mut().pending = lane.get().pending.saturating_sub(1);
            if lane.get().pending == 0 {
                lane.remove();
            }
        }
    }

    async fn deliver(&self, queued: Queued) -> bool {
        match queued.delivery {
            Delivery::Notification { alert, notification } => self.send_notification(&alert, &notification).await,
            Delivery::Webhook {
                hook,
                payload,
                now_unix,
            } => {
                let waited = i64::try_from(queued.at.elapsed().as_secs()).unwrap_or(i64::MAX);
                let outcome = self.client.call(&hook, &payload, now_unix.saturating_add(waited)).await;
                if !outcome.passed {
                    warn!(
                        hook = %hook.name,
                        kind = %hook.kind,
                        service = %payload.service,
                        secret_from = hook.secret_from.as_ref().map(secret::describe),
                        attempts = outcome.attempts,
                        detail = %outcome.detail,
                        "webhook call failed"
                    );
                }
                outcome.passed
            }
        }
    }

    async fn send_notification(&self, alert: &Alert, notification: &Notification) -> bool {
        let provider = provider_name(alert.provider);
        let url = match secret::resolve_async(&alert.url_from).await {
            Ok(url) => url,
            Err(error) => {
                warn!(provider, service = %notification.service, "notification not sent: its URL: {error}");
                return false;
            }
        };
        let body = match serde_json::to_vec(&message::body(alert, notification)) {
            Ok(body) => Bytes::from(body),
            Err(error) => {
                warn!(provider, service = %notification.service, "notification not sent: {error}");
                return false;
            }
        };
        let posted = post(
            self.client.http(),
            Post {
                url: url.expose(),
                body,
                timeout: self.config.timeout,
                attempts: self.config.attempts,
                backoff: self.config.backoff,
                signing: None,
            },
        )
        .await;
        if !posted.passed {
            warn!(
                provider,
                url_from = %secret::describe(&alert.url_from),
                service = %notification.service,
                attempts = posted.attempts,
                detail = %posted.detail,
                "notification not delivered"
            );
        }
        posted.passed
    }
}

/// Takes deliveries off the queue into their lanes until the queue is closed and empty, then waits for the
/// deliveries under way.
async fn run(shared: Arc<Shared>, mut receiver: mpsc::Receiver<Queued>) {
    let mut deliveries = JoinSet::new();
    loop {
        tokio::select! {
            queued = receiver.recv() => match queued {
                Some(queued) => admit(&shared, queued, &mut deliveries),
                None => break,
            },
            // Reaps finished deliveries so the set does not grow.
            Some(_) = deliveries.join_next(), if !deliveries.is_empty() => {}
        }
    }
    while deliveries.join_next().await.is_some() {}
}

/// A delivery's place in its lane.
struct Turn {
    /// The previous delivery's signal, if one was admitted before and is not known to be done.
    after: Option<oneshot::Receiver<()>>,
    /// Tells the next delivery it may go (also when dropped, should this one's task end early).
    done: oneshot::Sender<()>,
}

fn admit(shared: &Arc<Shared>, queued: Queued, deliveries: &mut JoinSet<()>) {
    let endpoint = endpoint(&queued.delivery);
    let Some(turn) = shared.enter(&endpoint) else {
        shared.drop_one(&queued.delivery, "its endpoint has too many deliveries waiting");
        return;
    };
    let shared = shared.clone();
    deliveries.spawn(async move {
        if let Some(previous) = turn.after {
            // An error only means the previous delivery's task ended without signalling: it is done either way.
            let _ = previous.await;
        }
        // The semaphore is never closed, so acquiring only waits.
        let Ok(slot) = shared.slots.clone().acquire_owned().await else {
            return;
        };
        let counter = if shared.deliver(queued).await {
            &shared.delivered
        } else {
            &shared.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        // The turn is handed on before the lane may be removed, so one endpoint never has two deliveries under way.
        drop(slot);
        let _ = turn.done.send(());
        shared.leave(&endpoint);
    });
}

/// The lane a delivery goes into. Never logged: a webhook's URL may carry a token.
fn endpoint(delivery: &Delivery) -> String {
    match delivery {
        Delivery::Notification { alert, .. } => {
            format!(
                "alert {} {}",
                provider_name(alert.provider),
                secret::describe(&alert.url_from)
            )
        }
        Delivery::Webhook { hook, .. } => format!("hook {}", hook.url),
    }
}

/// A poisoned lock only means another thread panicked while holding it; the data (a sender, a map of counts)
/// is still consistent, so carry on.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

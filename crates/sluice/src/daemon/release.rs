//! The release path's I/O for the controller: checks against the candidate, the shadow stage's comparison,
//! webhook calls and notifications.
//!
//! Work that outlasts a decision (a 20-second load test, a webhook with retries) runs in a task whose result
//! waits here until the controller's next round picks it up, so nothing slow ever stalls a service's loop.
//! Notifications and fire-and-forget webhooks go through the [`Dispatcher`], which never waits on an endpoint.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use jiff::Timestamp;
use sluice_checks::{CheckReport, Target};
use sluice_engine::{CheckResult, CheckStage, Event, HookResult, Rollout, Severity, ShadowTally};
use sluice_notify::{DispatchConfig, Dispatcher, HookOutcome, Notification, WebhookClient, WebhookPayload};
use sluice_shadow::{DiffReport, ShadowHandle, ShadowServer, ShadowTargets};
use sluice_spec::{AlertSeverity, Checks, ServiceSpec, Shadow, Webhook, WebhookKind};
use sluice_store::Store;
use tokio::task::JoinHandle;
use tracing::warn;

/// Report kinds kept in the store, shown by `sluice status`.
pub const ISOLATION_REPORT: &str = "isolation";
/// The blue/green preview's checks.
pub const PRE_PROMOTION_REPORT: &str = "prePromotion";
/// The shadow stage's diff report.
pub const SHADOW_REPORT: &str = "shadow";

/// Work under way in a task; its result waits in the slot until taken. Dropping it cancels the task.
struct Pending<K, T> {
    key: K,
    slot: Arc<Mutex<Option<T>>>,
    task: JoinHandle<()>,
}

impl<K, T: Send + 'static> Pending<K, T> {
    fn spawn(key: K, work: impl Future<Output = T> + Send + 'static) -> Self {
        let slot = Arc::new(Mutex::new(None));
        let filled = slot.clone();
        let task = tokio::spawn(async move {
            let result = work.await;
            *filled.lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
        });
        Pending { key, slot, task }
    }

    fn take(&self) -> Option<T> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

impl<K, T> Drop for Pending<K, T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A service's checks run, keyed by the stage and the phase entry they belong to.
type CheckKey = (CheckStage, Timestamp);

/// The controller's release-path adapters, shared by every service's loop.
pub struct ReleaseIo {
    store: Arc<Store>,
    client: WebhookClient,
    dispatcher: Dispatcher,
    checks: Mutex<HashMap<String, Pending<CheckKey, CheckResult>>>,
    calls: Mutex<HashMap<String, Pending<(), Vec<HookResult>>>>,
    shadows: Mutex<HashMap<String, ShadowHandle>>,
}

impl ReleaseIo {
    /// Adapters writing their reports to `store`. Must be called inside the tokio runtime.
    pub fn new(store: Arc<Store>) -> Result<Self> {
        let client = WebhookClient::new().context("cannot build the webhook client")?;
        let dispatcher = Dispatcher::new(DispatchConfig::default(), client.clone());
        Ok(ReleaseIo {
            store,
            client,
            dispatcher,
            checks: Mutex::new(HashMap::new()),
            calls: Mutex::new(HashMap::new()),
            shadows: Mutex::new(HashMap::new()),
        })
    }

    /// The result of the checks the rollout asks for, once they finished; starts them when they are due and not
    /// under way. `target` is where they run: one of the candidate's instances, or the blue/green preview.
    pub fn checks(&self, spec: &ServiceSpec, rollout: &Rollout, target: Option<SocketAddr>) -> Option<CheckResult> {
        let service = rollout.service.clone();
        let mut runs = self.checks.lock().unwrap_or_else(|p| p.into_inner());
        let Some(stage) = rollout.checks_due() else {
            runs.remove(&service);
            return None;
        };
        let key = (stage, rollout.phase_since);
        if let Some(run) = runs.get(&service).filter(|run| run.key == key) {
            let result = run.take();
            if result.is_some() {
                runs.remove(&service);
            }
            return result;
        }
        let work = check_run(
            self.store.clone(),
            self.client.clone(),
            spec.clone(),
            rollout.clone(),
            stage,
            target,
        );
        runs.insert(service, Pending::spawn(key, work));
        None
    }

    /// The answers of the last webhook call, once they all came.
    pub fn answers(&self, service: &str) -> Vec<HookResult> {
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        let Some(results) = calls.get(service).and_then(Pending::take) else {
            return Vec::new();
        };
        calls.remove(service);
        results
    }

    /// Calls the webhooks the decided state asks for, unless a call is under way; the answers come back through
    /// [`ReleaseIo::answers`] on a later round.
    pub fn ask(&self, spec: &ServiceSpec, rollout: &Rollout, now: Timestamp) {
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        if calls.contains_key(&rollout.service) {
            return;
        }
        let due = rollout.hooks_due(now);
        let hooks: Vec<Webhook> = spec
            .spec
            .webhooks
            .iter()
            .filter(|hook| due.contains(&hook.kind))
            .cloned()
            .collect();
        if hooks.is_empty() {
            return;
        }
        let client = self.client.clone();
        let service = rollout.service.clone();
        let rollout = rollout.clone();
        let work = async move {
            let mut results = Vec::with_capacity(hooks.len());
            for hook in &hooks {
                let asked_at = Timestamp::now();
                let outcome = client.call(hook, &payload(hook, &rollout), asked_at.as_second()).await;
                results.push(hook_result(outcome, asked_at));
            }
            results
        };
        calls.insert(service, Pending::spawn((), work));
    }

    /// Starts the shadow stage's comparison listener for the service, or points a running one at `targets`.
    pub async fn start_shadow(&self, service: &str, settings: &Shadow, targets: ShadowTargets) -> Result<SocketAddr> {
        {
            let shadows = self.shadows.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(shadow) = shadows.get(service) {
                shadow
                    .set_targets(targets)
                    .with_context(|| format!("cannot retarget the shadow listener of {service}"))?;
                return Ok(shadow.addr());
            }
        }
        let shadow = ShadowServer::start(settings, targets)
            .await
            .with_context(|| format!("cannot start the shadow listener of {service}"))?;
        let addr = shadow.addr();
        // Only the service's own loop starts its listener, so no other can have appeared meanwhile.
        self.shadows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(service.to_string(), shadow);
        Ok(addr)
    }

    /// Where the service's comparison listener is, while its shadow stage runs.
    pub fn shadow_addr(&self, service: &str) -> Option<SocketAddr> {
        let shadows = self.shadows.lock().unwrap_or_else(|p| p.into_inner());
        shadows.get(service).map(ShadowHandle::addr)
    }

    /// Stops the service's comparison listener and keeps its final report.
    pub async fn stop_shadow(&self, service: &str) -> Result<()> {
        let shadow = self.shadows.lock().unwrap_or_else(|p| p.into_inner()).remove(service);
        if let Some(shadow) = shadow {
            let report = shadow.shutdown().await;
            self.store
                .save_report(service, SHADOW_REPORT, &report, Timestamp::now())?;
        }
        Ok(())
    }

    /// The shadow comparison so far, kept in the store for `sluice status`.
    pub fn shadow_tally(&self, service: &str) -> Option<ShadowTally> {
        let report = {
            let shadows = self.shadows.lock().unwrap_or_else(|p| p.into_inner());
            shadows.get(service)?.report()
        };
        if let Err(error) = self
            .store
            .save_report(service, SHADOW_REPORT, &report, Timestamp::now())
        {
            warn!(%service, "cannot keep the shadow report: {error}");
        }
        Some(tally(&report))
    }

    /// Tells the spec's alerts and `event` webhooks about an event. Returns at once.
    pub fn notify(&self, spec: &ServiceSpec, rollout: &Rollout, event: &Event) {
        let notification = Notification {
            service: rollout.service.clone(),
            revision: rollout
                .under_analysis()
                .or(rollout.candidate.as_ref())
                .map(|r| r.name.clone()),
            phase: rollout.phase.to_string(),
            severity: alert_severity(event.severity),
            message: event.message.clone(),
            at: event.at,
        };
        for alert in &spec.spec.alerts {
            self.dispatcher.notify(alert, &notification);
        }
        let event_type = match event.severity {
            Severity::Info => "Normal",
            Severity::Warning | Severity::Error => "Warning",
        };
        for hook in spec.spec.webhooks.iter().filter(|h| h.kind == WebhookKind::Event) {
            let payload = payload(hook, rollout).with_event(event_type, event.message.clone());
            self.dispatcher.fire(hook, payload, event.at.as_second());
        }
    }

    /// Gives queued notifications up to `within` to be delivered, at shutdown.
    pub async fn drain(&self, within: std::time::Duration) {
        self.dispatcher.drain(within).await;
    }

    /// What became of the notifications and fire-and-forget webhooks so far.
    pub fn notification_counters(&self) -> sluice_notify::Counters {
        self.dispatcher.counters()
    }

    /// Calls the webhooks of a kind whose answers change nothing, without waiting for them.
    pub fn fire(&self, spec: &ServiceSpec, rollout: &Rollout, kind: WebhookKind) {
        for hook in spec.spec.webhooks.iter().filter(|h| h.kind == kind) {
            self.dispatcher
                .fire(hook, payload(hook, rollout), Timestamp::now().as_second());
        }
    }
}

/// Runs a stage's checks (and, for isolation, the pre-rollout webhooks), keeps the report, and sums it up.
async fn check_run(
    store: Arc<Store>,
    client: WebhookClient,
    spec: ServiceSpec,
    rollout: Rollout,
    stage: CheckStage,
    target: Option<SocketAddr>,
) -> CheckResult {
    let (checks, kind): (Checks, &str) = match stage {
        CheckStage::Isolation => (spec.spec.stages.isolation.clone().unwrap_or_default(), ISOLATION_REPORT),
        CheckStage::PrePromotion => {
            let checks = match &spec.spec.strategy {
                sluice_spec::Strategy::BlueGreen(blue_green) => blue_green.pre_promotion.clone(),
                _ => Checks::default(),
            };
            (checks, PRE_PROMOTION_REPORT)
        }
    };
    let report = match target {
        Some(addr) if !checks.is_empty() => Some(sluice_checks::run(&checks, &Target::new(addr)).await),
        Some(_) => None,
        None => {
            return CheckResult {
                stage,
                passed: false,
                summary: "no instance of the candidate runs to check".into(),
            };
        }
    };
    let mut hooks = Vec::new();
    if stage == CheckStage::Isolation {
        for hook in spec.spec.webhooks.iter().filter(|h| h.kind == WebhookKind::PreRollout) {
            hooks.push(
                client
                    .call(hook, &payload(hook, &rollout), Timestamp::now().as_second())
                    .await,
            );
        }
    }
    let saved = serde_json::json!({ "checks": report, "webhooks": hooks });
    if let Err(error) = store.save_report(&rollout.service, kind, &saved, Timestamp::now()) {
        warn!(service = %rollout.service, "cannot keep the {kind} report: {error}");
    }
    summarise(stage, report.as_ref(), &hooks)
}

fn summarise(stage: CheckStage, report: Option<&CheckReport>, hooks: &[HookOutcome]) -> CheckResult {
    let mut parts = Vec::new();
    if let Some(report) = report {
        parts.push(report.details());
    }
    for hook in hooks {
        let verdict = if hook.passed { "passed" } else { "failed" };
        parts.push(format!("pre-rollout webhook {} {verdict}: {}", hook.hook, hook.detail));
    }
    let passed = report.is_none_or(|r| r.passed) && hooks.iter().all(|h| h.passed);
    CheckResult {
        stage,
        passed,
        summary: parts.join("; "),
    }
}

/// The payload every call of `hook` carries: the revision under analysis and where the rollout stands.
fn payload(hook: &Webhook, rollout: &Rollout) -> WebhookPayload {
    let revision = rollout
        .under_analysis()
        .or(rollout.candidate.as_ref())
        .or(rollout.stable.as_ref());
    WebhookPayload::for_hook(
        hook,
        rollout.service.clone(),
        revision.map_or_else(String::new, |r| r.name.clone()),
        rollout.display_phase(),
        revision.map_or_else(String::new, |r| r.checksum.clone()),
    )
}

fn hook_result(outcome: HookOutcome, asked_at: Timestamp) -> HookResult {
    HookResult {
        name: outcome.hook,
        kind: outcome.kind,
        passed: outcome.passed,
        detail: outcome.detail,
        asked_at,
    }
}

/// What the engine needs of a diff report: the counts, and the real fields for its events.
fn tally(report: &DiffReport) -> ShadowTally {
    let real: Vec<String> = report
        .fields
        .iter()
        .filter(|field| field.real)
        .take(5)
        .map(|field| {
            format!(
                "{} (candidate {:.2}%, stables {:.2}%)",
                field.field, field.candidate_rate, field.noise_rate
            )
        })
        .collect();
    ShadowTally {
        compared: report.compared,
        differing: report.with_real_difference,
        summary: real.join(", "),
    }
}

fn alert_severity(severity: Severity) -> AlertSeverity {
    match severity {
        Severity::Info => AlertSeverity::Info,
        Severity::Warning => AlertSeverity::Warning,
        Severity::Error => AlertSeverity::Error,
    }
}

//! The controller: one task per service that observes the world, asks the engine for a decision, persists it,
//! then carries it out.
//!
//! Order matters and is the daemon's crash-safety argument: a decision (state, pending actions, events, consumed
//! commands) is saved in one transaction *before* any action runs; its actions are cleared only after all of
//! them ran. A daemon killed anywhere in between finds the pending actions on restart and runs them again, which
//! is safe because every action is idempotent. On start, each service also runs the engine's `resync` actions,
//! so processes recorded in the store are adopted rather than started twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use jiff::Timestamp;
use sluice_engine::{
    Action, CheckStage, CustomReading, Desired, Health, Observations, Plan, Role, Rollout, RouteMode, Severity, resync,
    step,
};
use sluice_metrics::{
    MetricSource, PrometheusConfig, PrometheusSource, QueryTemplate, TemplateVars, WebConfig, WebMethod, WebSource,
    WindowQuery,
};
use sluice_platform::{Platform, ProcessTemplate, RestartPolicy, RevisionHealth, RevisionKey};
use sluice_router::{Affinity, MatchRoute, MirrorRoute, PreviewRoute, RevisionRoute, Router, ServiceRouting};
use sluice_shadow::ShadowTargets;
use sluice_spec::{MetricProvider, RevisionRef, ServiceSpec, Strategy};
use sluice_store::{AppliedSpec, Store};
use tokio::sync::Notify;
use tracing::warn;

use super::crash::CrashPoints;
use super::release::ReleaseIo;

/// How long a stopped revision's instances get between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Everything a service's control loop needs, shared by all of them.
pub struct Controller<P, R, M> {
    pub store: Arc<Store>,
    pub platform: Arc<P>,
    pub router: Arc<R>,
    pub metrics: Arc<M>,
    pub crash: CrashPoints,
    /// Time between two decisions when nothing wakes the loop earlier.
    pub tick: Duration,
    start_failures: Mutex<HashMap<RevisionKey, String>>,
    wakers: Mutex<HashMap<String, Arc<Notify>>>,
    /// Prometheus sources of the services whose spec names one, by address.
    prometheus: Mutex<HashMap<String, Arc<PrometheusSource>>>,
    /// Checks, the shadow comparison, webhooks and notifications.
    release: ReleaseIo,
}

impl<P: Platform, R: Router, M: MetricSource> Controller<P, R, M> {
    /// A controller over the given adapters.
    pub fn new(store: Arc<Store>, platform: Arc<P>, router: Arc<R>, metrics: Arc<M>, tick: Duration) -> Result<Self> {
        Ok(Controller {
            release: ReleaseIo::new(store.clone())?,
            store,
            platform,
            router,
            metrics,
            crash: CrashPoints::from_env(),
            tick,
            start_failures: Mutex::new(HashMap::new()),
            wakers: Mutex::new(HashMap::new()),
            prometheus: Mutex::new(HashMap::new()),
        })
    }

    /// The running instances of a revision, labelled with its name.
    pub fn instances(&self, service: &str, revision: &RevisionRef) -> Vec<(String, sluice_platform::Instance)> {
        self.platform
            .instances(&key(service, revision))
            .into_iter()
            .map(|i| (revision.name.clone(), i))
            .collect()
    }

    /// Gives queued notifications up to `within` to be delivered, at shutdown.
    pub async fn drain_notifications(&self, within: Duration) {
        self.release.drain(within).await;
    }

    /// What became of the notifications and fire-and-forget webhooks so far.
    pub fn notification_counters(&self) -> sluice_notify::Counters {
        self.release.notification_counters()
    }

    /// Starts a control loop for every stored service.
    pub fn start_all(self: &Arc<Self>) -> Result<()> {
        for service in self.store.services()? {
            self.wake(&service);
        }
        Ok(())
    }

    /// Makes the service's loop decide now, starting the loop if the service is new.
    pub fn wake(self: &Arc<Self>, service: &str) {
        let mut wakers = self.wakers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(waker) = wakers.get(service) {
            waker.notify_one();
            return;
        }
        let waker = Arc::new(Notify::new());
        wakers.insert(service.to_string(), waker.clone());
        let controller = self.clone();
        let service = service.to_string();
        tokio::spawn(async move { controller.run_service(service, waker).await });
    }

    async fn run_service(self: Arc<Self>, service: String, waker: Arc<Notify>) {
        let mut resynced = false;
        loop {
            if let Err(error) = self.reconcile(&service, &mut resynced).await {
                warn!(%service, "{error:#}");
            }
            tokio::select! {
                () = tokio::time::sleep(self.tick) => {}
                () = waker.notified() => {}
            }
        }
    }

    /// One round: finish what the last decision left undone, observe, decide, persist, act.
    async fn reconcile(&self, service: &str, resynced: &mut bool) -> Result<()> {
        let Some(applied) = self.store.applied(service)? else {
            return Ok(());
        };
        let (rollout, pending) = self
            .store
            .rollout(service)?
            .unwrap_or_else(|| (Rollout::new(service), Vec::new()));
        if !*resynced {
            self.execute(&applied, &rollout, &resync(&rollout)).await?;
            *resynced = true;
        }
        if !pending.is_empty() {
            self.execute(&applied, &rollout, &pending).await?;
            self.store.clear_pending(service, rollout.generation)?;
        }
        let commands = self.store.queued_commands(service)?;
        let now = Timestamp::now();
        let spec = &applied.spec;
        let observations = Observations {
            desired: Some(Desired {
                revision: applied.revision.clone(),
                plan: Plan::from_spec(spec),
            }),
            candidate: self.candidate_health(&rollout).await,
            window: self.window(&applied, &rollout).await,
            commands: commands.iter().map(|(_, command)| *command).collect(),
            custom: if rollout.evaluation_due(now) {
                self.read_custom(&applied, &rollout).await
            } else {
                Vec::new()
            },
            checks: self.release.checks(spec, &rollout, self.check_target(spec, &rollout)),
            shadow: self.release.shadow_tally(service),
            hooks: self.release.answers(service),
        };
        let (next, actions) = step(rollout.clone(), &observations, now);
        // Asked from the decided state, so an answer that just settled a gate or a rollback is not asked again.
        self.release.ask(spec, &next, now);
        if next == rollout && actions.is_empty() && commands.is_empty() {
            return Ok(());
        }
        self.crash.reached("before-persist");
        self.store
            .save_decision(&next, &actions, commands.last().map(|(id, _)| *id), now)?;
        self.crash.reached("after-persist");
        self.execute(&applied, &next, &actions).await?;
        self.store.clear_pending(service, next.generation)?;
        Ok(())
    }

    /// Where the checks the rollout asks for run: the blue/green preview address when there is one, else one of
    /// the candidate's instances.
    fn check_target(&self, spec: &ServiceSpec, rollout: &Rollout) -> Option<std::net::SocketAddr> {
        let stage = rollout.checks_due()?;
        if stage == CheckStage::PrePromotion
            && let Strategy::BlueGreen(blue_green) = &spec.spec.strategy
            && let Some(preview) = blue_green.preview_listen
        {
            return Some(preview);
        }
        let candidate = rollout.candidate.as_ref()?;
        self.platform
            .instances(&key(&rollout.service, candidate))
            .first()
            .map(|i| i.addr)
    }

    async fn candidate_health(&self, rollout: &Rollout) -> Health {
        let Some(candidate) = rollout.under_analysis() else {
            return Health::Unknown;
        };
        let key = key(&rollout.service, candidate);
        if let Some(reason) = self.start_failures.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Health::Failed { reason: reason.clone() };
        }
        match self.platform.health(&key).await {
            RevisionHealth::Ready => Health::Ready,
            RevisionHealth::Starting { .. } | RevisionHealth::Degraded { .. } => Health::Starting,
            RevisionHealth::NotRunning => Health::Failed {
                reason: "no instance is running".into(),
            },
            RevisionHealth::Failed { reason } => Health::Failed { reason },
        }
    }

    async fn window(&self, applied: &AppliedSpec, rollout: &Rollout) -> Option<sluice_analysis::Window> {
        let (stable, candidate) = rollout.analysed_pair()?;
        let query = WindowQuery {
            service: rollout.service.clone(),
            stable: stable.name.clone(),
            candidate: candidate.name.clone(),
            since: rollout.window_start,
        };
        let result = match &applied.spec.spec.analysis.provider {
            MetricProvider::Builtin => self.metrics.window(&query).await,
            MetricProvider::Prometheus { address } => match self.prometheus_source(address) {
                Ok(source) => source.window(&query).await,
                Err(error) => Err(sluice_metrics::MetricsError::Unavailable {
                    what: format!("Prometheus at {address}"),
                    detail: error.to_string(),
                }),
            },
        };
        match result {
            Ok(window) => Some(window),
            Err(error) => {
                warn!(service = %rollout.service, "{error}");
                None
            }
        }
    }

    /// Reads the user's own metrics for an evaluation; a failure is reported as such, never as a value.
    async fn read_custom(&self, applied: &AppliedSpec, rollout: &Rollout) -> Vec<CustomReading> {
        let analysis = &applied.spec.spec.analysis;
        let Some(candidate) = &rollout.candidate else {
            return Vec::new();
        };
        let interval = rollout
            .plan
            .as_ref()
            .map_or(Duration::from_secs(60), |p| p.evaluation_period());
        let vars = TemplateVars {
            service: &rollout.service,
            revision: &candidate.name,
            interval,
        };
        let mut readings = Vec::new();
        for metric in &analysis.custom_metrics {
            let value = match (&metric.query, &metric.web, &analysis.provider) {
                (Some(query), _, MetricProvider::Prometheus { address }) => {
                    match (QueryTemplate::parse(query), self.prometheus_source(address)) {
                        (Ok(template), Ok(source)) => {
                            source.query_value(&template, &vars).await.map_err(|e| e.to_string())
                        }
                        (Err(error), _) => Err(error.to_string()),
                        (_, Err(error)) => Err(error.to_string()),
                    }
                }
                (_, Some(web), _) => {
                    let config = WebConfig {
                        method: if web.body.is_some() {
                            WebMethod::Post
                        } else {
                            WebMethod::Get
                        },
                        body: web.body.clone(),
                        ..WebConfig::get(web.url.clone(), web.json_path.clone())
                    };
                    match WebSource::new(config) {
                        Ok(source) => source.value().await.map_err(|e| e.to_string()),
                        Err(error) => Err(error.to_string()),
                    }
                }
                _ => Err("no source: a query needs a Prometheus provider".into()),
            };
            readings.push(CustomReading {
                name: metric.name.clone(),
                value,
            });
        }
        readings
    }

    fn prometheus_source(&self, address: &str) -> Result<Arc<PrometheusSource>, sluice_metrics::ConfigError> {
        let mut sources = self.prometheus.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(source) = sources.get(address) {
            return Ok(source.clone());
        }
        let source = Arc::new(PrometheusSource::new(PrometheusConfig::new(address))?);
        sources.insert(address.to_string(), source.clone());
        Ok(source)
    }

    /// Carries out actions in order. Records were persisted with the decision; they are only told to the alerts.
    async fn execute(&self, applied: &AppliedSpec, rollout: &Rollout, actions: &[Action]) -> Result<()> {
        let service = applied.spec.metadata.name.as_str();
        for action in actions {
            let kind = match action {
                Action::Record(event) => {
                    self.release.notify(&applied.spec, rollout, event);
                    continue;
                }
                Action::StartRevision { .. } => "start-revision",
                Action::SetRole { .. } => "set-role",
                Action::SetRoute { .. } => "set-route",
                Action::StopRevision { .. } => "stop-revision",
                Action::StartShadow { .. } => "start-shadow",
                Action::StopShadow { .. } => "stop-shadow",
                Action::NotifyWebhooks { .. } => "notify-webhooks",
            };
            self.crash.reached(&format!("before-{kind}"));
            match action {
                Action::StartRevision { revision, role } => self.start_revision(service, revision, *role).await?,
                Action::SetRole { revision, role } => self.platform.set_policy(&key(service, revision), policy(*role)),
                Action::SetRoute {
                    stable,
                    candidate,
                    weight,
                    draining,
                    mode,
                } => {
                    let routing = self.routing(
                        &applied.spec,
                        stable,
                        candidate.as_ref(),
                        *weight,
                        draining.as_ref(),
                        *mode,
                    );
                    self.router
                        .apply(&routing)
                        .await
                        .with_context(|| format!("cannot route {service}"))?;
                }
                Action::StartShadow { stable, candidate } => {
                    self.start_shadow(&applied.spec, stable, candidate).await?
                }
                Action::StopShadow { stable } => {
                    self.release.stop_shadow(service).await?;
                    self.platform
                        .stop(&baseline_key(service, stable), STOP_GRACE)
                        .await
                        .with_context(|| format!("cannot stop the shadow stage's second {} instance", stable.name))?;
                }
                Action::NotifyWebhooks { kind } => self.release.fire(&applied.spec, rollout, *kind),
                Action::StopRevision { revision } => {
                    self.platform
                        .stop(&key(service, revision), STOP_GRACE)
                        .await
                        .with_context(|| format!("cannot stop {service} {}", revision.name))?;
                }
                Action::Record(_) => {}
            }
            self.crash.reached(&format!("after-{kind}"));
        }
        Ok(())
    }

    /// The routing a route action describes, in the router's terms.
    fn routing(
        &self,
        spec: &ServiceSpec,
        stable: &RevisionRef,
        candidate: Option<&RevisionRef>,
        weight: u8,
        draining: Option<&RevisionRef>,
        mode: RouteMode,
    ) -> ServiceRouting {
        let service = spec.metadata.name.as_str();
        let mut routing = ServiceRouting {
            service: service.to_string(),
            listen: spec.spec.listen,
            revisions: vec![self.route_of(service, stable, 100 - weight)],
            affinity: affinity_of(spec),
            matches: None,
            mirror: None,
            preview: None,
        };
        if let Some(candidate) = candidate {
            match mode {
                RouteMode::Weighted => routing.revisions.push(self.route_of(service, candidate, weight)),
                RouteMode::Matched => {
                    routing.revisions.push(self.route_of(service, candidate, 0));
                    if let Strategy::AbTest(ab) = &spec.spec.strategy {
                        routing.matches = Some(MatchRoute {
                            rules: ab.matches.clone(),
                            revision: candidate.name.clone(),
                        });
                    }
                }
                RouteMode::Mirrored => {
                    // The copies go to the comparison listener, which sends each to both stables and the candidate.
                    if let (Some(shadow), Some(addr)) = (&spec.spec.stages.shadow, self.release.shadow_addr(service)) {
                        routing.revisions.push(RevisionRoute {
                            revision: candidate.name.clone(),
                            weight: 0,
                            instances: vec![addr],
                        });
                        routing.mirror = Some(MirrorRoute {
                            revision: candidate.name.clone(),
                            percent: shadow.share,
                            methods: shadow.methods.clone(),
                            max_body_bytes: shadow.max_body_bytes,
                        });
                    }
                }
                RouteMode::Preview => {
                    if let Strategy::BlueGreen(blue_green) = &spec.spec.strategy
                        && let Some(listen) = blue_green.preview_listen
                    {
                        routing.preview = Some(PreviewRoute {
                            listen,
                            revision: self.route_of(service, candidate, 100),
                        });
                    }
                }
            }
        }
        if let Some(draining) = draining {
            routing.revisions.push(self.route_of(service, draining, 0));
        }
        routing
    }

    /// The shadow stage's second stable instance and its comparison listener.
    async fn start_shadow(&self, spec: &ServiceSpec, stable: &RevisionRef, candidate: &RevisionRef) -> Result<()> {
        let service = spec.metadata.name.as_str();
        let Some(settings) = &spec.spec.stages.shadow else {
            return Ok(());
        };
        let stable_spec = self
            .store
            .revision(service, stable)?
            .with_context(|| format!("revision {} of {service} is not in the store", stable.name))?;
        let template = ProcessTemplate {
            instances: 1,
            ..template_of(&stable_spec)
        };
        let baseline = baseline_key(service, stable);
        let secondary = self
            .platform
            .start(&baseline, &template, RestartPolicy::Always)
            .await
            .with_context(|| format!("cannot start a second {} instance for the shadow stage", stable.name))?;
        let secondary = secondary
            .first()
            .map(|i| i.addr)
            .with_context(|| format!("no second {} instance for the shadow stage", stable.name))?;
        let addrs = |revision: &RevisionRef| {
            self.platform
                .instances(&key(service, revision))
                .into_iter()
                .map(|i| i.addr)
                .collect::<Vec<_>>()
        };
        let targets = ShadowTargets {
            primary: addrs(stable),
            secondary,
            candidate: addrs(candidate),
        };
        self.release.start_shadow(service, settings, targets).await?;
        Ok(())
    }

    fn route_of(&self, service: &str, revision: &RevisionRef, weight: u8) -> RevisionRoute {
        let instances = self
            .platform
            .instances(&key(service, revision))
            .into_iter()
            .map(|i| i.addr)
            .collect();
        RevisionRoute {
            revision: revision.name.clone(),
            weight,
            instances,
        }
    }

    async fn start_revision(&self, service: &str, revision: &RevisionRef, role: Role) -> Result<()> {
        let key = key(service, revision);
        let spec = self
            .store
            .revision(service, revision)?
            .with_context(|| format!("revision {} of {service} is not in the store", revision.name))?;
        let template = template_of(&spec);
        match self.platform.start(&key, &template, policy(role)).await {
            Ok(_) => {
                // A retried revision that starts now is judged afresh, not by its last failure to start.
                self.start_failures
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&key);
                Ok(())
            }
            Err(error) if role == Role::Candidate => {
                // A candidate that cannot even start fails its rollout; it must not wedge the controller.
                let reason = format!("cannot start: {error}");
                self.store.record_event(
                    service,
                    Timestamp::now(),
                    Severity::Error,
                    &format!("{} {reason}", revision.name),
                )?;
                self.start_failures
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key, reason);
                Ok(())
            }
            Err(error) => Err(error).with_context(|| format!("cannot start {service} {}", revision.name)),
        }
    }
}

/// How a revision's instances are started.
fn template_of(spec: &sluice_spec::RevisionSpec) -> ProcessTemplate {
    let process = &spec.process;
    ProcessTemplate {
        command: process.command.clone(),
        env: process.env.clone(),
        working_dir: process.working_dir.clone(),
        instances: process.instances,
        readiness_path: process.readiness.http.clone(),
        readiness_timeout: process.readiness.timeout.0,
    }
}

/// The shadow stage's second stable instance. `~` cannot appear in a revision name, so the key never clashes.
fn baseline_key(service: &str, stable: &RevisionRef) -> RevisionKey {
    RevisionKey {
        service: service.to_string(),
        revision: format!("{}~shadow", stable.name),
    }
}

fn key(service: &str, revision: &RevisionRef) -> RevisionKey {
    RevisionKey {
        service: service.to_string(),
        revision: revision.name.clone(),
    }
}

/// The canary's session affinity, in the router's terms.
fn affinity_of(spec: &sluice_spec::ServiceSpec) -> Option<Affinity> {
    let affinity = spec.spec.strategy.canary()?.session_affinity.as_ref()?;
    match (&affinity.cookie_name, &affinity.header) {
        (Some(cookie), _) => Some(Affinity::Cookie(cookie.clone())),
        (None, Some(header)) => Some(Affinity::Header(header.clone())),
        (None, None) => None,
    }
}

fn policy(role: Role) -> RestartPolicy {
    match role {
        Role::Stable => RestartPolicy::Always,
        Role::Candidate => RestartPolicy::Never,
    }
}

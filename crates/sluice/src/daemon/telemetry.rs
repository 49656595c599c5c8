//! The daemon's own metrics on `/metrics`: rollouts by phase, weights, failed checks. Names and labels are a
//! public API:
//!
//! | metric | labels | meaning |
//! |---|---|---|
//! | `sluice_rollouts` | `phase` | services whose rollout is in that phase |
//! | `sluice_rollout_paused` | `service` | 1 while the rollout is held |
//! | `sluice_canary_weight` | `service` | the candidate's share of traffic, percent |
//! | `sluice_failed_checks` | `service` | failed checks counted in the current rollout |
//! | `sluice_rollout_generation` | `service` | decisions taken for the service so far |
//! | `sluice_notifications_total` | `outcome` | notifications and fire-and-forget webhooks `delivered`, `failed` (after retries) or `dropped` (backlog full) since the daemon started |

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use sluice_engine::Phase;
use sluice_notify::Counters;
use sluice_store::Store;

type Labelled = Family<Vec<(String, String)>, Gauge>;

/// Renders the current metrics in the OpenMetrics text format.
pub fn render(store: &Store, notifications: Counters) -> Result<String, anyhow::Error> {
    let phases = Labelled::default();
    let paused = Labelled::default();
    let weight = Labelled::default();
    let failed = Labelled::default();
    let generation = Labelled::default();
    for phase in [
        Phase::Pending,
        Phase::Initializing,
        Phase::Failed,
        Phase::Deploying,
        Phase::Isolation,
        Phase::Shadow,
        Phase::Progressing,
        Phase::Promoting,
        Phase::Finalising,
        Phase::Succeeded,
        Phase::RollingBack,
        Phase::RolledBack,
    ] {
        let _ = phases.get_or_create(&vec![("phase".into(), phase.to_string())]);
    }
    for name in store.services()? {
        let Some((rollout, _)) = store.rollout(&name)? else {
            continue;
        };
        let service = vec![("service".to_string(), name.clone())];
        phases
            .get_or_create(&vec![("phase".into(), rollout.phase.to_string())])
            .inc();
        paused.get_or_create(&service).set(i64::from(rollout.hold.is_some()));
        weight.get_or_create(&service).set(i64::from(rollout.weight));
        failed.get_or_create(&service).set(i64::from(rollout.failed_checks));
        generation.get_or_create(&service).set(rollout.generation as i64);
    }
    let mut registry = Registry::with_prefix("sluice");
    registry.register("rollouts", "Services whose rollout is in each phase", phases);
    registry.register("rollout_paused", "1 while the service's rollout is held", paused);
    registry.register("canary_weight", "The candidate's share of traffic in percent", weight);
    registry.register("failed_checks", "Failed checks counted in the current rollout", failed);
    registry.register(
        "rollout_generation",
        "Decisions taken for the service so far",
        generation,
    );
    let deliveries = Family::<Vec<(String, String)>, Counter>::default();
    for (outcome, count) in [
        ("delivered", notifications.delivered),
        ("failed", notifications.failed),
        ("dropped", notifications.dropped),
    ] {
        deliveries
            .get_or_create(&vec![("outcome".into(), outcome.into())])
            .inc_by(count);
    }
    registry.register(
        "notifications",
        "Notifications and fire-and-forget webhooks by outcome",
        deliveries,
    );
    let mut text = String::new();
    encode(&mut text, &registry)?;
    Ok(text)
}

//! The path before and around the analysis, in simulated time: isolation and shadow stages, blue/green and A/B
//! exposure, gates and the webhooks whose answers steer a rollout.

use std::time::Duration;

use sluice_engine::{
    Action, CheckResult, CheckStage, Command, Desired, Exposure, Health, HookResult, Observations, Phase, Plan,
    Release, RouteMode, Severity, ShadowPlan, ShadowTally,
};
use sluice_spec::{OnInconclusive, WebhookKind};

mod support;

use support::*;

fn plan_with(release: Release) -> Plan {
    Plan { release, ..plan() }
}

fn staged() -> Release {
    Release {
        isolation: Some(Duration::from_secs(120)),
        shadow: Some(ShadowPlan {
            duration: Duration::from_secs(60),
            max_diff_rate: 1.0,
        }),
        ..Release::default()
    }
}

fn with_hooks(kinds: &[WebhookKind]) -> Release {
    Release {
        hooks: kinds.iter().copied().collect(),
        ..Release::default()
    }
}

/// v1 stable; `candidate` applied with `plan` and started.
fn deploying(candidate: &str, plan: Plan) -> Sim {
    let mut sim = Sim::new("v1");
    sim.desired = Desired {
        revision: revision(candidate),
        plan,
    };
    sim.tick(Health::Starting, None);
    sim
}

fn observe(sim: &mut Sim, mut observations: Observations) {
    for hook in &mut observations.hooks {
        hook.asked_at = sim.now;
    }
    sim.tick_with(Observations {
        desired: Some(sim.desired.clone()),
        candidate: Health::Ready,
        ..observations
    });
}

fn checks(stage: CheckStage, passed: bool, summary: &str) -> Observations {
    Observations {
        checks: Some(CheckResult {
            stage,
            passed,
            summary: summary.into(),
        }),
        ..Observations::default()
    }
}

fn hook(kind: WebhookKind, passed: bool) -> Observations {
    Observations {
        hooks: vec![HookResult {
            name: format!("{kind}-hook"),
            kind,
            passed,
            detail: if passed {
                "200".into()
            } else {
                "403 after 1 attempt".into()
            },
            // `observe` stamps the time of the step.
            asked_at: jiff::Timestamp::UNIX_EPOCH,
        }],
        ..Observations::default()
    }
}

fn shadow_tally(compared: u64, differing: u64) -> Observations {
    Observations {
        shadow: Some(ShadowTally {
            compared,
            differing,
            summary: if differing > 0 {
                "$.total 100.00% vs noise 0.00%".into()
            } else {
                String::new()
            },
        }),
        ..Observations::default()
    }
}

/// Whether any route so far let users reach the candidate (a weight, a match rule or a preview).
fn users_reached(sim: &Sim, candidate: &str) -> bool {
    sim.actions.iter().any(|action| {
        matches!(action, Action::SetRoute { candidate: Some(c), weight, mode, .. }
            if c.name == candidate && (*weight > 0 || *mode == RouteMode::Matched))
    })
}

fn route_mode(sim: &Sim) -> Option<(RouteMode, Option<String>, u8)> {
    match &sim.route {
        Some(Action::SetRoute {
            mode,
            candidate,
            weight,
            ..
        }) => Some((*mode, candidate.as_ref().map(|c| c.name.clone()), *weight)),
        _ => None,
    }
}

#[test]
fn a_candidate_failing_isolation_is_rolled_back_before_any_user_request() {
    let mut sim = deploying("v2", plan_with(staged()));
    sim.tick(Health::Ready, None);
    assert_eq!(sim.rollout.phase, Phase::Isolation);
    assert_eq!(sim.rollout.checks_due(), Some(CheckStage::Isolation));
    sim.advance(20);
    observe(
        &mut sim,
        checks(
            CheckStage::Isolation,
            false,
            "load test: p99 412 ms > 200 ms over 1000 requests",
        ),
    );
    assert_eq!(sim.rollout.phase, Phase::RollingBack);
    assert!(sim.has_event("isolation checks failed: load test: p99 412 ms > 200 ms"));
    assert!(!users_reached(&sim, "v2"), "users never reached the candidate");
    sim.tick(Health::Ready, None);
    assert_eq!(sim.rollout.phase, Phase::RolledBack);
    assert!(!sim.stopped("v2"), "the candidate is left running for inspection");
}

#[test]
fn isolation_checks_that_never_report_fail_at_their_budget() {
    let mut sim = deploying("v2", plan_with(staged()));
    sim.tick(Health::Ready, None);
    sim.advance(119);
    sim.tick(Health::Ready, None);
    assert_eq!(sim.rollout.phase, Phase::Isolation);
    sim.advance(1);
    sim.tick(Health::Ready, None);
    assert_eq!(sim.rollout.phase, Phase::RollingBack);
    assert!(sim.has_event("did not finish in time"));
}

#[test]
fn the_shadow_stage_mirrors_then_releases_or_rolls_back_on_its_diff_rate() {
    for (differing, released) in [(5, true), (20, false)] {
        let mut sim = deploying("v2", plan_with(staged()));
        sim.tick(Health::Ready, None);
        observe(&mut sim, checks(CheckStage::Isolation, true, "3 smoke checks passed"));
        assert_eq!(sim.rollout.phase, Phase::Shadow);
        assert!(sim.actions.iter().any(|a| matches!(a, Action::StartShadow { .. })));
        assert_eq!(route_mode(&sim), Some((RouteMode::Mirrored, Some("v2".into()), 0)));
        sim.advance(59);
        observe(&mut sim, shadow_tally(900, differing));
        assert_eq!(sim.rollout.phase, Phase::Shadow, "the stage runs its whole duration");
        sim.advance(1);
        observe(&mut sim, shadow_tally(1000, differing));
        assert!(sim.actions.iter().any(|a| matches!(a, Action::StopShadow { .. })));
        if released {
            assert_eq!(sim.rollout.phase, Phase::Progressing);
            assert_eq!(route_mode(&sim), Some((RouteMode::Weighted, Some("v2".into()), 10)));
            assert!(sim.has_event("Shadow stage passed: 5 of 1000 compared requests (0.50%)"));
        } else {
            assert_eq!(sim.rollout.phase, Phase::RollingBack);
            assert!(sim.has_event("shadow diff rate too high: 20 of 1000 compared requests (2.00%)"));
            assert!(sim.has_event("$.total"));
            assert!(!users_reached(&sim, "v2"));
        }
    }
}

#[test]
fn a_shadow_stage_that_compared_nothing_is_inconclusive() {
    let mut sim = deploying("v2", plan_with(staged()));
    sim.tick(Health::Ready, None);
    observe(&mut sim, checks(CheckStage::Isolation, true, "ok"));
    sim.advance(60);
    observe(&mut sim, shadow_tally(0, 0));
    assert_eq!(sim.rollout.phase, Phase::Shadow);
    assert!(sim.rollout.hold.is_some(), "onInconclusive: hold waits for a human");
    assert!(sim.has_event("Shadow stage inconclusive"));
}

fn blue_green(pre_promotion: bool) -> Plan {
    plan_with(Release {
        exposure: Exposure::BlueGreen {
            pre_promotion: pre_promotion.then_some(Duration::from_secs(90)),
            scale_down_delay: Duration::from_secs(30),
        },
        ..Release::default()
    })
}

fn switched(sim: &mut Sim) {
    sim.tick(Health::Ready, None);
    assert_eq!(sim.rollout.phase, Phase::Progressing);
    assert_eq!(route_mode(sim), Some((RouteMode::Preview, Some("v2".into()), 0)));
    assert_eq!(sim.rollout.checks_due(), Some(CheckStage::PrePromotion));
    observe(sim, checks(CheckStage::PrePromotion, true, "2 smoke checks passed"));
    assert_eq!(sim.rollout.phase, Phase::Promoting);
    // One switch: everything to v2, v1 kept routable.
    assert!(
        matches!(&sim.route, Some(Action::SetRoute { stable, candidate: None, weight: 0, draining: Some(old), .. })
        if stable.name == "v2" && old.name == "v1")
    );
    sim.tick(Health::Ready, None);
    assert_eq!(sim.rollout.phase, Phase::Finalising);
}

#[test]
fn blue_green_switches_at_once_and_scales_the_old_revision_down_after_the_delay() {
    let mut sim = deploying("v2", blue_green(true));
    switched(&mut sim);
    sim.advance(29);
    sim.tick(Health::Ready, Some(healthy()));
    assert_eq!(sim.rollout.phase, Phase::Finalising);
    assert!(!sim.stopped("v1"), "the old revision waits for the scale-down delay");
    sim.advance(1);
    sim.tick(Health::Ready, None);
    assert_eq!(sim.rollout.phase, Phase::Succeeded);
    assert!(sim.stopped("v1"));
    assert_eq!(sim.rollout.previous, Some(revision("v1")), "undo goes back to v1");
}

#[test]
fn blue_green_switches_back_on_a_failure_within_the_scale_down_delay() {
    let mut sim = deploying("v2", blue_green(false));
    sim.tick(Health::Ready, None);
    sim.tick(Health::Ready, None);
    assert_eq!(sim.rollout.phase, Phase::Promoting);
    sim.tick(Health::Ready, None);
    assert!(sim.rollout.can_switch_back());
    assert_eq!(
        sim.rollout
            .analysed_pair()
            .map(|(a, b)| (a.name.clone(), b.name.clone())),
        Some(("v1".into(), "v2".into()))
    );
    sim.advance(5);
    sim.tick(Health::Ready, Some(window(1000, 80, 40.0)));
    assert_eq!(sim.rollout.phase, Phase::RollingBack);
    assert!(
        matches!(&sim.route, Some(Action::SetRoute { stable, candidate: None, weight: 0, .. }) if stable.name == "v1")
    );
    assert!(
        sim.events.iter().any(
            |(_, s, m)| *s == Severity::Error && m.contains("Rolling back checkout to v1: failed after the switch")
        )
    );
    assert!(!sim.stopped("v2"), "the failed revision stays for inspection");
    sim.tick(Health::Ready, None);
    assert_eq!(sim.rollout.phase, Phase::RolledBack);
    assert_eq!(sim.rollout.stable, Some(revision("v1")));
}

#[test]
fn a_new_revision_that_crashes_after_the_switch_is_switched_back() {
    let mut sim = deploying("v2", blue_green(true));
    switched(&mut sim);
    sim.advance(2);
    sim.tick(
        Health::Failed {
            reason: "exited with status 1".into(),
        },
        None,
    );
    assert_eq!(sim.rollout.phase, Phase::RollingBack);
    assert!(sim.has_event("v2 failed: exited with status 1"));
}

#[test]
fn an_ab_test_sends_only_matching_requests_for_its_iterations() {
    let ab = Plan {
        steps: vec![0; 3],
        release: Release {
            exposure: Exposure::AbTest,
            ..Release::default()
        },
        ..plan()
    };
    let mut sim = deploying("v2", ab);
    sim.tick(Health::Ready, None);
    assert_eq!(route_mode(&sim), Some((RouteMode::Matched, Some("v2".into()), 0)));
    for iteration in 2..=3 {
        sim.advance(60);
        sim.tick(Health::Ready, Some(healthy()));
        assert!(sim.has_event(&format!("Advance A/B test iteration {iteration}/3")));
        assert_eq!(route_mode(&sim), Some((RouteMode::Matched, Some("v2".into()), 0)));
    }
    sim.advance(60);
    sim.tick(Health::Ready, Some(healthy()));
    assert_eq!(sim.rollout.phase, Phase::Promoting);
}

#[test]
fn a_confirm_rollout_gate_keeps_the_candidate_from_starting_until_it_opens() {
    let mut sim = deploying("v2", plan_with(with_hooks(&[WebhookKind::ConfirmRollout])));
    let started = |sim: &Sim| {
        sim.actions
            .iter()
            .any(|a| matches!(a, Action::StartRevision { revision, .. } if revision.name == "v2"))
    };
    assert!(!started(&sim));
    assert_eq!(sim.rollout.hooks_due(sim.now), vec![WebhookKind::ConfirmRollout]);
    sim.tick(
        Health::Failed {
            reason: "no instance is running".into(),
        },
        None,
    );
    assert_eq!(sim.rollout.phase, Phase::Deploying, "not started is not failed");
    observe(&mut sim, hook(WebhookKind::ConfirmRollout, false));
    assert!(!started(&sim));
    assert!(sim.rollout.hooks_due(sim.now).is_empty(), "asked once per evaluation");
    sim.advance(1);
    assert_eq!(sim.rollout.hooks_due(sim.now), vec![WebhookKind::ConfirmRollout]);
    observe(&mut sim, hook(WebhookKind::ConfirmRollout, true));
    assert!(started(&sim));
    assert!(sim.has_event("Gate confirm-rollout opened: webhook confirm-rollout-hook answered 2xx"));
}

/// Regression: approving a closed confirm-rollout gate rolled the candidate back at once, because the same step
/// judged the observation "no instance is running" of the candidate it had just asked to start.
#[test]
fn approving_a_confirm_rollout_gate_starts_the_candidate_without_judging_it_yet() {
    let mut sim = deploying("v2", plan_with(with_hooks(&[WebhookKind::ConfirmRollout])));
    sim.actions.clear();
    sim.tick_with(Observations {
        desired: Some(sim.desired.clone()),
        candidate: Health::Failed {
            reason: "no instance is running".into(),
        },
        commands: vec![Command::Approve],
        ..Observations::default()
    });
    assert!(sim.has_event("Gate confirm-rollout opened: approved by an operator"));
    assert_eq!(sim.rollout.phase, Phase::Deploying, "{:?}", sim.events);
    assert!(
        sim.actions
            .iter()
            .any(|a| matches!(a, Action::StartRevision { revision, .. } if revision.name == "v2"))
    );
    sim.tick(Health::Ready, None);
    assert_eq!(sim.rollout.phase, Phase::Progressing);
    assert_eq!(sim.weight, Some(10));
}

#[test]
fn a_traffic_increase_gate_holds_each_step_until_someone_approves() {
    let mut sim = deploying("v2", plan_with(with_hooks(&[WebhookKind::ConfirmTrafficIncrease])));
    sim.tick(Health::Ready, None);
    assert_eq!(sim.weight, Some(10));
    sim.advance(60);
    sim.tick(Health::Ready, Some(healthy()));
    assert_eq!(sim.weight, Some(10), "held at the gate");
    assert!(
        sim.rollout
            .display_phase()
            .contains("waiting at the confirm-traffic-increase gate")
    );
    sim.command(Command::Approve);
    assert_eq!(sim.weight, Some(20));
    assert!(sim.has_event("Gate confirm-traffic-increase opened: approved by an operator"));
}

#[test]
fn a_gate_left_closed_ends_at_the_hold_timeout_with_an_alert() {
    let mut sim = deploying("v2", plan_with(with_hooks(&[WebhookKind::ConfirmPromotion])));
    sim.tick(Health::Ready, None);
    for _ in 0..5 {
        sim.advance(60);
        sim.tick(Health::Ready, Some(healthy()));
    }
    assert!(sim.rollout.hold.is_some(), "waits at confirm-promotion");
    assert_eq!(sim.rollout.phase, Phase::Progressing);
    sim.advance(3599);
    observe(&mut sim, hook(WebhookKind::ConfirmPromotion, false));
    assert_eq!(sim.rollout.phase, Phase::Progressing);
    sim.advance(1);
    sim.tick(Health::Ready, None);
    assert_eq!(sim.rollout.phase, Phase::RollingBack);
    assert!(
        sim.events
            .iter()
            .any(|(_, s, m)| *s == Severity::Error && m.contains("the confirm-promotion gate stayed closed for 1h"))
    );
}

#[test]
fn a_rollback_webhook_answering_2xx_rolls_back_and_rollout_webhook_failures_count() {
    let mut sim = deploying(
        "v2",
        plan_with(with_hooks(&[WebhookKind::Rollback, WebhookKind::Rollout])),
    );
    sim.tick(Health::Ready, None);
    assert_eq!(
        sim.rollout.hooks_due(sim.now),
        vec![WebhookKind::Rollout, WebhookKind::Rollback]
    );
    observe(&mut sim, hook(WebhookKind::Rollout, false));
    assert_eq!(sim.rollout.failed_checks, 1);
    assert!(sim.has_event("rollout webhook rollout-hook failed: 403 after 1 attempt"));
    sim.advance(1);
    observe(&mut sim, hook(WebhookKind::Rollback, false));
    assert_eq!(sim.rollout.phase, Phase::Progressing);
    sim.advance(1);
    observe(&mut sim, hook(WebhookKind::Rollback, true));
    assert_eq!(sim.rollout.phase, Phase::RollingBack);
    assert!(sim.has_event("rollback requested by webhook rollback-hook"));
}

#[test]
fn post_rollout_webhooks_follow_promotion_and_rollback() {
    let notified = |sim: &Sim| {
        sim.actions
            .iter()
            .filter(|a| {
                matches!(
                    a,
                    Action::NotifyWebhooks {
                        kind: WebhookKind::PostRollout
                    }
                )
            })
            .count()
    };
    let mut sim = deploying("v2", plan_with(with_hooks(&[WebhookKind::PostRollout])));
    sim.tick(Health::Ready, None);
    sim.command(Command::Promote);
    sim.tick(Health::Ready, None);
    sim.advance(5);
    sim.tick(Health::Ready, None);
    assert_eq!(sim.rollout.phase, Phase::Succeeded);
    assert_eq!(notified(&sim), 1);
    sim.desired = Desired {
        revision: revision("v3"),
        plan: plan_with(with_hooks(&[WebhookKind::PostRollout])),
    };
    sim.tick(Health::Starting, None);
    sim.tick(Health::Ready, None);
    sim.command(Command::Abort);
    sim.tick(Health::Ready, None);
    assert_eq!(sim.rollout.phase, Phase::RolledBack);
    assert_eq!(notified(&sim), 2);
}

#[test]
fn retry_starts_a_rolled_back_candidate_again() {
    let mut sim = Sim::progressing("v2");
    sim.command(Command::Abort);
    sim.tick(Health::Ready, None);
    assert_eq!(sim.rollout.phase, Phase::RolledBack);
    sim.tick(Health::Ready, None);
    assert_eq!(sim.rollout.phase, Phase::RolledBack, "not retried on its own");
    sim.command(Command::Retry);
    assert_eq!(sim.rollout.phase, Phase::Deploying);
    assert!(sim.has_event("Retry requested by an operator: restarting the rollout of v2"));
    sim.tick(Health::Ready, None);
    assert_eq!(sim.rollout.phase, Phase::Progressing);
}

#[test]
fn on_inconclusive_promote_lets_a_quiet_shadow_stage_go_on() {
    let mut plan = plan_with(staged());
    plan.on_inconclusive = OnInconclusive::Promote;
    let mut sim = deploying("v2", plan);
    sim.tick(Health::Ready, None);
    observe(&mut sim, checks(CheckStage::Isolation, true, "ok"));
    sim.advance(60);
    observe(&mut sim, Observations::default());
    assert_eq!(sim.rollout.phase, Phase::Progressing);
}

#[test]
fn a_late_rollback_answer_does_not_undo_a_finished_rollout() {
    let mut sim = deploying("v2", plan_with(with_hooks(&[WebhookKind::Rollback])));
    sim.tick(Health::Ready, None);
    sim.command(Command::Promote);
    sim.tick(Health::Ready, None);
    sim.advance(5);
    sim.tick(Health::Ready, None);
    assert_eq!(sim.rollout.phase, Phase::Succeeded);
    observe(&mut sim, hook(WebhookKind::Rollback, true));
    assert_eq!(sim.rollout.phase, Phase::Succeeded);
    assert_eq!(sim.rollout.stable, Some(revision("v2")));
}

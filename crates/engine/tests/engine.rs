//! The engine driven through whole rollouts in simulated time.

use std::time::Duration;

use proptest::prelude::*;
use sluice_analysis::{RevisionWindow, Window};
use sluice_engine::{
    Action, CheckResult, CheckStage, Command, Desired, Exposure, Health, HookResult, Observations, Phase, Plan,
    Release, Role, RouteMode, Severity, ShadowPlan, ShadowTally, resync, step,
};
use sluice_spec::{OnFailure, OnInconclusive, ThresholdRange, WebhookKind};

mod support;

use support::*;

#[test]
fn the_first_revision_becomes_stable_without_analysis() {
    let sim = Sim::new("v1");
    assert_eq!(sim.rollout.stable, Some(revision("v1")));
    assert_eq!(sim.weight, Some(0));
    assert!(sim.has_event("Initialization done"));
}

#[test]
fn a_healthy_candidate_advances_one_step_per_interval_and_is_promoted() {
    let mut sim = Sim::new("v1");
    sim.apply("v2");
    sim.tick(Health::Starting, None);
    assert_eq!(sim.rollout.phase, Phase::Deploying);
    assert_eq!(sim.weight, Some(0), "a deploying candidate gets no user traffic");
    assert!(sim.has_event("New revision detected, starting canary analysis"));
    assert!(sim.actions.contains(&Action::StartRevision {
        revision: revision("v2"),
        role: Role::Candidate
    }));

    sim.advance(3);
    sim.tick(Health::Ready, None);
    assert_eq!((sim.rollout.phase, sim.weight), (Phase::Progressing, Some(10)));

    let mut weights = vec![10];
    for _ in 0..4 {
        sim.advance(30);
        sim.tick(Health::Ready, Some(healthy()));
        assert_eq!(
            sim.weight,
            weights.last().copied(),
            "no step before the interval has passed"
        );
        sim.advance(30);
        sim.tick(Health::Ready, Some(healthy()));
        weights.push(sim.weight.unwrap());
    }
    assert_eq!(weights, [10, 20, 30, 40, 50]);
    assert!(sim.has_event("Advance canary weight 20"));

    sim.advance(60);
    sim.tick(Health::Ready, Some(healthy()));
    assert_eq!(sim.rollout.phase, Phase::Promoting);
    assert_eq!(sim.rollout.stable, Some(revision("v2")));
    assert!(sim.actions.contains(&Action::SetRole {
        revision: revision("v2"),
        role: Role::Stable
    }));
    sim.advance(1);
    sim.tick(Health::Unknown, None);
    assert_eq!(sim.rollout.phase, Phase::Finalising);
    assert!(!sim.stopped("v1"), "the old revision drains before it stops");
    sim.advance(5);
    sim.tick(Health::Unknown, None);
    assert_eq!(sim.rollout.phase, Phase::Succeeded);
    assert!(sim.stopped("v1"));
    assert!(sim.has_event("Canary analysis completed successfully, promotion finished"));
    assert_eq!(sim.weight, Some(0));
    assert_eq!(sim.rollout.candidate, None);
}

#[test]
fn failed_checks_hold_the_weight_and_roll_back_at_the_threshold() {
    let mut sim = Sim::new("v1");
    sim.apply("v3");
    sim.tick(Health::Ready, None);
    sim.tick(Health::Ready, None);
    assert_eq!(sim.weight, Some(10));
    for failed in 1..=5 {
        sim.advance(60);
        sim.tick(Health::Ready, Some(window(1000, 69, 40.0)));
        assert_eq!(sim.rollout.failed_checks, failed);
        assert_eq!(sim.weight, Some(10), "a failing interval holds the weight");
    }
    // As in Flagger, the threshold is checked at the start of the next interval.
    assert!(sim.has_event("Halt advancement: request-success-rate 93.10% < 99%"));
    sim.advance(60);
    sim.tick(Health::Ready, Some(window(1000, 69, 40.0)));
    assert_eq!(sim.rollout.phase, Phase::RollingBack);
    assert_eq!(
        sim.weight,
        Some(0),
        "the rollback routes everything to stable in the same decision"
    );
    assert!(sim.has_event("Failed checks threshold reached 5"));
    assert!(
        sim.events
            .iter()
            .any(|(_, s, m)| *s == Severity::Error && m.contains("Rolling back"))
    );
    sim.advance(1);
    sim.tick(Health::Ready, None);
    assert_eq!(sim.rollout.phase, Phase::RolledBack);
    assert!(
        !sim.stopped("v3"),
        "the failed candidate is left running for inspection"
    );
    assert_eq!(sim.rollout.candidate, Some(revision("v3")));
}

#[test]
fn a_slow_candidate_fails_the_duration_check() {
    let mut sim = Sim::progressing("v2");
    sim.advance(60);
    sim.tick(Health::Ready, Some(window(1000, 0, 612.4)));
    assert!(sim.has_event("Halt advancement: request-duration 612.40ms > 500ms"));
}

#[test]
fn a_candidate_that_gets_no_traffic_fails_its_check() {
    let mut sim = Sim::progressing("v2");
    sim.advance(60);
    sim.tick(
        Health::Ready,
        Some(Window {
            complete: true,
            ..Window::default()
        }),
    );
    assert_eq!(sim.rollout.failed_checks, 1);
    assert!(sim.has_event("no values found for metric request-success-rate"));
}

#[test]
fn a_window_spanning_an_outage_is_inconclusive_not_a_pass() {
    let mut sim = Sim::progressing("v2");
    sim.advance(60);
    sim.tick(
        Health::Ready,
        Some(Window {
            complete: false,
            ..healthy()
        }),
    );
    assert_eq!((sim.weight, sim.rollout.failed_checks), (Some(10), 0));
    assert!(sim.has_event("inconclusive"));
    sim.advance(59);
    sim.tick(Health::Ready, Some(healthy()));
    assert_eq!(
        sim.weight,
        Some(10),
        "the interval restarted at the inconclusive verdict"
    );
    sim.advance(1);
    sim.tick(Health::Ready, Some(healthy()));
    assert_eq!(sim.weight, Some(20));
}

#[test]
fn a_candidate_that_exits_is_rolled_back_at_once() {
    for ready_first in [false, true] {
        let mut sim = Sim::new("v1");
        sim.apply("v2");
        sim.tick(Health::Starting, None);
        if ready_first {
            sim.tick(Health::Ready, None);
            assert_eq!(sim.rollout.phase, Phase::Progressing);
        }
        sim.advance(1);
        sim.tick(
            Health::Failed {
                reason: "instance 0 exited with status 1".into(),
            },
            None,
        );
        assert_eq!(sim.rollout.phase, Phase::RollingBack, "ready first: {ready_first}");
        assert_eq!(sim.weight, Some(0));
        assert!(sim.has_event("instance 0 exited with status 1"));
    }
}

#[test]
fn a_candidate_never_ready_is_rolled_back_at_the_progress_deadline() {
    let mut sim = Sim::new("v1");
    sim.apply("v2");
    sim.tick(Health::Starting, None);
    sim.advance(59);
    sim.tick(Health::Starting, None);
    assert_eq!(sim.rollout.phase, Phase::Deploying);
    sim.advance(1);
    sim.tick(Health::Starting, None);
    assert_eq!(sim.rollout.phase, Phase::RollingBack);
    assert!(sim.has_event("Progress deadline exceeded"));
}

#[test]
fn on_failure_hold_pauses_and_the_hold_times_out_into_a_rollback_with_an_alert() {
    let mut sim = Sim::new("v1");
    sim.desired.plan.on_failure = OnFailure::Hold;
    sim.desired.plan.threshold = 1;
    sim.apply_plan_and("v2");
    sim.tick(Health::Ready, None);
    sim.tick(Health::Ready, None);
    sim.advance(60);
    sim.tick(Health::Ready, Some(window(1000, 69, 40.0)));
    assert!(
        sim.rollout.hold.is_none(),
        "the threshold is checked at the next interval"
    );
    sim.advance(60);
    sim.tick(Health::Ready, Some(window(1000, 69, 40.0)));
    assert_eq!(sim.rollout.phase, Phase::Progressing);
    assert!(sim.rollout.hold.is_some());
    assert!(sim.rollout.display_phase().starts_with("Paused"));
    assert_eq!(sim.weight, Some(10));
    sim.advance(3599);
    sim.tick(Health::Ready, Some(healthy()));
    assert_eq!(
        (sim.rollout.phase, sim.weight),
        (Phase::Progressing, Some(10)),
        "a held rollout does not advance"
    );
    sim.advance(1);
    sim.tick(Health::Ready, Some(healthy()));
    assert_eq!(sim.rollout.phase, Phase::RollingBack);
    assert!(
        sim.events
            .iter()
            .any(|(_, s, m)| *s == Severity::Error && m.contains("Hold timed out after 1h"))
    );
}

impl Sim {
    fn apply_plan_and(&mut self, name: &str) {
        let plan = self.desired.plan.clone();
        self.desired = Desired {
            revision: revision(name),
            plan,
        };
    }
}

#[test]
fn operator_commands_pause_resume_promote_and_abort() {
    let mut sim = Sim::progressing("v2");
    sim.command(Command::Pause);
    assert!(sim.rollout.hold.is_some());
    sim.advance(120);
    sim.tick(Health::Ready, Some(healthy()));
    assert_eq!(sim.weight, Some(10), "paused");
    sim.command(Command::Resume);
    assert!(sim.rollout.hold.is_none());
    sim.advance(60);
    sim.tick(Health::Ready, Some(healthy()));
    assert_eq!(sim.weight, Some(20));
    sim.command(Command::Promote);
    assert_eq!(sim.rollout.phase, Phase::Promoting);
    assert_eq!(sim.rollout.stable, Some(revision("v2")));

    let mut sim = Sim::progressing("v2");
    sim.command(Command::Abort);
    assert_eq!((sim.rollout.phase, sim.weight), (Phase::RollingBack, Some(0)));
    assert!(sim.has_event("aborted by an operator"));
}

#[test]
fn commands_that_make_no_sense_are_refused_and_change_nothing() {
    let sim = Sim::new("v1");
    for command in [Command::Pause, Command::Resume, Command::Promote, Command::Abort] {
        assert!(sim.rollout.accepts(command).is_err(), "{command:?} in Succeeded");
    }
    let mut sim = Sim::new("v1");
    let before = sim.rollout.clone();
    sim.command(Command::Resume);
    assert_eq!((sim.rollout.phase, &sim.rollout.stable), (before.phase, &before.stable));
    assert!(sim.has_event("Ignored Resume"));
}

#[test]
fn a_newer_revision_supersedes_the_candidate() {
    let mut sim = Sim::progressing("v2");
    sim.advance(60);
    sim.tick(Health::Ready, Some(healthy()));
    assert_eq!(sim.weight, Some(20));
    sim.apply("v3");
    sim.tick(Health::Ready, None);
    assert_eq!(sim.rollout.phase, Phase::Deploying);
    assert_eq!(sim.rollout.candidate, Some(revision("v3")));
    assert_eq!(sim.weight, Some(0));
    assert!(sim.stopped("v2"));
    assert!(sim.has_event("New revision detected! Restarting analysis"));
}

#[test]
fn resync_restores_what_the_state_describes() {
    let sim = Sim::progressing("v2");
    let actions = resync(&sim.rollout);
    assert_eq!(
        actions,
        vec![
            Action::StartRevision {
                revision: revision("v1"),
                role: Role::Stable
            },
            Action::StartRevision {
                revision: revision("v2"),
                role: Role::Candidate
            },
            Action::SetRoute {
                stable: revision("v1"),
                candidate: Some(revision("v2")),
                weight: 10,
                draining: None,
                mode: RouteMode::Weighted,
            },
        ]
    );
}

#[test]
fn the_same_inputs_give_the_same_decision() {
    let mut sim = Sim::new("v1");
    sim.apply("v2");
    sim.tick(Health::Ready, None);
    let observations = Observations {
        desired: Some(desired("v2")),
        candidate: Health::Ready,
        window: None,
        commands: vec![],
        ..Observations::default()
    };
    let a = step(sim.rollout.clone(), &observations, sim.now);
    let b = step(sim.rollout.clone(), &observations, sim.now);
    assert_eq!(a, b);
}

// Property tests: random sequences of observations, commands, new revisions and time.

#[derive(Clone, Debug)]
enum Input {
    Wait(i64),
    Health(Health),
    Window {
        errors_per_mille: u64,
        p99: f64,
        complete: bool,
    },
    Command(Command),
    Apply(u8),
    Checks(CheckStage, bool),
    Shadow(u64, u64),
    Hook(WebhookKind, bool),
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        (1i64..400).prop_map(Input::Wait),
        prop_oneof![
            Just(Health::Starting),
            Just(Health::Ready),
            Just(Health::Unknown),
            Just(Health::Failed {
                reason: "exited".into()
            })
        ]
        .prop_map(Input::Health),
        (0u64..80, 1.0f64..900.0, any::<bool>()).prop_map(|(errors_per_mille, p99, complete)| Input::Window {
            errors_per_mille,
            p99,
            complete
        }),
        prop_oneof![
            Just(Command::Pause),
            Just(Command::Resume),
            Just(Command::Promote),
            Just(Command::Abort),
            Just(Command::Approve),
            Just(Command::Retry)
        ]
        .prop_map(Input::Command),
        (1u8..5).prop_map(Input::Apply),
        (
            prop_oneof![Just(CheckStage::Isolation), Just(CheckStage::PrePromotion)],
            any::<bool>()
        )
            .prop_map(|(stage, passed)| Input::Checks(stage, passed)),
        (0u64..2000, 0u64..40).prop_map(|(compared, differing)| Input::Shadow(compared, differing.min(compared))),
        (hook_kind(), any::<bool>()).prop_map(|(kind, passed)| Input::Hook(kind, passed)),
    ]
}

fn hook_kind() -> impl Strategy<Value = WebhookKind> {
    prop_oneof![
        Just(WebhookKind::ConfirmRollout),
        Just(WebhookKind::PreRollout),
        Just(WebhookKind::Rollout),
        Just(WebhookKind::ConfirmTrafficIncrease),
        Just(WebhookKind::ConfirmPromotion),
        Just(WebhookKind::PostRollout),
        Just(WebhookKind::Rollback),
        Just(WebhookKind::Event),
    ]
}

fn release_strategy() -> impl Strategy<Value = Release> {
    let exposure = prop_oneof![
        Just(Exposure::Canary),
        Just(Exposure::AbTest),
        any::<bool>().prop_map(|checks| Exposure::BlueGreen {
            pre_promotion: checks.then_some(Duration::from_secs(90)),
            scale_down_delay: Duration::from_secs(30),
        }),
    ];
    (
        exposure,
        any::<bool>(),
        any::<bool>(),
        prop::collection::btree_set(hook_kind(), 0..4),
    )
        .prop_map(|(exposure, isolation, shadow, hooks)| Release {
            exposure,
            isolation: isolation.then_some(Duration::from_secs(120)),
            shadow: shadow.then_some(ShadowPlan {
                duration: Duration::from_secs(60),
                max_diff_rate: 1.0,
            }),
            hooks,
        })
}

fn plan_strategy() -> impl Strategy<Value = Plan> {
    let judges = prop_oneof![
        Just(plan().judge),
        Just(sluice_engine::judge_config(&sluice_spec::Analysis::default())),
        Just(sluice_engine::judge_config(&sluice_spec::Analysis {
            judge: sluice_spec::Judge::MannWhitney,
            ..sluice_spec::Analysis::default()
        })),
    ];
    let inconclusive = prop_oneof![
        Just(OnInconclusive::Hold),
        Just(OnInconclusive::Promote),
        Just(OnInconclusive::Rollback)
    ];
    (
        prop::collection::btree_set(1u8..=100, 1..6),
        1u32..4,
        any::<bool>(),
        judges,
        inconclusive,
        release_strategy(),
    )
        .prop_map(|(steps, threshold, hold, judge, on_inconclusive, release)| Plan {
            steps: match release.exposure {
                Exposure::Canary => steps.into_iter().collect(),
                Exposure::AbTest => vec![0; steps.len()],
                Exposure::BlueGreen { .. } => Vec::new(),
            },
            release,
            threshold,
            on_failure: if hold { OnFailure::Hold } else { OnFailure::Rollback },
            hold_timeout: Duration::from_secs(600),
            judge,
            on_inconclusive,
            ..plan()
        })
}

/// Drives the engine through `inputs`, checking the invariants after every decision.
fn run(plan: &Plan, inputs: &[Input]) -> Result<Sim, TestCaseError> {
    let mut sim = Sim::new("v0");
    sim.desired.plan = plan.clone();
    let mut health = Health::Starting;
    for input in inputs {
        let mut observations = Observations {
            desired: Some(sim.desired.clone()),
            candidate: health.clone(),
            window: None,
            commands: vec![],
            ..Observations::default()
        };
        match input {
            Input::Wait(seconds) => sim.advance(*seconds),
            Input::Health(h) => {
                health = h.clone();
                observations.candidate = health.clone();
            }
            Input::Window {
                errors_per_mille,
                p99,
                complete,
            } => {
                observations.window = Some(Window {
                    complete: *complete,
                    ..window(1000, *errors_per_mille, *p99)
                });
            }
            Input::Command(command) => observations.commands.push(*command),
            Input::Apply(n) => {
                sim.desired = Desired {
                    revision: revision(&format!("v{n}")),
                    plan: plan.clone(),
                };
                observations.desired = Some(sim.desired.clone());
                health = Health::Starting;
                observations.candidate = Health::Starting;
            }
            Input::Checks(stage, passed) => {
                observations.checks = Some(CheckResult {
                    stage: *stage,
                    passed: *passed,
                    summary: "checks".into(),
                });
            }
            Input::Shadow(compared, differing) => {
                observations.shadow = Some(ShadowTally {
                    compared: *compared,
                    differing: *differing,
                    summary: String::new(),
                });
            }
            Input::Hook(kind, passed) => {
                observations.hooks.push(HookResult {
                    name: "hook".into(),
                    kind: *kind,
                    passed: *passed,
                    detail: String::new(),
                    asked_at: sim.now,
                });
            }
        }
        let phase_before = sim.rollout.phase;
        sim.tick_with(observations);
        let r = &sim.rollout;
        let last = sim.actions.iter().rev().find_map(|a| match a {
            Action::SetRoute { weight, candidate, .. } => Some((*weight, candidate.clone())),
            _ => None,
        });
        if matches!(r.phase, Phase::Deploying | Phase::Progressing) {
            prop_assert!(
                r.weight <= plan.max_weight(),
                "weight {} above the last step {}",
                r.weight,
                plan.max_weight()
            );
        }
        if matches!(r.phase, Phase::Deploying | Phase::Isolation | Phase::Shadow) {
            prop_assert!(
                !matches!(&sim.route, Some(Action::SetRoute { weight, mode, .. })
                    if *weight > 0 || matches!(mode, RouteMode::Matched | RouteMode::Preview)),
                "no user request reaches a candidate before it is released: {:?}",
                sim.route
            );
        }
        if matches!(r.phase, Phase::RollingBack | Phase::RolledBack) {
            prop_assert_eq!(r.weight, 0);
            prop_assert_eq!(
                last.clone().map(|(w, c)| (w, c.is_none())),
                Some((0, true)),
                "rollback routes 100% to stable"
            );
        }
        if phase_before != Phase::RollingBack && r.phase == Phase::RollingBack {
            prop_assert!(
                sim.events.iter().any(|(_, s, _)| *s == Severity::Error),
                "a rollback raises an alert"
            );
        }
        prop_assert!(
            r.stable.is_some(),
            "a service once initialised always has a stable revision"
        );
    }
    Ok(sim)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_over_random_sequences(plan in plan_strategy(), inputs in prop::collection::vec(input(), 0..60)) {
        run(&plan, &inputs)?;
    }

    /// No reachable state is a dead end: left alone with a healthy candidate and passing windows (or just time,
    /// for a hold), every rollout ends in Succeeded, RolledBack or Failed.
    #[test]
    fn every_reachable_state_reaches_an_end(plan in plan_strategy(), inputs in prop::collection::vec(input(), 0..60)) {
        let mut sim = run(&plan, &inputs)?;
        for _ in 0..200 {
            if matches!(sim.rollout.phase, Phase::Succeeded | Phase::RolledBack | Phase::Failed) {
                break;
            }
            sim.advance(61);
            sim.tick(Health::Ready, Some(healthy()));
        }
        prop_assert!(
            matches!(sim.rollout.phase, Phase::Succeeded | Phase::RolledBack | Phase::Failed),
            "stuck in {:?} (hold {:?})", sim.rollout.phase, sim.rollout.hold
        );
    }
}

// The default judge and the user's own metrics.

fn sequential_plan() -> Plan {
    let analysis = sluice_spec::Analysis::default();
    Plan {
        judge: sluice_engine::judge_config(&analysis),
        interval: Duration::from_secs(10),
        steps: vec![10, 50],
        ..plan()
    }
}

/// A second of traffic: `stable_n` stable requests, and a candidate share with `errors` errors.
fn second(candidate_n: u64, errors: u64, stable_n: u64) -> Window {
    Window {
        candidate: RevisionWindow {
            requests: candidate_n,
            errors,
            p99_ms: Some(5.0),
            latency: None,
        },
        stable: RevisionWindow {
            requests: stable_n,
            errors: 0,
            p99_ms: Some(5.0),
            latency: None,
        },
        complete: true,
    }
}

fn sequential_sim() -> Sim {
    sequential_sim_with(Duration::from_secs(10))
}

fn sequential_sim_with(interval: Duration) -> Sim {
    let mut sim = Sim::new("v1");
    sim.desired.plan = Plan {
        interval,
        ..sequential_plan()
    };
    sim.apply_plan_and("v2");
    sim.tick(Health::Ready, None);
    sim.tick(Health::Ready, None);
    assert_eq!((sim.rollout.phase, sim.weight), (Phase::Progressing, Some(10)));
    sim
}

#[test]
fn the_sequential_judge_rolls_back_a_regression_within_seconds_and_explains_it() {
    let mut sim = sequential_sim();
    for _ in 0..10 {
        sim.advance(1);
        sim.tick(Health::Ready, Some(second(20, 2, 180)));
        if sim.rollout.phase != Phase::Progressing {
            break;
        }
    }
    assert_eq!(
        sim.rollout.phase,
        Phase::RollingBack,
        "10% errors against none is a regression"
    );
    let errors = sim.rollout.last_checks.iter().find(|c| c.metric == "errors").unwrap();
    assert!(!errors.passed && errors.evidence.unwrap() >= 20.0, "{errors:?}");
    assert!(sim.has_event("Halt advancement: errors: candidate"));
}

#[test]
fn the_sequential_judge_promotes_with_evidence_and_holds_without() {
    let mut sim = sequential_sim();
    for _ in 0..20 {
        sim.advance(1);
        sim.tick(
            Health::Ready,
            Some(second(if sim.weight == Some(10) { 40 } else { 200 }, 0, 360)),
        );
    }
    assert_eq!(sim.rollout.phase, Phase::Promoting, "{:?}", sim.rollout.last_checks);
    assert!(sim.has_event("not worse than stable"));

    let mut thin = sequential_sim();
    for _ in 0..20 {
        thin.advance(1);
        thin.tick(Health::Ready, Some(second(1, 0, 9)));
    }
    assert_eq!(thin.rollout.phase, Phase::Progressing);
    assert!(
        thin.rollout.display_phase().contains("inconclusive"),
        "{}",
        thin.rollout.display_phase()
    );
    assert!(
        thin.events
            .iter()
            .any(|(_, s, m)| *s == Severity::Error && m.contains("inconclusive"))
    );
}

#[test]
fn windows_without_metrics_are_not_counted_and_too_many_pause_the_rollout() {
    let mut sim = sequential_sim_with(Duration::from_secs(20));
    for _ in 0..29 {
        sim.advance(1);
        sim.tick(Health::Ready, None);
    }
    assert!(sim.rollout.hold.is_none());
    assert_eq!(
        sim.weight,
        Some(50),
        "steps go on while the judge has nothing to object to"
    );
    sim.advance(1);
    sim.tick(Health::Ready, None);
    assert!(
        sim.rollout.display_phase().contains("metrics unavailable"),
        "{}",
        sim.rollout.display_phase()
    );
}

#[test]
fn the_users_own_metrics_count_failed_checks_when_out_of_range_or_unreadable() {
    let mut sim = Sim::new("v1");
    sim.desired.plan.threshold = 2;
    sim.desired.plan.custom_metrics = vec![sluice_spec::CustomMetric {
        name: "queue-depth".into(),
        query: Some("max(queue_depth)".into()),
        web: None,
        threshold_range: ThresholdRange {
            min: None,
            max: Some(100.0),
        },
    }];
    sim.apply_plan_and("v2");
    sim.tick(Health::Ready, None);
    sim.tick(Health::Ready, None);
    let reading = |value: Result<f64, String>| {
        vec![sluice_engine::CustomReading {
            name: "queue-depth".into(),
            value,
        }]
    };
    let observe = |sim: &mut Sim, value| {
        sim.advance(60);
        sim.tick_with(Observations {
            desired: Some(sim.desired.clone()),
            candidate: Health::Ready,
            window: Some(healthy()),
            commands: vec![],
            custom: reading(value),
            ..Observations::default()
        });
    };
    observe(&mut sim, Ok(12.0));
    assert_eq!((sim.weight, sim.rollout.failed_checks), (Some(20), 0));
    observe(&mut sim, Ok(250.0));
    assert_eq!((sim.weight, sim.rollout.failed_checks), (Some(20), 1));
    assert!(sim.has_event("queue-depth 250 outside <= 100"));
    observe(&mut sim, Err("the query matched no series".into()));
    assert_eq!(
        sim.rollout.failed_checks, 2,
        "an unreadable metric fails its check, it is not taken as zero"
    );
    observe(&mut sim, Ok(12.0));
    assert_eq!(sim.rollout.phase, Phase::RollingBack);
}

//! A rollout driven one decision at a time in simulated time, shared by the engine's test files.
#![allow(dead_code)]

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use sluice_analysis::{JudgeConfig, RevisionWindow, Window};
use sluice_engine::{Action, Command, Desired, Health, Observations, Phase, Plan, Release, Rollout, Severity, step};
use sluice_spec::{OnFailure, OnInconclusive, RevisionRef};

pub fn revision(name: &str) -> RevisionRef {
    RevisionRef {
        name: name.into(),
        checksum: format!("{name}-sum"),
    }
}

pub fn plan() -> Plan {
    let metrics = sluice_spec::Analysis::default_checks();
    Plan {
        steps: vec![10, 20, 30, 40, 50],
        interval: Duration::from_secs(60),
        progress_deadline: Duration::from_secs(60),
        threshold: 5,
        judge: JudgeConfig::Threshold {
            checks: metrics.clone(),
        },
        metrics,
        custom_metrics: Vec::new(),
        evaluation_interval: Duration::from_secs(1),
        on_inconclusive: OnInconclusive::Hold,
        on_failure: OnFailure::Rollback,
        hold_timeout: Duration::from_secs(3600),
        drain: Duration::from_secs(5),
        release: Release::default(),
    }
}

pub fn desired(name: &str) -> Desired {
    Desired {
        revision: revision(name),
        plan: plan(),
    }
}

pub fn window(requests: u64, errors: u64, p99_ms: f64) -> Window {
    let candidate = RevisionWindow {
        requests,
        errors,
        p99_ms: Some(p99_ms),
        latency: None,
    };
    let stable = RevisionWindow {
        requests: requests * 9,
        errors: 0,
        p99_ms: Some(50.0),
        latency: None,
    };
    Window {
        candidate,
        stable,
        complete: true,
    }
}

pub fn healthy() -> Window {
    window(600, 0, 40.0)
}

/// A rollout driven one decision at a time, keeping what a user would see: the route and the events.
pub struct Sim {
    pub rollout: Rollout,
    pub now: Timestamp,
    pub desired: Desired,
    pub weight: Option<u8>,
    pub events: Vec<(Timestamp, Severity, String)>,
    pub actions: Vec<Action>,
    /// The last route pushed to the data plane.
    pub route: Option<Action>,
}

impl Sim {
    /// v1 stable, `candidate` ready and on its first step.
    pub fn progressing(candidate: &str) -> Sim {
        let mut sim = Sim::new("v1");
        sim.apply(candidate);
        sim.tick(Health::Ready, None);
        sim.tick(Health::Ready, None);
        sim
    }

    pub fn new(first: &str) -> Sim {
        let mut sim = Sim {
            rollout: Rollout::new("checkout"),
            now: "2026-01-01T00:00:00Z".parse().unwrap(),
            desired: desired(first),
            weight: None,
            events: Vec::new(),
            actions: Vec::new(),
            route: None,
        };
        sim.tick(Health::Starting, None);
        sim.tick(Health::Ready, None);
        assert_eq!(sim.rollout.phase, Phase::Succeeded);
        sim
    }

    pub fn apply(&mut self, name: &str) {
        self.desired = desired(name);
    }

    pub fn tick_with(&mut self, observations: Observations) {
        let (rollout, actions) = step(self.rollout.clone(), &observations, self.now);
        self.rollout = rollout;
        for action in &actions {
            match action {
                Action::SetRoute { weight, .. } => {
                    self.weight = Some(*weight);
                    self.route = Some(action.clone());
                }
                Action::Record(event) => self.events.push((event.at, event.severity, event.message.clone())),
                _ => {}
            }
        }
        self.actions.extend(actions);
    }

    pub fn tick(&mut self, candidate: Health, window: Option<Window>) {
        let observations = Observations {
            desired: Some(self.desired.clone()),
            candidate,
            window,
            commands: Vec::new(),
            ..Observations::default()
        };
        self.tick_with(observations);
    }

    pub fn command(&mut self, command: Command) {
        let observations = Observations {
            desired: Some(self.desired.clone()),
            candidate: Health::Ready,
            window: None,
            commands: vec![command],
            ..Observations::default()
        };
        self.tick_with(observations);
    }

    pub fn advance(&mut self, seconds: i64) {
        self.now = self.now.checked_add(SignedDuration::from_secs(seconds)).unwrap();
    }

    pub fn has_event(&self, text: &str) -> bool {
        self.events.iter().any(|(_, _, m)| m.contains(text))
    }

    pub fn stopped(&self, name: &str) -> bool {
        self.actions
            .iter()
            .any(|a| matches!(a, Action::StopRevision { revision } if revision.name == name))
    }
}

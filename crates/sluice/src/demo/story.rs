//! The releases the demo walks through, what each one is meant to show, and whether it did.

use sluice_engine::Phase;

use crate::model::Outcome;

/// How a release is expected to end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// Both stages pass, then every canary step: it serves everyone.
    Promoted,
    /// Both stages pass (they never send it a POST); users' POSTs in the canary give it away.
    RolledBackInCanary,
    /// The shadow stage sees a real difference: rolled back before it answers a single user.
    RolledBackInShadow,
}

/// One release of the demo.
#[derive(Clone, Copy, Debug)]
pub struct Chapter {
    /// The revision's name.
    pub revision: &'static str,
    /// The demo app's flags that make the revision what it is.
    pub app_flags: &'static [&'static str],
    /// The heading printed before it.
    pub heading: &'static str,
    /// Why it ends as it does, printed under the heading.
    pub why: &'static str,
    /// How it must end.
    pub expected: Expected,
}

/// The releases after v1, in order.
pub const CHAPTERS: [Chapter; 3] = [
    Chapter {
        revision: "v2",
        app_flags: &[],
        heading: "a healthy release — expect isolation and shadow to pass, then promotion step by step",
        why: "Its answers differ from v1's only in requestId and servedAt, which differ between two v1 answers too.",
        expected: Expected::Promoted,
    },
    Chapter {
        revision: "v3",
        app_flags: &["--error-rate", "0.1", "--fail-methods", "POST"],
        heading: "fails 1 in 10 POSTs (--fail-methods POST) — expect the canary to roll it back",
        why: "The isolation load test only reads, and the shadow stage never copies a POST (repeating it would \
              repeat its side effects), so both pass; the first users' POSTs reach v3 in the canary, whose analysis \
              sees their errors.",
        expected: Expected::RolledBackInCanary,
    },
    Chapter {
        revision: "v4",
        app_flags: &["--price-change", "5"],
        heading: "every price 5% higher — expect the shadow stage to roll it back before any user sees it",
        why: "It starts, answers every check with 200 and meets the SLO; only comparing its answers with v2's shows \
              that $.price changed.",
        expected: Expected::RolledBackInShadow,
    },
];

/// How a release went, as the demo saw it.
#[derive(Clone, Debug)]
pub struct Release {
    /// The revision.
    pub revision: String,
    /// How its rollout ended.
    pub outcome: Outcome,
    /// The phases seen, in order, without repeats.
    pub phases: Vec<Phase>,
    /// How long the rollout took.
    pub took: std::time::Duration,
    /// Users' requests it answered during its rollout.
    pub users_served: u64,
    /// Of those, the ones it answered with a 5xx.
    pub users_failed: u64,
}

impl Release {
    /// The last phase before the rollout ended: where a rolled-back candidate was caught.
    pub fn caught_in(&self) -> Option<Phase> {
        self.phases
            .iter()
            .rev()
            .find(|phase| !matches!(phase, Phase::RollingBack | Phase::RolledBack | Phase::Failed))
            .copied()
    }

    /// Whether it ended as `expected`; if not, what happened instead.
    pub fn check(&self, expected: Expected) -> Result<(), String> {
        let caught = self.caught_in();
        let met = match expected {
            Expected::Promoted => self.outcome == Outcome::Promoted,
            Expected::RolledBackInCanary => {
                self.outcome == Outcome::RolledBack && caught == Some(Phase::Progressing) && self.users_served > 0
            }
            Expected::RolledBackInShadow => {
                self.outcome == Outcome::RolledBack && caught == Some(Phase::Shadow) && self.users_served == 0
            }
        };
        if met {
            Ok(())
        } else {
            Err(format!(
                "{}: expected {expected:?}, got {:?} after {} having served {} user requests",
                self.revision,
                self.outcome,
                caught.map_or("no phase".into(), |phase| phase.to_string()),
                self.users_served
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(outcome: Outcome, phases: &[Phase], users_served: u64) -> Release {
        Release {
            revision: "v9".into(),
            outcome,
            phases: phases.to_vec(),
            took: std::time::Duration::from_secs(1),
            users_served,
            users_failed: 0,
        }
    }

    #[test]
    fn a_rollback_is_judged_by_the_phase_that_caught_it_and_the_users_it_served() {
        use Phase::*;
        let in_shadow = release(
            Outcome::RolledBack,
            &[Deploying, Isolation, Shadow, RollingBack, RolledBack],
            0,
        );
        assert_eq!(in_shadow.caught_in(), Some(Shadow));
        assert!(in_shadow.check(Expected::RolledBackInShadow).is_ok());
        assert!(in_shadow.check(Expected::RolledBackInCanary).is_err());

        let in_canary = release(
            Outcome::RolledBack,
            &[Deploying, Isolation, Shadow, Progressing, RolledBack],
            80,
        );
        assert!(in_canary.check(Expected::RolledBackInCanary).is_ok());
        let error = in_canary.check(Expected::RolledBackInShadow).unwrap_err();
        assert!(
            error.contains("Progressing") && error.contains("80 user requests"),
            "{error}"
        );

        let leaked = release(Outcome::RolledBack, &[Deploying, Isolation, Shadow, RolledBack], 3);
        assert!(leaked.check(Expected::RolledBackInShadow).is_err(), "a user reached it");

        let promoted = release(Outcome::Promoted, &[Deploying, Progressing, Succeeded], 500);
        assert!(promoted.check(Expected::Promoted).is_ok());
        assert!(promoted.check(Expected::RolledBackInCanary).is_err());
    }
}

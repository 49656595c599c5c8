//! The stages before users see the candidate (isolation, shadow) and blue/green's preview and switch.

use sluice_analysis::{Verdict, judge_thresholds};
use sluice_spec::OnInconclusive;

use super::{Decision, after};
use crate::plan::Exposure;
use crate::{Action, CheckStage, HoldReason, Observations, Phase, Plan, Role, Severity};

impl Decision {
    /// The candidate is ready: isolation checks, the shadow stage, or users, whichever comes first.
    pub(super) fn after_ready(&mut self) {
        let Some(plan) = &self.rollout.plan else { return };
        let Some(budget) = plan.release.isolation else {
            return self.after_isolation();
        };
        self.rollout.deadline = Some(self.after(budget));
        self.enter(Phase::Isolation);
        self.record(
            Severity::Info,
            format!(
                "Isolation: checking {} alone before any user request reaches it",
                self.candidate_name()
            ),
        );
    }

    fn after_isolation(&mut self) {
        let (Some(plan), Some(stable), Some(candidate)) = (
            &self.rollout.plan,
            self.rollout.stable.clone(),
            self.rollout.candidate.clone(),
        ) else {
            return;
        };
        let Some(shadow) = plan.release.shadow.clone() else {
            self.rollout.deadline = None;
            return self.release();
        };
        self.rollout.deadline = Some(self.after(shadow.duration));
        self.enter(Phase::Shadow);
        self.record(
            Severity::Info,
            format!(
                "Shadow: mirroring live requests to {} for {:#}, comparing its answers with {}'s",
                candidate.name,
                jiff::SignedDuration::try_from(shadow.duration).unwrap_or_default(),
                stable.name
            ),
        );
        // The comparison must listen before the proxy copies requests to it.
        self.actions.push(Action::StartShadow { stable, candidate });
        self.route();
    }

    pub(super) fn isolate(&mut self, observations: &Observations) {
        let Some(plan) = self.rollout.plan.clone() else { return };
        match observations
            .checks
            .as_ref()
            .filter(|c| c.stage == CheckStage::Isolation)
        {
            Some(result) if result.passed => {
                self.record(Severity::Info, format!("Isolation checks passed: {}", result.summary));
                self.after_isolation();
            }
            Some(result) => self.fail(&plan, format!("isolation checks failed: {}", result.summary)),
            None if self.rollout.deadline.is_some_and(|d| self.now >= d) => {
                self.fail(&plan, "isolation checks did not finish in time".into());
            }
            None => {}
        }
    }

    pub(super) fn shadow(&mut self, observations: &Observations) {
        let Some(plan) = self.rollout.plan.clone() else { return };
        let Some(shadow) = plan.release.shadow.clone() else {
            return self.release();
        };
        if self.rollout.deadline.is_some_and(|d| self.now < d) {
            return;
        }
        let tally = observations.shadow.clone().unwrap_or_else(|| crate::ShadowTally {
            compared: 0,
            differing: 0,
            summary: "no comparison was reported".into(),
        });
        if tally.compared == 0 {
            let summary = format!(
                "Shadow stage inconclusive: no mirrored request was compared ({})",
                tally.summary
            );
            return match plan.on_inconclusive {
                OnInconclusive::Hold => self.hold(
                    &plan,
                    HoldReason::Inconclusive {
                        summary: summary.clone(),
                    },
                    summary,
                ),
                OnInconclusive::Promote => {
                    self.record(Severity::Warning, format!("{summary}; going on as onInconclusive says"));
                    self.release();
                }
                OnInconclusive::Rollback => self.rollback(summary),
            };
        }
        #[allow(clippy::cast_precision_loss)]
        let rate = tally.differing as f64 * 100.0 / tally.compared as f64;
        let numbers = format!(
            "{} of {} compared requests ({rate:.2}%) differ beyond the stable-vs-stable noise, limit {}%",
            tally.differing, tally.compared, shadow.max_diff_rate
        );
        if rate > shadow.max_diff_rate {
            let summary = if tally.summary.is_empty() {
                numbers
            } else {
                format!("{numbers}: {}", tally.summary)
            };
            return self.fail(&plan, format!("shadow diff rate too high: {summary}"));
        }
        self.record(Severity::Info, format!("Shadow stage passed: {numbers}"));
        self.release();
    }

    /// Blue/green before the switch: the preview's checks, then the promotion gate, then the switch.
    pub(super) fn preview(&mut self, plan: &Plan, observations: &Observations) {
        let Exposure::BlueGreen { pre_promotion, .. } = plan.release.exposure else {
            return;
        };
        let Some(budget) = pre_promotion else {
            return self.try_promote();
        };
        match observations
            .checks
            .as_ref()
            .filter(|c| c.stage == CheckStage::PrePromotion)
        {
            Some(result) if result.passed => {
                self.record(
                    Severity::Info,
                    format!("Pre-promotion checks passed: {}", result.summary),
                );
                self.try_promote();
            }
            Some(result) => self.fail(plan, format!("pre-promotion checks failed: {}", result.summary)),
            None if self.now >= after(self.rollout.phase_since, budget) => {
                self.fail(plan, "pre-promotion checks did not finish in time".into());
            }
            None => {}
        }
    }

    /// Blue/green after the switch: the new revision is held to the SLO checks until the old one is scaled down,
    /// and any failure switches all traffic back at once.
    pub(super) fn watch_after_switch(&mut self, observations: &Observations) {
        let Some(plan) = self.rollout.plan.clone() else { return };
        if self.now < after(self.rollout.window_start, plan.evaluation_interval) {
            return;
        }
        self.rollout.window_start = self.now;
        // A window without traffic says nothing about the new revision: an idle service is not switched back.
        let Some(window) = observations
            .window
            .as_ref()
            .filter(|w| w.complete && w.candidate.requests > 0)
        else {
            return;
        };
        let verdict = judge_thresholds(&plan.metrics, window);
        if let Verdict::Fail { .. } = verdict {
            let summary = verdict.failure_summary();
            self.rollout.last_checks = verdict.checks().to_vec();
            self.rollback(format!("failed after the switch: {summary}"));
        }
    }

    /// Undoes a blue/green switch: the old revision, still running, is stable again and the new one the failed
    /// candidate, left running for inspection. The rollback that follows routes all traffic back at once.
    pub(super) fn switch_back(&mut self) {
        let (Some(new), Some(old)) = (self.rollout.stable.take(), self.rollout.retired.take()) else {
            return;
        };
        self.rollout.stable = Some(old.clone());
        self.rollout.candidate = Some(new.clone());
        self.actions.push(Action::SetRole {
            revision: old,
            role: Role::Stable,
        });
        self.actions.push(Action::SetRole {
            revision: new,
            role: Role::Candidate,
        });
    }
}

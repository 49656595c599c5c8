//! Gates and the webhooks whose answers steer a rollout: confirm-* gates, rollout checks, rollback requests.

use sluice_spec::WebhookKind;

use super::Decision;
use crate::{Action, Hold, HoldReason, HookResult, Phase, Role, Rollout, Severity, TimeoutAction};

/// Whether the candidate waits at the confirm-rollout gate and has not been started.
pub(super) fn waits_to_start(rollout: &Rollout) -> bool {
    rollout.phase == Phase::Deploying
        && matches!(
            rollout.hold,
            Some(Hold {
                reason: HoldReason::Gate {
                    kind: WebhookKind::ConfirmRollout
                },
                ..
            })
        )
}

impl Decision {
    /// Whether the spec puts a gate of this kind in the way.
    pub(super) fn gates(&self, kind: WebhookKind) -> bool {
        self.rollout
            .plan
            .as_ref()
            .is_some_and(|plan| plan.release.has_hook(kind))
    }

    /// Waits at a gate until its webhooks answer 2xx, someone approves, or the hold times out into a rollback.
    pub(super) fn gate(&mut self, kind: WebhookKind) {
        let timeout = self.rollout.plan.as_ref().map(|plan| plan.hold_timeout);
        let until = self.after(timeout.unwrap_or(crate::Plan::DEFAULT_DRAIN));
        self.rollout.hold = Some(Hold {
            reason: HoldReason::Gate { kind },
            since: self.now,
            until,
            on_timeout: TimeoutAction::Rollback,
        });
        // Ask at once rather than one evaluation from now.
        self.rollout.hooks_asked_at = jiff::Timestamp::UNIX_EPOCH;
        self.record(
            Severity::Info,
            format!(
                "Waiting for approval: the {kind} gate of {} {} is closed until its webhooks answer 2xx or \
                 `sluice approve {}`; it rolls back at {until}",
                self.rollout.service,
                self.candidate_name(),
                self.rollout.service
            ),
        );
    }

    /// Goes on with what the gate held back.
    pub(super) fn open_gate(&mut self, kind: WebhookKind, why: String) {
        self.rollout.hold = None;
        self.record(Severity::Info, format!("Gate {kind} opened: {why}"));
        match kind {
            WebhookKind::ConfirmRollout => {
                let Some(plan) = &self.rollout.plan else { return };
                self.rollout.deadline = Some(self.after(plan.progress_deadline));
                if let Some(candidate) = self.rollout.candidate.clone() {
                    self.actions.push(Action::StartRevision {
                        revision: candidate,
                        role: Role::Candidate,
                    });
                }
            }
            WebhookKind::ConfirmTrafficIncrease => {
                if let Some(plan) = self.rollout.plan.clone() {
                    self.next_step(&plan);
                }
            }
            WebhookKind::ConfirmPromotion => self.promote(),
            _ => {}
        }
    }

    /// Promotes, behind the confirm-promotion gate when one is configured.
    pub(super) fn try_promote(&mut self) {
        if self.gates(WebhookKind::ConfirmPromotion) {
            return self.gate(WebhookKind::ConfirmPromotion);
        }
        self.promote();
    }

    /// Calls the webhooks of a kind whose answers change nothing, if the spec has any.
    pub(super) fn notify_hooks(&mut self, kind: WebhookKind) {
        if self.gates(kind) {
            self.actions.push(Action::NotifyWebhooks { kind });
        }
    }

    /// Acts on the webhooks' answers. Returns true when they ended this step's decision.
    pub(super) fn answers(&mut self, hooks: &[HookResult]) -> bool {
        if hooks.is_empty() {
            return false;
        }
        self.rollout.hooks_asked_at = hooks.iter().map(|h| h.asked_at).min().unwrap_or(self.now);
        // Answers arrive a round after the call: one asked while the candidate was analysed may land after it
        // was promoted or rolled back, and must not act then.
        let analysed = matches!(
            self.rollout.phase,
            Phase::Isolation | Phase::Shadow | Phase::Progressing
        ) || self.rollout.can_switch_back();
        if let Some(hook) = hooks.iter().find(|h| h.kind == WebhookKind::Rollback && h.passed)
            && analysed
        {
            self.rollback(format!("rollback requested by webhook {}", hook.name));
            return true;
        }
        if let Some(Hold {
            reason: HoldReason::Gate { kind },
            ..
        }) = self.rollout.hold
        {
            let answers: Vec<&HookResult> = hooks.iter().filter(|h| h.kind == kind).collect();
            if !answers.is_empty() && answers.iter().all(|h| h.passed) {
                let names: Vec<&str> = answers.iter().map(|h| h.name.as_str()).collect();
                self.open_gate(kind, format!("webhook {} answered 2xx", names.join(", ")));
                return true;
            }
            return false;
        }
        if self.rollout.phase != Phase::Progressing {
            return false;
        }
        let Some(plan) = self.rollout.plan.clone() else {
            return false;
        };
        for hook in hooks.iter().filter(|h| h.kind == WebhookKind::Rollout && !h.passed) {
            self.rollout.failed_checks += 1;
            self.record(
                Severity::Warning,
                format!(
                    "Halt advancement: rollout webhook {} failed: {}",
                    hook.name, hook.detail
                ),
            );
        }
        if self.rollout.failed_checks >= plan.threshold && hooks.iter().any(|h| !h.passed) {
            let reason = format!("Failed checks threshold reached {}", self.rollout.failed_checks);
            self.fail(&plan, reason);
            return true;
        }
        false
    }
}

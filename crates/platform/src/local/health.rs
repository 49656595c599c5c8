//! Turning what is known about a revision's slots into the health the controller acts on.

use crate::model::{RestartPolicy, RevisionHealth};

/// One slot, after its readiness probe.
#[derive(Debug)]
pub(super) struct SlotHealth {
    pub(super) ready: bool,
    /// Why the slot's process is not running, if it is not.
    pub(super) exit_reason: Option<String>,
    pub(super) restarts: u32,
}

/// `of` is the number of instances the template calls for; slots never started count as not
/// ready.
pub(super) fn classify(policy: RestartPolicy, of: u32, slots: &[SlotHealth]) -> RevisionHealth {
    if policy == RestartPolicy::Never {
        let reasons: Vec<&str> = slots.iter().filter_map(|slot| slot.exit_reason.as_deref()).collect();
        if !reasons.is_empty() {
            return RevisionHealth::Failed {
                reason: reasons.join("; "),
            };
        }
    }
    let ready = count(slots.iter().filter(|slot| slot.ready));
    if ready >= of {
        return RevisionHealth::Ready;
    }
    let recovering = policy == RestartPolicy::Always
        && slots
            .iter()
            .any(|slot| !slot.ready && (slot.exit_reason.is_some() || slot.restarts > 0));
    if recovering {
        let restarts = slots.iter().map(|slot| slot.restarts).sum();
        RevisionHealth::Degraded { ready, of, restarts }
    } else {
        RevisionHealth::Starting { ready, of }
    }
}

fn count<'a>(slots: impl Iterator<Item = &'a SlotHealth>) -> u32 {
    u32::try_from(slots.count()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready() -> SlotHealth {
        SlotHealth {
            ready: true,
            exit_reason: None,
            restarts: 0,
        }
    }

    fn starting() -> SlotHealth {
        SlotHealth {
            ready: false,
            exit_reason: None,
            restarts: 0,
        }
    }

    fn exited(reason: &str, restarts: u32) -> SlotHealth {
        SlotHealth {
            ready: false,
            exit_reason: Some(reason.to_owned()),
            restarts,
        }
    }

    #[test]
    fn every_instance_ready_is_ready() {
        for policy in [RestartPolicy::Always, RestartPolicy::Never] {
            assert_eq!(classify(policy, 2, &[ready(), ready()]), RevisionHealth::Ready);
        }
    }

    #[test]
    fn instances_not_yet_answering_or_not_yet_started_are_starting() {
        assert_eq!(
            classify(RestartPolicy::Never, 2, &[ready(), starting()]),
            RevisionHealth::Starting { ready: 1, of: 2 }
        );
        assert_eq!(
            classify(RestartPolicy::Always, 2, &[ready()]),
            RevisionHealth::Starting { ready: 1, of: 2 }
        );
    }

    #[test]
    fn a_candidate_with_an_exited_instance_has_failed_with_every_reason() {
        let slots = [
            ready(),
            exited("instance 1 exited with status 3", 0),
            exited("instance 2 was killed by signal 9 (SIGKILL)", 0),
        ];

        assert_eq!(
            classify(RestartPolicy::Never, 3, &slots),
            RevisionHealth::Failed {
                reason: "instance 1 exited with status 3; instance 2 was killed by signal 9 (SIGKILL)".to_owned()
            }
        );
    }

    #[test]
    fn a_stable_revision_restarting_an_instance_is_degraded() {
        assert_eq!(
            classify(
                RestartPolicy::Always,
                2,
                &[ready(), exited("instance 1 exited with status 3", 2)]
            ),
            RevisionHealth::Degraded {
                ready: 1,
                of: 2,
                restarts: 2
            }
        );
        let restarted_not_yet_ready = SlotHealth {
            restarts: 1,
            ..starting()
        };
        assert_eq!(
            classify(RestartPolicy::Always, 2, &[ready(), restarted_not_yet_ready]),
            RevisionHealth::Degraded {
                ready: 1,
                of: 2,
                restarts: 1
            }
        );
    }
}

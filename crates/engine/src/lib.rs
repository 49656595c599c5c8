//! The rollout engine: a pure phase machine, (state, observations, now) -> (state, actions).

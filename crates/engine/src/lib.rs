//! The rollout engine: a pure phase machine.
//!
//! [`step`] takes the persisted [`Rollout`], what the controller observed ([`Observations`]) and the wall-clock
//! `now`, and returns the next state and the [`Action`]s that bring the world in line with it. It does no I/O,
//! reads no clock and draws no random numbers: the same inputs give the same outputs, so the whole rollout can
//! be driven in simulated time (tests, the analysis benchmark) exactly as the daemon drives it for real.
//!
//! Architecture invariants the engine upholds:
//! - every action is idempotent, so the controller may repeat the actions of a decision after a crash;
//! - deadlines are absolute wall-clock instants stored in the state, so they survive a restart;
//! - an analysis window the controller reports as incomplete (it spans an outage) is inconclusive, never a
//!   pass: the interval starts again;
//! - a rollback routes 100% of traffic to the stable revision in the same decision, and leaves the candidate
//!   running for inspection.
//!
//! ```
//! use sluice_engine::{Rollout, Observations, Desired, Plan, step};
//! # fn demo(desired: Desired, now: jiff::Timestamp) {
//! let rollout = Rollout::new("checkout");
//! let (rollout, actions) = step(rollout, &Observations::desired(desired), now);
//! # let _ = (rollout, actions);
//! # }
//! ```

mod action;
mod command;
mod machine;
mod observation;
mod plan;
mod state;

pub use action::{Action, Event, Role, RouteMode, Severity};
pub use command::{Command, CommandRejected};
pub use machine::{resync, step};
pub use observation::{CheckResult, CheckStage, CustomReading, Desired, Health, HookResult, Observations, ShadowTally};
pub use plan::{Exposure, Plan, Release, ShadowPlan, judge_config};
pub use state::{Hold, HoldReason, Phase, Rollout, TimeoutAction};

//! Analysis: what the candidate's and the stable revision's traffic looked like over a window, and the judges
//! that turn it into a verdict. Pure: no I/O, no clock, no randomness; metric sources (the I/O side) live in
//! `sluice-metrics` and hand their numbers in as [`Window`]s.

pub mod stats;
mod threshold;
mod verdict;
mod window;

pub use threshold::judge_thresholds;
pub use verdict::{CheckOutcome, Verdict};
pub use window::{RevisionWindow, Window};

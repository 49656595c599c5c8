//! Analysis: what the candidate's and the stable revision's traffic looked like over a window, and the judges
//! that turn it into a verdict. Pure: no I/O, no clock, no randomness; metric sources (the I/O side) live in
//! `sluice-metrics` and hand their numbers in as [`Window`]s.

mod judge;
mod mann_whitney;
mod sequential;
pub mod stats;
mod threshold;
mod verdict;
mod window;

pub use judge::{JudgeConfig, JudgeState};
pub use mann_whitney::{MannWhitneyConfig, MannWhitneyState};
pub use sequential::{DEFAULT_LATENCY_THRESHOLDS_MS, PromotionMargin, SequentialConfig, SequentialState};
pub use threshold::judge_thresholds;
pub use verdict::{CheckOutcome, Verdict};
pub use window::{RevisionWindow, Window};

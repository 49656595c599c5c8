//! Statistics for the judges: histograms and quantiles, e-processes, Mann–Whitney, anytime-valid bounds.
//!
//! Everything here is a pure function of its arguments (or a small state updated by them): no I/O, no clock,
//! no random numbers. The judges in this crate decide *when* to call these and *what* to do with the answer.

pub mod bounds;
pub mod eprocess;
pub mod histogram;
pub mod mann_whitney;
mod normal;

pub use bounds::{BoundsError, ProportionBounds, SloVerdict, latency_slo, proportion_bounds, success_rate_slo};
pub use eprocess::{Direction, EProcess, EProcessError, EventCounts, SequentialTest, Tolerance};
pub use histogram::{Histogram, HistogramError};
pub use mann_whitney::{
    Alternative, Classification, Comparison, KayentaClassifier, MannWhitneyError, MetricDirection, ShiftInterval,
    UTest, shift_interval, u_test,
};

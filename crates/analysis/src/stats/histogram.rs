//! Latency histograms with fixed bucket bounds, read the way Prometheus reads them.
//!
//! A [`Histogram`] is a set of upper bounds in milliseconds (Prometheus' `le`) and one count per bucket, the
//! last bucket being `+Inf`. Its quantiles follow PromQL's `histogram_quantile` (`BucketQuantile` in
//! `promql/quantile.go`): find the bucket holding rank `q·count`, interpolate linearly inside it, take 0 as the
//! lower edge of the first bucket and answer the last finite bound when the rank falls in `+Inf`. Every
//! quantile a judge compares, and every quantile the analysis benchmark's reference computes, goes through
//! this one function, so a difference between two revisions is never an artefact of two estimators.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why a histogram could not be built or combined.
#[derive(Clone, Debug, Error, PartialEq)]
pub enum HistogramError {
    /// A histogram needs at least one finite bound besides `+Inf`.
    #[error("histogram bounds are empty; expected at least one finite upper bound in ms")]
    NoBounds,
    /// Bounds are latencies: finite and positive.
    #[error("histogram bound #{index} is {value} ms; expected a finite number greater than 0")]
    InvalidBound {
        /// Position of the bound in the list.
        index: usize,
        /// The offending value.
        value: f64,
    },
    /// Buckets are identified by their bounds, so the bounds must be strictly increasing.
    #[error("histogram bound #{index} is {value} ms after {previous} ms; expected strictly increasing bounds")]
    BoundsNotIncreasing {
        /// Position of the bound in the list.
        index: usize,
        /// The offending value.
        value: f64,
        /// The bound before it.
        previous: f64,
    },
    /// One count per finite bound plus one for `+Inf`.
    #[error("histogram has {bounds} bounds but {counts} bucket counts; expected {expected} (one per bound, then +Inf)")]
    CountsLength {
        /// Number of finite bounds.
        bounds: usize,
        /// Number of counts given.
        counts: usize,
        /// Number of counts expected.
        expected: usize,
    },
    /// Histograms are only combined bucket by bucket.
    #[error("cannot combine histograms with different bounds: {left:?} and {right:?}")]
    DifferentBounds {
        /// Bounds of the histogram being changed.
        left: Vec<f64>,
        /// Bounds of the other histogram.
        right: Vec<f64>,
    },
    /// Subtracting a later snapshot from an earlier one, or across a counter reset.
    #[error("cannot subtract: bucket le={le} would go negative ({count} - {subtrahend}); was the counter reset?")]
    NegativeCount {
        /// The bucket's upper bound (`+Inf` for the last).
        le: String,
        /// Its count before subtracting.
        count: u64,
        /// The count subtracted.
        subtrahend: u64,
    },
    /// Merging would not fit in a 64-bit counter.
    #[error("merging overflows bucket le={le}")]
    CountOverflow {
        /// The bucket's upper bound (`+Inf` for the last).
        le: String,
    },
    /// Exceedances are only exact on a bucket bound.
    #[error("{threshold_ms} ms is not a bucket bound of this histogram; expected one of {bounds:?}")]
    ThresholdNotABound {
        /// The threshold asked for.
        threshold_ms: f64,
        /// The histogram's bounds.
        bounds: Vec<f64>,
    },
}

/// Request latencies counted in fixed buckets (non-cumulative counts; the last bucket is `+Inf`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "HistogramParts", into = "HistogramParts")]
pub struct Histogram {
    bounds: Vec<f64>,
    counts: Vec<u64>,
}

/// The serialized form; deserializing goes through [`Histogram::from_counts`] so a stored histogram is checked
/// like a new one.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HistogramParts {
    bounds_ms: Vec<f64>,
    counts: Vec<u64>,
}

impl TryFrom<HistogramParts> for Histogram {
    type Error = HistogramError;

    fn try_from(parts: HistogramParts) -> Result<Self, Self::Error> {
        Histogram::from_counts(parts.bounds_ms, parts.counts)
    }
}

impl From<Histogram> for HistogramParts {
    fn from(histogram: Histogram) -> Self {
        HistogramParts {
            bounds_ms: histogram.bounds,
            counts: histogram.counts,
        }
    }
}

impl Histogram {
    /// An empty histogram over `bounds_ms` (finite upper bounds, strictly increasing; `+Inf` is implied).
    pub fn new(bounds_ms: Vec<f64>) -> Result<Self, HistogramError> {
        check_bounds(&bounds_ms)?;
        let counts = vec![0; bounds_ms.len() + 1];
        Ok(Histogram {
            bounds: bounds_ms,
            counts,
        })
    }

    /// A histogram with the given per-bucket counts: one per bound, then the `+Inf` bucket.
    pub fn from_counts(bounds_ms: Vec<f64>, counts: Vec<u64>) -> Result<Self, HistogramError> {
        check_bounds(&bounds_ms)?;
        let expected = bounds_ms.len() + 1;
        if counts.len() != expected {
            return Err(HistogramError::CountsLength {
                bounds: bounds_ms.len(),
                counts: counts.len(),
                expected,
            });
        }
        Ok(Histogram {
            bounds: bounds_ms,
            counts,
        })
    }

    /// The finite upper bounds, in ms.
    pub fn bounds(&self) -> &[f64] {
        &self.bounds
    }

    /// The per-bucket counts, the `+Inf` bucket last.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// Number of requests counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Adds `other`'s counts (same bounds), e.g. to grow a window tick by tick.
    pub fn merge(&mut self, other: &Histogram) -> Result<(), HistogramError> {
        self.check_same_bounds(other)?;
        let mut merged = self.counts.clone();
        for (index, (count, added)) in merged.iter_mut().zip(&other.counts).enumerate() {
            *count = count
                .checked_add(*added)
                .ok_or_else(|| HistogramError::CountOverflow { le: self.le(index) })?;
        }
        self.counts = merged;
        Ok(())
    }

    /// Removes `other`'s counts (same bounds), e.g. to turn two cumulative scrapes into the window between them.
    /// Leaves `self` unchanged when a bucket would go negative.
    pub fn subtract(&mut self, other: &Histogram) -> Result<(), HistogramError> {
        self.check_same_bounds(other)?;
        let mut remaining = self.counts.clone();
        for (index, (count, removed)) in remaining.iter_mut().zip(&other.counts).enumerate() {
            *count = count
                .checked_sub(*removed)
                .ok_or_else(|| HistogramError::NegativeCount {
                    le: self.le(index),
                    count: *count,
                    subtrahend: *removed,
                })?;
        }
        self.counts = remaining;
        Ok(())
    }

    /// The `q`-quantile in ms with `histogram_quantile` semantics; `None` where Prometheus answers NaN (no
    /// requests, or `q` is NaN). Like Prometheus, `q < 0` gives −∞ and `q > 1` gives +∞.
    ///
    /// One deliberate difference: for `q = 0` with an empty first bucket Prometheus divides 0 by 0 (NaN);
    /// this answers the lower edge of the first non-empty bucket, as the benchmark's reference does.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if q.is_nan() {
            return None;
        }
        if q < 0.0 {
            return Some(f64::NEG_INFINITY);
        }
        if q > 1.0 {
            return Some(f64::INFINITY);
        }
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = q * total as f64;
        let mut below = 0.0;
        for (index, &count) in self.counts.iter().enumerate() {
            let count = count as f64;
            if count > 0.0 && below + count >= rank {
                let Some(&upper) = self.bounds.get(index) else {
                    // The rank is in +Inf: the best Prometheus can say is the last finite bound.
                    return self.bounds.last().copied();
                };
                let lower = if index == 0 { 0.0 } else { self.bounds[index - 1] };
                return Some(lower + (upper - lower) * (rank - below) / count);
            }
            below += count;
        }
        self.bounds.last().copied()
    }

    /// Number of requests slower than `threshold_ms`, which must be one of the bounds (a bucket's `le` counts
    /// requests *at or below* it, so everything in later buckets is strictly above).
    pub fn count_above(&self, threshold_ms: f64) -> Result<u64, HistogramError> {
        let index = self
            .bounds
            .iter()
            .position(|&bound| bound == threshold_ms)
            .ok_or_else(|| HistogramError::ThresholdNotABound {
                threshold_ms,
                bounds: self.bounds.clone(),
            })?;
        Ok(self.counts[index + 1..].iter().sum())
    }

    fn check_same_bounds(&self, other: &Histogram) -> Result<(), HistogramError> {
        if self.bounds == other.bounds {
            Ok(())
        } else {
            Err(HistogramError::DifferentBounds {
                left: self.bounds.clone(),
                right: other.bounds.clone(),
            })
        }
    }

    fn le(&self, index: usize) -> String {
        self.bounds
            .get(index)
            .map_or_else(|| "+Inf".to_owned(), |bound| bound.to_string())
    }
}

fn check_bounds(bounds: &[f64]) -> Result<(), HistogramError> {
    if bounds.is_empty() {
        return Err(HistogramError::NoBounds);
    }
    for (index, &value) in bounds.iter().enumerate() {
        if !(value.is_finite() && value > 0.0) {
            return Err(HistogramError::InvalidBound { index, value });
        }
        if index > 0 && value <= bounds[index - 1] {
            return Err(HistogramError::BoundsNotIncreasing {
                index,
                value,
                previous: bounds[index - 1],
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    // The hard-coded expected values are printed by `python3 crates/bench/reference/expected_values.py`.
    use proptest::prelude::*;

    use super::*;

    const BENCH_BOUNDS: [f64; 13] = [
        25.0, 50.0, 75.0, 100.0, 150.0, 200.0, 300.0, 400.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0,
    ];

    fn bench(counts: [u64; 14]) -> Histogram {
        Histogram::from_counts(BENCH_BOUNDS.to_vec(), counts.to_vec()).unwrap()
    }

    /// Expected values: `reference_sim.histogram_quantile(q, counts)` for q = 0, .25, .5, .9, .99, 1.
    #[test]
    fn quantiles_match_the_reference_histogram_quantile() {
        let cases: [([u64; 14], [f64; 6]); 6] = [
            (
                [0, 10, 20, 30, 20, 10, 5, 3, 1, 1, 0, 0, 0, 0],
                [25.0, 68.75, 91.66666666666667, 200.0, 500.0, 750.0],
            ),
            (
                [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5],
                [0.0, 5000.0, 5000.0, 5000.0, 5000.0, 5000.0],
            ),
            (
                [4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                [0.0, 6.25, 12.5, 22.5, 24.75, 25.0],
            ),
            (
                [0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                [75.0, 81.25, 87.5, 97.5, 99.75, 100.0],
            ),
            ([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3], [5000.0; 6]),
            (
                [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7],
                [0.0, 166.66666666666666, 460.0, 5000.0, 5000.0, 5000.0],
            ),
        ];
        for (counts, expected) in cases {
            let histogram = bench(counts);
            for (q, want) in [0.0, 0.25, 0.5, 0.9, 0.99, 1.0].into_iter().zip(expected) {
                let got = histogram.quantile(q).unwrap();
                assert!(
                    (got - want).abs() < 1e-9,
                    "counts {counts:?}, q {q}: got {got}, want {want}"
                );
            }
        }
    }

    #[test]
    fn quantile_edge_cases_follow_prometheus() {
        let empty = Histogram::new(BENCH_BOUNDS.to_vec()).unwrap();
        assert_eq!(empty.quantile(0.5), None);
        let some = bench([1; 14]);
        assert_eq!(some.quantile(f64::NAN), None);
        assert_eq!(some.quantile(-0.1), Some(f64::NEG_INFINITY));
        assert_eq!(some.quantile(1.1), Some(f64::INFINITY));
    }

    #[test]
    fn bounds_are_data_so_the_proxy_buckets_work_too() {
        let proxy_bounds = vec![
            0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 150.0, 200.0, 300.0, 400.0, 500.0, 750.0, 1000.0,
            2500.0, 5000.0, 10000.0,
        ];
        let mut counts = vec![0; 20];
        counts[1] = 10; // 10 requests in (0.5, 1] ms
        let histogram = Histogram::from_counts(proxy_bounds, counts).unwrap();
        assert_eq!(histogram.quantile(0.5), Some(0.75));
        assert_eq!(histogram.count_above(0.5), Ok(10));
        assert_eq!(histogram.count_above(1.0), Ok(0));
    }

    #[test]
    fn count_above_counts_the_buckets_past_the_threshold() {
        let histogram = bench([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7]);
        assert_eq!(histogram.count_above(500.0), Ok(3 + 5 + 8 + 9 + 7));
        assert_eq!(histogram.count_above(5000.0), Ok(7));
        assert_eq!(histogram.count_above(25.0), Ok(histogram.count() - 3));
        assert_eq!(
            histogram.count_above(450.0),
            Err(HistogramError::ThresholdNotABound {
                threshold_ms: 450.0,
                bounds: BENCH_BOUNDS.to_vec()
            })
        );
    }

    #[test]
    fn invalid_bounds_and_counts_are_named_in_the_error() {
        let cases: [(Vec<f64>, Vec<u64>, &str); 5] = [
            (
                vec![],
                vec![0],
                "histogram bounds are empty; expected at least one finite upper bound in ms",
            ),
            (
                vec![10.0, f64::INFINITY],
                vec![0; 3],
                "histogram bound #1 is inf ms; expected a finite number greater than 0",
            ),
            (
                vec![0.0, 1.0],
                vec![0; 3],
                "histogram bound #0 is 0 ms; expected a finite number greater than 0",
            ),
            (
                vec![10.0, 10.0],
                vec![0; 3],
                "histogram bound #1 is 10 ms after 10 ms; expected strictly increasing bounds",
            ),
            (
                vec![10.0, 20.0],
                vec![0; 2],
                "histogram has 2 bounds but 2 bucket counts; expected 3 (one per bound, then +Inf)",
            ),
        ];
        for (bounds, counts, message) in cases {
            let error = Histogram::from_counts(bounds, counts).unwrap_err();
            assert_eq!(error.to_string(), message);
        }
    }

    #[test]
    fn subtract_refuses_a_counter_reset_and_leaves_the_histogram_intact() {
        let mut later = Histogram::from_counts(vec![10.0], vec![5, 1]).unwrap();
        let earlier = Histogram::from_counts(vec![10.0], vec![2, 3]).unwrap();
        let error = later.subtract(&earlier).unwrap_err();
        assert_eq!(
            error.to_string(),
            "cannot subtract: bucket le=+Inf would go negative (1 - 3); was the counter reset?"
        );
        assert_eq!(later.counts(), &[5, 1]);
    }

    #[test]
    fn histograms_with_different_bounds_do_not_combine() {
        let mut a = Histogram::new(vec![10.0]).unwrap();
        let b = Histogram::new(vec![20.0]).unwrap();
        assert_eq!(
            a.merge(&b).unwrap_err().to_string(),
            "cannot combine histograms with different bounds: [10.0] and [20.0]"
        );
    }

    #[test]
    fn deserializing_checks_like_constructing() {
        let good: Histogram = serde_json::from_str(r#"{"boundsMs":[10.0,20.0],"counts":[1,2,3]}"#).unwrap();
        assert_eq!(good.count(), 6);
        assert_eq!(
            serde_json::to_string(&good).unwrap(),
            r#"{"boundsMs":[10.0,20.0],"counts":[1,2,3]}"#
        );
        let bad = serde_json::from_str::<Histogram>(r#"{"boundsMs":[20.0,10.0],"counts":[1,2,3]}"#).unwrap_err();
        assert!(bad.to_string().contains("expected strictly increasing bounds"), "{bad}");
    }

    fn bench_counts() -> impl Strategy<Value = Vec<u64>> {
        proptest::collection::vec(0u64..1_000, 14)
    }

    proptest! {
        #[test]
        fn quantile_is_monotone_in_q(counts in bench_counts(), a in 0.0f64..=1.0, b in 0.0f64..=1.0) {
            let histogram = Histogram::from_counts(BENCH_BOUNDS.to_vec(), counts).unwrap();
            let (low, high) = if a <= b { (a, b) } else { (b, a) };
            match (histogram.quantile(low), histogram.quantile(high)) {
                (Some(x), Some(y)) => prop_assert!(x <= y + 1e-9, "q {low} -> {x}, q {high} -> {y}"),
                (None, None) => prop_assert_eq!(histogram.count(), 0),
                other => prop_assert!(false, "one quantile defined, the other not: {other:?}"),
            }
        }

        #[test]
        fn quantile_stays_within_the_buckets(counts in bench_counts(), q in 0.0f64..=1.0) {
            let histogram = Histogram::from_counts(BENCH_BOUNDS.to_vec(), counts).unwrap();
            if let Some(value) = histogram.quantile(q) {
                prop_assert!((0.0..=5000.0).contains(&value));
            }
        }

        #[test]
        fn subtract_undoes_merge(a in bench_counts(), b in bench_counts()) {
            let original = Histogram::from_counts(BENCH_BOUNDS.to_vec(), a).unwrap();
            let other = Histogram::from_counts(BENCH_BOUNDS.to_vec(), b).unwrap();
            let mut combined = original.clone();
            combined.merge(&other).unwrap();
            prop_assert_eq!(combined.count(), original.count() + other.count());
            combined.subtract(&other).unwrap();
            prop_assert_eq!(combined, original);
        }
    }
}

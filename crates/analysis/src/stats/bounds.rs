//! Anytime-valid bounds for a proportion, and SLO guardrails judged by them.
//!
//! A guardrail such as "success rate ≥ 99 %" must not fail on the first unlucky request, nor pass on the first
//! lucky ten, and it is looked at after every window. So it is judged on a confidence *sequence*: bounds that
//! hold at every sample size at once, however often they are read. This one is Robbins' beta-binomial
//! mixture with a uniform prior (H. Robbins, "Statistical methods related to the law of the iterated
//! logarithm", Ann. Math. Statist. 1970; Howard, Ramdas, McAuliffe, Sekhon, "Time-uniform, nonparametric,
//! nonasymptotic confidence sequences", Ann. Statist. 2021, §B): after s successes in n trials,
//!
//! ```text
//! M_n(p) = ∫ r^s (1 − r)^(n−s) dr / (p^s (1 − p)^(n−s)) = 1 / ((n + 1)·C(n, s)·p^s·(1 − p)^(n−s))
//! ```
//!
//! is a nonnegative martingale when p is the true rate, so by Ville's inequality the set
//! `{p : M_n(p) < 1/α}` contains p at every n with probability ≥ 1 − α. That set is an interval around s/n
//! (ln M_n is convex in p and ≤ 0 at s/n). Both ends hold *jointly*, so each is a one-sided bound at level α
//! (conservatively).
//!
//! Feed cumulative counts since the check started: the guarantee is over the sequence of running totals.

use serde::{Deserialize, Serialize};
use statrs::function::gamma::ln_gamma;
use thiserror::Error;

use super::histogram::{Histogram, HistogramError};

/// Bisection steps: 2⁻⁶⁴ of the search interval, below the spacing of floats near the bounds that matter.
const BISECTION_STEPS: usize = 64;

/// Why a bound or a guardrail could not be computed.
#[derive(Clone, Debug, Error, PartialEq)]
pub enum BoundsError {
    /// α is the probability of ever being wrong.
    #[error("alpha {alpha} is not allowed; expected a number strictly between 0 and 1")]
    InvalidAlpha {
        /// The offending value.
        alpha: f64,
    },
    /// More successes than trials.
    #[error("{successes} successes out of {trials} trials; successes cannot exceed trials")]
    MoreSuccessesThanTrials {
        /// Successes given.
        successes: u64,
        /// Trials given.
        trials: u64,
    },
    /// An SLO target is a proportion.
    #[error("SLO target {target} is not allowed; expected a number strictly between 0 and 1 (0.99 for 99 %)")]
    InvalidTarget {
        /// The offending value.
        target: f64,
    },
    /// The latency threshold must be a bucket bound for the exceedances to be counted exactly.
    #[error(transparent)]
    Histogram(#[from] HistogramError),
}

/// Lower and upper confidence bounds for a proportion, valid at every sample size at once.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProportionBounds {
    /// The proportion is at least this (with probability ≥ 1 − α, at all times).
    pub lower: f64,
    /// The proportion is at most this (with probability ≥ 1 − α, at all times).
    pub upper: f64,
}

/// What a guardrail concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SloVerdict {
    /// The lower bound is above the target: the SLO is met.
    Pass,
    /// The upper bound is below the target: the SLO is violated.
    Fail,
    /// The target is inside the bounds: not enough requests yet to tell.
    Inconclusive,
}

/// Bounds for the success proportion after `successes` out of `trials`, at level `alpha`.
pub fn proportion_bounds(successes: u64, trials: u64, alpha: f64) -> Result<ProportionBounds, BoundsError> {
    if !(alpha > 0.0 && alpha < 1.0) {
        return Err(BoundsError::InvalidAlpha { alpha });
    }
    if successes > trials {
        return Err(BoundsError::MoreSuccessesThanTrials { successes, trials });
    }
    if trials == 0 {
        return Ok(ProportionBounds { lower: 0.0, upper: 1.0 });
    }
    let mixture = RobbinsMixture::new(successes, trials);
    let threshold = -alpha.ln();
    let estimate = successes as f64 / trials as f64;
    // ln M is decreasing left of the estimate and increasing right of it; bisect each side for ln M = ln(1/α).
    let lower = if successes == 0 {
        0.0
    } else {
        bisect(0.0, estimate, |p| mixture.log_wealth(p) >= threshold)
    };
    let upper = if successes == trials {
        1.0
    } else {
        1.0 - bisect(0.0, 1.0 - estimate, |complement| {
            mixture.log_wealth(1.0 - complement) >= threshold
        })
    };
    Ok(ProportionBounds { lower, upper })
}

/// Judges "success proportion ≥ `target`" (e.g. 0.99) on cumulative counts.
pub fn success_rate_slo(successes: u64, trials: u64, target: f64, alpha: f64) -> Result<SloVerdict, BoundsError> {
    if !(target > 0.0 && target < 1.0) {
        return Err(BoundsError::InvalidTarget { target });
    }
    let bounds = proportion_bounds(successes, trials, alpha)?;
    Ok(if bounds.lower > target {
        SloVerdict::Pass
    } else if bounds.upper < target {
        SloVerdict::Fail
    } else {
        SloVerdict::Inconclusive
    })
}

/// Judges "the `quantile` (e.g. 0.99) of latency ≤ `max_ms`" on a cumulative histogram: that holds exactly
/// when at least that proportion of requests is at or below `max_ms`, which must be a bucket bound.
pub fn latency_slo(histogram: &Histogram, quantile: f64, max_ms: f64, alpha: f64) -> Result<SloVerdict, BoundsError> {
    let trials = histogram.count();
    let fast_enough = trials - histogram.count_above(max_ms)?;
    success_rate_slo(fast_enough, trials, quantile, alpha)
}

/// ln M_n(p) of the uniform-prior mixture, for fixed counts.
struct RobbinsMixture {
    successes: f64,
    failures: f64,
    /// ln((n + 1)·C(n, s)).
    log_normaliser: f64,
}

impl RobbinsMixture {
    fn new(successes: u64, trials: u64) -> Self {
        let (s, n) = (successes as f64, trials as f64);
        let f = n - s;
        let log_normaliser = (n + 1.0).ln() + ln_gamma(n + 1.0) - ln_gamma(s + 1.0) - ln_gamma(f + 1.0);
        RobbinsMixture {
            successes: s,
            failures: f,
            log_normaliser,
        }
    }

    fn log_wealth(&self, p: f64) -> f64 {
        // 0·ln 0 is 0 here: a side with no observations contributes nothing.
        let success_term = if self.successes > 0.0 {
            self.successes * p.ln()
        } else {
            0.0
        };
        let failure_term = if self.failures > 0.0 {
            self.failures * (-p).ln_1p()
        } else {
            0.0
        };
        -(self.log_normaliser + success_term + failure_term)
    }
}

/// The boundary in [low, high] between where `rejected` holds (at the low end) and where it does not.
fn bisect(mut low: f64, mut high: f64, rejected: impl Fn(f64) -> bool) -> f64 {
    for _ in 0..BISECTION_STEPS {
        let middle = 0.5 * (low + high);
        if rejected(middle) {
            low = middle;
        } else {
            high = middle;
        }
    }
    high
}

#[cfg(test)]
mod tests {
    // The hard-coded expected values are printed by `python3 crates/bench/reference/expected_values.py`.
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    const BENCH_BOUNDS: [f64; 13] = [
        25.0, 50.0, 75.0, 100.0, 150.0, 200.0, 300.0, 400.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0,
    ];

    /// Expected: the Robbins set {p : (n+1)·C(n,s)·p^s(1−p)^(n−s) > α} bisected with Python's lgamma and
    /// log1p, α = 0.05.
    #[test]
    fn bounds_match_an_independent_computation() {
        let cases = [
            (0, 0, 0.0, 1.0),
            (5, 5, 0.38385194963737757, 1.0),
            (4, 5, 0.21463168940784264, 0.9983221002546457),
            (0, 1, 0.0, 0.975),
            (1, 1, 0.02500000000000001, 1.0),
            (99, 100, 0.9052030363566006, 0.9999950470769265),
            (990, 1000, 0.9720582525563676, 0.9979245187971586),
            (9950, 10000, 0.9913099483411083, 0.9974639085919428),
            (999_000, 1_000_000, 0.9988339709620543, 0.9991494817653476),
            (1000, 1000, 0.9901444008427149, 1.0),
            (0, 10, 0.0, 0.4168802756565362),
        ];
        for (successes, trials, lower, upper) in cases {
            let bounds = proportion_bounds(successes, trials, 0.05).unwrap();
            assert!(
                (bounds.lower - lower).abs() < 1e-9,
                "{successes}/{trials}: lower {}, want {lower}",
                bounds.lower
            );
            assert!(
                (bounds.upper - upper).abs() < 1e-9,
                "{successes}/{trials}: upper {}, want {upper}",
                bounds.upper
            );
        }
    }

    #[test]
    fn a_handful_of_requests_neither_passes_nor_fails() {
        for (successes, trials) in [(5, 5), (4, 5), (0, 0), (20, 20), (19, 20)] {
            assert_eq!(
                success_rate_slo(successes, trials, 0.99, 0.05),
                Ok(SloVerdict::Inconclusive),
                "{successes}/{trials}"
            );
        }
    }

    #[test]
    fn enough_evidence_passes_or_fails() {
        assert_eq!(success_rate_slo(1000, 1000, 0.99, 0.05), Ok(SloVerdict::Pass));
        assert_eq!(success_rate_slo(9990, 10_000, 0.99, 0.05), Ok(SloVerdict::Pass));
        assert_eq!(success_rate_slo(9900, 10_000, 0.99, 0.05), Ok(SloVerdict::Inconclusive));
        assert_eq!(success_rate_slo(9700, 10_000, 0.99, 0.05), Ok(SloVerdict::Fail));
        assert_eq!(success_rate_slo(3, 5, 0.99, 0.05), Ok(SloVerdict::Fail));
    }

    #[test]
    fn latency_slo_counts_requests_above_the_threshold() {
        let mut counts = [0u64; 14];
        counts[7] = 2_000; // (300, 400] ms
        let fast = Histogram::from_counts(BENCH_BOUNDS.to_vec(), counts.to_vec()).unwrap();
        assert_eq!(latency_slo(&fast, 0.99, 500.0, 0.05), Ok(SloVerdict::Pass));
        assert_eq!(latency_slo(&fast, 0.99, 300.0, 0.05), Ok(SloVerdict::Fail));
        counts[10] = 20; // 1 % in (750, 1000] ms: right at the target
        let borderline = Histogram::from_counts(BENCH_BOUNDS.to_vec(), counts.to_vec()).unwrap();
        assert_eq!(
            latency_slo(&borderline, 0.99, 500.0, 0.05),
            Ok(SloVerdict::Inconclusive)
        );
        assert_eq!(
            latency_slo(&fast, 0.99, 450.0, 0.05).unwrap_err().to_string(),
            format!(
                "450 ms is not a bucket bound of this histogram; expected one of {:?}",
                BENCH_BOUNDS.to_vec()
            )
        );
    }

    #[test]
    fn bad_arguments_are_named_in_the_error() {
        assert_eq!(
            proportion_bounds(3, 2, 0.05).unwrap_err().to_string(),
            "3 successes out of 2 trials; successes cannot exceed trials"
        );
        assert_eq!(
            proportion_bounds(1, 2, 0.0).unwrap_err().to_string(),
            "alpha 0 is not allowed; expected a number strictly between 0 and 1"
        );
        assert_eq!(
            success_rate_slo(1, 2, 99.0, 0.05).unwrap_err().to_string(),
            "SLO target 99 is not allowed; expected a number strictly between 0 and 1 (0.99 for 99 %)"
        );
    }

    /// The guardrail at the SLO boundary, read after every 10 requests up to 3,000: it must wrongly fail in at
    /// most α of the runs.
    #[test]
    fn a_service_exactly_at_the_slo_fails_in_at_most_alpha_of_runs_despite_peeking() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let runs = 1_000;
        let mut failed = 0;
        for _ in 0..runs {
            let mut successes = 0;
            for trials in 1..=3_000u64 {
                successes += u64::from(rng.random::<f64>() < 0.99);
                if trials % 10 == 0 && success_rate_slo(successes, trials, 0.99, 0.05) == Ok(SloVerdict::Fail) {
                    failed += 1;
                    break;
                }
            }
        }
        assert!(
            (failed as f64) < 0.05 * runs as f64,
            "{failed} of {runs} runs at the SLO failed it"
        );
    }
}

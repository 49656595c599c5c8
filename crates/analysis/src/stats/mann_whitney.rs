//! The Mann–Whitney U test, the Hodges–Lehmann shift and its interval, and Kayenta's classification of a metric.
//!
//! This is what Kayenta's NetflixACAJudge does to each metric (`MannWhitneyClassifier` in `kayenta-judge`,
//! `MannWhitney.calculateConfidenceInterval` in `kayenta-mannwhitney`), which in turn ports the asymptotic
//! branch of R's `wilcox.test(x, y, conf.int = TRUE, exact = FALSE, correct = TRUE)`:
//!
//! * the interval of the location shift x − y is where the continuity-corrected normal statistic of the
//!   pairwise (Walsh-type) differences crosses the normal critical values; the estimate is where it crosses 0;
//! * the roots are found with Kayenta's Brent solver (absolute tolerance 1e-4), and clamped to the range of
//!   the differences when the critical value cannot be reached, exactly as R does;
//! * as in the benchmark's `reference_sim.py`, ties in the interval's variance are counted within each sample
//!   (ties between x − μ and y only exist on the jump points of the step function, which the solver does not
//!   land on), so the two agree to the last digit.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::normal;

/// Why a test could not be computed.
#[derive(Clone, Debug, Error, PartialEq)]
pub enum MannWhitneyError {
    /// Both samples need at least one value.
    #[error("the {sample} sample is empty; expected at least one value")]
    EmptySample {
        /// `experiment` (x) or `control` (y).
        sample: &'static str,
    },
    /// NaN has no rank; remove missing points first.
    #[error("the {sample} sample holds NaN at position {index}; expected numbers (remove missing points first)")]
    NotANumber {
        /// `experiment` (x) or `control` (y).
        sample: &'static str,
        /// Position of the first NaN.
        index: usize,
    },
    /// With every value equal there is no ranking to test.
    #[error("all {values} values are equal; the rank test is undefined")]
    AllTied {
        /// Number of values in both samples.
        values: usize,
    },
    /// A confidence level is a probability strictly between 0 and 1.
    #[error("confidence {confidence} is not allowed; expected a number strictly between 0 and 1")]
    InvalidConfidence {
        /// The offending value.
        confidence: f64,
    },
    /// Kayenta's tolerance is a fraction of the shift estimate.
    #[error("tolerance {tolerance} is not allowed; expected a finite number >= 0")]
    InvalidTolerance {
        /// The offending value.
        tolerance: f64,
    },
    /// Effect-size thresholds are ratios of means.
    #[error("effect-size threshold {name} = {value} is not allowed; expected a finite number")]
    InvalidEffectSize {
        /// `allowed_increase` or `allowed_decrease`.
        name: &'static str,
        /// The offending value.
        value: f64,
    },
}

/// The alternative hypothesis, about the shift x − y.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Alternative {
    /// x − y ≠ 0.
    TwoSided,
    /// x − y > 0 (x is larger).
    Greater,
    /// x − y < 0 (x is smaller).
    Less,
}

impl Alternative {
    /// R's continuity correction for a statistic `dz` (centred rank sum).
    fn correction(self, dz: f64) -> f64 {
        match self {
            Alternative::TwoSided if dz == 0.0 => 0.0,
            Alternative::TwoSided => 0.5f64.copysign(dz),
            Alternative::Greater => 0.5,
            Alternative::Less => -0.5,
        }
    }
}

/// The rank-sum test of x against y.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct UTest {
    /// U of x: pairs with x above y, ties counting one half (R's `W`).
    pub u: f64,
    /// The continuity-corrected, tie-corrected normal score.
    pub z: f64,
    /// The p-value for the alternative asked.
    pub p_value: f64,
}

/// The Hodges–Lehmann estimate of the shift x − y and its confidence interval (open sides are ±∞).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShiftInterval {
    /// Lower confidence bound (−∞ for [`Alternative::Less`]).
    pub lower: f64,
    /// Upper confidence bound (+∞ for [`Alternative::Greater`]).
    pub upper: f64,
    /// The shift estimate.
    pub estimate: f64,
}

/// The Mann–Whitney U (Wilcoxon rank-sum) test of x against y, normal approximation with tie and continuity
/// corrections as in R's `wilcox.test(exact = FALSE, correct = TRUE)`.
pub fn u_test(x: &[f64], y: &[f64], alternative: Alternative) -> Result<UTest, MannWhitneyError> {
    check_samples(x, y)?;
    let (nx, ny) = (x.len() as f64, y.len() as f64);
    let mut sorted_y = y.to_vec();
    sorted_y.sort_by(f64::total_cmp);
    let u: f64 = x
        .iter()
        .map(|&value| {
            let below = sorted_y.partition_point(|&other| other < value);
            let at_or_below = sorted_y.partition_point(|&other| other <= value);
            below as f64 + 0.5 * (at_or_below - below) as f64
        })
        .sum();
    let mut all: Vec<f64> = x.iter().chain(y).copied().collect();
    all.sort_by(f64::total_cmp);
    let sigma = rank_sum_sigma(nx, ny, tie_term(&all));
    if sigma == 0.0 {
        return Err(MannWhitneyError::AllTied { values: all.len() });
    }
    let centred = u - nx * ny / 2.0;
    let z = (centred - alternative.correction(centred)) / sigma;
    let p_value = match alternative {
        Alternative::TwoSided => 2.0 * normal::cdf(z).min(normal::cdf(-z)),
        Alternative::Greater => normal::cdf(-z),
        Alternative::Less => normal::cdf(z),
    };
    Ok(UTest { u, z, p_value })
}

/// The Hodges–Lehmann shift x − y with its interval at `confidence` (e.g. 0.98), Kayenta's way.
///
/// Cost: all `x.len() · y.len()` pairwise differences are sorted, which is nothing for Kayenta-sized series
/// (60 points) but quadratic in memory for raw samples.
pub fn shift_interval(
    x: &[f64],
    y: &[f64],
    alternative: Alternative,
    confidence: f64,
) -> Result<ShiftInterval, MannWhitneyError> {
    check_samples(x, y)?;
    check_confidence(confidence)?;
    Ok(checked_shift_interval(x, y, alternative, confidence))
}

/// [`shift_interval`] on samples already known to be non-empty and free of NaN.
fn checked_shift_interval(x: &[f64], y: &[f64], alternative: Alternative, confidence: f64) -> ShiftInterval {
    let mut differences: Vec<f64> = x.iter().flat_map(|&a| y.iter().map(move |&b| a - b)).collect();
    differences.sort_by(f64::total_cmp);
    let pairs = differences.len() as f64;
    // Within-sample ties only: with both samples non-empty, N³ − N exceeds them, so sigma > 0.
    let sigma = rank_sum_sigma(x.len() as f64, y.len() as f64, sorted_tie_term(x) + sorted_tie_term(y));
    let score = |mu: f64, z_quantile: f64| {
        let below = differences.partition_point(|&d| d < mu);
        let at_or_below = differences.partition_point(|&d| d <= mu);
        let dz = (pairs - at_or_below as f64) + 0.5 * (at_or_below - below) as f64 - pairs / 2.0;
        (dz - alternative.correction(dz)) / sigma - z_quantile
    };
    let (mu_min, mu_max) = (min(x) - max(y), max(x) - min(y));
    let root = |z_quantile: f64| {
        let (f_min, f_max) = (score(mu_min, z_quantile), score(mu_max, z_quantile));
        if f_min <= 0.0 {
            mu_min
        } else if f_max >= 0.0 {
            mu_max
        } else {
            brent(mu_min, mu_max, f_min, f_max, |mu| score(mu, z_quantile))
        }
    };
    let alpha = 1.0 - confidence;
    let (lower, upper) = match alternative {
        Alternative::TwoSided => (
            root(normal::quantile(1.0 - alpha / 2.0)),
            root(normal::quantile(alpha / 2.0)),
        ),
        Alternative::Greater => (root(normal::quantile(1.0 - alpha)), f64::INFINITY),
        Alternative::Less => (f64::NEG_INFINITY, root(normal::quantile(alpha))),
    };
    let estimate = brent(mu_min, mu_max, score(mu_min, 0.0), score(mu_max, 0.0), |mu| {
        score(mu, 0.0)
    });
    ShiftInterval { lower, upper, estimate }
}

/// Which way a metric is bad (Kayenta's `MetricDirection`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MetricDirection {
    /// Higher is worse (latency, error rate): only `High` fails.
    Increase,
    /// Lower is worse (throughput): only `Low` fails.
    Decrease,
    /// Either way is a failure.
    Either,
}

/// Kayenta's verdict on one metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Classification {
    /// No meaningful difference.
    Pass,
    /// The experiment is significantly and materially higher.
    High,
    /// The experiment is significantly and materially lower.
    Low,
    /// One side had no data (after removing NaN).
    NoData,
}

/// A classification with the numbers behind it, for the judge's explanation.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Comparison {
    /// The verdict.
    pub classification: Classification,
    /// The shift experiment − control, when a test was run.
    pub shift: Option<ShiftInterval>,
    /// mean(experiment) / mean(control); `None` without data or when the control's mean is 0.
    pub mean_ratio: Option<f64>,
}

/// Kayenta's `MannWhitneyClassifier`: a metric is `High` when the lower end of the shift interval is above
/// `tolerance · |estimate|` and the ratio of means reaches `allowed_increase` (`Low` mirrors it).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KayentaClassifier {
    tolerance: f64,
    confidence: f64,
    allowed_increase: f64,
    allowed_decrease: f64,
}

impl Default for KayentaClassifier {
    /// NetflixACAJudge's settings: tolerance 0.25, 98 % confidence, effect sizes 1.0 both ways.
    fn default() -> Self {
        KayentaClassifier {
            tolerance: 0.25,
            confidence: 0.98,
            allowed_increase: 1.0,
            allowed_decrease: 1.0,
        }
    }
}

impl KayentaClassifier {
    /// A classifier with Kayenta's parameters: the tolerance as a fraction of |estimate|, the confidence of
    /// the two-sided interval, and the mean ratios a `High` must reach (`allowed_increase`) or a `Low` must
    /// fall to (`allowed_decrease`).
    pub fn new(
        tolerance: f64,
        confidence: f64,
        allowed_increase: f64,
        allowed_decrease: f64,
    ) -> Result<Self, MannWhitneyError> {
        if !(tolerance.is_finite() && tolerance >= 0.0) {
            return Err(MannWhitneyError::InvalidTolerance { tolerance });
        }
        check_confidence(confidence)?;
        for (name, value) in [
            ("allowed_increase", allowed_increase),
            ("allowed_decrease", allowed_decrease),
        ] {
            if !value.is_finite() {
                return Err(MannWhitneyError::InvalidEffectSize { name, value });
            }
        }
        Ok(KayentaClassifier {
            tolerance,
            confidence,
            allowed_increase,
            allowed_decrease,
        })
    }

    /// Classifies the experiment's series against the control's. Missing points (NaN) are removed first
    /// (Kayenta's `nanStrategy: remove`).
    ///
    /// When each series is constant and they differ, Kayenta jitters both with Gaussian noise of 1e-5 of
    /// their value so the test can run; every pairwise difference is then within that noise of the true
    /// difference, so this takes the limit instead and needs no random numbers: the interval and the estimate
    /// are both exactly that difference.
    ///
    /// The mean ratio is undefined only when the control's mean is 0, as in Kayenta (`reference_sim.py` also
    /// drops it when the experiment's mean is 0; for nonnegative metrics that cannot change the verdict,
    /// since an all-zero experiment is never significantly higher).
    pub fn classify(&self, experiment: &[f64], control: &[f64], direction: MetricDirection) -> Comparison {
        let experiment: Vec<f64> = experiment.iter().copied().filter(|value| !value.is_nan()).collect();
        let control: Vec<f64> = control.iter().copied().filter(|value| !value.is_nan()).collect();
        if experiment.is_empty() || control.is_empty() {
            return Comparison {
                classification: Classification::NoData,
                shift: None,
                mean_ratio: None,
            };
        }
        let pass = Comparison {
            classification: Classification::Pass,
            shift: None,
            mean_ratio: Some(1.0),
        };
        let (mut sorted_experiment, mut sorted_control) = (experiment.clone(), control.clone());
        sorted_experiment.sort_by(f64::total_cmp);
        sorted_control.sort_by(f64::total_cmp);
        if sorted_experiment == sorted_control {
            return pass;
        }
        let constant = |sorted: &[f64]| sorted.first() == sorted.last();
        if constant(&sorted_experiment) && constant(&sorted_control) && sorted_experiment[0] == sorted_control[0] {
            return pass;
        }
        let shift = if constant(&sorted_experiment) && constant(&sorted_control) {
            let difference = sorted_experiment[0] - sorted_control[0];
            ShiftInterval {
                lower: difference,
                upper: difference,
                estimate: difference,
            }
        } else {
            checked_shift_interval(&experiment, &control, Alternative::TwoSided, self.confidence)
        };
        let control_mean = mean(&control);
        let mean_ratio = (control_mean != 0.0).then(|| mean(&experiment) / control_mean);
        let critical = self.tolerance * shift.estimate.abs();
        let is_high = matches!(direction, MetricDirection::Increase | MetricDirection::Either)
            && shift.lower > critical
            && mean_ratio.is_none_or(|ratio| ratio >= self.allowed_increase);
        let is_low = matches!(direction, MetricDirection::Decrease | MetricDirection::Either)
            && shift.upper < -critical
            && mean_ratio.is_none_or(|ratio| ratio <= self.allowed_decrease);
        let classification = if is_high {
            Classification::High
        } else if is_low {
            Classification::Low
        } else {
            Classification::Pass
        };
        Comparison {
            classification,
            shift: Some(shift),
            mean_ratio,
        }
    }
}

fn check_samples(x: &[f64], y: &[f64]) -> Result<(), MannWhitneyError> {
    for (sample, values) in [("experiment", x), ("control", y)] {
        if values.is_empty() {
            return Err(MannWhitneyError::EmptySample { sample });
        }
        if let Some(index) = values.iter().position(|value| value.is_nan()) {
            return Err(MannWhitneyError::NotANumber { sample, index });
        }
    }
    Ok(())
}

fn check_confidence(confidence: f64) -> Result<(), MannWhitneyError> {
    if confidence > 0.0 && confidence < 1.0 {
        Ok(())
    } else {
        Err(MannWhitneyError::InvalidConfidence { confidence })
    }
}

/// Standard deviation of the rank sum under H0, with the tie correction Σ(t³ − t).
fn rank_sum_sigma(nx: f64, ny: f64, ties: f64) -> f64 {
    let total = nx + ny;
    let variance = (nx * ny / 12.0) * ((total + 1.0) - ties / (total * (total - 1.0)));
    variance.max(0.0).sqrt()
}

/// Σ(t³ − t) over groups of equal values of a sample.
fn sorted_tie_term(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    tie_term(&sorted)
}

/// Σ(t³ − t) over runs of equal values of a sorted slice.
fn tie_term(sorted: &[f64]) -> f64 {
    sorted
        .chunk_by(|a, b| a == b)
        .map(|run| run.len() as f64)
        .filter(|&t| t > 1.0)
        .map(|t| t * t * t - t)
        .sum()
}

fn min(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::INFINITY, f64::min)
}

fn max(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// Brent's root finder as Kayenta's `KayentaBrentSolver` (and `reference_sim.brent`) runs it: absolute
/// tolerance 1e-4, at most 1000 steps, the bracket's function values passed in. Kept step for step, because
/// the functions solved here are step functions and a different solver lands on a different point of a flat.
fn brent(lower: f64, upper: f64, f_lower: f64, f_upper: f64, f: impl Fn(f64) -> f64) -> f64 {
    const TOLERANCE: f64 = 1e-4;
    const MAX_STEPS: usize = 1000;
    let (mut a, mut b, mut c) = (lower, upper, lower);
    let (mut fa, mut fb, mut fc) = (f_lower, f_upper, f_lower);
    if fa == 0.0 {
        return a;
    }
    if fb == 0.0 {
        return b;
    }
    for _ in 0..=MAX_STEPS {
        let previous_step = b - a;
        if fc.abs() < fb.abs() {
            (a, b, c) = (b, c, b);
            (fa, fb, fc) = (fb, fc, fb);
        }
        let tolerance = 2.0 * f64::EPSILON * b.abs() + TOLERANCE / 2.0;
        let mut step = (c - b) / 2.0;
        if step.abs() <= tolerance || fb == 0.0 {
            return b;
        }
        if previous_step.abs() >= tolerance && fa.abs() > fb.abs() {
            let cb = c - b;
            let (mut p, mut q);
            if a == c {
                // Secant.
                let t1 = fb / fa;
                p = cb * t1;
                q = 1.0 - t1;
            } else {
                // Inverse quadratic interpolation.
                let ratio_ac = fa / fc;
                let t1 = fb / fc;
                let t2 = fb / fa;
                p = t2 * (cb * ratio_ac * (ratio_ac - t1) - (b - a) * (t1 - 1.0));
                q = (ratio_ac - 1.0) * (t1 - 1.0) * (t2 - 1.0);
            }
            if p > 0.0 {
                q = -q;
            } else {
                p = -p;
            }
            if p < 0.75 * cb * q - (tolerance * q).abs() / 2.0 && p < (previous_step * q / 2.0).abs() {
                step = p / q;
            }
        }
        if step.abs() < tolerance {
            step = if step > 0.0 { tolerance } else { -tolerance };
        }
        (a, fa) = (b, fb);
        b += step;
        fb = f(b);
        if (fb > 0.0 && fc > 0.0) || (fb < 0.0 && fc < 0.0) {
            (c, fc) = (a, fa);
        }
    }
    b
}

#[cfg(test)]
mod tests {
    // The hard-coded expected values are printed by `python3 crates/bench/reference/expected_values.py`.
    use super::*;

    /// x, y, confidence, then (lower, upper, estimate).
    type IntervalCase = (&'static [f64], &'static [f64], f64, [f64; 3]);

    /// x, y, alternative, then (U, z, p-value).
    type UTestCase = (&'static [f64], &'static [f64], Alternative, [f64; 3]);

    const A: [f64; 20] = [
        69.3, 112.0, 134.8, 85.7, 67.1, 98.1, 115.4, 139.0, 69.4, 67.9, 123.6, 115.3, 158.4, 134.3, 97.0, 92.1, 216.2,
        91.7, 79.0, 71.1,
    ];
    const B: [f64; 20] = [
        108.1, 109.7, 94.7, 103.1, 114.0, 129.2, 145.9, 111.8, 61.4, 129.6, 68.6, 99.7, 67.5, 105.1, 83.1, 112.0,
        282.6, 103.5, 135.2, 70.6,
    ];
    const C: [f64; 20] = [
        128.4, 170.8, 136.2, 156.4, 144.4, 103.5, 165.8, 109.7, 245.5, 120.3, 172.0, 140.1, 186.3, 116.9, 188.9, 134.9,
        204.5, 168.8, 146.1, 110.8,
    ];
    const SMALL_X: [f64; 7] = [1.2, 3.4, 2.2, 5.1, 4.4, 3.3, 2.8];
    const SMALL_Y: [f64; 6] = [1.0, 2.1, 1.9, 3.0, 2.5, 1.7];
    const TIES_X: [f64; 8] = [1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 4.0, 5.0];
    const TIES_Y: [f64; 5] = [1.0, 1.0, 2.0, 2.0, 3.0];

    /// Expected: `reference_sim.mann_whitney_ci(x, y, confidence)` → (lower, upper, estimate).
    #[test]
    fn interval_matches_the_reference() {
        #[rustfmt::skip]
        let cases: [IntervalCase; 8] = [
            (&SMALL_X, &SMALL_Y, 0.95, [-0.29997346938887665, 2.599975248084477, 1.1999583174542685]),
            (&SMALL_X, &SMALL_Y, 0.98, [-0.7000043273630104, 3.0000691826134376, 1.1999583174542685]),
            (&TIES_X, &TIES_Y, 0.95, [-1.0401314133394533e-05, 2.0000611554261547, 1.0000129369836641]),
            (&TIES_X, &TIES_Y, 0.98, [-0.9999816367378502, 3.0000496073940672, 1.0000129369836641]),
            (&B, &A, 0.95, [-17.600038659432286, 24.000024287632712, 1.5507328222498953]),
            (&B, &A, 0.98, [-23.000006169103578, 30.40008591049688, 1.5507328222498953]),
            (&C, &A, 0.95, [24.800093929925467, 69.10004917754803, 47.276461876475366]),
            (&C, &A, 0.98, [20.799945860420305, 73.5000466528581, 47.276461876475366]),
        ];
        for (x, y, confidence, [lower, upper, estimate]) in cases {
            let got = shift_interval(x, y, Alternative::TwoSided, confidence).unwrap();
            for (name, got, want) in [
                ("lower", got.lower, lower),
                ("upper", got.upper, upper),
                ("estimate", got.estimate, estimate),
            ] {
                assert!(
                    (got - want).abs() < 1e-9,
                    "{x:?} vs {y:?} at {confidence}: {name} {got}, want {want}"
                );
            }
        }
    }

    /// At the lower root the statistic is positive, so the two-sided correction equals the one-sided one:
    /// a one-sided bound at confidence c is the two-sided bound at 2c − 1, up to the solver's tolerance
    /// (the two functions differ away from the root, so Brent walks a different path to it).
    #[test]
    fn one_sided_bounds_are_the_two_sided_ones_at_twice_the_error() {
        for (x, y) in [(&C[..], &A[..]), (&SMALL_X[..], &SMALL_Y[..])] {
            let two_sided = shift_interval(x, y, Alternative::TwoSided, 0.98).unwrap();
            let greater = shift_interval(x, y, Alternative::Greater, 0.99).unwrap();
            let less = shift_interval(x, y, Alternative::Less, 0.99).unwrap();
            assert!(
                (greater.lower - two_sided.lower).abs() < 1e-4,
                "{greater:?} vs {two_sided:?}"
            );
            assert_eq!(greater.upper, f64::INFINITY);
            assert!((less.upper - two_sided.upper).abs() < 1e-4, "{less:?} vs {two_sided:?}");
            assert_eq!(less.lower, f64::NEG_INFINITY);
        }
    }

    /// Expected: R's `wilcox.test(x, y, exact = FALSE, correct = TRUE)` statistic, z and p-value, recomputed
    /// with midranks in Python.
    #[test]
    fn u_test_matches_wilcox_test() {
        #[rustfmt::skip]
        let cases: [UTestCase; 12] = [
            (&SMALL_X, &SMALL_Y, Alternative::TwoSided, [34.0, 1.7857142857142858, 0.07414553111140698]),
            (&SMALL_X, &SMALL_Y, Alternative::Greater, [34.0, 1.7857142857142858, 0.03707276555570349]),
            (&SMALL_X, &SMALL_Y, Alternative::Less, [34.0, 1.9285714285714286, 0.9731079555688009]),
            (&TIES_X, &TIES_Y, Alternative::TwoSided, [30.5, 1.5146344928922038, 0.12986499204150959]),
            (&TIES_X, &TIES_Y, Alternative::Greater, [30.5, 1.5146344928922038, 0.06493249602075479]),
            (&TIES_X, &TIES_Y, Alternative::Less, [30.5, 1.6660979421814242, 0.9521530458241803]),
            (&B, &A, Alternative::TwoSided, [207.5, 0.18935950526638795, 0.8498110603586766]),
            (&B, &A, Alternative::Greater, [207.5, 0.18935950526638795, 0.4249055301793383]),
            (&B, &A, Alternative::Less, [207.5, 0.21641086316158623, 0.5856662503407829]),
            (&C, &A, Alternative::TwoSided, [335.0, 3.638236975883089, 0.0002745107842831995]),
            (&C, &A, Alternative::Greater, [335.0, 3.638236975883089, 0.00013725539214159976]),
            (&C, &A, Alternative::Less, [335.0, 3.665287064923112, 0.9998764693493388]),
        ];
        for (x, y, alternative, [u, z, p_value]) in cases {
            let got = u_test(x, y, alternative).unwrap();
            assert_eq!(got.u, u);
            assert!((got.z - z).abs() < 1e-12, "{alternative:?}: z {}, want {z}", got.z);
            assert!(
                (got.p_value - p_value).abs() < 1e-12 * p_value.max(1e-3),
                "{alternative:?}: p {}, want {p_value}",
                got.p_value
            );
        }
    }

    #[test]
    fn bad_samples_are_named_in_the_error() {
        assert_eq!(
            u_test(&[], &[1.0], Alternative::TwoSided).unwrap_err().to_string(),
            "the experiment sample is empty; expected at least one value"
        );
        assert_eq!(
            shift_interval(&[1.0], &[2.0, f64::NAN], Alternative::TwoSided, 0.98)
                .unwrap_err()
                .to_string(),
            "the control sample holds NaN at position 1; expected numbers (remove missing points first)"
        );
        assert_eq!(
            u_test(&[3.0, 3.0], &[3.0], Alternative::Greater)
                .unwrap_err()
                .to_string(),
            "all 3 values are equal; the rank test is undefined"
        );
        assert_eq!(
            shift_interval(&[1.0], &[2.0], Alternative::TwoSided, 1.0)
                .unwrap_err()
                .to_string(),
            "confidence 1 is not allowed; expected a number strictly between 0 and 1"
        );
        assert_eq!(
            KayentaClassifier::new(-0.5, 0.98, 1.0, 1.0).unwrap_err().to_string(),
            "tolerance -0.5 is not allowed; expected a finite number >= 0"
        );
    }

    fn classify(experiment: &[f64], control: &[f64], direction: MetricDirection) -> Classification {
        KayentaClassifier::default()
            .classify(experiment, control, direction)
            .classification
    }

    /// Expected: `reference_sim.kayenta_classify` (direction increase) on the same series.
    #[test]
    fn classification_matches_the_reference() {
        assert_eq!(
            classify(&SMALL_X, &SMALL_Y, MetricDirection::Increase),
            Classification::Pass
        );
        assert_eq!(
            classify(&TIES_X, &TIES_Y, MetricDirection::Increase),
            Classification::Pass
        );
        assert_eq!(classify(&B, &A, MetricDirection::Increase), Classification::Pass);
        assert_eq!(classify(&C, &A, MetricDirection::Increase), Classification::High);
    }

    #[test]
    fn classification_follows_the_direction() {
        assert_eq!(classify(&C, &A, MetricDirection::Decrease), Classification::Pass);
        assert_eq!(classify(&A, &C, MetricDirection::Decrease), Classification::Low);
        assert_eq!(classify(&A, &C, MetricDirection::Either), Classification::Low);
        assert_eq!(classify(&A, &C, MetricDirection::Increase), Classification::Pass);
    }

    #[test]
    fn special_cases_follow_kayenta() {
        let nan = f64::NAN;
        assert_eq!(
            classify(&[nan, nan], &A, MetricDirection::Increase),
            Classification::NoData
        );
        assert_eq!(classify(&[], &A, MetricDirection::Increase), Classification::NoData);
        assert_eq!(
            classify(&[2.0, 1.0, nan], &[1.0, 2.0], MetricDirection::Increase),
            Classification::Pass
        );
        assert_eq!(
            classify(&[0.0; 60], &[0.0; 60], MetricDirection::Increase),
            Classification::Pass
        );
        // Constant and different: Kayenta's jitter makes the difference itself the interval.
        assert_eq!(
            classify(&[0.02; 60], &[0.01; 60], MetricDirection::Increase),
            Classification::High
        );
        assert_eq!(
            classify(&[0.01; 60], &[0.02; 60], MetricDirection::Increase),
            Classification::Pass
        );
        assert_eq!(
            classify(&[0.01; 60], &[0.02; 60], MetricDirection::Decrease),
            Classification::Low
        );
    }

    #[test]
    fn the_effect_size_check_can_veto_a_significant_shift() {
        let strict = KayentaClassifier::new(0.25, 0.98, 1.5, 1.0).unwrap();
        let comparison = strict.classify(&C, &A, MetricDirection::Increase);
        let ratio = comparison.mean_ratio.unwrap();
        assert!(ratio > 1.0 && ratio < 1.5, "mean ratio {ratio}");
        assert_eq!(comparison.classification, Classification::Pass);
        assert!(comparison.shift.unwrap().lower > 0.0);
    }
}

//! Anytime-valid sequential tests on event counts: the statistics of the default (`sequential`) judge.
//!
//! # Model
//! A *stream* counts bad events: 5xx responses, or requests slower than a threshold τ. In each evaluation
//! window the canary has `x` of them and the control `y`, and `q` is the canary's share of the window's
//! requests. If a canary request is θ times as likely as a control request to be an event, then given the
//! window's `n = x + y` events, `x ~ Binomial(n, p_θ)` with `p_θ = θq / (θq + 1 − q)`. Conditioning on `n`
//! removes the unknown base rate and the load; conditioning on `q` removes the weights. This is the
//! conditional-multinomial test of Lindon & Malek, "Anytime-Valid Inference for Multinomial Count Data"
//! (NeurIPS 2022), made one-sided.
//!
//! # Tolerance, derived
//! Let θ₀ = 1 + tolerance be the worst ratio that still counts as no regression. The likelihood ratio of an
//! alternative θ against θ₀ for one window is
//!
//! ```text
//! LR = (p_θ/p_θ₀)^x · ((1 − p_θ)/(1 − p_θ₀))^y = (θ/θ₀)^x · ((θ₀q + 1 − q) / (θq + 1 − q))^n.
//! ```
//!
//! Write θ = g·θ₀ and q₀ = θ₀q / (θ₀q + 1 − q), the canary's share of *events* when it is exactly at the
//! tolerance. Then (θq + 1 − q) / (θ₀q + 1 − q) = g·q₀ + 1 − q₀, hence
//!
//! ```text
//! ln LR = x·ln g − n·ln(g·q₀ + 1 − q₀).
//! ```
//!
//! So a tolerance does not change the shape of the test: it replaces the routing share q by the boundary
//! share q₀ and measures alternatives as ratios g to θ₀. With tolerance 0, q₀ = q and this is the update of
//! the benchmark's algorithm (c): `log M_θ += x·ln θ − (x+y)·ln(θq + 1 − q)`.
//!
//! # Validity
//! For a fixed g > 1 and a true ratio θ', `E[LR | past, n] = (p_θ'·a + (1 − p_θ')·b)^n` with
//! `a = p_θ/p_θ₀ > 1 > b = (1 − p_θ)/(1 − p_θ₀)`. That is increasing in p_θ' and equals 1 at θ' = θ₀, so it is
//! at most 1 for *every* θ' ≤ θ₀ and *every* q: each M_g is a nonnegative supermartingale under the whole
//! composite null, even when q changes every window (q only has to be fixed given the window's request
//! counts, which the observed share is). A fixed average of supermartingales is one too, so by Ville's
//! inequality `P(sup_t E_t ≥ 1/α) ≤ α` under continuous monitoring (Ramdas, Grünwald, Vovk, Shafer,
//! "Game-theoretic statistics and safe anytime-valid inference", Statistical Science 2023).
//!
//! The opposite test, evidence that the candidate is *not worse* than θ₀ (H0': θ ≥ θ₀), mirrors this with
//! θ = θ₀/g: `ln LR = −x·ln g − n·ln(q₀/g + 1 − q₀)`, a supermartingale for every θ' ≥ θ₀.
//!
//! Alternatives are mixed uniformly over 16 ratios g log-spaced from 1.05 to 20, as in the benchmark.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Number of alternatives in the mixture.
const GRID_POINTS: usize = 16;
/// Smallest alternative ratio (to θ₀) the mixture bets on.
const GRID_MIN: f64 = 1.05;
/// Largest alternative ratio (to θ₀) the mixture bets on.
const GRID_MAX: f64 = 20.0;

/// Why an e-process could not be built or updated.
#[derive(Clone, Debug, Error, PartialEq)]
pub enum EProcessError {
    /// The tolerance is a relative increase: 0.25 means "up to 25 % more events still passes".
    #[error("tolerance {tolerance} is not allowed; expected a finite number >= 0 (0.25 means 25 % worse)")]
    InvalidTolerance {
        /// The offending value.
        tolerance: f64,
    },
    /// The canary's share of requests must be a fraction.
    #[error("canary share {share} is not a fraction; expected a number in [0, 1]")]
    InvalidShare {
        /// The offending value.
        share: f64,
    },
    /// Events on an arm that had no traffic: the counts and the share disagree.
    #[error("{events} {arm} events in a window where the canary share was {share}; the counts and the share disagree")]
    EventsWithoutTraffic {
        /// `canary` or `control`.
        arm: &'static str,
        /// Events counted on that arm.
        events: u64,
        /// The canary share given with them.
        share: f64,
    },
    /// A [`SequentialTest`] is updated with one count per latency stream it was built with.
    #[error("expected event counts for {expected} latency streams, got {actual}")]
    StreamCount {
        /// Streams the test was built with.
        expected: usize,
        /// Counts given.
        actual: usize,
    },
}

/// Which hypothesis the evidence is against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Direction {
    /// Evidence that the canary is worse than the tolerance allows (H0: θ ≤ 1 + tolerance); rolls back.
    Regression,
    /// Evidence that the canary is within the tolerance (H0': θ ≥ 1 + tolerance); lets a judge promote.
    NotWorse,
}

/// How much worse, as a relative increase of the event rate, still counts as no regression.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Tolerance(f64);

impl Tolerance {
    /// A relative increase: 0.0 tests "not worse at all", 0.25 "at most 25 % more events".
    pub fn new(tolerance: f64) -> Result<Self, EProcessError> {
        if tolerance.is_finite() && tolerance >= 0.0 {
            Ok(Tolerance(tolerance))
        } else {
            Err(EProcessError::InvalidTolerance { tolerance })
        }
    }

    /// The relative increase.
    pub fn value(self) -> f64 {
        self.0
    }

    /// θ₀: the event-rate ratio at the edge of the null hypothesis.
    fn boundary_ratio(self) -> f64 {
        1.0 + self.0
    }
}

impl TryFrom<f64> for Tolerance {
    type Error = EProcessError;

    fn try_from(tolerance: f64) -> Result<Self, Self::Error> {
        Tolerance::new(tolerance)
    }
}

impl From<Tolerance> for f64 {
    fn from(tolerance: Tolerance) -> Self {
        tolerance.0
    }
}

/// One window's events on one stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventCounts {
    /// Events on the canary.
    pub canary: u64,
    /// Events on the control (the stable revision).
    pub control: u64,
}

/// The mixture e-process of one stream: a state updated once per window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EProcess {
    direction: Direction,
    tolerance: Tolerance,
    /// ln M_g for each alternative g of the grid; kept in logs because the wealth spans hundreds of orders of
    /// magnitude in a long rollout.
    log_wealth: [f64; GRID_POINTS],
}

impl EProcess {
    /// A fresh process (E = 1: no evidence either way).
    pub fn new(direction: Direction, tolerance: Tolerance) -> Self {
        EProcess {
            direction,
            tolerance,
            log_wealth: [0.0; GRID_POINTS],
        }
    }

    /// Which hypothesis this process gathers evidence against.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// The tolerance it was built with.
    pub fn tolerance(&self) -> Tolerance {
        self.tolerance
    }

    /// Adds one window: its events and the canary's share of its requests. Unchanged on error.
    pub fn update(&mut self, events: EventCounts, canary_share: f64) -> Result<(), EProcessError> {
        check_window(events, canary_share)?;
        self.apply(events, canary_share);
        Ok(())
    }

    /// ln E, where E = mean over the grid of M_g.
    pub fn log_e_value(&self) -> f64 {
        log_mean_exp(&self.log_wealth)
    }

    /// E; +∞ once the evidence no longer fits in a float.
    pub fn e_value(&self) -> f64 {
        self.log_e_value().exp()
    }

    fn apply(&mut self, events: EventCounts, canary_share: f64) {
        let n = events.canary + events.control;
        if n == 0 {
            return;
        }
        let (x, n) = (events.canary as f64, n as f64);
        let theta0 = self.tolerance.boundary_ratio();
        let boundary_share = theta0 * canary_share / (theta0 * canary_share + 1.0 - canary_share);
        for (log_wealth, ratio) in self.log_wealth.iter_mut().zip(grid()) {
            let (log_ratio, share_term) = match self.direction {
                Direction::Regression => (ratio.ln(), ((ratio - 1.0) * boundary_share).ln_1p()),
                Direction::NotWorse => (-ratio.ln(), ((1.0 / ratio - 1.0) * boundary_share).ln_1p()),
            };
            *log_wealth += x * log_ratio - n * share_term;
        }
    }
}

/// The combined test over an error stream and latency-threshold streams, updated together once per window.
///
/// For [`Direction::Regression`] the evidence is `½·E_err + ½·mean_τ E_τ` (just `E_err` without latency
/// streams): the null "no stream is worse" is an intersection, under which every stream is a supermartingale
/// and so is any fixed average. For [`Direction::NotWorse`] the null "some stream is worse" is a union, which
/// is only rejected when each member is (the intersection–union principle, Berger, Technometrics 1982): the
/// evidence is the *smallest* stream e-value. That minimum is not itself an e-value, but it stays below the
/// e-value of a stream where the null holds, so crossing 1/α still happens with probability at most α.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SequentialTest {
    errors: EProcess,
    latency: Vec<EProcess>,
    /// Weight of the error stream in the regression evidence; the latency streams share the rest equally.
    #[serde(default = "half")]
    error_weight: f64,
}

fn half() -> f64 {
    0.5
}

impl SequentialTest {
    /// A fresh test with one error stream and `latency_streams` latency-threshold streams.
    pub fn new(direction: Direction, tolerance: Tolerance, latency_streams: usize) -> Self {
        SequentialTest {
            errors: EProcess::new(direction, tolerance),
            latency: vec![EProcess::new(direction, tolerance); latency_streams],
            error_weight: 0.5,
        }
    }

    /// The same test with the error stream weighted `weight` (0..=1) in the regression evidence instead of ½.
    /// Any fixed convex combination of e-processes is one, so validity is unchanged; the weight only moves
    /// power between error and latency regressions.
    pub fn with_error_weight(mut self, weight: f64) -> Self {
        self.error_weight = weight.clamp(0.0, 1.0);
        self
    }

    /// Which hypothesis this test gathers evidence against.
    pub fn direction(&self) -> Direction {
        self.errors.direction
    }

    /// Adds one window: the canary's share of its requests, the error events and one count per latency stream
    /// (in the order the judge chose its thresholds). Unchanged on error.
    pub fn update(
        &mut self,
        canary_share: f64,
        errors: EventCounts,
        latency: &[EventCounts],
    ) -> Result<(), EProcessError> {
        if latency.len() != self.latency.len() {
            return Err(EProcessError::StreamCount {
                expected: self.latency.len(),
                actual: latency.len(),
            });
        }
        check_window(errors, canary_share)?;
        for &events in latency {
            check_window(events, canary_share)?;
        }
        self.errors.apply(errors, canary_share);
        for (stream, &events) in self.latency.iter_mut().zip(latency) {
            stream.apply(events, canary_share);
        }
        Ok(())
    }

    /// The error stream.
    pub fn errors(&self) -> &EProcess {
        &self.errors
    }

    /// The latency streams, in the order they were updated.
    pub fn latency(&self) -> &[EProcess] {
        &self.latency
    }

    /// ln of the combined evidence; compare with ln(1/α).
    pub fn log_evidence(&self) -> f64 {
        let latency: Vec<f64> = self.latency.iter().map(EProcess::log_e_value).collect();
        let errors = self.errors.log_e_value();
        match self.direction() {
            Direction::Regression if latency.is_empty() => errors,
            Direction::Regression => {
                let (w, latency) = (self.error_weight, log_mean_exp(&latency));
                // ln(w·e^errors + (1 − w)·e^latency), computed without overflow.
                let max = errors.max(latency);
                max + (w * (errors - max).exp() + (1.0 - w) * (latency - max).exp()).ln()
            }
            Direction::NotWorse => latency.into_iter().fold(errors, f64::min),
        }
    }

    /// The combined evidence; compare with 1/α.
    pub fn evidence(&self) -> f64 {
        self.log_evidence().exp()
    }
}

fn check_window(events: EventCounts, canary_share: f64) -> Result<(), EProcessError> {
    if !(0.0..=1.0).contains(&canary_share) {
        return Err(EProcessError::InvalidShare { share: canary_share });
    }
    if canary_share == 0.0 && events.canary > 0 {
        return Err(EProcessError::EventsWithoutTraffic {
            arm: "canary",
            events: events.canary,
            share: canary_share,
        });
    }
    if canary_share == 1.0 && events.control > 0 {
        return Err(EProcessError::EventsWithoutTraffic {
            arm: "control",
            events: events.control,
            share: canary_share,
        });
    }
    Ok(())
}

/// The alternatives: ratios to θ₀, log-spaced.
fn grid() -> impl Iterator<Item = f64> {
    let (low, high) = (GRID_MIN.ln(), GRID_MAX.ln());
    let step = (high - low) / (GRID_POINTS - 1) as f64;
    (0..GRID_POINTS).map(move |i| (low + i as f64 * step).exp())
}

/// ln(mean(exp(values))) without overflow (log-sum-exp).
fn log_mean_exp(values: &[f64]) -> f64 {
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return max;
    }
    let sum: f64 = values.iter().map(|value| (value - max).exp()).sum();
    max + (sum / values.len() as f64).ln()
}

#[cfg(test)]
mod tests {
    // The hard-coded expected values are printed by `python3 crates/bench/reference/expected_values.py`.
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, Poisson};

    use super::*;

    /// Windows (share, canary events, control events), tolerance, direction, ln E after each window.
    type SingleStreamCase = (&'static [(f64, u64, u64)], f64, Direction, [f64; 5]);

    /// Share, canary errors and buckets, control errors and buckets, the reference's E after the window.
    type BucketWindow = (f64, u64, [u64; 14], u64, [u64; 14], f64);

    fn tolerance(value: f64) -> Tolerance {
        Tolerance::new(value).unwrap()
    }

    fn events(canary: u64, control: u64) -> EventCounts {
        EventCounts { canary, control }
    }

    /// Expected: ln E after each window, from the direct likelihood ratio (θ/θ₀)^x·((θ₀q+1−q)/(θq+1−q))^n
    /// over `reference_sim.THETA_GRID` (tolerance 0 regression also equals `reference_sim.EProcess`). The Rust
    /// side uses the q₀ form, so this checks the derivation too.
    #[test]
    fn single_stream_matches_the_direct_likelihood_ratio() {
        const WORSE: [(f64, u64, u64); 5] = [(0.1, 4, 10), (0.1, 6, 12), (0.2, 9, 14), (0.2, 7, 9), (0.3, 12, 10)];
        const BETTER: [(f64, u64, u64); 5] = [(0.1, 2, 60), (0.2, 3, 50), (0.3, 5, 45), (0.5, 10, 40), (0.5, 8, 42)];
        #[rustfmt::skip]
        let cases: [SingleStreamCase; 8] = [
            (&WORSE, 0.0, Direction::Regression, [1.1300020661495136, 4.2878227038403685, 5.892694099853679, 8.054396763509605, 10.721296476090252]),
            (&WORSE, 0.0, Direction::NotWorse, [-2.085208453896093, -2.8369764950609935, -3.2314231507917315, -3.473840704176834, -3.771632599529138]),
            (&WORSE, 0.25, Direction::Regression, [0.556175274549687, 2.845043860704326, 3.564897043896372, 4.94558333801724, 6.525869856967063]),
            (&WORSE, 0.25, Direction::NotWorse, [-2.014124023985449, -2.765149807417253, -3.1240179625062923, -3.348804507692802, -3.604501417421325]),
            (&BETTER, 0.0, Direction::Regression, [-2.5793019382925655, -3.3010764040537683, -3.8591531527484992, -4.612201327953203, -5.456745172264283]),
            (&BETTER, 0.0, Direction::NotWorse, [1.528252932003595, 5.529216721939139, 11.00593740254843, 20.325114172746485, 32.621977677693046]),
            (&BETTER, 0.25, Direction::Regression, [-2.76149230553118, -3.5018645441122245, -4.151472024911539, -5.035395104796196, -6.015062919763025]),
            (&BETTER, 0.25, Direction::NotWorse, [2.6009676827019517, 8.527124083830499, 16.50726824011716, 29.484248600759482, 45.88511556305446]),
        ];
        for (windows, tol, direction, expected) in cases {
            let mut process = EProcess::new(direction, tolerance(tol));
            for (&(share, x, y), want) in windows.iter().zip(expected) {
                process.update(events(x, y), share).unwrap();
                let got = process.log_e_value();
                assert!(
                    (got - want).abs() < 1e-9,
                    "{direction:?} tol {tol}: got {got}, want {want}"
                );
            }
        }
    }

    /// Expected: `reference_sim.EProcess` error stream after each window (ln of its mixture).
    #[test]
    fn error_stream_matches_the_reference_sequence() {
        let windows = [
            (0.1, 3, 20, -1.002330708147414),
            (0.1, 0, 15, -1.8135284584229834),
            (0.2, 5, 11, -1.486204432736772),
            (0.3, 0, 0, -1.486204432736772),
            (0.05, 2, 30, -1.503836889462142),
            (0.5, 9, 4, -0.9280102114723243),
            (0.1, 1, 25, -1.607945738108694),
        ];
        let mut process = EProcess::new(Direction::Regression, Tolerance::default());
        for (share, x, y, want) in windows {
            process.update(events(x, y), share).unwrap();
            assert!((process.log_e_value() - want).abs() < 1e-12);
        }
    }

    /// Expected: `reference_sim.EProcess.value()` after each window, fed bucket counts; the latency streams are
    /// the exceedances of 50, 100, 200, 300, 500 and 1000 ms (bucket indices 2, 4, 6, 7, 9, 11 onward).
    #[test]
    fn combined_regression_evidence_matches_the_reference() {
        #[rustfmt::skip]
        let windows: [BucketWindow; 6] = [
            (0.1, 0, [2, 1, 3, 5, 0, 0, 4, 0, 2, 4, 0, 4, 1, 0], 6, [2, 13, 13, 2, 7, 2, 17, 13, 1, 26, 18, 3, 7, 20], 0.3591597887822442),
            (0.2, 1, [0, 1, 0, 4, 1, 2, 3, 1, 4, 0, 4, 2, 4, 5], 7, [5, 3, 18, 18, 20, 6, 11, 3, 17, 22, 2, 18, 1, 19], 0.1484386240575979),
            (0.3, 1, [5, 4, 3, 2, 3, 4, 3, 2, 2, 1, 1, 5, 1, 0], 5, [18, 9, 16, 15, 28, 10, 23, 14, 9, 19, 2, 3, 16, 13], 0.07834491357510275),
            (0.4, 2, [1, 3, 3, 0, 5, 0, 4, 4, 2, 2, 5, 2, 4, 3], 7, [18, 25, 14, 2, 26, 2, 8, 15, 22, 21, 2, 1, 23, 22], 0.04700084232870602),
            (0.5, 2, [2, 5, 3, 5, 2, 0, 3, 2, 1, 4, 0, 3, 0, 1], 2, [24, 9, 4, 23, 7, 12, 12, 29, 27, 15, 2, 5, 14, 12], 0.042804067437776684),
            (0.5, 2, [3, 4, 2, 5, 3, 2, 5, 3, 1, 1, 0, 1, 1, 1], 2, [21, 7, 0, 15, 26, 18, 5, 8, 9, 0, 4, 13, 17, 11], 0.04083965019078344),
        ];
        let first_bucket_above = [2, 4, 6, 7, 9, 11];
        let mut test = SequentialTest::new(Direction::Regression, Tolerance::default(), first_bucket_above.len());
        for (share, canary_errors, canary_buckets, control_errors, control_buckets, want) in windows {
            let latency: Vec<EventCounts> = first_bucket_above
                .iter()
                .map(|&from| {
                    events(
                        canary_buckets[from..].iter().sum(),
                        control_buckets[from..].iter().sum(),
                    )
                })
                .collect();
            test.update(share, events(canary_errors, control_errors), &latency)
                .unwrap();
            assert!(
                (test.evidence() - want).abs() < 1e-12 * want,
                "got {}, want {want}",
                test.evidence()
            );
        }
    }

    #[test]
    fn not_worse_evidence_is_the_weakest_stream() {
        let mut test = SequentialTest::new(Direction::NotWorse, tolerance(0.25), 1);
        test.update(0.5, events(10, 40), &[events(25, 25)]).unwrap();
        let weakest = test.errors().log_e_value().min(test.latency()[0].log_e_value());
        assert_eq!(test.log_evidence(), weakest);
        assert_eq!(test.log_evidence(), test.latency()[0].log_e_value());
    }

    #[test]
    fn without_latency_streams_the_regression_evidence_is_the_error_stream() {
        let mut test = SequentialTest::new(Direction::Regression, Tolerance::default(), 0);
        test.update(0.1, events(5, 10), &[]).unwrap();
        assert_eq!(test.log_evidence(), test.errors().log_e_value());
        assert!(test.evidence() > 1.0);
    }

    #[test]
    fn inconsistent_windows_are_refused_and_leave_the_state_unchanged() {
        let mut test = SequentialTest::new(Direction::Regression, Tolerance::default(), 1);
        let before = test.clone();
        let cases = [
            (
                1.5,
                events(0, 0),
                vec![events(0, 0)],
                "canary share 1.5 is not a fraction; expected a number in [0, 1]",
            ),
            (
                f64::NAN,
                events(0, 0),
                vec![events(0, 0)],
                "canary share NaN is not a fraction; expected a number in [0, 1]",
            ),
            (
                0.0,
                events(0, 3),
                vec![events(2, 0)],
                "2 canary events in a window where the canary share was 0; the counts and the share disagree",
            ),
            (
                1.0,
                events(1, 0),
                vec![events(0, 4)],
                "4 control events in a window where the canary share was 1; the counts and the share disagree",
            ),
            (
                0.5,
                events(1, 0),
                vec![],
                "expected event counts for 1 latency streams, got 0",
            ),
        ];
        for (share, errors, latency, message) in cases {
            let error = test.update(share, errors, &latency).unwrap_err();
            assert_eq!(error.to_string(), message);
            assert_eq!(test, before);
        }
        assert_eq!(
            Tolerance::new(-0.1).unwrap_err().to_string(),
            "tolerance -0.1 is not allowed; expected a finite number >= 0 (0.25 means 25 % worse)"
        );
    }

    #[test]
    fn state_survives_serialization() {
        let mut test = SequentialTest::new(Direction::NotWorse, tolerance(0.1), 2);
        test.update(0.2, events(1, 9), &[events(3, 30), events(0, 2)]).unwrap();
        let json = serde_json::to_string(&test).unwrap();
        let restored: SequentialTest = serde_json::from_str(&json).unwrap();
        assert_eq!(restored, test);
        let negative = json.replace("\"tolerance\":0.1", "\"tolerance\":-1.0");
        assert!(serde_json::from_str::<SequentialTest>(&negative).is_err());
    }

    /// Events per request for the error stream and each latency stream (LN latency, median 100 ms, σ 0.55:
    /// exceedances of 50, 100, 200, 300, 500, 1000 ms).
    const EVENT_RATES: [f64; 7] = [0.005, 0.8956, 0.5, 0.1028, 0.0228, 0.0017, 1.6e-5];

    /// Runs of `looks` windows at 100 requests/s over 5 s; the canary's event rates are `ratio` times the
    /// control's, and its share changes every window. Returns the fraction of runs whose evidence ever
    /// reached 1/α.
    fn crossing_rate(direction: Direction, tol: f64, ratio: f64, runs: usize, looks: usize, seed: u64) -> f64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let shares = [0.05, 0.1, 0.2, 0.3, 0.5, 0.1, 0.02];
        let threshold = (1.0f64 / 0.05).ln();
        let mut crossed = 0;
        for _ in 0..runs {
            let mut test = SequentialTest::new(direction, tolerance(tol), EVENT_RATES.len() - 1);
            for look in 0..looks {
                let share = shares[look % shares.len()];
                let counts: Vec<EventCounts> = EVENT_RATES
                    .iter()
                    .map(|&rate| {
                        events(
                            poisson(&mut rng, 500.0 * share * rate * ratio),
                            poisson(&mut rng, 500.0 * (1.0 - share) * rate),
                        )
                    })
                    .collect();
                test.update(share, counts[0], &counts[1..]).unwrap();
                if test.log_evidence() >= threshold {
                    crossed += 1;
                    break;
                }
            }
        }
        crossed as f64 / runs as f64
    }

    fn poisson(rng: &mut ChaCha8Rng, mean: f64) -> u64 {
        if mean <= 0.0 {
            0
        } else {
            Poisson::new(mean).unwrap().sample(rng) as u64
        }
    }

    /// Ville's inequality in action: 2,000 null runs of 300 looks each, with the canary exactly at the edge of
    /// the null (the hardest case) and the share changing every look.
    #[test]
    fn false_rollbacks_stay_under_alpha_with_continuous_peeking() {
        for (tol, seed) in [(0.0, 1), (0.25, 2)] {
            let rate = crossing_rate(Direction::Regression, tol, 1.0 + tol, 2_000, 300, seed);
            assert!(rate < 0.05, "tolerance {tol}: {rate} of null runs crossed 1/alpha");
        }
    }

    #[test]
    fn promotion_evidence_stays_under_alpha_for_a_candidate_at_the_tolerance() {
        let rate = crossing_rate(Direction::NotWorse, 0.25, 1.25, 500, 300, 3);
        assert!(
            rate < 0.05,
            "{rate} of runs at the tolerance found evidence of no regression"
        );
    }

    #[test]
    fn regressions_are_caught() {
        let rate = crossing_rate(Direction::Regression, 0.0, 2.0, 200, 60, 4);
        assert!(
            rate > 0.95,
            "only {rate} of runs with twice the events crossed 1/alpha within 60 looks"
        );
    }

    /// Only the error stream and the busy latency streams can show "not worse" quickly; the rare ones
    /// (> 1 s) cannot, so this test runs the promotion side on the error stream and the 100 ms stream: a
    /// candidate with half the errors and 20 % fewer slow requests, at 10 % of 100 requests/s for 20 minutes.
    #[test]
    fn promotion_evidence_grows_for_a_clearly_better_candidate() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut promoted = 0;
        for _ in 0..200 {
            let mut test = SequentialTest::new(Direction::NotWorse, tolerance(0.25), 1);
            for _ in 0..240 {
                let errors = events(poisson(&mut rng, 50.0 * 0.0025), poisson(&mut rng, 450.0 * 0.005));
                let slow = events(poisson(&mut rng, 50.0 * 0.4), poisson(&mut rng, 450.0 * 0.5));
                test.update(0.1, errors, &[slow]).unwrap();
                if test.evidence() >= 20.0 {
                    promoted += 1;
                    break;
                }
            }
        }
        assert!(
            promoted >= 190,
            "only {promoted} of 200 clearly better candidates showed evidence in 20 minutes"
        );
    }
}

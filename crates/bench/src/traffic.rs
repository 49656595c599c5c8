//! Simulated traffic with a known truth: the generator of the README's Specification.
//!
//! Requests arrive as a Poisson process at λ(t) = R·L(t) and are routed independently, so each arm's count in
//! each latency bucket over a tick is an independent Poisson variable with mean λ(t)·share·Δ·P(bucket), and
//! its errors are Binomial(requests, e_version(t)), independent of latency. λ and the distributions are taken
//! at the start of the tick, as in `reference_sim.py`. Every run draws from its own seeded ChaCha8 stream per
//! plan, so a run is reproducible and two plans of one run never share draws.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Binomial, Distribution, Poisson};
use sluice_analysis::stats::{Histogram, HistogramError};
use thiserror::Error;

use crate::latency::LatencyDistribution;
use crate::scenario::{CandidateLatency, Diurnal, ErrorRates, ScenarioError, ScenarioFile};

/// Why traffic could not be generated.
#[derive(Debug, Error)]
pub enum TrafficError {
    /// The scenarios file does not hold up.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// There is no scenario at that position.
    #[error("scenario #{index} does not exist; the file has {count} scenarios")]
    UnknownScenario {
        /// The position asked for.
        index: usize,
        /// Scenarios in the file.
        count: usize,
    },
    /// Shares are fractions of all requests.
    #[error("the {arm} arm's share {share} is not a fraction; expected a number in [0, 1]")]
    InvalidShare {
        /// The arm.
        arm: &'static str,
        /// The offending share.
        share: f64,
    },
    /// The counts of one tick do not fit the histogram (bounds checked when the scenario was loaded).
    #[error(transparent)]
    Histogram(#[from] HistogramError),
    /// The mean count is too large (or not finite) for the Poisson sampler.
    #[error("cannot draw a Poisson count with mean {mean}: {source}")]
    Poisson {
        /// The mean asked for.
        mean: f64,
        /// What the sampler said.
        source: rand_distr::PoissonError,
    },
    /// The error probability is not a probability.
    #[error("cannot draw errors with probability {probability}: {source}")]
    Binomial {
        /// The probability asked for.
        probability: f64,
        /// What the sampler said.
        source: rand_distr::BinomialError,
    },
}

/// A revision in the simulation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// The old version (control, baseline and primary arms).
    Stable,
    /// The new version (canary arm).
    Candidate,
}

/// The seed of one run: `seed·1000000007 + scenario_index·100003 + replication`, as the README specifies
/// (wrapping, which no realistic seed reaches).
pub fn run_seed(base_seed: u64, scenario_index: u64, replication: u64) -> u64 {
    base_seed
        .wrapping_mul(1_000_000_007)
        .wrapping_add(scenario_index.wrapping_mul(100_003))
        .wrapping_add(replication)
}

/// Bucket probabilities of both versions at one phase of the load cycle.
#[derive(Clone, Debug, PartialEq)]
struct PhaseBuckets {
    stable: Vec<f64>,
    candidate: Vec<f64>,
}

/// Everything about one scenario's traffic that does not depend on the draws; shared by all its runs.
#[derive(Clone, Debug, PartialEq)]
pub struct ScenarioTraffic {
    name: String,
    tick_seconds: u32,
    rate_rps: f64,
    bounds_ms: Vec<f64>,
    error_rate: ErrorRates,
    diurnal: Option<Diurnal>,
    /// One entry per tick of the load cycle (a single one without diurnal load), computed once because a
    /// tail-warped CDF costs a root search per bound.
    phases: Vec<PhaseBuckets>,
}

impl ScenarioTraffic {
    /// The traffic of scenario number `index` of `file` (its position is also part of each run's seed).
    pub fn new(file: &ScenarioFile, index: usize) -> Result<Self, TrafficError> {
        file.validate()?;
        let scenario = file.scenarios.get(index).ok_or(TrafficError::UnknownScenario {
            index,
            count: file.scenarios.len(),
        })?;
        let model = file
            .latency_models
            .get(&scenario.latency)
            .ok_or_else(|| ScenarioError::Invalid {
                field: format!("scenarios[{index}].latency"),
                value: scenario.latency.clone(),
                expected: "a key of latency_models".to_owned(),
            })?;
        let diurnal = scenario.diurnal.then_some(file.diurnal);
        let phase_count = diurnal.map_or(1, |diurnal| diurnal.period_s / file.tick_seconds);
        let mut traffic = ScenarioTraffic {
            name: scenario.name.clone(),
            tick_seconds: file.tick_seconds,
            rate_rps: scenario.rate_rps,
            bounds_ms: file.latency_buckets_ms.clone(),
            error_rate: scenario.error_rate,
            diurnal,
            phases: Vec::new(),
        };
        traffic.phases = (0..u64::from(phase_count))
            .map(|tick| {
                let slowdown = traffic.latency_multiplier(tick);
                let buckets = |transform| {
                    LatencyDistribution::new(model, transform, slowdown).bucket_probabilities(&traffic.bounds_ms)
                };
                PhaseBuckets {
                    stable: buckets(CandidateLatency::None),
                    candidate: buckets(scenario.candidate_latency),
                }
            })
            .collect();
        Ok(traffic)
    }

    /// The scenario's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Length of a tick, in seconds.
    pub fn tick_seconds(&self) -> u32 {
        self.tick_seconds
    }

    /// The latency bucket bounds, in ms.
    pub fn bounds_ms(&self) -> &[f64] {
        &self.bounds_ms
    }

    /// Load multiplier L at the start of `tick`: 1, or the compressed day's 1 + A·sin(2πt/period).
    pub fn load(&self, tick: u64) -> f64 {
        self.diurnal.map_or(1.0, |diurnal| {
            let seconds = (tick * u64::from(self.tick_seconds)) % u64::from(diurnal.period_s);
            1.0 + diurnal.amplitude * (std::f64::consts::TAU * seconds as f64 / f64::from(diurnal.period_s)).sin()
        })
    }

    /// Probability that a request of `version` fails during `tick` (its rate scaled by the load).
    pub fn error_probability(&self, version: Version, tick: u64) -> f64 {
        let base = match version {
            Version::Stable => self.error_rate.stable,
            Version::Candidate => self.error_rate.candidate,
        };
        let gain = self.diurnal.map_or(0.0, |diurnal| diurnal.error_gain);
        (base * (1.0 + gain * (self.load(tick) - 1.0))).clamp(0.0, 1.0)
    }

    /// P(bucket) for a request of `version` during `tick`, the `+Inf` bucket last.
    pub fn bucket_probabilities(&self, version: Version, tick: u64) -> &[f64] {
        let phase = &self.phases[(tick % self.phases.len() as u64) as usize];
        match version {
            Version::Stable => &phase.stable,
            Version::Candidate => &phase.candidate,
        }
    }

    /// Mean requests of an arm with `share` of the traffic during `tick`: λ(t)·share·Δ.
    pub fn expected_requests(&self, tick: u64, share: f64) -> f64 {
        self.rate_rps * self.load(tick) * share * f64::from(self.tick_seconds)
    }

    fn latency_multiplier(&self, tick: u64) -> f64 {
        let gain = self.diurnal.map_or(0.0, |diurnal| diurnal.latency_gain);
        1.0 + gain * (self.load(tick) - 1.0)
    }
}

/// One arm's traffic over one tick.
#[derive(Clone, Debug, PartialEq)]
pub struct ArmCounts {
    /// Requests answered.
    pub requests: u64,
    /// Of which failed.
    pub errors: u64,
    /// Their latencies.
    pub latency: Histogram,
}

/// A tick of a canary plan: the canary at weight w, the rest of the traffic on the stable version.
#[derive(Clone, Debug, PartialEq)]
pub struct CanaryTick {
    /// The candidate, with share w.
    pub canary: ArmCounts,
    /// The stable version, with share 1 − w.
    pub control: ArmCounts,
}

/// A tick of Kayenta's plan: canary and an equal-sized baseline of the stable version, the rest on primary.
#[derive(Clone, Debug, PartialEq)]
pub struct BaselineTick {
    /// The candidate, with share w.
    pub canary: ArmCounts,
    /// The stable version, with share w.
    pub baseline: ArmCounts,
    /// The stable version, with share 1 − 2w.
    pub primary: ArmCounts,
}

/// Draws the counts of one run of one plan.
#[derive(Clone, Debug)]
pub struct TrafficGenerator<'a> {
    traffic: &'a ScenarioTraffic,
    rng: ChaCha8Rng,
}

impl<'a> TrafficGenerator<'a> {
    /// A generator for the run with `run_seed` (see [`run_seed`]), on its own random `stream` (one per plan).
    pub fn new(traffic: &'a ScenarioTraffic, run_seed: u64, stream: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(run_seed);
        rng.set_stream(stream);
        TrafficGenerator { traffic, rng }
    }

    /// The counts of tick `tick` for the canary at `weight` (a fraction) and the stable version on the rest.
    pub fn canary_tick(&mut self, tick: u64, weight: f64) -> Result<CanaryTick, TrafficError> {
        check_share("canary", weight)?;
        let canary = self.draw(tick, Version::Candidate, weight)?;
        let control = self.draw(tick, Version::Stable, 1.0 - weight)?;
        Ok(CanaryTick { canary, control })
    }

    /// The counts of tick `tick` for Kayenta's plan: canary and baseline at `weight` each, primary on the rest.
    pub fn baseline_tick(&mut self, tick: u64, weight: f64) -> Result<BaselineTick, TrafficError> {
        check_share("canary", weight)?;
        check_share("primary", 1.0 - 2.0 * weight)?;
        let canary = self.draw(tick, Version::Candidate, weight)?;
        let baseline = self.draw(tick, Version::Stable, weight)?;
        let primary = self.draw(tick, Version::Stable, 1.0 - 2.0 * weight)?;
        Ok(BaselineTick {
            canary,
            baseline,
            primary,
        })
    }

    /// The counts of one arm serving `version` with `share` of the requests during `tick`.
    pub fn draw(&mut self, tick: u64, version: Version, share: f64) -> Result<ArmCounts, TrafficError> {
        let arm = match version {
            Version::Stable => "stable",
            Version::Candidate => "candidate",
        };
        check_share(arm, share)?;
        let mean = self.traffic.expected_requests(tick, share);
        let counts = self
            .traffic
            .bucket_probabilities(version, tick)
            .iter()
            .map(|probability| poisson(&mut self.rng, mean * probability))
            .collect::<Result<Vec<u64>, TrafficError>>()?;
        let requests = counts.iter().sum();
        let probability = self.traffic.error_probability(version, tick);
        let errors = Binomial::new(requests, probability)
            .map_err(|source| TrafficError::Binomial { probability, source })?
            .sample(&mut self.rng);
        let latency = Histogram::from_counts(self.traffic.bounds_ms.clone(), counts)?;
        Ok(ArmCounts {
            requests,
            errors,
            latency,
        })
    }
}

fn check_share(arm: &'static str, share: f64) -> Result<(), TrafficError> {
    if (0.0..=1.0).contains(&share) {
        Ok(())
    } else {
        Err(TrafficError::InvalidShare { arm, share })
    }
}

fn poisson(rng: &mut ChaCha8Rng, mean: f64) -> Result<u64, TrafficError> {
    if mean == 0.0 {
        return Ok(0);
    }
    let distribution = Poisson::new(mean).map_err(|source| TrafficError::Poisson { mean, source })?;
    // Poisson draws are whole numbers well inside u64 for any mean the sampler accepts.
    Ok(distribution.sample(rng) as u64)
}

#[cfg(test)]
mod tests {
    // The hard-coded expected values are printed by `python3 crates/bench/reference/expected_values.py`.
    use std::path::Path;

    use proptest::prelude::*;

    use super::*;

    fn suite() -> ScenarioFile {
        ScenarioFile::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios.json")).unwrap()
    }

    fn traffic(name: &str) -> ScenarioTraffic {
        let file = suite();
        let index = file
            .scenarios
            .iter()
            .position(|scenario| scenario.name == name)
            .unwrap();
        ScenarioTraffic::new(&file, index).unwrap()
    }

    #[test]
    fn run_seeds_follow_the_readme_formula() {
        // Python: 20240601*1000000007 + 3*100003 + 7
        assert_eq!(run_seed(20240601, 3, 7), 20240601141984223);
    }

    /// Mean of `ticks` draws of tick `tick` per bucket, with requests and errors appended.
    fn mean_counts(generator: &mut TrafficGenerator, tick: u64, version: Version, share: f64, ticks: u32) -> Vec<f64> {
        let mut sums = [0.0; 16];
        for _ in 0..ticks {
            let arm = generator.draw(tick, version, share).unwrap();
            for (sum, &count) in sums.iter_mut().zip(arm.latency.counts()) {
                *sum += count as f64;
            }
            sums[14] += arm.requests as f64;
            sums[15] += arm.errors as f64;
        }
        sums.iter().map(|sum| sum / f64::from(ticks)).collect()
    }

    /// Means within 5 standard errors of λ·share·Δ·P(bucket) (Poisson: variance = mean), errors of λ·share·Δ·e.
    fn assert_means(traffic: &ScenarioTraffic, tick: u64, version: Version, share: f64, seed: u64) {
        let ticks = 20_000;
        let mut generator = TrafficGenerator::new(traffic, seed, 0);
        let means = mean_counts(&mut generator, tick, version, share, ticks);
        let requests = traffic.expected_requests(tick, share);
        let mut expected: Vec<f64> = traffic
            .bucket_probabilities(version, tick)
            .iter()
            .map(|probability| requests * probability)
            .collect();
        expected.push(requests);
        expected.push(requests * traffic.error_probability(version, tick));
        for (index, (mean, want)) in means.iter().zip(&expected).enumerate() {
            let tolerance = 5.0 * (want / f64::from(ticks)).sqrt() + 1e-9;
            assert!(
                (mean - want).abs() <= tolerance,
                "{version:?} share {share}, column {index}: mean {mean}, expected {want}"
            );
        }
    }

    #[test]
    fn mean_counts_match_rate_share_tick_and_bucket_probability() {
        let null = traffic("null");
        assert_eq!(null.expected_requests(0, 0.1), 50.0);
        assert_means(&null, 0, Version::Candidate, 0.1, 1);
        assert_means(&null, 17, Version::Stable, 0.9, 2);
        let low = traffic("lowtraffic_err_1->5%");
        assert_eq!(low.expected_requests(0, 0.1), 1.0);
        assert_means(&low, 3, Version::Candidate, 0.1, 3);
        assert_eq!(low.error_probability(Version::Candidate, 3), 0.05);
    }

    #[test]
    fn diurnal_load_follows_the_compressed_day() {
        let diurnal = traffic("diurnal_err_0.5->1%");
        // Tick k starts at 5k seconds: 0 s, 900 s (peak), 1800 s, 2700 s (trough), 3600 s (next day).
        let loads: Vec<f64> = [0, 180, 360, 540, 720].iter().map(|&tick| diurnal.load(tick)).collect();
        for (got, want) in loads.iter().zip([1.0, 1.8, 1.0, 0.2, 1.0]) {
            assert!((got - want).abs() < 1e-12, "loads {loads:?}");
        }
        assert!((diurnal.expected_requests(180, 0.1) - 90.0).abs() < 1e-9);
        assert!((diurnal.error_probability(Version::Candidate, 180) - 0.014).abs() < 1e-15);
        assert!((diurnal.error_probability(Version::Stable, 540) - 0.005 * 0.6).abs() < 1e-15);
        assert_eq!(
            diurnal.bucket_probabilities(Version::Stable, 0),
            diurnal.bucket_probabilities(Version::Stable, 720)
        );
        assert_means(&diurnal, 180, Version::Candidate, 0.1, 4);
        assert_means(&diurnal, 540, Version::Stable, 0.9, 5);
        // Latency at the peak is 1 + 0.25·0.8 = 1.2 times slower: `reference_sim.bucket_probs(LN, none, 1.2)`.
        let peak = diurnal.bucket_probabilities(Version::Stable, 180);
        assert!((peak[4] - 0.28738840702144486).abs() < 1e-10);
        assert!((peak[7] - 0.03356147212961036).abs() < 1e-10);
        assert_eq!(traffic("null").load(180), 1.0);
    }

    #[test]
    fn tailwarp_in_the_drawn_histograms_slows_p99_by_half_and_keeps_p50() {
        let warped = traffic("p99_+50%");
        let mut generator = TrafficGenerator::new(&warped, 11, 0);
        let bounds = warped.bounds_ms().to_vec();
        let (mut canary, mut control) = (Histogram::new(bounds.clone()).unwrap(), Histogram::new(bounds).unwrap());
        for tick in 0..2_000 {
            let counts = generator.canary_tick(tick, 0.5).unwrap();
            canary.merge(&counts.canary.latency).unwrap();
            control.merge(&counts.control.latency).unwrap();
        }
        let ratio = |q| canary.quantile(q).unwrap() / control.quantile(q).unwrap();
        assert!((ratio(0.5) - 1.0).abs() < 0.01, "p50 ratio {}", ratio(0.5));
        // histogram_quantile interpolates inside 100- and 250-ms-wide buckets, hence the slack around 1.5.
        assert!((ratio(0.99) - 1.5).abs() < 0.1, "p99 ratio {}", ratio(0.99));
        assert_eq!(
            warped.bucket_probabilities(Version::Candidate, 0)[..6],
            warped.bucket_probabilities(Version::Stable, 0)[..6],
            "buckets up to 200 ms (below p90) must not change"
        );
    }

    #[test]
    fn same_seed_same_draws_and_streams_apart() {
        let null = traffic("err_1->5%");
        let run = |seed, stream| {
            let mut generator = TrafficGenerator::new(&null, seed, stream);
            (0..50)
                .map(|tick| generator.baseline_tick(tick, 0.1).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7, 1), run(7, 1));
        assert_ne!(run(7, 1), run(7, 2));
        assert_ne!(run(7, 1), run(8, 1));
    }

    #[test]
    fn shares_outside_zero_to_one_are_refused() {
        let null = traffic("null");
        let mut generator = TrafficGenerator::new(&null, 1, 0);
        assert_eq!(
            generator.canary_tick(0, 1.5).unwrap_err().to_string(),
            "the canary arm's share 1.5 is not a fraction; expected a number in [0, 1]"
        );
        assert_eq!(
            generator.baseline_tick(0, 0.6).unwrap_err().to_string(),
            "the primary arm's share -0.19999999999999996 is not a fraction; expected a number in [0, 1]"
        );
        assert_eq!(
            ScenarioTraffic::new(&suite(), 16).unwrap_err().to_string(),
            "scenario #16 does not exist; the file has 16 scenarios"
        );
        assert!(generator.draw(0, Version::Stable, 0.0).unwrap().requests == 0);
    }

    proptest! {
        #[test]
        fn counts_are_consistent(seed in any::<u64>(), tick in 0u64..10_000, weight in 0.0f64..=0.5) {
            let diurnal = traffic("diurnal_err_0.5->1%");
            let mut generator = TrafficGenerator::new(&diurnal, seed, 3);
            let counts = generator.baseline_tick(tick, weight).unwrap();
            for arm in [&counts.canary, &counts.baseline, &counts.primary] {
                prop_assert_eq!(arm.latency.count(), arm.requests);
                prop_assert!(arm.errors <= arm.requests);
            }
        }
    }
}

//! Latency distributions of the benchmark and the probability of each histogram bucket under them.
//!
//! The generator never draws single latencies: per tick it draws how many requests land in each bucket, so
//! all it needs from a distribution is its CDF at the bucket bounds, after the candidate's transform and the
//! load's slow-down. These follow the README's Specification ("Distributions").

use std::f64::consts::SQRT_2;

use statrs::function::erf::erfc_inv;

use crate::scenario::{CandidateLatency, Component, LatencyModel};

/// Quantile level below which `tailwarp` leaves latency alone.
const TAILWARP_START: f64 = 0.90;
/// Quantile level from which `tailwarp` multiplies latency by its full factor.
const TAILWARP_FULL: f64 = 0.99;
/// Most bisection steps when inverting numerically; the loops stop earlier, once the bracket is two
/// neighbouring doubles.
const INVERSION_STEPS: usize = 200;

/// One version's latency: a base model, the candidate's transform, and the load's multiplier.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LatencyDistribution<'a> {
    model: &'a LatencyModel,
    transform: CandidateLatency,
    load_multiplier: f64,
}

impl<'a> LatencyDistribution<'a> {
    /// Latency `load_multiplier · T(L)` where L follows `model` and T is `transform`.
    pub fn new(model: &'a LatencyModel, transform: CandidateLatency, load_multiplier: f64) -> Self {
        LatencyDistribution {
            model,
            transform,
            load_multiplier,
        }
    }

    /// P(latency ≤ x_ms).
    pub fn cdf(&self, x_ms: f64) -> f64 {
        let x = x_ms / self.load_multiplier;
        match self.transform {
            CandidateLatency::None => self.model.cdf(x),
            CandidateLatency::Shift { ms } => self.model.cdf(x - ms),
            CandidateLatency::Tailwarp { factor } => self.tailwarp_cdf(x, factor),
        }
    }

    /// The latency at quantile level `u` in (0, 1).
    pub fn quantile(&self, u: f64) -> f64 {
        let base = self.model.quantile(u);
        let transformed = match self.transform {
            CandidateLatency::None => base,
            CandidateLatency::Shift { ms } => base + ms,
            CandidateLatency::Tailwarp { factor } => base * tailwarp_multiplier(factor, u),
        };
        transformed * self.load_multiplier
    }

    /// P(bucket) for buckets with upper bounds `bounds_ms`, then the `+Inf` bucket.
    pub fn bucket_probabilities(&self, bounds_ms: &[f64]) -> Vec<f64> {
        let mut probabilities = Vec::with_capacity(bounds_ms.len() + 1);
        let mut below = 0.0f64;
        for &bound in bounds_ms {
            let cumulative = self.cdf(bound);
            probabilities.push((cumulative - below).max(0.0));
            below = below.max(cumulative);
        }
        probabilities.push((1.0 - below).max(0.0));
        probabilities
    }

    /// P(Q(U)·g(U) ≤ x) = sup{u : Q(u)·g(u) ≤ x}. Below u = 0.90, g = 1, so it is the base CDF; above, it is
    /// found on the latency axis: y·g(F(y)) = x, which is increasing in y because g ≥ 1 never decreases.
    fn tailwarp_cdf(&self, x: f64, factor: f64) -> f64 {
        let base = self.model.cdf(x);
        if base <= TAILWARP_START {
            return base;
        }
        let warped = |y: f64| y * tailwarp_multiplier(factor, self.model.cdf(y));
        let (mut low, mut high) = (x / factor, x);
        for _ in 0..INVERSION_STEPS {
            let middle = 0.5 * (low + high);
            if middle <= low || middle >= high {
                break;
            }
            if warped(middle) <= x {
                low = middle;
            } else {
                high = middle;
            }
        }
        self.model.cdf(low)
    }
}

/// g(u): 1 below 0.90, linear to `factor` at 0.99, `factor` above.
fn tailwarp_multiplier(factor: f64, u: f64) -> f64 {
    if u < TAILWARP_START {
        1.0
    } else if u < TAILWARP_FULL {
        1.0 + (factor - 1.0) * (u - TAILWARP_START) / (TAILWARP_FULL - TAILWARP_START)
    } else {
        factor
    }
}

impl LatencyModel {
    /// P(latency ≤ x_ms).
    pub fn cdf(&self, x_ms: f64) -> f64 {
        match self {
            LatencyModel::Lognormal { median_ms, sigma } => lognormal_cdf(x_ms, *median_ms, *sigma),
            LatencyModel::Mixture {
                body,
                tail_weight,
                tail,
            } => (1.0 - tail_weight) * body.cdf(x_ms) + tail_weight * tail.cdf(x_ms),
        }
    }

    /// The latency at quantile level `u` in (0, 1); mixtures are inverted numerically on a log scale.
    pub fn quantile(&self, u: f64) -> f64 {
        match self {
            LatencyModel::Lognormal { median_ms, sigma } => median_ms * (sigma * normal_quantile(u)).exp(),
            LatencyModel::Mixture { .. } => {
                let (mut low, mut high) = (1e-6f64, 1e9f64);
                for _ in 0..INVERSION_STEPS {
                    let middle = (low * high).sqrt();
                    if middle <= low || middle >= high {
                        break;
                    }
                    if self.cdf(middle) < u {
                        low = middle;
                    } else {
                        high = middle;
                    }
                }
                (low * high).sqrt()
            }
        }
    }
}

impl Component {
    fn cdf(&self, x_ms: f64) -> f64 {
        match *self {
            Component::Lognormal { median_ms, sigma } => lognormal_cdf(x_ms, median_ms, sigma),
            Component::Pareto { xm_ms, alpha } if x_ms >= xm_ms => 1.0 - (xm_ms / x_ms).powf(alpha),
            Component::Pareto { .. } => 0.0,
        }
    }
}

fn lognormal_cdf(x_ms: f64, median_ms: f64, sigma: f64) -> f64 {
    if x_ms <= 0.0 {
        return 0.0;
    }
    let z = (x_ms.ln() - median_ms.ln()) / sigma;
    // libm's erfc: statrs' is off by up to ~1e-11, which would show against the reference's probabilities.
    0.5 * libm::erfc(-z / SQRT_2)
}

fn normal_quantile(p: f64) -> f64 {
    -SQRT_2 * erfc_inv(2.0 * p)
}

#[cfg(test)]
mod tests {
    // The hard-coded expected values are printed by `python3 crates/bench/reference/expected_values.py`.
    use super::*;

    const BOUNDS: [f64; 13] = [
        25.0, 50.0, 75.0, 100.0, 150.0, 200.0, 300.0, 400.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0,
    ];
    const LN: LatencyModel = LatencyModel::Lognormal {
        median_ms: 100.0,
        sigma: 0.55,
    };
    const HT: LatencyModel = LatencyModel::Mixture {
        body: Component::Lognormal {
            median_ms: 60.0,
            sigma: 0.35,
        },
        tail_weight: 0.05,
        tail: Component::Pareto {
            xm_ms: 150.0,
            alpha: 1.8,
        },
    };

    /// Expected: `reference_sim.bucket_probs(model, transform, m)`.
    #[test]
    fn bucket_probabilities_match_the_reference() {
        #[rustfmt::skip]
        let cases: [(&LatencyModel, CandidateLatency, f64, [f64; 14]); 8] = [
            (&LN, CandidateLatency::None, 1.0, [0.005858825857647965, 0.09792759589375488, 0.19668041511521916, 0.199533163133378, 0.26950245681494867, 0.12671112143364804, 0.08089972042880478, 0.017027875464950548, 0.004143454389096579, 0.0015909559420322905, 0.00011025222445837368, 1.4160880891345151e-05, 2.4206007198657176e-09, 5.686562332130052e-13]),
            (&LN, CandidateLatency::Tailwarp { factor: 1.5 }, 1.0, [0.005858825857647962, 0.09792759589375506, 0.19668041511521944, 0.19953316313337754, 0.2695024568149491, 0.12671112143364793, 0.048409251295243316, 0.027277504565241584, 0.014634522304761699, 0.011749772117604862, 0.0014343599495660886, 0.0002808548911749087, 1.5653666252113396e-07, 9.11479780540958e-11]),
            (&LN, CandidateLatency::Tailwarp { factor: 1.1 }, 1.0, [0.005858825857647962, 0.09792759589375506, 0.19668041511521944, 0.19953316313337754, 0.2695024568149491, 0.12671112143364793, 0.07259267014571513, 0.021737318329800304, 0.006503473306673557, 0.0027116022002412477, 0.00021141065141982995, 2.9940351650159513e-05, 6.7639349676795746e-09, 1.9677592888456275e-12]),
            (&LN, CandidateLatency::Shift { ms: 5.0 }, 1.0, [0.001715371468551441, 0.07155876612948353, 0.18505670076835318, 0.2045174534852231, 0.2874948937147085, 0.13732785757853827, 0.08773265268241892, 0.018345585125173702, 0.00443184598686952, 0.001688414044819453, 0.0001157163050106158, 1.4740236104815452e-05, 2.4741687587592764e-09, 5.762057497804562e-13]),
            (&HT, CandidateLatency::None, 1.0, [0.005876918327150721, 0.2802741893054762, 0.41506066156543747, 0.18018538182715071, 0.06440129969834485, 0.024134485168734177, 0.015706312309437864, 0.005805599985088561, 0.0028299827936622, 0.0029657096963412455, 0.001115336452600868, 0.0013281554862046852, 0.0002252295807056992, 9.073780366475326e-05]),
            (&HT, CandidateLatency::Tailwarp { factor: 1.5 }, 1.0, [0.005876918327150721, 0.2802741893054762, 0.41506066156543825, 0.18018538182714994, 0.05259768863194214, 0.016524246736014936, 0.022785054506691105, 0.009752451124385386, 0.005202263195595025, 0.0060159757606390585, 0.002314036927260066, 0.0027555810362364097, 0.00046729345110385623, 0.00018825760491691934]),
            (&LN, CandidateLatency::None, 1.2, [0.002172057260928839, 0.05354711256939754, 0.14068042058746538, 0.1737361940776455, 0.28738840702144486, 0.16597266183524673, 0.12864476124064872, 0.03356147212961036, 0.009564022606097566, 0.004301717177714881, 0.00037331450015498646, 5.7842140600117276e-05, 1.6847088613047845e-08, 5.955902437904115e-12]),
            (&LN, CandidateLatency::Tailwarp { factor: 1.5 }, 0.8, [0.01722266054410198, 0.17917692987368983, 0.25689462806389735, 0.20422997303519297, 0.21594090842068003, 0.05090640819075476, 0.042122368694312184, 0.020040979591214536, 0.008732252914641858, 0.00430171717771477, 0.00037331450015498646, 5.7842140600117276e-05, 1.6847088613047845e-08, 5.956013460206577e-12]),
        ];
        for (model, transform, load, expected) in cases {
            let got = LatencyDistribution::new(model, transform, load).bucket_probabilities(&BOUNDS);
            for (bucket, (got, want)) in got.iter().zip(expected).enumerate() {
                assert!(
                    (got - want).abs() < 1e-10,
                    "{transform:?} at load {load}, bucket {bucket}: {got} vs {want}"
                );
            }
        }
    }

    /// Expected: `reference_sim.base_quantile` (LN: p50 100, p90 202, p99 360 ms; HT: p50 ≈ 61, p99 ≈ 367).
    #[test]
    fn quantiles_match_the_reference() {
        let cases = [
            (0.5, 100.0, 61.40238613635766),
            (0.9, 202.3549931926865, 105.77289045917748),
            (0.99, 359.4810690664883, 366.78416106009024),
            (0.999, 547.1910194667189, 1318.1459016606084),
        ];
        for (u, ln, ht) in cases {
            assert!((LN.quantile(u) - ln).abs() < 1e-9 * ln, "LN q{u}: {}", LN.quantile(u));
            assert!((HT.quantile(u) - ht).abs() < 1e-7 * ht, "HT q{u}: {}", HT.quantile(u));
        }
    }

    #[test]
    fn tailwarp_multiplies_p99_and_leaves_p50_and_p90_alone() {
        for model in [&LN, &HT] {
            let stable = LatencyDistribution::new(model, CandidateLatency::None, 1.0);
            let warped = LatencyDistribution::new(model, CandidateLatency::Tailwarp { factor: 1.5 }, 1.0);
            assert_eq!(warped.quantile(0.5), stable.quantile(0.5));
            assert_eq!(warped.quantile(0.9), stable.quantile(0.9));
            assert!((warped.quantile(0.99) / stable.quantile(0.99) - 1.5).abs() < 1e-12);
            assert!((warped.quantile(0.999) / stable.quantile(0.999) - 1.5).abs() < 1e-12);
            // The CDF is the inverse of the quantile function, also in the ramp.
            for u in [0.3, 0.92, 0.95, 0.985, 0.995] {
                let x = warped.quantile(u);
                assert!(
                    (warped.cdf(x) - u).abs() < 1e-9,
                    "u {u}: cdf(quantile) = {}",
                    warped.cdf(x)
                );
            }
        }
    }

    #[test]
    fn shift_and_load_move_every_quantile() {
        let shifted = LatencyDistribution::new(&LN, CandidateLatency::Shift { ms: 5.0 }, 1.0);
        assert!((shifted.quantile(0.5) - 105.0).abs() < 1e-9);
        let busy = LatencyDistribution::new(&LN, CandidateLatency::None, 1.2);
        assert!((busy.quantile(0.5) - 120.0).abs() < 1e-9);
        assert!((busy.cdf(120.0) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn bucket_probabilities_sum_to_one() {
        for transform in [
            CandidateLatency::None,
            CandidateLatency::Tailwarp { factor: 3.0 },
            CandidateLatency::Shift { ms: 40.0 },
        ] {
            let total: f64 = LatencyDistribution::new(&HT, transform, 1.3)
                .bucket_probabilities(&BOUNDS)
                .iter()
                .sum();
            assert!((total - 1.0).abs() < 1e-12, "{transform:?}: {total}");
        }
    }
}

//! How long a request waits before it is answered: a fixed latency plus a reproducible spread, so
//! latency percentiles look realistic without making demo runs differ from one another.

use std::time::Duration;

/// The configured latency and the width of its deterministic spread.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LatencyPlan {
    pub(crate) base: Duration,
    pub(crate) jitter: Duration,
}

impl LatencyPlan {
    /// The delay for request number `request`: `base` plus a pseudo-random share of `jitter` that
    /// depends on the request number alone. The spread only ever adds, so no request is faster than
    /// `base`.
    pub(crate) fn delay_for(&self, request: u64) -> Duration {
        if self.jitter.is_zero() {
            return self.base;
        }
        let share = unit_interval(splitmix64(request));
        self.base.saturating_add(self.jitter.mul_f64(share))
    }
}

/// A well-mixed hash (SplitMix64's finaliser, a bijection of `u64`); consecutive inputs give
/// unrelated outputs, which is all a jitter, a price or a request id needs.
pub(crate) fn splitmix64(input: u64) -> u64 {
    let mut z = input.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Maps a hash onto `[0, 1)` using its top 53 bits, the precision of an `f64` mantissa.
fn unit_interval(hash: u64) -> f64 {
    // 53 bits convert to f64 exactly.
    let mantissa = (hash >> 11) as f64;
    mantissa / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_jitter_every_request_gets_the_base_latency() {
        let plan = LatencyPlan {
            base: Duration::from_millis(5),
            jitter: Duration::ZERO,
        };
        assert!((1..100).all(|n| plan.delay_for(n) == Duration::from_millis(5)));
    }

    #[test]
    fn jitter_spreads_delays_within_base_and_base_plus_jitter() {
        let plan = LatencyPlan {
            base: Duration::from_millis(10),
            jitter: Duration::from_millis(20),
        };
        let delays: Vec<Duration> = (1..=1000).map(|n| plan.delay_for(n)).collect();
        assert!(
            delays
                .iter()
                .all(|d| (Duration::from_millis(10)..Duration::from_millis(30)).contains(d))
        );
        let below_middle = delays.iter().filter(|d| **d < Duration::from_millis(20)).count();
        assert!(
            (400..=600).contains(&below_middle),
            "{below_middle} of 1000 below the middle"
        );
    }

    #[test]
    fn the_same_request_number_always_gets_the_same_delay() {
        let plan = LatencyPlan {
            base: Duration::ZERO,
            jitter: Duration::from_millis(50),
        };
        assert_eq!(plan.delay_for(42), plan.delay_for(42));
        assert_ne!(plan.delay_for(42), plan.delay_for(43));
    }
}

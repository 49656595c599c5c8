//! Which requests fail: an exact, evenly spread fraction rather than a coin flip, so a demo run
//! (and its rollback decision) is reproducible.

use std::sync::atomic::{AtomicU64, Ordering};

use super::InvalidErrorRate;

/// Resolution of the error rate. Integer arithmetic keeps `floor(n * rate)` exact where `f64` would
/// drift (`0.1 * 30` is not 3.0 in binary floating point).
const PARTS: u128 = 1_000_000_000;

/// Counts requests and decides, for each, whether it fails.
#[derive(Debug)]
pub(crate) struct ErrorSchedule {
    parts_failing: u128,
    requests_seen: AtomicU64,
}

impl ErrorSchedule {
    /// Accepts rates in `0.0..=1.0`, rounded to a billionth.
    pub(crate) fn new(rate: f64) -> Result<Self, InvalidErrorRate> {
        if !(0.0..=1.0).contains(&rate) {
            return Err(InvalidErrorRate { rate });
        }
        // The range check above makes the cast lossless apart from the intended rounding.
        let parts_failing = (rate * PARTS as f64).round() as u128;
        Ok(Self {
            parts_failing,
            requests_seen: AtomicU64::new(0),
        })
    }

    /// Counts one more request and returns its 1-based number and whether it must fail: request `n`
    /// fails iff `floor(n * rate) > floor((n - 1) * rate)`.
    pub(crate) fn next_request(&self) -> (u64, bool) {
        let previous = self.requests_seen.fetch_add(1, Ordering::Relaxed);
        let number = previous.saturating_add(1);
        let failures_up_to = |n: u64| u128::from(n) * self.parts_failing / PARTS;
        (number, failures_up_to(number) > failures_up_to(previous))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failing_numbers(rate: f64, requests: u64) -> Vec<u64> {
        let schedule = ErrorSchedule::new(rate).unwrap();
        (0..requests)
            .map(|_| schedule.next_request())
            .filter(|(_, fails)| *fails)
            .map(|(n, _)| n)
            .collect()
    }

    #[test]
    fn five_percent_fails_every_twentieth_request() {
        assert_eq!(failing_numbers(0.05, 100), vec![20, 40, 60, 80, 100]);
    }

    #[test]
    fn exact_where_floating_point_would_drift() {
        // In f64, 100 * 0.29 is 28.999999999999996, which would move the 29th failure past request
        // 100.
        let failing = failing_numbers(0.29, 100);
        assert_eq!(failing.len(), 29);
        assert_eq!(failing.last(), Some(&100));
    }

    #[test]
    fn thirty_percent_spreads_failures_evenly() {
        assert_eq!(failing_numbers(0.3, 10), vec![4, 7, 10]);
    }

    #[test]
    fn zero_never_fails_and_one_always_fails() {
        assert!(failing_numbers(0.0, 1000).is_empty());
        assert_eq!(failing_numbers(1.0, 50), (1..=50).collect::<Vec<_>>());
    }

    #[test]
    fn rates_outside_the_unit_interval_are_rejected() {
        for rate in [-0.01, 1.01, f64::NAN, f64::INFINITY] {
            let error = ErrorSchedule::new(rate).unwrap_err();
            assert!(error.to_string().contains("between 0 and 1"), "{error}");
        }
    }
}

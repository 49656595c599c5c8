//! Weighted choice of a revision: nginx's smooth weighted round-robin, precomputed for one cycle.
//!
//! Precomputing the cycle when a table is applied leaves the hot path with one atomic increment
//! and an index, and keeps the split exact: weights 9:1 give 9 and 1 picks in every 10 requests.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Longest supported cycle (sum of the weights once reduced by their greatest common divisor).
///
/// Percent weights never exceed 100 per revision, so this leaves room for 100 revisions or
/// weights with two decimals, while bounding the memory of one service's schedule to 40 KB.
pub(crate) const MAX_CYCLE: u64 = 10_000;

/// Number of picks after which the schedule repeats.
pub(crate) fn cycle_length(weights: &[u32]) -> u64 {
    let divisor = weights.iter().fold(0, |acc, w| gcd(acc, *w));
    if divisor == 0 {
        return 0;
    }
    weights.iter().map(|w| u64::from(w / divisor)).sum()
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The order in which one service's revisions receive new requests.
#[derive(Debug)]
pub(crate) struct WeightedSchedule {
    order: Vec<u32>,
    next: AtomicUsize,
}

impl WeightedSchedule {
    /// Builds the schedule; callers validate first that the cycle is at most [`MAX_CYCLE`] long.
    pub(crate) fn new(weights: &[u32]) -> Self {
        let divisor = weights.iter().fold(0, |acc, w| gcd(acc, *w));
        let order = if divisor == 0 {
            Vec::new()
        } else {
            smooth_round_robin(weights, divisor)
        };
        Self {
            order,
            next: AtomicUsize::new(0),
        }
    }

    /// Index of the backend for the next request, or `None` when every weight is zero.
    pub(crate) fn pick(&self) -> Option<usize> {
        if self.order.is_empty() {
            return None;
        }
        let position = self.next.fetch_add(1, Ordering::Relaxed) % self.order.len();
        self.order.get(position).map(|index| *index as usize)
    }
}

/// nginx's algorithm: every backend gains its weight, the richest is picked and pays the total.
fn smooth_round_robin(weights: &[u32], divisor: u32) -> Vec<u32> {
    let reduced: Vec<i64> = weights.iter().map(|w| i64::from(w / divisor)).collect();
    let total: i64 = reduced.iter().sum();
    let mut current = vec![0_i64; reduced.len()];
    let mut order = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for _ in 0..total {
        let mut best: Option<usize> = None;
        for (index, weight) in reduced.iter().enumerate() {
            if *weight == 0 {
                continue;
            }
            current[index] += weight;
            if best.is_none_or(|b| current[index] > current[b]) {
                best = Some(index);
            }
        }
        if let Some(b) = best {
            current[b] -= total;
            order.push(b as u32);
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picks(weights: &[u32], count: usize) -> Vec<usize> {
        let schedule = WeightedSchedule::new(weights);
        (0..count).map(|_| schedule.pick().expect("pick")).collect()
    }

    #[test]
    fn matches_nginx_reference_sequence() {
        // nginx's documented example: weights 5, 1, 1 give a a b a c a a.
        assert_eq!(picks(&[5, 1, 1], 7), vec![0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn ninety_ten_is_exact_in_every_ten_requests() {
        let sequence = picks(&[90, 10], 1_000);
        for window in sequence.chunks(10) {
            assert_eq!(window.iter().filter(|i| **i == 1).count(), 1);
        }
    }

    #[test]
    fn zero_weights_are_skipped() {
        assert_eq!(picks(&[0, 3, 0], 4), vec![1, 1, 1, 1]);
    }

    #[test]
    fn all_zero_or_no_weights_pick_nothing() {
        assert_eq!(WeightedSchedule::new(&[0, 0]).pick(), None);
        assert_eq!(WeightedSchedule::new(&[]).pick(), None);
    }

    #[test]
    fn cycle_is_reduced_by_common_divisor() {
        assert_eq!(cycle_length(&[90, 10]), 10);
        assert_eq!(cycle_length(&[50, 50, 0]), 2);
        assert_eq!(cycle_length(&[33, 33, 34]), 100);
        assert_eq!(cycle_length(&[0, 0]), 0);
    }
}

//! Session affinity: a user's key hashes to a fixed point in `0..2⁶⁴`, and revisions own contiguous ranges
//! of points sized by their weights.
//!
//! The last listed revision (the candidate, as the daemon lists stable first) owns the lowest range, the one
//! before it the next, and so on. When the candidate's weight grows its range only grows, so every user it
//! had keeps it; at weight 0 its range is empty and its users are back on stable. Keys are hashed with
//! FNV-1a and a SplitMix64 finaliser: stable across processes and versions, and well spread.

use std::cell::Cell;
use std::hash::{BuildHasher as _, RandomState};

/// Ranges of hash points per backend, from the lowest point up.
#[derive(Debug)]
pub(crate) struct AffinityRanges {
    /// `(upper bound, backend index)`, bounds increasing; a point belongs to the first bound above it.
    ranges: Vec<(u128, usize)>,
}

impl AffinityRanges {
    /// Builds the ranges; backends with weight 0 own none.
    pub(crate) fn new(weights: &[u32]) -> Self {
        let total: u128 = weights.iter().map(|w| u128::from(*w)).sum();
        let mut ranges = Vec::new();
        if total == 0 {
            return Self { ranges };
        }
        let mut cumulative = 0_u128;
        for (index, weight) in weights.iter().enumerate().rev() {
            if *weight == 0 {
                continue;
            }
            cumulative += u128::from(*weight);
            ranges.push(((cumulative << 64) / total, index));
        }
        Self { ranges }
    }

    /// The backend owning the key's point, or `None` when every weight is zero.
    pub(crate) fn pick(&self, key: &[u8]) -> Option<usize> {
        let point = u128::from(hash(key));
        self.ranges
            .iter()
            .find(|(bound, _)| point < *bound)
            .or(self.ranges.last())
            .map(|(_, index)| *index)
    }
}

/// FNV-1a, then SplitMix64's finaliser so that keys differing in their last byte land far apart.
pub(crate) fn hash(key: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    mix(hash)
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

thread_local! {
    /// Per-thread sequence seeded from the process's random hasher keys, so ids never repeat in a
    /// process and differ between processes, without a lock or a system call per id.
    static SEQUENCE: Cell<u64> = Cell::new(RandomState::new().hash_one(std::thread::current().id()));
}

/// A fresh 64-bit identifier (user keys, request ids); unique, not secret.
pub(crate) fn fresh_id() -> u64 {
    SEQUENCE.with(|sequence| {
        let next = sequence.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        sequence.set(next);
        mix(next)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revision_of(ranges: &AffinityRanges, user: u32) -> usize {
        ranges.pick(format!("user-{user}").as_bytes()).expect("a revision")
    }

    #[test]
    fn candidate_users_stay_as_its_weight_grows_and_leave_at_zero() {
        let mut on_candidate = std::collections::HashSet::new();
        for candidate in [5, 10, 20, 35, 50, 80] {
            let ranges = AffinityRanges::new(&[100 - candidate, candidate]);
            let now: std::collections::HashSet<u32> = (0..10_000).filter(|u| revision_of(&ranges, *u) == 1).collect();
            assert!(on_candidate.is_subset(&now), "weight {candidate} lost candidate users");
            let share = now.len() as f64 / 10_000.0;
            assert!(
                (share - f64::from(candidate) / 100.0).abs() < 0.03,
                "share {share} at {candidate}"
            );
            on_candidate = now;
        }
        let rolled_back = AffinityRanges::new(&[100, 0]);
        assert!((0..10_000).all(|u| revision_of(&rolled_back, u) == 0));
    }

    #[test]
    fn no_weight_picks_nothing() {
        assert_eq!(AffinityRanges::new(&[0, 0]).pick(b"x"), None);
        assert_eq!(AffinityRanges::new(&[]).pick(b"x"), None);
    }

    #[test]
    fn fresh_ids_differ() {
        let ids: std::collections::HashSet<u64> = (0..1000).map(|_| fresh_id()).collect();
        assert_eq!(ids.len(), 1000);
    }
}

//! Counting consecutive failed observations, so the controller can pause a rollout when a source keeps failing.

/// Failures in a row since the last success, against a limit. Pure: the controller records each outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsecutiveErrors {
    limit: u32,
    count: u32,
}

impl ConsecutiveErrors {
    /// A counter that reports the limit reached at the `limit`-th failure in a row; a limit of 0 counts as 1
    /// (any failure), since "never" would hide a dead source.
    pub fn new(limit: u32) -> Self {
        ConsecutiveErrors {
            limit: limit.max(1),
            count: 0,
        }
    }

    /// A successful observation: the failures so far are forgiven.
    pub fn record_success(&mut self) {
        self.count = 0;
    }

    /// A failed observation; true when this one reaches the limit (and every later one while failures go on).
    pub fn record_failure(&mut self) -> bool {
        self.count = self.count.saturating_add(1);
        self.limit_reached()
    }

    /// Whether the failures in a row have reached the limit.
    pub fn limit_reached(&self) -> bool {
        self.count >= self.limit
    }

    /// Failures in a row since the last success.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The limit.
    pub fn limit(&self) -> u32 {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_reached_at_the_nth_failure_in_a_row() {
        let mut errors = ConsecutiveErrors::new(3);
        assert!(!errors.record_failure());
        assert!(!errors.record_failure());
        assert!(errors.record_failure());
        assert!(errors.record_failure(), "stays reached while failures go on");
        assert_eq!(errors.count(), 4);
    }

    #[test]
    fn a_success_resets_the_count() {
        let mut errors = ConsecutiveErrors::new(2);
        assert!(!errors.record_failure());
        errors.record_success();
        assert_eq!(errors.count(), 0);
        assert!(!errors.record_failure());
        assert!(errors.record_failure());
        errors.record_success();
        assert!(!errors.limit_reached());
    }

    #[test]
    fn a_zero_limit_means_the_first_failure() {
        let mut errors = ConsecutiveErrors::new(0);
        assert_eq!(errors.limit(), 1);
        assert!(errors.record_failure());
    }

    #[test]
    fn the_count_saturates() {
        let mut errors = ConsecutiveErrors {
            limit: 5,
            count: u32::MAX,
        };
        assert!(errors.record_failure());
        assert_eq!(errors.count(), u32::MAX);
    }
}

//! Retrying a query with exponential backoff, bounded in attempts and in total time.
//!
//! Time is tokio's clock (`tokio::time`), so tests run with paused time and check the schedule exactly.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::MetricsError;

/// How often and for how long a failed query is retried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; at least 1 is made even when this is 0.
    pub max_attempts: u32,
    /// Wait before the second attempt; each later wait doubles.
    pub initial_delay: Duration,
    /// No single wait is longer than this.
    pub max_delay: Duration,
    /// Attempts and waits together never take longer than this: an attempt still running then is abandoned.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    /// Three attempts within five seconds: the controller asks again at its next evaluation anyway, so a
    /// retry only has to smooth over a blip, not an outage.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(2),
            max_elapsed: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// A policy that tries once (for callers that count failures themselves).
    pub fn once(timeout: Duration) -> Self {
        RetryPolicy {
            max_attempts: 1,
            initial_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
            max_elapsed: timeout,
        }
    }

    /// The wait after the `failed`-th failed attempt (1-based): `initial_delay · 2^(failed-1)`, capped.
    fn delay_after(&self, failed: u32) -> Duration {
        let factor = 2u32.saturating_pow(failed.saturating_sub(1));
        self.initial_delay.saturating_mul(factor).min(self.max_delay)
    }

    /// Runs `attempt` until it succeeds, fails with an error that is not [transient](MetricsError::is_transient),
    /// or the policy's attempts or time run out; then returns the last error. `what` names the query in the
    /// error reported when the time budget ends during an attempt.
    pub async fn run<T, F, Fut>(&self, what: &str, mut attempt: F) -> Result<T, MetricsError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, MetricsError>>,
    {
        let deadline = Instant::now() + self.max_elapsed;
        let mut failed = 0u32;
        loop {
            let error = match tokio::time::timeout_at(deadline, attempt()).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(error)) => error,
                Err(_) => {
                    return Err(MetricsError::Request {
                        what: what.to_owned(),
                        detail: format!(
                            "no answer within {:?} (after {} attempts)",
                            self.max_elapsed,
                            failed + 1
                        ),
                    });
                }
            };
            failed += 1;
            let delay = self.delay_after(failed);
            let out_of_attempts = failed >= self.max_attempts;
            let out_of_time = Instant::now() + delay >= deadline;
            if !error.is_transient() || out_of_attempts || out_of_time {
                return Err(error);
            }
            tokio::time::sleep(delay).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    fn transient() -> MetricsError {
        MetricsError::Request {
            what: "q".into(),
            detail: "connection refused".into(),
        }
    }

    fn policy(max_attempts: u32, max_elapsed_ms: u64) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
            max_elapsed: Duration::from_millis(max_elapsed_ms),
        }
    }

    /// Runs `policy` over attempts that fail with the given errors in turn (then succeed), recording when each
    /// attempt started, in ms since the start.
    async fn schedule(policy: &RetryPolicy, mut errors: Vec<MetricsError>) -> (Result<u32, MetricsError>, Vec<u128>) {
        let start = Instant::now();
        let starts = RefCell::new(Vec::new());
        errors.reverse();
        let errors = RefCell::new(errors);
        let result = policy
            .run("q", || {
                starts.borrow_mut().push(start.elapsed().as_millis());
                let next = errors.borrow_mut().pop();
                let count = starts.borrow().len() as u32;
                async move { next.map_or(Ok(count), Err) }
            })
            .await;
        (result, starts.into_inner())
    }

    #[tokio::test(start_paused = true)]
    async fn waits_double_up_to_the_cap() {
        let (result, starts) = schedule(&policy(10, 60_000), (0..5).map(|_| transient()).collect()).await;
        assert_eq!(result.unwrap(), 6);
        assert_eq!(starts, vec![0, 100, 300, 650, 1000, 1350]);
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_max_attempts_with_the_last_error() {
        let errors = vec![
            transient(),
            transient(),
            MetricsError::Status {
                what: "q".into(),
                status: 503,
                detail: "unavailable".into(),
            },
        ];
        let (result, starts) = schedule(&policy(3, 60_000), errors).await;
        assert!(
            matches!(result, Err(MetricsError::Status { status: 503, .. })),
            "{result:?}"
        );
        assert_eq!(starts, vec![0, 100, 300]);
    }

    #[tokio::test(start_paused = true)]
    async fn stops_when_the_next_wait_would_pass_the_time_budget() {
        let (result, starts) = schedule(&policy(10, 500), (0..10).map(|_| transient()).collect()).await;
        assert!(matches!(result, Err(MetricsError::Request { .. })), "{result:?}");
        // The third wait (350 ms) would end at 650 ms, past the 500 ms budget.
        assert_eq!(starts, vec![0, 100, 300]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_that_hangs_is_cut_at_the_time_budget() {
        let start = Instant::now();
        let result: Result<(), _> = policy(3, 500)
            .run("slow query", || async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(())
            })
            .await;
        let error = result.unwrap_err();
        assert_eq!(start.elapsed(), Duration::from_millis(500));
        assert_eq!(
            error.to_string(),
            "metrics: slow query failed: no answer within 500ms (after 1 attempts)"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn errors_that_would_repeat_are_not_retried() {
        let errors = [
            MetricsError::Empty {
                what: "q".into(),
                detail: String::new(),
            },
            MetricsError::Parse {
                what: "q".into(),
                detail: "not JSON".into(),
            },
            MetricsError::Status {
                what: "q".into(),
                status: 400,
                detail: "bad_data".into(),
            },
        ];
        for error in errors {
            let (result, starts) = schedule(&policy(5, 60_000), vec![error]).await;
            assert!(result.is_err());
            assert_eq!(starts, vec![0]);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limiting_and_server_errors_are_retried() {
        for status in [429, 500, 503] {
            let error = MetricsError::Status {
                what: "q".into(),
                status,
                detail: String::new(),
            };
            let (result, starts) = schedule(&policy(5, 60_000), vec![error]).await;
            assert_eq!(result.unwrap(), 2);
            assert_eq!(starts, vec![0, 100]);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn once_makes_a_single_attempt() {
        let (result, starts) = schedule(&RetryPolicy::once(Duration::from_secs(1)), vec![transient()]).await;
        assert!(result.is_err());
        assert_eq!(starts, vec![0]);
    }
}

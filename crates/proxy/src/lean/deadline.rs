//! One timer per client connection for every deadline it has (the next request head, an instance's answer),
//! moved lazily so that a request costs no timer registration.
//!
//! `tokio::time::timeout` registers and removes a timer entry per call. Here the timer stays armed at some
//! instant no later than the deadline; a later deadline does not touch it, and when it fires early it is
//! re-armed at the deadline then in effect. A connection's timer thus moves about once per deadline
//! period (seconds), not once per request.

use std::pin::Pin;

use tokio::time::{Instant, Sleep, sleep_until};

/// A deadline that can move at no cost, backed by one lazily re-armed timer.
pub(crate) struct Deadline {
    timer: Pin<Box<Sleep>>,
    /// When the timer fires; never after `due`.
    armed: Instant,
    due: Instant,
}

impl Deadline {
    pub(crate) fn new(due: Instant) -> Self {
        Self {
            timer: Box::pin(sleep_until(due)),
            armed: due,
            due,
        }
    }

    /// Moves the deadline; only an earlier one re-arms the timer.
    pub(crate) fn set(&mut self, due: Instant) {
        self.due = due;
        if due < self.armed {
            self.armed = due;
            self.timer.as_mut().reset(due);
        }
    }

    /// Resolves once the deadline in effect has passed.
    pub(crate) async fn expired(&mut self) {
        loop {
            self.timer.as_mut().await;
            if Instant::now() >= self.due {
                return;
            }
            self.armed = self.due;
            self.timer.as_mut().reset(self.due);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_later_deadline_is_honoured_after_the_timer_fires_early() {
        let start = Instant::now();
        let mut deadline = Deadline::new(start + Duration::from_secs(1));
        deadline.set(start + Duration::from_secs(5));
        deadline.expired().await;
        assert_eq!(Instant::now() - start, Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn an_earlier_deadline_fires_on_time() {
        let start = Instant::now();
        let mut deadline = Deadline::new(start + Duration::from_secs(30));
        deadline.set(start + Duration::from_secs(2));
        deadline.expired().await;
        assert_eq!(Instant::now() - start, Duration::from_secs(2));
    }
}

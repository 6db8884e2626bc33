//! Reconnect delays: exponential backoff with full jitter (docs/CLIENTS.md "Reconnect
//! rules"). Failure *n* (0-based) waits a uniform random time in `[0, min(cap, base·2ⁿ))`;
//! the count restarts after a stable connection, and an optional bound ends the retries.

use std::time::Duration;

use rand::Rng;

/// The retry schedule of one client.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    max_attempts: Option<u32>,
    failures: u32,
}

impl Backoff {
    /// A schedule with window `base` for the first retry, at most `cap`, and at most
    /// `max_attempts` consecutive retries (`None`: forever).
    pub fn new(base: Duration, cap: Duration, max_attempts: Option<u32>) -> Backoff {
        Backoff {
            base,
            cap,
            max_attempts,
            failures: 0,
        }
    }

    /// The window the next delay is drawn from: `min(cap, base·2ⁿ)`.
    pub fn window(&self) -> Duration {
        let factor = 1u32.checked_shl(self.failures.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// Draws the next delay, or `None` when the attempts are used up.
    pub fn next_delay(&mut self) -> Option<Duration> {
        self.next_delay_with(&mut rand::rng())
    }

    /// [`next_delay`](Self::next_delay) with a given random source (for tests).
    pub fn next_delay_with<R: Rng + ?Sized>(&mut self, rng: &mut R) -> Option<Duration> {
        if self.max_attempts.is_some_and(|max| self.failures >= max) {
            return None;
        }
        let window = self.window();
        self.failures = self.failures.saturating_add(1);
        let nanos = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
        Some(Duration::from_nanos(if nanos == 0 {
            0
        } else {
            rng.random_range(0..nanos)
        }))
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Starts again from `base` (after a stable connection).
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_inside_the_doubling_window_up_to_the_cap() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(30), None);
        let mut rng = rand::rng();
        for n in 0..20u32 {
            let window = Duration::from_millis(500)
                .saturating_mul(1 << n.min(20))
                .min(Duration::from_secs(30));
            assert_eq!(b.window(), window);
            let d = b.next_delay_with(&mut rng).expect("unbounded");
            assert!(d < window, "attempt {n}: {d:?} >= {window:?}");
        }
        assert_eq!(b.window(), Duration::from_secs(30));
        b.reset();
        assert_eq!(b.window(), Duration::from_millis(500));
    }

    #[test]
    fn max_attempts_ends_the_schedule() {
        let mut b = Backoff::new(Duration::from_millis(1), Duration::from_millis(4), Some(2));
        assert!(b.next_delay().is_some());
        assert!(b.next_delay().is_some());
        assert!(b.next_delay().is_none());
        b.reset();
        assert!(b.next_delay().is_some());
    }

    #[test]
    fn jitter_spreads_over_the_window() {
        let mut max = Duration::ZERO;
        let mut min = Duration::MAX;
        for _ in 0..200 {
            let mut b = Backoff::new(Duration::from_millis(1000), Duration::from_secs(30), None);
            let d = b.next_delay().expect("unbounded");
            max = max.max(d);
            min = min.min(d);
        }
        assert!(min < Duration::from_millis(200) && max > Duration::from_millis(800));
    }
}

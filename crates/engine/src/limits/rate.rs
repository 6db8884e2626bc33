//! The per-connection inbound message rate limit: a token bucket, and the violation count
//! that decides when a client that keeps pushing is closed.
//!
//! State lives in the connection task (32 + 8 bytes), not in a shared map keyed by client,
//! so it costs nothing when the connection ends and can never leak. [`TokenBucket::try_take`]
//! is O(1), allocation-free and uses integer nanoseconds.
//!
//! The bucket is kept as a "theoretical arrival time" (GCRA): `tat` is the instant at which
//! the bucket would be full again. Taking a token moves `tat` one interval (1 s / rate)
//! later; a take is refused when that would put `tat` more than `burst` intervals ahead of
//! now. This is exactly a bucket of `burst` tokens refilled at `rate` per second, in one
//! `Instant`.
//!
//! [`RateLimiter`] adds the closing rule: each refused message is a violation
//! ([`RateDecision::Drop`]: reply `RATE_LIMITED`); once violations exceed `max_violations`
//! the connection is closed ([`RateDecision::Close`], 4021). The count is forgiven when
//! the client has been quiet long enough for its bucket to fill up completely, so a client
//! that bursts now and then is never closed; one that keeps pressing against the limit is.

use std::time::{Duration, Instant};

use roomcast_protocol::CloseCode;

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// A token bucket of `burst` tokens refilled at `rate_per_sec`. Rate 0 means unlimited.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Nanoseconds per token; 0 = unlimited.
    interval_nanos: u64,
    /// `burst × interval`: how far ahead of now `tat` may run.
    capacity_nanos: u64,
    /// When the bucket is full again; `None` = full (never used).
    tat: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket. `rate_per_sec == 0` disables the limit; a `burst` of 0 is taken as 1
    /// (a bucket that can hold no token would refuse everything).
    pub const fn new(rate_per_sec: u32, burst: u32) -> TokenBucket {
        if rate_per_sec == 0 {
            return TokenBucket::unlimited();
        }
        let interval = NANOS_PER_SEC / rate_per_sec as u64;
        // Rates above 1e9/s round to one nanosecond per token.
        let interval = if interval == 0 { 1 } else { interval };
        let burst = if burst == 0 { 1 } else { burst as u64 };
        TokenBucket {
            interval_nanos: interval,
            capacity_nanos: interval.saturating_mul(burst),
            tat: None,
        }
    }

    /// A bucket that never refuses.
    pub const fn unlimited() -> TokenBucket {
        TokenBucket {
            interval_nanos: 0,
            capacity_nanos: 0,
            tat: None,
        }
    }

    /// Whether this bucket never refuses.
    pub const fn is_unlimited(&self) -> bool {
        self.interval_nanos == 0
    }

    /// Takes one token at `now` if one is available.
    pub fn try_take(&mut self, now: Instant) -> bool {
        if self.is_unlimited() {
            return true;
        }
        let base = match self.tat {
            Some(tat) if tat > now => tat,
            _ => now,
        };
        let Some(next) = base.checked_add(Duration::from_nanos(self.interval_nanos)) else {
            return false;
        };
        let ahead = next.saturating_duration_since(now).as_nanos();
        if ahead > u128::from(self.capacity_nanos) {
            return false;
        }
        self.tat = Some(next);
        true
    }

    /// Whether the bucket holds its full burst at `now`.
    pub fn is_full(&self, now: Instant) -> bool {
        self.tat.is_none_or(|tat| tat <= now)
    }

    /// Whole tokens available at `now` (for metrics and tests).
    pub fn available(&self, now: Instant) -> u64 {
        if self.is_unlimited() {
            return u64::MAX;
        }
        let debt = self
            .tat
            .map_or(0, |tat| tat.saturating_duration_since(now).as_nanos());
        let free = u128::from(self.capacity_nanos).saturating_sub(debt);
        u64::try_from(free / u128::from(self.interval_nanos)).unwrap_or(u64::MAX)
    }
}

/// Settings of the per-connection rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Messages per second (0 = unlimited).
    pub rate_per_sec: u32,
    /// Messages that may arrive at once after a quiet period.
    pub burst: u32,
    /// Violations tolerated before closing (0 = never close, only drop).
    pub max_violations: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            rate_per_sec: 10,
            burst: 20,
            max_violations: 50,
        }
    }
}

/// What to do with an inbound message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// Process it.
    Allow,
    /// Drop it and reply `RATE_LIMITED`.
    Drop,
    /// Close the connection with [`RateDecision::CLOSE_CODE`] (4021).
    Close,
}

impl RateDecision {
    /// The close code for [`RateDecision::Close`].
    pub const CLOSE_CODE: CloseCode = CloseCode::RateLimited;
}

/// One connection's rate limit: a bucket and its violation count.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    bucket: TokenBucket,
    violations: u32,
    max_violations: u32,
}

impl RateLimiter {
    /// A limiter with a full bucket and no violations.
    pub const fn new(config: RateLimitConfig) -> RateLimiter {
        RateLimiter {
            bucket: TokenBucket::new(config.rate_per_sec, config.burst),
            violations: 0,
            max_violations: config.max_violations,
        }
    }

    /// Decides on a message arriving at `now`.
    pub fn check(&mut self, now: Instant) -> RateDecision {
        if self.bucket.is_unlimited() {
            return RateDecision::Allow;
        }
        if self.violations != 0 && self.bucket.is_full(now) {
            self.violations = 0;
        }
        if self.bucket.try_take(now) {
            return RateDecision::Allow;
        }
        self.violations = self.violations.saturating_add(1);
        if self.max_violations != 0 && self.violations > self.max_violations {
            RateDecision::Close
        } else {
            RateDecision::Drop
        }
    }

    /// Violations since the bucket was last full.
    pub fn violations(&self) -> u32 {
        self.violations
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn burst_then_steady_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(10, 20);
        assert_eq!(bucket.available(t0), 20);
        for i in 0..20 {
            assert!(bucket.try_take(t0), "token {i}");
        }
        assert!(!bucket.try_take(t0));
        assert_eq!(bucket.available(t0), 0);
        // One token per 100 ms.
        assert!(!bucket.try_take(t0 + ms(99)));
        assert!(bucket.try_take(t0 + ms(100)));
        assert!(!bucket.try_take(t0 + ms(100)));
        assert!(bucket.try_take(t0 + ms(200)));
        // After 2 s of quiet the full burst is back, and no more.
        let later = t0 + ms(2200);
        assert!(bucket.is_full(later));
        assert_eq!(bucket.available(later), 20);
        for _ in 0..20 {
            assert!(bucket.try_take(later));
        }
        assert!(!bucket.try_take(later));
    }

    #[test]
    fn steady_rate_over_a_long_run() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(10, 1);
        // 1000 attempts every 10 ms over 10 s: 10/s get through.
        let allowed = (0..1000)
            .filter(|i| bucket.try_take(t0 + ms(i * 10)))
            .count();
        assert_eq!(allowed, 100);
    }

    #[test]
    fn zero_rate_is_unlimited_and_zero_burst_is_one() {
        let t0 = Instant::now();
        let mut unlimited = TokenBucket::new(0, 0);
        assert!(unlimited.is_unlimited());
        assert!((0..10_000).all(|_| unlimited.try_take(t0)));
        let mut one = TokenBucket::new(1, 0);
        assert!(one.try_take(t0));
        assert!(!one.try_take(t0));
        assert!(one.try_take(t0 + ms(1000)));
        // Absurd rates do not overflow.
        let mut fast = TokenBucket::new(u32::MAX, u32::MAX);
        assert!(fast.try_take(t0));
    }

    #[test]
    fn limiter_drops_then_closes_after_max_violations() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::new(RateLimitConfig::default());
        for _ in 0..20 {
            assert_eq!(limiter.check(t0), RateDecision::Allow);
        }
        for i in 0..50 {
            assert_eq!(limiter.check(t0), RateDecision::Drop, "violation {i}");
        }
        assert_eq!(limiter.check(t0), RateDecision::Close);
        assert_eq!(RateDecision::CLOSE_CODE.as_u16(), 4021);
    }

    #[test]
    fn pressing_against_the_limit_accumulates_violations() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::new(RateLimitConfig::default());
        // 15 messages a second against a limit of 10: the bucket never refills, so the
        // drops add up until the connection is closed.
        let mut closed_at = None;
        for i in 0..2000u64 {
            let now = t0 + Duration::from_nanos(i * 1_000_000_000 / 15);
            if limiter.check(now) == RateDecision::Close {
                closed_at = Some(i);
                break;
            }
        }
        let closed_at = closed_at.expect("closed");
        assert!((150..300).contains(&closed_at), "{closed_at}");
    }

    #[test]
    fn violations_are_forgiven_once_the_bucket_refills() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::new(RateLimitConfig::default());
        // Ten rounds of bursting 60 at once, then resting 3 s: 40 violations a round, far
        // more than 50 in total, but never closed.
        for round in 0..10u64 {
            let now = t0 + Duration::from_secs(round * 3);
            for _ in 0..60 {
                assert_ne!(limiter.check(now), RateDecision::Close);
            }
            assert_eq!(limiter.violations(), 40);
        }
    }

    #[test]
    fn unlimited_and_never_close_configs() {
        let t0 = Instant::now();
        let mut off = RateLimiter::new(RateLimitConfig {
            rate_per_sec: 0,
            ..RateLimitConfig::default()
        });
        assert!((0..10_000).all(|_| off.check(t0) == RateDecision::Allow));
        let mut never = RateLimiter::new(RateLimitConfig {
            rate_per_sec: 1,
            burst: 1,
            max_violations: 0,
        });
        assert_eq!(never.check(t0), RateDecision::Allow);
        assert!((0..10_000).all(|_| never.check(t0) == RateDecision::Drop));
    }

    #[test]
    fn state_is_small() {
        assert!(std::mem::size_of::<RateLimiter>() <= 48);
    }
}

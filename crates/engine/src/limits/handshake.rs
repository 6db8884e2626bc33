//! The per-IP handshake rate limit, checked before a WebSocket upgrade (refusals are HTTP
//! 429), so a flood of connection attempts is rejected before it costs a socket task.
//!
//! Each source address has a token bucket (default 50 per second, burst = rate) kept as one
//! `Instant` (the GCRA "theoretical arrival time", see [`crate::limits::rate`]) in a sharded
//! map. Memory stays bounded two ways:
//! - **Eviction.** An entry whose bucket has refilled completely carries no information (a
//!   missing entry means "full bucket"), so [`HandshakeLimiter::sweep`] drops it without
//!   changing any future decision. With the defaults an address is evictable at most one
//!   second after its last handshake. The server calls `sweep` periodically; a full shard
//!   also sweeps itself (at most once a second) before refusing to track a new address.
//! - **A cap** ([`HandshakeConfig::max_tracked_ips`], default 100,000). When a shard is
//!   full of addresses that are all *actively* handshaking, a new address is refused
//!   (fail closed): the alternative, letting untracked addresses through unlimited, would
//!   turn the cap into a bypass. Filling the map takes 100,000 addresses each handshaking
//!   every 20 ms, far beyond what this limit is meant to absorb.
//!
//! Addresses are keyed as follows: IPv4 as is; IPv4-mapped IPv6 as the IPv4 address; other
//! IPv6 addresses by their /64 prefix, since one host typically controls a whole /64 and
//! could otherwise mint unlimited fresh addresses.

use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use crate::shard::{Shard, Sharded};

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// How often, at most, a full shard sweeps itself on insert.
const SELF_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Addresses per shard before the map is split into several shards (the count is rounded up
/// to a power of two).
const ADDRESSES_PER_SHARD: usize = 8192;

const MAX_SHARDS: usize = 16;

/// Settings of the handshake limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeConfig {
    /// Handshakes per second per address (0 = no limit, nothing tracked).
    pub rate_per_sec: u32,
    /// Handshakes an address may make at once (0 = same as the rate).
    pub burst: u32,
    /// The most addresses tracked at once.
    pub max_tracked_ips: usize,
}

impl Default for HandshakeConfig {
    fn default() -> Self {
        HandshakeConfig {
            rate_per_sec: 50,
            burst: 0,
            max_tracked_ips: 100_000,
        }
    }
}

/// The verdict on a handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeDecision {
    /// Go on with the upgrade.
    Allow,
    /// Answer HTTP 429.
    Limited,
}

/// Address → when its bucket is full again; per shard, when the shard last swept itself.
type Tats = Sharded<IpAddr, Instant, Option<Instant>>;

/// Forgets a shard's addresses whose bucket is full at `now`; returns how many.
fn sweep_shard(shard: &mut Shard<IpAddr, Instant, Option<Instant>>, now: Instant) -> usize {
    let before = shard.len();
    shard.retain(|_, tat| *tat > now);
    shard.extra = Some(now);
    before - shard.len()
}

/// Per-address handshake rate limiter, shared by all accept paths.
#[derive(Debug)]
pub struct HandshakeLimiter {
    /// Nanoseconds per handshake; 0 = disabled.
    interval_nanos: u64,
    capacity_nanos: u64,
    per_shard_cap: usize,
    tats: Tats,
}

impl Default for HandshakeLimiter {
    fn default() -> Self {
        HandshakeLimiter::new(HandshakeConfig::default())
    }
}

impl HandshakeLimiter {
    /// A limiter tracking no address yet.
    pub fn new(config: HandshakeConfig) -> HandshakeLimiter {
        let max = config.max_tracked_ips.max(1);
        let shards = (max / ADDRESSES_PER_SHARD).clamp(1, MAX_SHARDS);
        let (interval_nanos, capacity_nanos) = if config.rate_per_sec == 0 {
            (0, 0)
        } else {
            let interval = (NANOS_PER_SEC / u64::from(config.rate_per_sec)).max(1);
            let burst = match config.burst {
                0 => config.rate_per_sec,
                b => b,
            };
            (interval, interval.saturating_mul(u64::from(burst)))
        };
        let tats = Tats::new(shards);
        HandshakeLimiter {
            interval_nanos,
            capacity_nanos,
            per_shard_cap: max.div_ceil(tats.shard_count()),
            tats,
        }
    }

    /// Whether the limit is off (rate 0).
    pub fn is_disabled(&self) -> bool {
        self.interval_nanos == 0
    }

    /// Decides on a handshake from `ip` at `now`, counting it if allowed.
    pub fn check(&self, ip: IpAddr, now: Instant) -> HandshakeDecision {
        if self.is_disabled() {
            return HandshakeDecision::Allow;
        }
        let key = normalise(ip);
        let interval = Duration::from_nanos(self.interval_nanos);
        let mut shard = self.tats.write(&key);
        if let Some(tat) = shard.get_mut(&key) {
            let base = if *tat > now { *tat } else { now };
            let Some(next) = base.checked_add(interval) else {
                return HandshakeDecision::Limited;
            };
            if next.saturating_duration_since(now).as_nanos() > u128::from(self.capacity_nanos) {
                return HandshakeDecision::Limited;
            }
            *tat = next;
            return HandshakeDecision::Allow;
        }
        // A new address starts with a full bucket (burst ≥ 1), so this handshake passes if
        // there is room to remember it.
        if shard.len() >= self.per_shard_cap {
            let may_sweep = shard
                .extra
                .is_none_or(|last| now.saturating_duration_since(last) >= SELF_SWEEP_INTERVAL);
            if may_sweep {
                sweep_shard(&mut shard, now);
            }
            if shard.len() >= self.per_shard_cap {
                return HandshakeDecision::Limited;
            }
        }
        let Some(next) = now.checked_add(interval) else {
            return HandshakeDecision::Limited;
        };
        shard.insert(key, next);
        HandshakeDecision::Allow
    }

    /// Forgets every address whose bucket is full at `now`; returns how many. Call it
    /// periodically (e.g. every few seconds from the maintenance task).
    pub fn sweep(&self, now: Instant) -> usize {
        let mut swept = 0;
        self.tats
            .for_each_shard_mut(|shard| swept += sweep_shard(shard, now));
        swept
    }

    /// Addresses currently tracked.
    pub fn tracked_ips(&self) -> usize {
        self.tats.len()
    }
}

/// The key an address is limited under.
fn normalise(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = v6.to_bits() & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from_bits(prefix))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn v4(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(n))
    }

    #[test]
    fn fifty_per_second_per_address() {
        let t0 = Instant::now();
        let limiter = HandshakeLimiter::default();
        let a = v4(0x0a00_0001);
        for i in 0..50 {
            assert_eq!(limiter.check(a, t0), HandshakeDecision::Allow, "{i}");
        }
        assert_eq!(limiter.check(a, t0), HandshakeDecision::Limited);
        // Another address has its own bucket.
        assert_eq!(limiter.check(v4(0x0a00_0002), t0), HandshakeDecision::Allow);
        // One more every 20 ms.
        assert_eq!(
            limiter.check(a, t0 + Duration::from_millis(20)),
            HandshakeDecision::Allow
        );
        assert_eq!(
            limiter.check(a, t0 + Duration::from_millis(20)),
            HandshakeDecision::Limited
        );
    }

    #[test]
    fn explicit_burst() {
        let t0 = Instant::now();
        let limiter = HandshakeLimiter::new(HandshakeConfig {
            rate_per_sec: 10,
            burst: 2,
            max_tracked_ips: 100,
        });
        let a = v4(1);
        assert_eq!(limiter.check(a, t0), HandshakeDecision::Allow);
        assert_eq!(limiter.check(a, t0), HandshakeDecision::Allow);
        assert_eq!(limiter.check(a, t0), HandshakeDecision::Limited);
    }

    #[test]
    fn disabled_tracks_nothing() {
        let t0 = Instant::now();
        let limiter = HandshakeLimiter::new(HandshakeConfig {
            rate_per_sec: 0,
            ..HandshakeConfig::default()
        });
        assert!(limiter.is_disabled());
        for _ in 0..10_000 {
            assert_eq!(limiter.check(v4(1), t0), HandshakeDecision::Allow);
        }
        assert_eq!(limiter.tracked_ips(), 0);
    }

    #[test]
    fn memory_returns_to_zero_after_churn() {
        let t0 = Instant::now();
        let limiter = HandshakeLimiter::default();
        for i in 0..10_000u32 {
            let now = t0 + Duration::from_micros(u64::from(i) * 100);
            assert_eq!(limiter.check(v4(i), now), HandshakeDecision::Allow);
        }
        assert_eq!(limiter.tracked_ips(), 10_000);
        // At the last handshake, only the addresses still refilling (the last 20 ms, i.e.
        // the last 200) are kept...
        let last = t0 + Duration::from_micros(9_999 * 100);
        assert_eq!(limiter.sweep(last), 9_800);
        assert_eq!(limiter.tracked_ips(), 200);
        // ...and once every bucket is full, nothing is.
        assert_eq!(limiter.sweep(t0 + Duration::from_secs(2)), 200);
        assert_eq!(limiter.tracked_ips(), 0);
    }

    #[test]
    fn eviction_does_not_change_decisions() {
        let t0 = Instant::now();
        let limiter = HandshakeLimiter::default();
        let a = v4(7);
        for _ in 0..50 {
            limiter.check(a, t0);
        }
        // Still refilling: kept, and still limited.
        assert_eq!(limiter.sweep(t0 + Duration::from_millis(500)), 0);
        assert_eq!(limiter.tracked_ips(), 1);
        // Full again after 1 s: forgotten, and a full burst is allowed, as it would be.
        assert_eq!(limiter.sweep(t0 + Duration::from_secs(1)), 1);
        for _ in 0..50 {
            assert_eq!(
                limiter.check(a, t0 + Duration::from_secs(1)),
                HandshakeDecision::Allow
            );
        }
    }

    #[test]
    fn a_full_map_of_active_addresses_fails_closed() {
        let t0 = Instant::now();
        let limiter = HandshakeLimiter::new(HandshakeConfig {
            rate_per_sec: 50,
            burst: 0,
            max_tracked_ips: 100,
        });
        for i in 0..100 {
            assert_eq!(limiter.check(v4(i), t0), HandshakeDecision::Allow);
        }
        // Full of addresses whose buckets are not full: a new one is refused...
        assert_eq!(limiter.check(v4(1000), t0), HandshakeDecision::Limited);
        assert_eq!(limiter.tracked_ips(), 100);
        // ...known ones still work...
        assert_eq!(limiter.check(v4(5), t0), HandshakeDecision::Allow);
        // ...and once the old entries are idle, the full shard sweeps itself.
        let later = t0 + Duration::from_secs(2);
        assert_eq!(limiter.check(v4(1000), later), HandshakeDecision::Allow);
        assert_eq!(limiter.tracked_ips(), 1);
    }

    #[test]
    fn ipv6_is_limited_per_64_and_mapped_ipv4_as_ipv4() {
        let t0 = Instant::now();
        let limiter = HandshakeLimiter::new(HandshakeConfig {
            rate_per_sec: 1,
            burst: 1,
            max_tracked_ips: 100,
        });
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(limiter.check(a, t0), HandshakeDecision::Allow);
        assert_eq!(limiter.check(b, t0), HandshakeDecision::Limited);
        assert_eq!(limiter.check(c, t0), HandshakeDecision::Allow);
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().expect("ip");
        let plain: IpAddr = "192.0.2.1".parse().expect("ip");
        assert_eq!(limiter.check(mapped, t0), HandshakeDecision::Allow);
        assert_eq!(limiter.check(plain, t0), HandshakeDecision::Limited);
        assert_eq!(limiter.tracked_ips(), 3);
    }
}

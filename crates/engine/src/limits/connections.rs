//! Connection limits: a server-wide total and a per-principal count (client id, collective
//! or token `sub`, whatever the endpoint authenticates as).
//!
//! [`ConnectionLimits::try_acquire`] hands out a [`ConnectionPermit`] that the connection
//! task holds for its lifetime; dropping it gives the slot back. The per-principal counts
//! live in a sharded map whose entry is removed when its count returns to 0, so the map
//! holds one entry per principal *with a live connection* and never more: it is bounded by
//! the total limit and does not grow with connect/disconnect churn
//! ([`ConnectionLimits::tracked_principals`] lets tests check that).
//!
//! A limit of 0 means "no limit". An exceeded limit closes the new connection with 4022 and
//! a reason saying which limit ([`LimitExceeded::close_reason`]); existing connections are
//! untouched.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use roomcast_protocol::CloseCode;

use crate::shard::Sharded;

/// Default server-wide connection limit.
pub const DEFAULT_MAX_TOTAL: usize = 100_000;

/// Default connections per principal.
pub const DEFAULT_MAX_PER_PRINCIPAL: usize = 10;

const SHARDS: usize = 16;

/// Which limit refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitExceeded {
    /// The server holds its maximum number of connections.
    #[error("too many connections (server limit {max})")]
    Total {
        /// The limit.
        max: usize,
    },
    /// This principal holds its maximum number of connections.
    #[error("too many connections for this client (limit {max})")]
    PerPrincipal {
        /// The limit.
        max: usize,
    },
}

impl LimitExceeded {
    /// 4022 for both limits.
    pub const fn close_code(&self) -> CloseCode {
        CloseCode::TooManyConnections
    }

    /// The close reason naming the limit.
    pub const fn close_reason(&self) -> &'static str {
        match self {
            LimitExceeded::Total { .. } => "too many connections (server limit)",
            LimitExceeded::PerPrincipal { .. } => "too many connections for this client",
        }
    }
}

/// Shared connection counters. Cheap to clone (a handle).
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    max_total: usize,
    max_per_principal: usize,
    total: AtomicUsize,
    /// Live connections per principal.
    counts: Sharded<Arc<str>, usize>,
}

impl Inner {
    fn release_total(&self) {
        self.total.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits::new(DEFAULT_MAX_TOTAL, DEFAULT_MAX_PER_PRINCIPAL)
    }
}

impl ConnectionLimits {
    /// Limits of `max_total` connections and `max_per_principal` per principal (0 = none).
    pub fn new(max_total: usize, max_per_principal: usize) -> ConnectionLimits {
        ConnectionLimits {
            inner: Arc::new(Inner {
                max_total,
                max_per_principal,
                total: AtomicUsize::new(0),
                counts: Sharded::new(SHARDS),
            }),
        }
    }

    /// Reserves a slot for a connection of `principal`.
    ///
    /// Pass the principal as an `Arc<str>` to share its text as the counter's key instead
    /// of copying it (the key lives as long as the principal's connections).
    pub fn try_acquire<P>(&self, principal: P) -> Result<ConnectionPermit, LimitExceeded>
    where
        P: AsRef<str> + Into<Arc<str>>,
    {
        let inner = &self.inner;
        let max_total = inner.max_total;
        let name = principal.as_ref();
        inner
            .total
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (max_total == 0 || n < max_total).then_some(n + 1)
            })
            .map_err(|_| LimitExceeded::Total { max: max_total })?;

        let mut map = inner.counts.write(name);
        let existing = map
            .get_key_value(name)
            .map(|(key, &count)| (Arc::clone(key), count));
        let key = match existing {
            Some((_, count))
                if inner.max_per_principal != 0 && count >= inner.max_per_principal =>
            {
                drop(map);
                inner.release_total();
                return Err(LimitExceeded::PerPrincipal {
                    max: inner.max_per_principal,
                });
            }
            Some((key, count)) => {
                map.insert(Arc::clone(&key), count + 1);
                key
            }
            None => {
                let key: Arc<str> = principal.into();
                map.insert(Arc::clone(&key), 1);
                key
            }
        };
        drop(map);
        Ok(ConnectionPermit {
            inner: Arc::clone(inner),
            key,
        })
    }

    /// The server-wide limit (0 = none).
    pub fn max_total(&self) -> usize {
        self.inner.max_total
    }

    /// The per-principal limit (0 = none).
    pub fn max_per_principal(&self) -> usize {
        self.inner.max_per_principal
    }

    /// Live connections.
    pub fn total(&self) -> usize {
        self.inner.total.load(Ordering::Acquire)
    }

    /// Live connections of `principal`.
    pub fn count_for(&self, principal: &str) -> usize {
        self.inner
            .counts
            .read(principal)
            .get(principal)
            .copied()
            .unwrap_or(0)
    }

    /// Principals with at least one live connection (the size of the counter map).
    pub fn tracked_principals(&self) -> usize {
        self.inner.counts.len()
    }
}

/// One connection's slot. Dropping it releases the slot.
#[derive(Debug)]
pub struct ConnectionPermit {
    inner: Arc<Inner>,
    key: Arc<str>,
}

impl ConnectionPermit {
    /// The principal this slot counts against.
    pub fn principal(&self) -> &str {
        &self.key
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut map = self.inner.counts.write(&*self.key);
        match map.get_mut(&*self.key) {
            Some(count) if *count > 1 => *count -= 1,
            Some(_) => {
                map.remove(&*self.key);
            }
            None => {}
        }
        drop(map);
        self.inner.release_total();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_principal_limit() {
        let limits = ConnectionLimits::new(100, 2);
        let a1 = limits.try_acquire("alice").expect("1");
        let _a2 = limits.try_acquire("alice").expect("2");
        let err = limits.try_acquire("alice").expect_err("3");
        assert_eq!(err, LimitExceeded::PerPrincipal { max: 2 });
        assert_eq!(err.close_code().as_u16(), 4022);
        assert_eq!(err.close_reason(), "too many connections for this client");
        // Others are unaffected; the refused attempt held nothing.
        let _b = limits.try_acquire("bob").expect("bob");
        assert_eq!(limits.total(), 3);
        assert_eq!(limits.count_for("alice"), 2);
        assert_eq!(a1.principal(), "alice");
        drop(a1);
        assert_eq!(limits.count_for("alice"), 1);
        let _a3 = limits.try_acquire("alice").expect("slot freed");
    }

    #[test]
    fn total_limit() {
        let limits = ConnectionLimits::new(3, 10);
        let permits: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|p| limits.try_acquire(*p).expect("slot"))
            .collect();
        let err = limits.try_acquire("d").expect_err("full");
        assert_eq!(err, LimitExceeded::Total { max: 3 });
        assert_eq!(err.close_reason(), "too many connections (server limit)");
        assert_eq!(limits.tracked_principals(), 3);
        drop(permits);
        assert_eq!(limits.total(), 0);
        assert!(limits.try_acquire("d").is_ok());
    }

    #[test]
    fn zero_means_unlimited() {
        let limits = ConnectionLimits::new(0, 0);
        let permits: Vec<_> = (0..1000)
            .map(|_| limits.try_acquire("same").expect("slot"))
            .collect();
        assert_eq!(limits.count_for("same"), 1000);
        drop(permits);
        assert_eq!(limits.tracked_principals(), 0);
    }

    #[test]
    fn the_map_does_not_grow_with_churn() {
        let limits = ConnectionLimits::default();
        for i in 0..10_000 {
            let permit = limits
                .try_acquire(format!("client-{i}").as_str())
                .expect("slot");
            let second = limits.try_acquire(format!("client-{i}")).expect("slot");
            assert_eq!(limits.tracked_principals(), 1);
            drop(permit);
            drop(second);
        }
        assert_eq!(limits.tracked_principals(), 0);
        assert_eq!(limits.total(), 0);
        // And with many live at once.
        let live: Vec<_> = (0..10_000)
            .map(|i| limits.try_acquire(format!("c{i}")).expect("slot"))
            .collect();
        assert_eq!(limits.tracked_principals(), 10_000);
        drop(live);
        assert_eq!(limits.tracked_principals(), 0);
    }

    #[test]
    fn concurrent_acquire_never_exceeds_the_total() {
        let limits = ConnectionLimits::new(50, 0);
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let limits = limits.clone();
                std::thread::spawn(move || {
                    let mut held = Vec::new();
                    for i in 0..1000 {
                        if let Ok(p) = limits.try_acquire(format!("t{t}-{}", i % 7)) {
                            held.push(p);
                        }
                        assert!(limits.total() <= 50);
                        if i % 3 == 0 {
                            held.pop();
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread");
        }
        assert_eq!(limits.total(), 0);
        assert_eq!(limits.tracked_principals(), 0);
    }
}

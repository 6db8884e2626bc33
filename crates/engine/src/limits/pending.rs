//! The pending-authentication budget: connections that have upgraded but not yet proven
//! who they are (the Ed25519 challenge-response) hold a task and a socket for up to
//! `auth_timeout` while doing nothing. Without a bound, a few thousand slow authenticators
//! from one address pile up for that long.
//!
//! [`PendingAuth::try_acquire`] hands out a [`PendingPermit`] per connection, counted
//! against a per-IP and a total budget, *before* the upgrade, so a refusal is a plain HTTP
//! status (429 for the per-IP budget, 503 for the total one). The connection task drops the
//! permit as soon as authentication ends, whatever the outcome. The per-IP map holds one
//! entry per address with a pending connection and removes it when its count returns to
//! 0, so it is bounded by the total budget ([`PendingAuth::tracked_ips`]).
//!
//! A budget of 0 means "no limit".

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// Default total of connections authenticating at once.
pub const DEFAULT_MAX_PENDING: usize = 1024;

/// Default connections authenticating at once from one IP address.
pub const DEFAULT_MAX_PENDING_PER_IP: usize = 32;

/// Which budget refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PendingLimit {
    /// The server has `max` connections authenticating.
    #[error("too many connections authenticating (server limit {max})")]
    Total {
        /// The budget.
        max: usize,
    },
    /// This address has `max` connections authenticating.
    #[error("too many connections authenticating from this address (limit {max})")]
    PerIp {
        /// The budget.
        max: usize,
    },
}

/// The budgets. Cheap to clone (a handle).
#[derive(Debug, Clone)]
pub struct PendingAuth {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    max_total: usize,
    max_per_ip: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

impl Inner {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for PendingAuth {
    fn default() -> Self {
        PendingAuth::new(DEFAULT_MAX_PENDING, DEFAULT_MAX_PENDING_PER_IP)
    }
}

impl PendingAuth {
    /// Budgets of `max_total` pending connections and `max_per_ip` per address (0 = none).
    pub fn new(max_total: usize, max_per_ip: usize) -> PendingAuth {
        PendingAuth {
            inner: Arc::new(Inner {
                max_total,
                max_per_ip,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// Reserves a place for one connection from `ip` that is about to authenticate.
    /// One short critical section: these are handshakes, not messages.
    pub fn try_acquire(&self, ip: IpAddr) -> Result<PendingPermit, PendingLimit> {
        let inner = &self.inner;
        let mut st = inner.state();
        if inner.max_total != 0 && st.total >= inner.max_total {
            return Err(PendingLimit::Total {
                max: inner.max_total,
            });
        }
        let count = st.per_ip.get(&ip).copied().unwrap_or(0);
        if inner.max_per_ip != 0 && count >= inner.max_per_ip {
            return Err(PendingLimit::PerIp {
                max: inner.max_per_ip,
            });
        }
        st.per_ip.insert(ip, count + 1);
        st.total += 1;
        drop(st);
        Ok(PendingPermit {
            inner: Arc::clone(inner),
            ip,
        })
    }

    /// Connections authenticating now.
    pub fn total(&self) -> usize {
        self.inner.state().total
    }

    /// Addresses with at least one connection authenticating (the map's size).
    pub fn tracked_ips(&self) -> usize {
        self.inner.state().per_ip.len()
    }
}

/// One authenticating connection's place. Dropping it gives the place back.
#[derive(Debug)]
pub struct PendingPermit {
    inner: Arc<Inner>,
    ip: IpAddr,
}

impl Drop for PendingPermit {
    fn drop(&mut self) {
        let mut st = self.inner.state();
        st.total = st.total.saturating_sub(1);
        if let Some(n) = st.per_ip.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                st.per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn per_ip_budget_refuses_then_frees_on_drop() {
        let budget = PendingAuth::new(0, 2);
        let a = budget.try_acquire(ip(1)).expect("first");
        let _b = budget.try_acquire(ip(1)).expect("second");
        assert_eq!(
            budget.try_acquire(ip(1)).err(),
            Some(PendingLimit::PerIp { max: 2 })
        );
        let _other = budget.try_acquire(ip(2)).expect("another address");
        drop(a);
        let _c = budget.try_acquire(ip(1)).expect("a place was given back");
        assert_eq!(budget.total(), 3);
    }

    #[test]
    fn total_budget_refuses_every_address() {
        let budget = PendingAuth::new(2, 0);
        let _a = budget.try_acquire(ip(1)).expect("first");
        let _b = budget.try_acquire(ip(2)).expect("second");
        assert_eq!(
            budget.try_acquire(ip(3)).err(),
            Some(PendingLimit::Total { max: 2 })
        );
    }

    #[test]
    fn map_returns_to_empty() {
        let budget = PendingAuth::default();
        let permits: Vec<_> = (0..50)
            .map(|i| budget.try_acquire(ip(i)).expect("within budget"))
            .collect();
        assert_eq!(budget.tracked_ips(), 50);
        drop(permits);
        assert_eq!(budget.tracked_ips(), 0);
        assert_eq!(budget.total(), 0);
    }
}

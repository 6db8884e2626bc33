//! Sessions do not outlive their credentials: each session may carry the instant its
//! token runs out, the maintenance tick warns it ahead of time (`token_expiring`) and
//! closes it with 4003 once the instant passes without a `refresh`.
//!
//! No task and no timer per connection: the deadline is two atomics in the session, and
//! [`Hub::expire_credentials`] checks them on the maintenance tick that already walks the
//! sessions for heartbeats, so an idle connection costs 16 bytes and no wake-ups. The
//! close therefore happens within one tick (at most 1 s) after the deadline.
//!
//! The warning lead is [`MAX_WARN_LEAD`] (30 s) before the deadline, or half the token's
//! remaining lifetime when that is shorter, so a short-lived token still gets its warning
//! with time left to refresh. It is never less than two ticks (when the lifetime allows):
//! the warning goes out on the first tick at or after its instant, up to a tick late, and
//! a lead of one tick could then land on the deadline itself.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use roomcast_protocol::server::Reply;
use roomcast_protocol::CloseCode;

use super::{Hub, Session};

/// How long before the deadline `token_expiring` is sent, at most.
pub const MAX_WARN_LEAD: Duration = Duration::from_secs(30);

/// "No deadline" / "no warning pending".
const NEVER: u64 = u64::MAX;

/// A session's credential deadline, in hub-clock milliseconds ([`Hub::now_ms`]).
#[derive(Debug)]
pub(crate) struct Expiry {
    /// When the session is closed with 4003; [`NEVER`] for sessions without a deadline.
    deadline_ms: AtomicU64,
    /// When `token_expiring` is due; [`NEVER`] once sent (or without a deadline).
    warn_ms: AtomicU64,
}

impl Expiry {
    pub(crate) fn none() -> Expiry {
        Expiry {
            deadline_ms: AtomicU64::new(NEVER),
            warn_ms: AtomicU64::new(NEVER),
        }
    }
}

/// How long before a deadline `remaining` away the warning goes out, for a maintenance
/// tick of `tick`: half the lifetime, at least two ticks, at most [`MAX_WARN_LEAD`], and
/// never more than the lifetime itself (then it goes out on the next tick).
pub fn warn_lead(remaining: Duration, tick: Duration) -> Duration {
    (remaining / 2)
        .max(tick * 2)
        .min(MAX_WARN_LEAD)
        .min(remaining)
}

impl Session {
    /// Whether the session's credentials have a deadline (it was opened with a token).
    pub fn has_expiry(&self) -> bool {
        self.expiry.deadline_ms.load(Ordering::Acquire) != NEVER
    }
}

impl Hub {
    /// Sets (or, on refresh, replaces) the instant `session`'s credentials run out,
    /// `remaining` from now. A zero `remaining` closes it on the next tick.
    pub fn set_credentials_expiry(&self, session: &Session, remaining: Duration) {
        let now = self.now_ms();
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(NEVER - 1);
        let deadline = now.saturating_add(ms(remaining)).min(NEVER - 1);
        let lead = warn_lead(remaining, self.config().maintenance_tick());
        let warn = deadline.saturating_sub(ms(lead));
        // Warning first: a tick that sees the new deadline must not use the old warning.
        session.expiry.warn_ms.store(warn, Ordering::Release);
        session
            .expiry
            .deadline_ms
            .store(deadline, Ordering::Release);
    }

    /// The maintenance tick's credential check: sends `token_expiring` to sessions whose
    /// warning is due (once per deadline) and closes sessions past their deadline with
    /// 4003, removing them from every room. Returns how many were closed.
    pub(crate) fn expire_credentials(&self) -> usize {
        let now = self.now_ms();
        let mut warn = Vec::new();
        let mut expired = Vec::new();
        self.inner.sessions.for_each_shard(|shard| {
            for s in shard.values() {
                let deadline = s.expiry.deadline_ms.load(Ordering::Acquire);
                if deadline == NEVER {
                    continue;
                }
                if now >= deadline {
                    // Cleared so the next ticks do not close it again while its task
                    // winds down; a refresh that got in first keeps the session.
                    if s.expiry
                        .deadline_ms
                        .compare_exchange(deadline, NEVER, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                    {
                        expired.push(s.clone());
                    }
                    continue;
                }
                let due = s.expiry.warn_ms.load(Ordering::Acquire);
                if now >= due
                    && s.expiry
                        .warn_ms
                        .compare_exchange(due, NEVER, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                {
                    warn.push((s.clone(), deadline - now));
                }
            }
        });
        for (s, left_ms) in warn {
            // Rounded up: the client is never told it has more time than it has.
            let frame = Reply::TokenExpiring {
                expires_in: left_ms.div_ceil(1000),
            };
            s.outbox.push(Bytes::from(frame.to_json()));
        }
        for s in &expired {
            s.outbox.close(
                CloseCode::TokenExpired,
                CloseCode::TokenExpired.default_reason(),
                false,
            );
            self.leave_all(s);
        }
        expired.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{MemoryHistory, Retention};
    use crate::{HubConfig, SessionMeta};
    use roomcast_protocol::{ClientId, RoomName};
    use std::sync::Arc;

    fn connect(hub: &Hub, id: &str) -> Arc<Session> {
        let id = ClientId::parse(id).expect("client id");
        let s = hub.connect(id, SessionMeta::default());
        hub.subscribe(&s, &RoomName::general())
            .expect("join general");
        s
    }

    #[test]
    fn only_sessions_past_their_deadline_are_closed_and_leave_their_rooms() {
        let hub = Hub::new(
            HubConfig::default(),
            Arc::new(MemoryHistory::new(Retention::default())),
        );
        let forever = connect(&hub, "forever");
        let expired = connect(&hub, "expired");
        let later = connect(&hub, "later");
        hub.set_credentials_expiry(&expired, Duration::ZERO);
        hub.set_credentials_expiry(&later, Duration::from_secs(3600));
        assert!(!forever.has_expiry() && expired.has_expiry() && later.has_expiry());
        assert_eq!(hub.expire_credentials(), 1);
        assert!(expired.outbox.is_closed());
        assert!(!forever.outbox.is_closed() && !later.outbox.is_closed());
        // Nothing was due for the others: no warning queued.
        assert!(forever.outbox.is_empty() && later.outbox.is_empty());
        let mut members = hub.presence(&RoomName::general());
        members.sort();
        let names: Vec<&str> = members.iter().map(ClientId::as_str).collect();
        assert_eq!(names, ["forever", "later"]);
        // Closed once, not again on every tick while its connection winds down.
        hub.set_credentials_expiry(&later, Duration::from_secs(7200));
        assert_eq!(hub.expire_credentials(), 0);
    }

    #[test]
    fn lead_is_half_the_lifetime_up_to_thirty_seconds_and_at_least_two_ticks() {
        let tick = Duration::from_secs(1);
        let s = Duration::from_secs;
        assert_eq!(warn_lead(s(6), tick), s(3));
        assert_eq!(warn_lead(s(60), tick), MAX_WARN_LEAD);
        assert_eq!(warn_lead(s(3600), tick), MAX_WARN_LEAD);
        // Half of 3 s is less than two ticks: warned two ticks ahead.
        assert_eq!(warn_lead(s(3), tick), s(2));
        // Shorter than two ticks: warned on the next tick.
        assert_eq!(
            warn_lead(Duration::from_millis(1500), tick),
            Duration::from_millis(1500)
        );
        assert_eq!(warn_lead(Duration::ZERO, tick), Duration::ZERO);
        assert_eq!(warn_lead(s(4), Duration::from_millis(50)), s(2));
    }
}

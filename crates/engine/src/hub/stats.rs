//! Hub counters, read by the metrics endpoint and the admin API. Relaxed atomics: they
//! are statistics, not synchronisation.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::hub::room::Delivery;

/// Monotonic counters of hub activity.
#[derive(Debug, Default)]
pub struct HubStats {
    /// Connections ever registered.
    pub connections_total: AtomicU64,
    /// Sessions replaced by a newer connection with the same client id.
    pub superseded: AtomicU64,
    /// Sessions closed for heartbeat silence.
    pub evicted: AtomicU64,
    /// Events and ephemeral frames fanned out.
    pub publishes: AtomicU64,
    /// Frames queued to recipients by fan-out.
    pub deliveries: AtomicU64,
    /// Recipients disconnected because their queue was full.
    pub slow_consumers: AtomicU64,
    /// Sessions closed as slow consumers because the process-wide cap on queued bytes
    /// was exceeded (also counted in `slow_consumers`).
    pub queued_bytes_cap_closes: AtomicU64,
    /// Messages dropped by the drop-oldest policy.
    pub dropped_oldest: AtomicU64,
    /// Events replayed from history.
    pub replayed: AtomicU64,
    /// Inbound client messages (counted by the transport).
    pub messages_in: AtomicU64,
    /// Inbound bytes of client messages (counted by the transport).
    pub bytes_in: AtomicU64,
    /// Broker publish failures.
    pub broker_errors: AtomicU64,
    /// Frames written to connections that have since closed.
    pub(crate) retired_frames_out: AtomicU64,
    /// Bytes written to connections that have since closed.
    pub(crate) retired_bytes_out: AtomicU64,
}

impl HubStats {
    pub(crate) fn record_publish(&self, d: &Delivery) {
        self.publishes.fetch_add(1, Ordering::Relaxed);
        self.deliveries.fetch_add(d.delivered, Ordering::Relaxed);
        if d.overflowed > 0 {
            self.slow_consumers
                .fetch_add(d.overflowed, Ordering::Relaxed);
        }
        if d.dropped_oldest > 0 {
            self.dropped_oldest
                .fetch_add(d.dropped_oldest, Ordering::Relaxed);
        }
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

//! The process-wide cap on queued outbound bytes.
//!
//! Each outbox is bounded on its own (messages and bytes); this bounds their sum, so a
//! few hundred readers that stop reading cannot take the process down. It runs on the
//! maintenance tick rather than in the fan-out path: summing is a walk over the sessions,
//! and the push stays one short mutex with no shared counter to contend on.

use std::sync::atomic::Ordering;

use super::Hub;

impl Hub {
    /// Applies the process-wide cap on queued outbound bytes: while the sum over every
    /// connection's held bytes ([`crate::Outbox::held_bytes`]: its queue, and what its
    /// socket has not taken yet) exceeds `max_queued_bytes`, the largest are closed
    /// as slow consumers (1008), largest first. Runs on the maintenance tick, so the
    /// fan-out path pays nothing for it (callable directly by embedders and tests).
    /// Returns how many sessions were closed.
    pub fn enforce_queued_bytes_cap(&self) -> usize {
        let cap = self.inner.config.max_queued_bytes;
        if cap == 0 {
            return 0;
        }
        let mut total = 0usize;
        let mut queued = Vec::new();
        self.inner.sessions.for_each_shard(|shard| {
            for s in shard.values() {
                let b = s.outbox.held_bytes();
                if b > 0 {
                    total += b;
                    queued.push((b, s.clone()));
                }
            }
        });
        if total <= cap {
            return 0;
        }
        queued.sort_unstable_by_key(|(bytes, _)| std::cmp::Reverse(*bytes));
        let mut closed = 0;
        for (bytes, s) in queued {
            if total <= cap {
                break;
            }
            // Its queue is discarded now; what its socket still holds goes when the
            // writer stops (within the write timeout at most). One already closing is
            // on its way out: counted off, not closed again.
            total = total.saturating_sub(bytes);
            if s.outbox.close_slow() {
                self.leave_all(&s);
                closed += 1;
            }
        }
        let stats = &self.inner.stats;
        stats
            .queued_bytes_cap_closes
            .fetch_add(closed as u64, Ordering::Relaxed);
        stats
            .slow_consumers
            .fetch_add(closed as u64, Ordering::Relaxed);
        closed
    }
}

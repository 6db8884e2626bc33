//! The timestamps of signed arena requests. The server takes each signature once (within
//! its 30 s window), so two identical requests must never carry the same timestamp: this
//! clock hands out now in unix milliseconds, but always later than the last one it handed
//! out. One clock for the REST client and for anything else that signs (the tests' traders).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Strictly increasing unix-millisecond timestamps; clones share the clock.
#[derive(Debug, Clone, Default)]
pub struct SignatureClock {
    last: Arc<AtomicI64>,
}

impl SignatureClock {
    /// A clock that has handed out nothing yet.
    pub fn new() -> SignatureClock {
        SignatureClock::default()
    }

    /// Now in unix ms, always later than the previous timestamp of this clock (or a clone).
    pub fn next(&self) -> i64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        let prev = self
            .last
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
                Some(now.max(last + 1))
            })
            .unwrap_or(now);
        now.max(prev + 1)
    }
}

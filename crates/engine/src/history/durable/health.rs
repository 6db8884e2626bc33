//! Whether the durable store's disk works: the one piece of state the writer thread shares
//! with publishers, `/readyz` and metrics.
//!
//! The writer marks the store failed the moment a commit (or sync) fails and healthy again
//! once it has reopened the database and written everything it still owed. Publishers read
//! it with one atomic load before appending, so a failed store refuses an event before it
//! is sequenced or fanned out.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::history::HistoryError;

/// Shared failure state of one store. See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Health {
    failed: AtomicBool,
    /// Why the store failed (only read while `failed`).
    reason: Mutex<String>,
    write_errors: AtomicU64,
}

impl Health {
    /// `Ok` while the store writes; [`HistoryError::Unavailable`] with the reason while failed.
    pub(crate) fn check(&self) -> Result<(), HistoryError> {
        if !self.failed.load(Ordering::Acquire) {
            return Ok(());
        }
        let reason = self
            .reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        Err(HistoryError::Unavailable(reason))
    }

    /// Records a failed write (or a failed attempt to recover); the store refuses appends
    /// until [`Health::recovered`].
    pub(crate) fn failed(&self, reason: String) {
        *self.reason.lock().unwrap_or_else(PoisonError::into_inner) = reason;
        self.write_errors.fetch_add(1, Ordering::Relaxed);
        self.failed.store(true, Ordering::Release);
    }

    /// The store writes again.
    pub(crate) fn recovered(&self) {
        self.failed.store(false, Ordering::Release);
    }

    /// Whether the store is failed now.
    pub(crate) fn is_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Failed writes since start.
    pub(crate) fn write_errors(&self) -> u64 {
        self.write_errors.load(Ordering::Relaxed)
    }
}

//! Whether this node can reach Redis right now, and why not.
//!
//! Two links are watched: the command connection (publishes, loads; probed with `PING`
//! every [`PROBE_EVERY`]) and the pub/sub connection (live events). Both must be up for
//! the node to be ready; a publish checks the flag first and fails at once while it is
//! down, so a publish never waits on a dead Redis.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// How often the command link is probed.
pub(crate) const PROBE_EVERY: Duration = Duration::from_millis(500);

/// The state of the two links. Starts down until the first probe and subscription.
#[derive(Debug)]
pub(crate) struct Health {
    commands: AtomicBool,
    pubsub: AtomicBool,
    reason: Mutex<String>,
}

impl Default for Health {
    fn default() -> Health {
        Health {
            commands: AtomicBool::new(false),
            pubsub: AtomicBool::new(false),
            reason: Mutex::new("redis: not connected yet".into()),
        }
    }
}

impl Health {
    /// `Ok` when both links are up, else the last reason.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.commands.load(Ordering::Acquire) && self.pubsub.load(Ordering::Acquire) {
            return Ok(());
        }
        Err(self
            .reason
            .lock()
            .map(|r| r.clone())
            .unwrap_or_else(|p| p.into_inner().clone()))
    }

    pub(crate) fn commands_up(&self) {
        self.commands.store(true, Ordering::Release);
    }

    pub(crate) fn commands_down(&self, why: &str) {
        self.set_reason(format!("redis unavailable: {why}"));
        self.commands.store(false, Ordering::Release);
    }

    pub(crate) fn pubsub_up(&self) {
        self.pubsub.store(true, Ordering::Release);
    }

    pub(crate) fn pubsub_down(&self, why: &str) {
        self.set_reason(format!("redis pub/sub unavailable: {why}"));
        self.pubsub.store(false, Ordering::Release);
    }

    fn set_reason(&self, reason: String) {
        match self.reason.lock() {
            Ok(mut r) => *r = reason,
            Err(p) => *p.into_inner() = reason,
        }
    }
}

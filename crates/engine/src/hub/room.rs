//! One room: its members and its event log position.
//!
//! Two locks with different jobs. `members` (RwLock) is read by every publish and written
//! by joins and leaves. `log` (Mutex) serialises publishes: the sequence is assigned, the
//! event encoded once, appended to history and fanned out while it is held, so every
//! subscriber sees a room's events in sequence order and a joining subscriber can be
//! switched from replay to live at an exact sequence.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use bytes::Bytes;
use roomcast_protocol::RoomName;

use crate::history::RoomHead;
use crate::hub::session::{ConnId, Session};
use crate::outbox::Pushed;

/// Fan-out counts of one delivery.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Recipients whose outbox accepted the frame.
    pub delivered: u64,
    /// Recipients disconnected as slow consumers by this delivery.
    pub overflowed: u64,
    /// Recipients that lost an older message to the drop-oldest policy.
    pub dropped_oldest: u64,
    /// Recipients whose full queue made them skip a best-effort frame.
    pub skipped: u64,
}

impl Delivery {
    /// Counts one push.
    pub(crate) fn count(&mut self, pushed: Pushed) {
        match pushed {
            Pushed::Queued => self.delivered += 1,
            Pushed::DroppedOldest => {
                self.delivered += 1;
                self.dropped_oldest += 1;
            }
            Pushed::Overflow => self.overflowed += 1,
            Pushed::Skipped => self.skipped += 1,
            Pushed::Closed => {}
        }
    }
}

/// Whether a frame must reach the recipient or may be skipped when its queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reliability {
    /// Room events: a full queue applies the slow-consumer policy.
    Reliable,
    /// A room event published on its own (see [`RoomLog::isolated`]): written straight
    /// to each idle member's socket where the transport allows, queued otherwise.
    ReliableNow,
    /// Presence notices and heartbeats: a full queue skips the frame.
    BestEffort,
}

/// A publish that starts within this gap after the room's previous fan-out ended is
/// queued, so the writers coalesce a burst into few writes; one after a longer pause is
/// written straight to the members' sockets (nothing would coalesce with it anyway).
/// Measured from the end of the fan-out, not its start: a direct fan-out to many members
/// takes milliseconds, and a publisher that is queueing behind it must not look idle.
const COALESCE_GAP: std::time::Duration = std::time::Duration::from_millis(1);

/// Rooms larger than this always queue: a direct fan-out runs on the publisher's thread
/// alone, while queued writes spread over every worker.
const DIRECT_MAX_MEMBERS: usize = 4096;

#[derive(Debug)]
pub(crate) struct RoomLog {
    pub(crate) head: RoomHead,
    pub(crate) keeps_history: bool,
    /// When the room's last fan-out ended.
    last_fan_out: Option<std::time::Instant>,
}

impl RoomLog {
    /// Whether a publish starting at `now` stands alone: the room's previous fan-out
    /// ended at least [`COALESCE_GAP`] before it.
    pub(crate) fn isolated(&self, now: std::time::Instant) -> bool {
        self.last_fan_out
            .is_none_or(|t| now.saturating_duration_since(t) >= COALESCE_GAP)
    }

    /// Records the end of a fan-out.
    pub(crate) fn fanned_out(&mut self, at: std::time::Instant) {
        self.last_fan_out = Some(at);
    }
}

#[derive(Debug)]
pub(crate) struct Room {
    pub(crate) name: RoomName,
    members: RwLock<HashMap<ConnId, Arc<Session>>>,
    log: Mutex<RoomLog>,
    /// Cluster mode: whether the room's position and history have been loaded from the
    /// shared store since the room was created here. Always true on a single node.
    synced: AtomicBool,
    /// Wakes waiters when the room becomes synced or (cluster mode) its head moves.
    changed: tokio::sync::Notify,
}

impl Room {
    pub(crate) fn new(name: RoomName, head: RoomHead, keeps_history: bool, synced: bool) -> Room {
        Room {
            name,
            members: RwLock::new(HashMap::new()),
            log: Mutex::new(RoomLog {
                head,
                keeps_history,
                last_fan_out: None,
            }),
            synced: AtomicBool::new(synced),
            changed: tokio::sync::Notify::new(),
        }
    }

    pub(crate) fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    /// Marks the room synced (call with its log lock held) and wakes the waiters.
    pub(crate) fn mark_synced(&self) {
        self.synced.store(true, Ordering::Release);
        self.changed.notify_waiters();
    }

    /// Wakes the waiters of [`Room::head_satisfies`] (cluster mode: call after moving the
    /// head, with the log lock held).
    pub(crate) fn head_moved(&self) {
        self.changed.notify_waiters();
    }

    /// Completes once the room is synced.
    pub(crate) async fn synced(&self) {
        loop {
            let changed = self.changed.notified();
            if self.is_synced() {
                return;
            }
            changed.await;
        }
    }

    /// Completes once `done` holds for the room's head (checked again at every move).
    pub(crate) async fn head_satisfies(&self, mut done: impl FnMut(&RoomHead) -> bool) {
        loop {
            // Registered before the check, so a move between the two is not missed.
            let changed = self.changed.notified();
            if done(&self.head()) {
                return;
            }
            changed.await;
        }
    }

    pub(crate) fn log(&self) -> MutexGuard<'_, RoomLog> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn head(&self) -> RoomHead {
        self.log().head.clone()
    }

    pub(crate) fn add(&self, session: &Arc<Session>) {
        self.members
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(session.conn_id, session.clone());
    }

    pub(crate) fn remove(&self, conn: ConnId) -> bool {
        self.members
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&conn)
            .is_some()
    }

    pub(crate) fn len(&self) -> usize {
        self.members.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub(crate) fn member_ids(&self) -> Vec<roomcast_protocol::ClientId> {
        let members = self.members.read().unwrap_or_else(|p| p.into_inner());
        let mut ids: Vec<_> = members.values().map(|s| s.client_id.clone()).collect();
        ids.sort();
        ids
    }

    /// Pushes the same bytes to every member except `exclude`. Never waits.
    pub(crate) fn fan_out(
        &self,
        frame: &Bytes,
        exclude: Option<ConnId>,
        reliability: Reliability,
    ) -> Delivery {
        let members = self.members.read().unwrap_or_else(|p| p.into_inner());
        let reliability = match reliability {
            Reliability::ReliableNow if members.len() > DIRECT_MAX_MEMBERS => Reliability::Reliable,
            r => r,
        };
        let mut d = Delivery::default();
        for (conn, session) in members.iter() {
            if Some(*conn) == exclude {
                continue;
            }
            d.count(match reliability {
                Reliability::Reliable => session.outbox.push(frame.clone()),
                Reliability::ReliableNow => session.outbox.push_direct(frame),
                Reliability::BestEffort => session.outbox.push_lossy(frame.clone()),
            });
        }
        d
    }
}

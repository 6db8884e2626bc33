//! Cluster mode: rooms whose events another store sequences (Redis, behind the broker).
//!
//! On a node of a cluster the hub never assigns a sequence. Every event, including the
//! ones this node's clients publish, arrives once through [`Hub::deliver_remote`] from the
//! node's single subscription to the room's channel, in the store's sequence order, and is
//! fanned out and copied into this node's history (a mirror of the store's stream) under
//! the room's publish lock. So the hub's recovery code (`recovery.rs`) runs unchanged
//! against the mirror: its "read the tail and join under the room lock" hand-over is
//! exact, because the mirror and the room head move together under that lock.
//!
//! A room created on a node starts **unsynced**: the broker subscribes to its channel,
//! then reads the store's stream and head and hands them to [`Hub::sync_remote`], which
//! seeds the mirror and marks the room synced. Live events that arrive for an unsynced
//! room are ignored: the snapshot that follows (read after the subscription was
//! confirmed) contains them. Clients wait for [`RoomHold::synced`] before they join.
//!
//! `sync_remote` on a room that is already synced is a resynchronisation after the
//! broker lost its subscription (Redis restarted or the link dropped): the members get the
//! events they missed from the snapshot, in order; when the snapshot cannot cover them
//! they get `recovery_failed` (`gap`, or `epoch_changed` when the store lost the room's
//! history) and continue live from the store's position.

use std::sync::Arc;

use bytes::Bytes;
use roomcast_protocol::server::Reply;
use roomcast_protocol::{Epoch, RoomName, Sequence};

use super::room::{Delivery, Reliability, Room, RoomLog};
use super::{unix_millis, ConnId, Hub, RecoveryFailure};
use crate::history::{HistoryError, RoomHead, StoredEvent};

/// Keeps a room in the hub (the sweeper leaves it alone) while a client is about to
/// join it.
#[derive(Debug)]
pub struct RoomHold {
    room: Arc<Room>,
}

impl RoomHold {
    /// Completes once the room's position has been loaded from the shared store
    /// (immediately on a single node).
    pub async fn synced(&self) {
        self.room.synced().await
    }

    /// Whether the room's position has been loaded.
    pub fn is_synced(&self) -> bool {
        self.room.is_synced()
    }

    /// The room's current head on this node.
    pub fn head(&self) -> RoomHead {
        self.room.head()
    }

    /// Completes once `done` holds for the room's head on this node: woken by every event
    /// delivered and every resynchronisation, never polled.
    pub async fn head_satisfies(&self, done: impl FnMut(&RoomHead) -> bool) {
        self.room.head_satisfies(done).await
    }
}

/// What the shared store holds for a room: its head and its retained events, oldest
/// first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSnapshot {
    /// The store's head of the room.
    pub head: RoomHead,
    /// The retained events, ascending.
    pub events: Vec<StoredEvent>,
}

impl Hub {
    /// Whether this hub is a node of a cluster ([`Hub::clustered`]).
    pub fn is_clustered(&self) -> bool {
        self.inner.clustered
    }

    /// The room's state, created if needed, kept alive while the hold lives.
    pub fn hold_room(&self, name: &RoomName) -> Result<RoomHold, HistoryError> {
        Ok(RoomHold {
            room: self.room(name)?,
        })
    }

    /// Rooms that exist on this node (the broker resubscribes to them after a reconnect).
    pub fn room_names(&self) -> Vec<RoomName> {
        let mut all = Vec::new();
        self.inner
            .rooms
            .for_each_shard(|shard| all.extend(shard.keys().cloned()));
        all
    }

    /// Delivers an event the shared store sequenced (called by the broker, in the
    /// channel's order). Events at or below the room's head in the same epoch are
    /// duplicates and ignored; an event of another epoch starts that epoch (the store
    /// lost the room's history and started over). `exclude` is the publishing connection
    /// when it is on this node. Returns the fan-out counts.
    pub fn deliver_remote(
        &self,
        name: &RoomName,
        epoch: &str,
        sequence: Sequence,
        frame: Bytes,
        exclude: Option<ConnId>,
    ) -> Delivery {
        let Some(room) = self.existing_room(name) else {
            return Delivery::default();
        };
        let mut log = room.log();
        if !room.is_synced() {
            // The snapshot being loaded was read after the subscription: it has this event.
            return Delivery::default();
        }
        let same_epoch = log.head.epoch.as_str() == epoch;
        if same_epoch && sequence <= log.head.sequence {
            return Delivery::default();
        }
        if log.keeps_history {
            let event = StoredEvent {
                sequence,
                unix_millis: unix_millis(),
                frame: frame.clone(),
            };
            let appended = same_epoch
                && sequence == log.head.sequence.next()
                && self.inner.history.append(name, event.clone()).is_ok();
            if !appended {
                let head = RoomHead {
                    sequence,
                    epoch: Epoch::new(epoch),
                };
                if let Err(e) = self.inner.history.mirror(name, &head, vec![event]) {
                    tracing::warn!(room = %name, error = %e, "mirroring a remote event failed");
                }
            }
        }
        if !same_epoch {
            // The store lost the room's history (expired, reset) while this node stayed
            // subscribed: its members cannot resume across the change, so they are told,
            // as a resynchronisation tells them, before the new epoch's first event.
            let from = Epoch::new(epoch);
            let notice = Reply::RecoveryFailed {
                room: name,
                reason: RecoveryFailure::EpochChanged.as_str(),
                sequence: Sequence(sequence.0.saturating_sub(1)),
                epoch: &from,
            }
            .to_json();
            room.fan_out(&Bytes::from(notice), None, Reliability::Reliable);
            log.head.epoch = from;
        }
        log.head.sequence = sequence;
        let d = room.fan_out(&frame, exclude, Reliability::Reliable);
        room.head_moved();
        drop(log);
        self.inner.stats.record_publish(&d);
        d
    }

    /// Loads the shared store's state of a room into this node (see the module docs).
    /// Returns false when the room no longer exists here.
    pub fn sync_remote(&self, name: &RoomName, snapshot: RemoteSnapshot) -> bool {
        let Some(room) = self.existing_room(name) else {
            return false;
        };
        let mut log = room.log();
        if !room.is_synced() {
            self.mirror(name, &log, &snapshot);
            log.head = snapshot.head;
            room.mark_synced();
            return true;
        }
        let head = log.head.clone();
        let missed: Vec<&StoredEvent> = if snapshot.head.epoch == head.epoch {
            snapshot
                .events
                .iter()
                .filter(|e| e.sequence > head.sequence)
                .collect()
        } else {
            snapshot.events.iter().collect()
        };
        let first = missed
            .first()
            .map(|e| e.sequence)
            .unwrap_or(snapshot.head.sequence.next());
        let failure = if snapshot.head.epoch != head.epoch {
            Some(RecoveryFailure::EpochChanged)
        } else if snapshot.head.sequence > head.sequence && first != head.sequence.next() {
            Some(RecoveryFailure::Gap)
        } else {
            None
        };
        self.mirror(name, &log, &snapshot);
        if let Some(reason) = failure {
            let from = RoomHead {
                sequence: Sequence(first.0.saturating_sub(1)),
                epoch: snapshot.head.epoch.clone(),
            };
            let frame = Reply::RecoveryFailed {
                room: name,
                reason: reason.as_str(),
                sequence: from.sequence,
                epoch: &from.epoch,
            }
            .to_json();
            room.fan_out(&Bytes::from(frame), None, Reliability::Reliable);
        }
        for event in missed {
            let d = room.fan_out(&event.frame, None, Reliability::Reliable);
            self.inner.stats.record_publish(&d);
        }
        if snapshot.head.epoch != head.epoch || snapshot.head.sequence > head.sequence {
            log.head = snapshot.head;
            room.head_moved();
        }
        true
    }

    fn mirror(&self, name: &RoomName, log: &RoomLog, snapshot: &RemoteSnapshot) {
        if !log.keeps_history {
            return;
        }
        if let Err(e) = self
            .inner
            .history
            .mirror(name, &snapshot.head, snapshot.events.clone())
        {
            tracing::warn!(room = %name, error = %e, "mirroring a room's history failed");
        }
    }
}

impl Hub {
    /// Cluster mode: `client_id` connected on another node, so its session here (if any)
    /// is superseded: removed, closed with 4011 after what is queued, out of every room.
    /// No `user_left` follows, as for a supersede on one node. Returns whether there was
    /// a session.
    pub fn supersede_remote(&self, client_id: &roomcast_protocol::ClientId) -> bool {
        let old = self.inner.sessions.write(client_id).remove(client_id);
        let Some(old) = old else {
            return false;
        };
        let code = roomcast_protocol::CloseCode::SessionSuperseded;
        old.outbox.close(code, code.default_reason(), true);
        self.leave_all(&old);
        self.inner
            .stats
            .superseded
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        true
    }
}

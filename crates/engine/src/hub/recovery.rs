//! Subscribing with a resume point: replay what the client missed, then switch to live
//! without losing or repeating an event.
//!
//! The replay runs in two phases. The bulk is read from history in batches and pushed with
//! back-pressure ([`Outbox::push_wait`](crate::outbox::Outbox::push_wait)) while publishes
//! continue, so a long replay never holds the room and never buffers the whole backlog.
//! The last few events (those published during the bulk phase) are read while holding the
//! room's publish lock, queued, and the session joins the room before the lock is released:
//! the next live event is exactly the one after the last replayed one.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use roomcast_protocol::server::{mark_replayed, Reply};
use roomcast_protocol::{RoomName, Sequence};

use super::{Hub, Session, SubscribeError};
use crate::history::RoomHead;

/// Why history could not cover what a client missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryFailure {
    /// Some events after the client's position were trimmed or expired.
    Gap,
    /// The room's history was reset since the client's position was taken.
    EpochChanged,
}

impl RecoveryFailure {
    /// The wire spelling of the reason.
    pub fn as_str(self) -> &'static str {
        match self {
            RecoveryFailure::Gap => "gap",
            RecoveryFailure::EpochChanged => "epoch_changed",
        }
    }
}

/// The outcome of a subscribe-with-recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// Every missed event was replayed, then `replay_complete` was queued.
    Replayed {
        /// Events replayed.
        count: u64,
        /// Head at the switch to live.
        head: RoomHead,
    },
    /// `recovery_failed` was queued; the session is live from the current head.
    Failed {
        /// Why.
        reason: RecoveryFailure,
        /// Head at the switch to live.
        head: RoomHead,
    },
    /// The session closed during the replay.
    Closed,
}

impl Hub {
    /// Joins `name` and replays its events after `after` (see the module docs). `epoch` is
    /// the epoch the client's position belongs to, if it knows it.
    pub async fn subscribe_since(
        &self,
        session: &Arc<Session>,
        name: &RoomName,
        after: Sequence,
        epoch: Option<&str>,
    ) -> Result<Recovery, SubscribeError> {
        let room = self.room(name)?;
        if !self.note_joined(session, &room.name)? {
            // Already live in this room: nothing can have been missed since joining.
            let head = room.head();
            let frame = Reply::ReplayComplete {
                room: name,
                replayed_count: 0,
            }
            .to_json();
            session.outbox.push_unbounded(Bytes::from(frame));
            return Ok(Recovery::Replayed { count: 0, head });
        }
        let start = room.head();
        let epoch_ok = epoch.is_none_or(|e| e == start.epoch.as_str());
        let mut cursor = after;
        let mut count = 0u64;
        let mut failure = None;
        if !epoch_ok || (epoch.is_none() && after > start.sequence) {
            failure = Some(RecoveryFailure::EpochChanged);
        } else if after > start.sequence {
            failure = Some(RecoveryFailure::Gap);
        }
        let keeps = room.log().keeps_history;
        if failure.is_none() && keeps {
            let batch = self.inner.config.replay_batch.max(1);
            loop {
                let read = self.inner.history.read_since(name, cursor, batch)?;
                if read.head.epoch != start.epoch {
                    failure = Some(RecoveryFailure::EpochChanged);
                    break;
                }
                if !read.complete {
                    failure = Some(RecoveryFailure::Gap);
                    break;
                }
                let n = read.events.len();
                for ev in read.events {
                    let frame = Bytes::from(mark_replayed(
                        std::str::from_utf8(&ev.frame).unwrap_or("{}"),
                    ));
                    if !session.outbox.push_wait(frame).await {
                        self.unsubscribe(session, name);
                        return Ok(Recovery::Closed);
                    }
                    cursor = ev.sequence;
                    count += 1;
                }
                if n < batch {
                    break;
                }
            }
        } else if failure.is_none() && after < start.sequence {
            // A room without history cannot replay anything.
            failure = Some(RecoveryFailure::Gap);
        }

        // Final phase under the publish lock: nothing can be published until the session
        // is a member, so the tail read here and the first live event meet exactly.
        let log = room.log();
        let head = log.head.clone();
        if failure.is_none() && head.epoch != start.epoch {
            failure = Some(RecoveryFailure::EpochChanged);
        }
        if failure.is_none() && keeps && head.sequence > cursor {
            let read = self.inner.history.read_since(name, cursor, usize::MAX)?;
            if read.complete {
                for ev in read.events {
                    let frame = Bytes::from(mark_replayed(
                        std::str::from_utf8(&ev.frame).unwrap_or("{}"),
                    ));
                    session.outbox.push_unbounded(frame);
                    count += 1;
                }
            } else {
                failure = Some(RecoveryFailure::Gap);
            }
        }
        let outcome = match failure {
            None => {
                let frame = Reply::ReplayComplete {
                    room: name,
                    replayed_count: count,
                }
                .to_json();
                session.outbox.push_unbounded(Bytes::from(frame));
                Recovery::Replayed {
                    count,
                    head: head.clone(),
                }
            }
            Some(reason) => {
                let frame = Reply::RecoveryFailed {
                    room: name,
                    reason: reason.as_str(),
                    sequence: head.sequence,
                    epoch: &head.epoch,
                }
                .to_json();
                session.outbox.push_unbounded(Bytes::from(frame));
                Recovery::Failed {
                    reason,
                    head: head.clone(),
                }
            }
        };
        room.add(session);
        drop(log);
        self.inner
            .stats
            .replayed
            .fetch_add(count, Ordering::Relaxed);
        Ok(outcome)
    }
}

//! Subscribing with a resume point: replay what the client missed, then switch to live
//! without losing or repeating an event.
//!
//! A recovery is two steps. [`Hub::begin_recovery`] runs synchronously while the request
//! is handled: it reserves the room in the session's subscription list (state
//! `Recovering`, counted against `max_subscriptions`) or refuses, so the request gets
//! exactly one reply (the ack, or an error). [`Hub::recover`] then replays:
//!
//! 1. The bulk is read from history in batches and pushed with back-pressure
//!    ([`Outbox::push_replay`]) while publishes continue. A replay may fill only a quarter
//!    of the session's queue, so acks, other rooms' events and heartbeats always find room
//!    and a reading client is never closed as a slow consumer because of its own replay.
//!    Before every frame the replay checks that its ticket is still current, so an
//!    unsubscribe, supersede, kick or eviction stops it at once.
//! 2. The tail (events published during the bulk phase) is read while holding the
//!    room's publish lock and the session joins before the lock is released: the next
//!    live event is exactly the one after the last replayed one. The tail is bounded by
//!    `replay_batch` events and by half of the queue; a longer tail drops the
//!    lock and goes back to phase 1.
//!
//! Rooms without history decide everything under the publish lock: if anything was
//! published after the client's position, the answer is `recovery_failed` `gap`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use roomcast_protocol::server::{mark_replayed, Reply};
use roomcast_protocol::{RoomName, Sequence};

use super::membership::{Reserved, Ticket};
use super::room::Room;
use super::{Hub, Session, SubscribeError};
use crate::history::{RoomHead, StoredEvent};
use crate::outbox::ReplayPush;

/// Why history could not cover what a client missed: the wire type (its spelling is the
/// `recovery_failed` event's `reason`) lives in the protocol crate.
pub use roomcast_protocol::server::RecoveryFailure;

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
    /// The room was left (unsubscribe, or the session was superseded, kicked or
    /// evicted) during the replay: it stopped without joining and queued nothing more.
    Cancelled,
}

/// A recovery reserved by [`Hub::begin_recovery`], to be run by [`Hub::recover`].
#[derive(Debug)]
pub struct RecoveryStart {
    room: Arc<Room>,
    reserved: Reserved,
    /// The room's head when the recovery was reserved (what the ack reports).
    pub head: RoomHead,
    marking: Marking,
}

/// How the events of a recovery reach the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marking {
    /// A resume: events marked `replayed`, then `replay_complete`.
    Replay,
    /// A join from a snapshot the client just got: the events after it are ordinary
    /// events, and no `replay_complete` follows.
    Snapshot,
}

impl RecoveryStart {
    /// The client holds a snapshot taken at the position it recovers from (a domain's
    /// stream joined on a cluster node): the events after it arrive as plain events, with
    /// no `replayed` mark and no `replay_complete`, exactly as after a snapshot on one
    /// node. A position that cannot be covered is still `recovery_failed`.
    pub fn from_snapshot(mut self) -> RecoveryStart {
        self.marking = Marking::Snapshot;
        self
    }
}

/// What the final phase decided.
enum Final {
    Done(Recovery),
    /// The tail was too long or did not fit: replay more in bulk first.
    Again,
}

/// How far a replay has got.
struct Progress {
    /// The last sequence queued (or the client's position before anything was).
    cursor: Sequence,
    /// Events queued so far.
    count: u64,
    /// Set once history is known not to cover the client's gap: the replay stops and
    /// the session goes live with `recovery_failed`.
    failure: Option<RecoveryFailure>,
    /// How its events reach the client.
    marking: Marking,
}

/// What the final phase found between the cursor and the head.
enum Tail {
    /// The events, marked replayed.
    Events(Vec<Bytes>),
    /// More than one batch: replay more in bulk first.
    TooLong,
    /// History cannot cover them.
    Failed(RecoveryFailure),
}

/// Whether the client's position can be resumed at all from the room's head at the
/// start: a position in another epoch, or past the head, cannot.
fn position_failure(
    start: &RoomHead,
    after: Sequence,
    epoch: Option<&str>,
) -> Option<RecoveryFailure> {
    if epoch.is_some_and(|e| e != start.epoch.as_str())
        || (epoch.is_none() && after > start.sequence)
    {
        Some(RecoveryFailure::EpochChanged)
    } else if after > start.sequence {
        Some(RecoveryFailure::Gap)
    } else {
        None
    }
}

/// The frame that ends a recovery (`replay_complete` or `recovery_failed`; none for a
/// successful join from a snapshot) and its outcome.
fn closing(
    name: &RoomName,
    progress: &Progress,
    failure: Option<RecoveryFailure>,
    head: RoomHead,
) -> (Option<String>, Recovery) {
    let count = progress.count;
    match failure {
        None => (
            (progress.marking == Marking::Replay).then(|| {
                Reply::ReplayComplete {
                    room: name,
                    replayed_count: count,
                }
                .to_json()
            }),
            Recovery::Replayed { count, head },
        ),
        Some(reason) => (
            Some(
                Reply::RecoveryFailed {
                    room: name,
                    reason: reason.as_str(),
                    sequence: head.sequence,
                    epoch: &head.epoch,
                }
                .to_json(),
            ),
            Recovery::Failed { reason, head },
        ),
    }
}

fn replayed(ev: &StoredEvent, marking: Marking) -> Bytes {
    match marking {
        Marking::Replay => Bytes::from(mark_replayed(
            std::str::from_utf8(&ev.frame).unwrap_or("{}"),
        )),
        Marking::Snapshot => ev.frame.clone(),
    }
}

impl Hub {
    /// Reserves `name` for a recovery (see the module docs). Fails only when the session
    /// is at `max_subscriptions` or the room's head cannot be read; nothing is queued.
    pub fn begin_recovery(
        &self,
        session: &Session,
        name: &RoomName,
    ) -> Result<RecoveryStart, SubscribeError> {
        let room = self.room(name)?;
        let max = self.inner.config.max_subscriptions;
        let reserved = session
            .subs()
            .reserve_recovery(&room.name, max)
            .map_err(|_| SubscribeError::TooManySubscriptions(max))?;
        let head = room.head();
        Ok(RecoveryStart {
            room,
            reserved,
            head,
            marking: Marking::Replay,
        })
    }

    /// [`Hub::begin_recovery`] then [`Hub::recover`].
    pub async fn subscribe_since(
        &self,
        session: &Arc<Session>,
        name: &RoomName,
        after: Sequence,
        epoch: Option<&str>,
    ) -> Result<Recovery, SubscribeError> {
        let start = self.begin_recovery(session, name)?;
        self.recover(session, start, after, epoch).await
    }

    /// Replays the room's events after `after` and makes the session live (see the
    /// module docs). `epoch` is the epoch the client's position belongs to, if it knows
    /// it. On an error the reservation is released and nothing more is queued.
    pub async fn recover(
        &self,
        session: &Arc<Session>,
        start: RecoveryStart,
        after: Sequence,
        epoch: Option<&str>,
    ) -> Result<Recovery, SubscribeError> {
        let room = start.room;
        let marking = start.marking;
        let ticket = match start.reserved {
            Reserved::Closed => return Ok(Recovery::Closed),
            Reserved::Already => {
                // Already live (or recovering) in this room: nothing can have been missed.
                if marking == Marking::Replay {
                    let frame = Reply::ReplayComplete {
                        room: &room.name,
                        replayed_count: 0,
                    }
                    .to_json();
                    session.outbox.push_unbounded(Bytes::from(frame));
                }
                return Ok(Recovery::Replayed {
                    count: 0,
                    head: room.head(),
                });
            }
            Reserved::New(ticket) => ticket,
        };
        let result = self
            .replay(session, &room, ticket, after, epoch, marking)
            .await;
        if result.is_err() {
            session.subs().abandon(&room.name, ticket);
        }
        result
    }

    async fn replay(
        &self,
        session: &Arc<Session>,
        room: &Arc<Room>,
        ticket: Ticket,
        after: Sequence,
        epoch: Option<&str>,
        marking: Marking,
    ) -> Result<Recovery, SubscribeError> {
        let start = room.head();
        let keeps = room.log().keeps_history;
        let mut progress = Progress {
            cursor: after,
            count: 0,
            failure: position_failure(&start, after, epoch),
            marking,
        };
        let wanted = || session.subs().is_recovering(&room.name, ticket);
        loop {
            if keeps {
                let stopped = self
                    .replay_bulk(session, room, &start, &mut progress, wanted)
                    .await?;
                if let Some(outcome) = stopped {
                    return Ok(outcome);
                }
            }
            // Let the writer make room first, so the tail usually fits at once.
            session.outbox.replay_room(wanted).await;
            match self.finish(session, room, ticket, &start, &mut progress)? {
                Final::Done(outcome) => {
                    self.inner
                        .stats
                        .replayed
                        .fetch_add(progress.count, Ordering::Relaxed);
                    return Ok(outcome);
                }
                Final::Again => continue,
            }
        }
    }

    /// Phase 1 (rooms that keep history): replays history after the cursor in batches, with back-pressure, until a
    /// batch comes back short. Returns the outcome if the session closed or the room was
    /// left meanwhile; records a failure instead of replaying when history cannot cover
    /// the gap.
    async fn replay_bulk(
        &self,
        session: &Session,
        room: &Room,
        start: &RoomHead,
        progress: &mut Progress,
        wanted: impl Fn() -> bool + Copy,
    ) -> Result<Option<Recovery>, SubscribeError> {
        let batch = self.inner.config.replay_batch.max(1);
        while progress.failure.is_none() {
            let read = self
                .inner
                .history
                .read_since(&room.name, progress.cursor, batch)?;
            if read.head.epoch != start.epoch {
                progress.failure = Some(RecoveryFailure::EpochChanged);
                break;
            }
            if !read.complete {
                progress.failure = Some(RecoveryFailure::Gap);
                break;
            }
            for ev in &read.events {
                match session
                    .outbox
                    .push_replay(replayed(ev, progress.marking), wanted)
                    .await
                {
                    ReplayPush::Queued => {}
                    ReplayPush::Closed => return Ok(Some(Recovery::Closed)),
                    ReplayPush::Cancelled => return Ok(Some(Recovery::Cancelled)),
                }
                progress.cursor = ev.sequence;
                progress.count += 1;
            }
            if read.events.len() < batch {
                break;
            }
        }
        Ok(None)
    }

    /// The final phase, under the room's publish lock: read the bounded tail, queue it
    /// and the closing frame, and join, all only if the ticket is still current.
    fn finish(
        &self,
        session: &Arc<Session>,
        room: &Arc<Room>,
        ticket: Ticket,
        start: &RoomHead,
        progress: &mut Progress,
    ) -> Result<Final, SubscribeError> {
        let name = &room.name;
        let log = room.log();
        let head = log.head.clone();
        let mut failure = progress.failure;
        if failure.is_none() && head.epoch != start.epoch {
            failure = Some(RecoveryFailure::EpochChanged);
        }
        if failure.is_none() && !log.keeps_history && head.sequence != progress.cursor {
            // Nothing to replay from: whatever was published after the position is lost.
            failure = Some(RecoveryFailure::Gap);
        }
        let mut tail = Vec::new();
        if failure.is_none() && log.keeps_history && head.sequence > progress.cursor {
            match self.read_tail(name, start, progress, head.sequence)? {
                Tail::Events(events) => tail = events,
                Tail::TooLong => return Ok(Final::Again),
                Tail::Failed(reason) => failure = Some(reason),
            }
        }
        // The session's subscription lock is held from the check to the join, so an
        // unsubscribe or close either happened before (and we stop) or comes after the
        // session is a member (and removes it).
        let mut subs = session.subs();
        if !subs.is_recovering(name, ticket) {
            return Ok(Final::Done(Recovery::Cancelled));
        }
        if !tail.is_empty() && !session.outbox.push_tail(&tail) {
            if session.outbox.is_closed() {
                return Ok(Final::Done(Recovery::Closed));
            }
            return Ok(Final::Again);
        }
        progress.count += tail.len() as u64;
        let (frame, outcome) = closing(name, progress, failure, head);
        if let Some(frame) = frame {
            session.outbox.push_unbounded(Bytes::from(frame));
        }
        subs.go_live(name, ticket);
        room.add(session);
        drop(subs);
        drop(log);
        Ok(Final::Done(outcome))
    }

    /// Reads the events between the cursor and the head (called under the publish lock),
    /// if there are at most `replay_batch` of them.
    fn read_tail(
        &self,
        name: &RoomName,
        start: &RoomHead,
        progress: &Progress,
        head: Sequence,
    ) -> Result<Tail, SubscribeError> {
        let cursor = progress.cursor;
        let tail_max = self.inner.config.replay_batch.max(1) as u64;
        if head.0 - cursor.0 > tail_max {
            return Ok(Tail::TooLong);
        }
        let read = self
            .inner
            .history
            .read_since(name, cursor, tail_max as usize)?;
        Ok(if read.complete && read.head.epoch == start.epoch {
            Tail::Events(
                read.events
                    .iter()
                    .map(|e| replayed(e, progress.marking))
                    .collect(),
            )
        } else if read.head.epoch != start.epoch {
            Tail::Failed(RecoveryFailure::EpochChanged)
        } else {
            Tail::Failed(RecoveryFailure::Gap)
        })
    }
}

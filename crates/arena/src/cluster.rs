//! The exchange on the arena node of a cluster: its events are sequenced by the cluster's
//! shared store (Redis), like every client publish, so every node serves its streams.
//!
//! Why a loop of its own: on one node a publish is a synchronous call into the local hub
//! and the pipelined group commit of [`Exchange::run`] stays as fast as it is. On a
//! cluster, a batch's events go out in one round trip ([`Sequencer::publish`]) and the
//! exchange awaits it before it replies and before it serves the batch's snapshot
//! requests: a snapshot then shows the state after every event Redis has sequenced for its
//! room, and the room's head read from Redis right then ([`Sequencer::heads`]) is the
//! sequence of the last of them, because the exchange is the only publisher into its rooms
//! and publishes nothing while it answers. A node joining a client from that snapshot
//! therefore replays exactly the events after it: nothing missing, nothing twice.
//!
//! A publish that fails after its batch was committed (Redis went away in between) leaves
//! the durable state ahead of the streams. Its replies are still sent (the orders exist),
//! and, as on one node, the exchange then refuses every change ([`OrderError::Unavailable`])
//! until the streams are consistent again: once Redis answers, the rooms that missed
//! events get a new epoch ([`Sequencer::reset`]), so every subscriber gets
//! `recovery_failed` (`epoch_changed`) and a fresh snapshot, never a silent skip.
//!
//! Per-order rooms (`order:{collective}/{id}`) are not published on a cluster: each would
//! be a Redis key per order, and the orders stream carries the same events.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use roomcast_engine::history::RoomHead;
use roomcast_protocol::request::RequestId;
use roomcast_protocol::RoomName;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::error::AttachError;
use crate::exchange::{Attaches, Exchange, Pending, Request};
use crate::rooms::ArenaRoom;
use crate::state::DomainEvent;

/// A future the sequencer returns.
pub type SequencerFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send + 'a>>;

/// How often the exchange retries giving the rooms that missed events a new epoch.
const RESET_RETRY: Duration = Duration::from_millis(500);

/// The cluster's shared sequencer as the exchange sees it (the server implements it on
/// Redis; the arena never speaks to Redis itself).
pub trait Sequencer: Send + Sync + 'static {
    /// Why events cannot be sequenced now, or `Ok`.
    fn ready(&self) -> Result<(), String>;

    /// Sequences and broadcasts `events` in order, in one round trip; the head each got.
    fn publish<'a>(&'a self, events: &'a [DomainEvent]) -> SequencerFuture<'a, Vec<RoomHead>>;

    /// The current heads of `rooms`.
    fn heads<'a>(&'a self, rooms: &'a [RoomName]) -> SequencerFuture<'a, Vec<RoomHead>>;

    /// Drops the rooms' sequences and history, so their next event starts a new epoch.
    fn reset<'a>(&'a self, rooms: &'a [RoomName]) -> SequencerFuture<'a, ()>;
}

/// A stream's snapshot: what it shows and the room position it shows it at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomSnapshot {
    /// `portfolio_snapshot`, `orders_snapshot`, `order_snapshot` or `book_snapshot`.
    pub event_type: String,
    /// The snapshot's `data`, JSON.
    pub data: String,
    /// The room's head the data shows: every later event has a higher sequence.
    pub head: RoomHead,
}

impl RoomSnapshot {
    /// The frame a stream client gets:
    /// `{"type":T,"room":R,"sequence":n,"epoch":E[,"id":I],"data":D}`.
    pub fn frame(&self, room: &RoomName, id: Option<&RequestId>) -> String {
        crate::exchange::snapshot_frame(&self.event_type, room, &self.head, id, &self.data)
    }
}

impl Exchange {
    /// [`Exchange::run`] on a cluster's arena node: one batch at a time, applied, written,
    /// published through the sequencer, answered (see the module docs).
    pub(crate) async fn run_clustered(
        mut self,
        sequencer: Arc<dyn Sequencer>,
        mut rx: mpsc::Receiver<Request>,
        cancel: CancellationToken,
    ) {
        let max = self.max_batch();
        let mut retry = tokio::time::interval(RESET_RETRY);
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                _ = retry.tick(), if !self.stale.is_empty() => {
                    self.reset_stale(&*sequencer).await;
                }
                m = rx.recv() => match m {
                    Some(first) => {
                        let batch = crate::exchange::gather(first, &mut rx, max);
                        self.run_batch_clustered(&*sequencer, batch).await;
                    }
                    None => break,
                },
            }
        }
        rx.close();
        let mut rest = Vec::new();
        while let Ok(m) = rx.try_recv() {
            rest.push(m);
            if rest.len() == max {
                self.run_batch_clustered(&*sequencer, std::mem::take(&mut rest))
                    .await;
            }
        }
        if !rest.is_empty() {
            self.run_batch_clustered(&*sequencer, rest).await;
        }
        self.close().await;
    }

    async fn reset_stale(&mut self, sequencer: &dyn Sequencer) {
        let rooms: Vec<RoomName> = self.stale.iter().cloned().collect();
        match sequencer.reset(&rooms).await {
            Ok(()) => {
                tracing::info!(
                    rooms = rooms.len(),
                    "arena rooms that missed events start new epochs; the exchange accepts commands again"
                );
                self.stale.clear();
            }
            Err(e) => tracing::debug!(error = %e, "arena rooms not reset yet"),
        }
    }

    async fn run_batch_clustered(&mut self, sequencer: &dyn Sequencer, batch: Vec<Request>) {
        let mut applied = self.apply(batch);
        let durable = self.write(applied.batch.take()).await;
        let Some(committed) = self.commit(applied, durable) else {
            return;
        };
        let events: Vec<DomainEvent> = committed
            .emit
            .events
            .into_iter()
            .filter(|e| !matches!(ArenaRoom::parse(&e.room), Ok(Some(ArenaRoom::Order(..)))))
            .collect();
        if let Err(e) = sequencer.publish(&events).await {
            let missed: BTreeSet<RoomName> = events.iter().map(|e| e.room.clone()).collect();
            tracing::error!(error = %e, rooms = missed.len(),
                "arena events could not be published; the exchange refuses changes until their rooms start new epochs");
            self.stale.extend(missed);
        }
        let mut snapshots = Vec::new();
        self.answer(
            committed.replies,
            committed.later,
            committed.deferred,
            Attaches::Refused,
            |_, pending| snapshots.push(pending),
        );
        self.answer_snapshots(sequencer, snapshots).await;
    }

    /// Reads the heads of the requested rooms (nothing is being published) and answers.
    async fn answer_snapshots(&self, sequencer: &dyn Sequencer, snapshots: Vec<Pending>) {
        if snapshots.is_empty() {
            return;
        }
        let rooms: Vec<RoomName> = snapshots.iter().map(|p| p.room.clone()).collect();
        let heads = if self.stale.is_empty() {
            sequencer.heads(&rooms).await
        } else {
            Err("the arena's streams are being reset".into())
        };
        match heads {
            Ok(heads) if heads.len() == snapshots.len() => {
                for (pending, head) in snapshots.into_iter().zip(heads) {
                    let result = pending.view.map(|(ty, data)| RoomSnapshot {
                        event_type: ty.to_owned(),
                        data,
                        head,
                    });
                    drop(pending.reply.send(result));
                }
            }
            other => {
                if let Err(e) = other {
                    tracing::warn!(error = %e, "arena snapshot heads not read");
                }
                for pending in snapshots {
                    drop(pending.reply.send(Err(AttachError::Unavailable)));
                }
            }
        }
    }

    /// Whether changes must be refused: the sequencer cannot take their events, or rooms
    /// still miss events of an earlier batch.
    pub(crate) fn sequencer_blocked(&self) -> bool {
        !self.stale.is_empty() || self.sequencer.as_ref().is_some_and(|s| s.ready().is_err())
    }
}

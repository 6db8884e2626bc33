//! The exchange task: the single writer of the exchange state.
//!
//! Every state change and every read arrives as a [`Request`] on one bounded
//! `tokio::sync::mpsc` queue, each with a oneshot for its reply. The task loops:
//!
//! 1. take the first queued request, then drain whatever else is queued (at most
//!    [`MAX_BATCH`]; with fsync `always`, one);
//! 2. apply the batch's writes to the in-memory state, collecting the commands to log and
//!    the events they caused;
//! 3. write the logged commands in ONE redb write transaction, on a blocking thread,
//!    durable per the fsync policy (periodic snapshots are the [`crate::checkpoint`]
//!    replica's job, fed the batch's commands once they are durable);
//! 4. only then publish the events into their rooms (the engine assigns their sequences)
//!    and send the replies: **an order whose reply was sent is durable**;
//! 5. serve the batch's reads and stream attaches, which therefore see exactly the state
//!    every published event describes.
//!
//! Steps 3 and 4 of one batch overlap with steps 1 and 2 of the next (pipelined group
//! commit, see [`Exchange::run`]): the fsync latency then bounds the latency, not the rate.
//!
//! Nothing is locked across an `.await`: the state is owned by the task. If a write fails,
//! the in-memory state is ahead of the disk, so the task stops accepting work (every later
//! request gets `Unavailable`) and a restart recovers the last durable state.
//!
//! **Atomic snapshots.** The task is the only publisher into arena rooms, so between its
//! `hub.room_head(room)` and `hub.subscribe(session, room)` in [`Exchange::attach`] no
//! event can enter the room: the snapshot pushed into the session's outbox shows exactly
//! the state at that sequence, and every later event of the room has a higher sequence.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use redb::Durability;
use roomcast_engine::auth::CollectiveId;
use roomcast_engine::hub::Fanout;
use roomcast_engine::Hub;
use roomcast_protocol::server::EventBody;
use roomcast_protocol::RoomName;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::arena::{ArenaStats, SymbolStats};
use crate::checkpoint::Checkpointer;
use crate::cluster::{RoomSnapshot, Sequencer};
use crate::config::FsyncPolicy;
use crate::error::{AttachError, OrderError};
use crate::state::{Command, Emit, ExchangeState, Mode, Placed};
use crate::store::{Batch, Store};
use crate::views::{OrderRequest, OrderView};

mod request;
mod streams;

pub(crate) use request::{fail, gather, Reply, Request};
pub(crate) use streams::snapshot_frame;

/// Most commands handled as one batch (one write transaction); each order of a
/// `PlaceMany` counts. With the batch's summaries merged, its burst into a market room is
/// about one `trade` per fill plus one `book_update` and one `ticker`, well under a
/// connection's default outbox of 1,024 frames.
pub const MAX_BATCH: usize = 512;

/// The task's state.
pub(crate) struct Exchange {
    pub(crate) state: ExchangeState,
    pub(crate) store: Store,
    pub(crate) hub: Hub,
    pub(crate) next_seq: u64,
    pub(crate) since_snapshot: u64,
    pub(crate) fsync: FsyncPolicy,
    pub(crate) stats: Arc<Mutex<ArenaStats>>,
    pub(crate) failed: bool,
    /// The replica that writes the periodic snapshots (`None`: it could not start; the
    /// log then keeps everything).
    pub(crate) checkpointer: Option<Checkpointer>,
    /// The cluster's sequencer on a cluster's arena node (`None`: the local hub sequences).
    pub(crate) sequencer: Option<Arc<dyn Sequencer>>,
    /// Rooms whose events of a committed batch the sequencer did not take (cluster only).
    pub(crate) stale: BTreeSet<RoomName>,
}

/// A durable batch, ready to publish and answer.
pub(crate) struct Committed {
    pub(crate) emit: Emit,
    pub(crate) replies: Vec<Reply>,
    pub(crate) deferred: Vec<Request>,
    /// For [`Exchange::after_replies`].
    pub(crate) later: Later,
}

/// What a batch leaves for after its replies: its commands for the checkpoint replica and
/// its counts.
pub(crate) struct Later {
    logged: Option<(u64, Vec<Command>)>,
    tally: Tally,
}

/// Where a deferred `Attach` is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attaches {
    /// Joined to the room on this node's hub.
    Here,
    /// Refused as unavailable: a cluster node joins sessions itself, from a snapshot's
    /// position, through the cluster's recovery.
    Refused,
}

/// A snapshot request whose view is taken: what is left is the room's head, which the
/// local exchange reads from its hub and a cluster node from its sequencer, for the whole
/// batch at once.
pub(crate) struct Pending {
    pub(crate) room: RoomName,
    pub(crate) view: Result<(&'static str, String), AttachError>,
    pub(crate) reply: oneshot::Sender<Result<RoomSnapshot, AttachError>>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A batch applied in memory, waiting for its write and then its publish.
pub(crate) struct Applied {
    /// What to write (`None`: nothing was logged).
    pub(crate) batch: Option<Batch>,
    /// The logged commands and the log sequence of the first, for the checkpoint replica
    /// once the batch is durable.
    logged: Option<(u64, Vec<Command>)>,
    emit: Emit,
    replies: Vec<Reply>,
    deferred: Vec<Request>,
    tally: Tally,
}

/// Orders accepted (new, not replays of a `client_order_id`) and rejected in a batch.
#[derive(Default)]
struct Tally {
    accepted: u64,
    rejected: u64,
}

/// A batch's write in progress: resolves to whether it is durable.
pub(crate) type Writing = Pin<Box<dyn Future<Output = bool> + Send>>;

impl Exchange {
    /// Runs until `cancel` fires or every sender is gone, then handles what is still
    /// queued and writes a final snapshot.
    ///
    /// Pipelined group commit: while one batch's transaction commits, the next batch is
    /// applied in memory (at most one waits), so the fsync latency does not cap the rate.
    /// Writes commit in batch order, and a batch publishes and replies only after its own
    /// write and every earlier batch's. A batch with reads or attaches stops the pipeline
    /// until it is published, so they see exactly the published state.
    pub(crate) async fn run(self, rx: mpsc::Receiver<Request>, cancel: CancellationToken) {
        if let Some(sequencer) = self.sequencer.clone() {
            return self.run_clustered(sequencer, rx, cancel).await;
        }
        self.run_local(rx, cancel).await
    }

    /// Commands per batch.
    pub(crate) fn max_batch(&self) -> usize {
        if self.fsync == FsyncPolicy::Always {
            1
        } else {
            MAX_BATCH
        }
    }

    async fn run_local(mut self, mut rx: mpsc::Receiver<Request>, cancel: CancellationToken) {
        let max = self.max_batch();
        let mut writing: Option<(Writing, Applied)> = None;
        let mut waiting: Option<Applied> = None;
        let mut stopping = false;
        loop {
            if writing.is_none() {
                if let Some(mut next) = waiting.take() {
                    writing = Some((self.write(next.batch.take()), next));
                }
            }
            let can_apply = !stopping
                && waiting.is_none()
                && writing.as_ref().is_none_or(|(_, a)| a.deferred.is_empty());
            if stopping && writing.is_none() {
                break;
            }
            tokio::select! {
                biased;
                durable = wait(writing.as_mut().map(|(w, _)| w)), if writing.is_some() => {
                    if let Some((_, applied)) = writing.take() {
                        self.finish(applied, durable);
                    }
                }
                _ = cancel.cancelled(), if !stopping => stopping = true,
                m = rx.recv(), if can_apply => match m {
                    Some(first) => {
                        let batch = gather(first, &mut rx, max);
                        waiting = Some(self.apply(batch));
                    }
                    None => stopping = true,
                },
            }
        }
        rx.close();
        let mut rest = Vec::new();
        while let Ok(m) = rx.try_recv() {
            rest.push(m);
            if rest.len() == max {
                self.run_batch(std::mem::take(&mut rest)).await;
            }
        }
        if !rest.is_empty() {
            self.run_batch(rest).await;
        }
        self.close().await;
    }

    /// The end of a run: a final snapshot and the clean-stop flag.
    pub(crate) async fn close(&mut self) {
        if let Some(checkpointer) = self.checkpointer.take() {
            // Let it finish a checkpoint in progress, so the file is closed cleanly.
            drop(tokio::task::spawn_blocking(move || checkpointer.stop()).await);
        }
        if !self.failed && self.since_snapshot > 0 {
            let batch = self.prepare(&[], true);
            if self.write(batch).await {
                self.since_snapshot = 0;
            }
        }
        if !self.failed {
            let store = self.store.clone();
            match tokio::task::spawn_blocking(move || store.mark_stopped()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "arena clean-stop flag not written"),
                Err(e) => tracing::error!(error = %e, "arena clean-stop flag not written"),
            }
        }
        tracing::info!("arena exchange stopped");
    }

    /// Apply, write, publish and reply, one batch at a time (shutdown drain).
    async fn run_batch(&mut self, batch: Vec<Request>) {
        let mut applied = self.apply(batch);
        let durable = self.write(applied.batch.take()).await;
        self.finish(applied, durable);
    }

    /// Places one order, logging it when it is new.
    fn place(
        &mut self,
        id: &CollectiveId,
        request: OrderRequest,
        at_ms: i64,
        emit: &mut Emit,
        logged: &mut Vec<Command>,
        tally: &mut Tally,
    ) -> Result<OrderView, OrderError> {
        let order_id = self.state.next_order_id();
        let placed = self.state.place(id, &request, at_ms, Mode::Live, emit);
        if placed.is_err() {
            tally.rejected += 1;
        }
        match placed? {
            Placed::New(view) => {
                tally.accepted += 1;
                logged.push(Command::Place {
                    order_id,
                    collective: id.clone(),
                    request,
                    at_ms,
                });
                Ok(view)
            }
            Placed::Duplicate(view) => Ok(view),
        }
    }

    /// Applies a batch's writes to the in-memory state; reads and attaches are deferred.
    pub(crate) fn apply(&mut self, batch: Vec<Request>) -> Applied {
        let at_ms = now_ms();
        let mut applied = Applied {
            batch: None,
            logged: None,
            emit: Emit::batched(),
            replies: Vec::new(),
            deferred: Vec::new(),
            tally: Tally::default(),
        };
        let mut logged = Vec::new();
        let emit = &mut applied.emit;
        // The rooms' history store must be able to take the events a change will cause:
        // while it is failing, changes are refused (503) rather than applied with events
        // that could never be sequenced. Reads and attaches still run.
        let history_ok = self.hub.history().writable().is_ok() && !self.sequencer_blocked();
        for request in batch {
            if self.failed || (!history_ok && request.writes()) {
                fail(request);
                continue;
            }
            match request {
                Request::Open { id, funding, reply } => {
                    if self.state.open_account(&id, &funding, emit) {
                        logged.push(Command::OpenAccount {
                            collective: id,
                            funding,
                        });
                    }
                    applied.replies.push(Reply::Open(reply, Ok(())));
                }
                Request::Place { id, request, reply } => {
                    let result =
                        self.place(&id, request, at_ms, emit, &mut logged, &mut applied.tally);
                    applied.replies.push(Reply::Order(reply, result));
                }
                Request::PlaceMany {
                    id,
                    requests,
                    reply,
                } => {
                    let mut results = Vec::with_capacity(requests.len());
                    for request in requests {
                        results.push(self.place(
                            &id,
                            request,
                            at_ms,
                            emit,
                            &mut logged,
                            &mut applied.tally,
                        ));
                    }
                    applied.replies.push(Reply::Orders(reply, results));
                }
                Request::Cancel {
                    id,
                    order_id,
                    reply,
                } => {
                    let result = self.state.cancel(&id, order_id, at_ms, emit);
                    if result.is_ok() {
                        logged.push(Command::Cancel {
                            collective: id,
                            order_id,
                            at_ms,
                        });
                    }
                    applied.replies.push(Reply::Order(reply, result));
                }
                other => applied.deferred.push(other),
            }
        }
        self.state.flush_summaries(&mut applied.emit);
        if !logged.is_empty() {
            let first_seq = self.next_seq;
            applied.batch = self.prepare(&logged, false);
            applied.logged = Some((first_seq, logged));
        }
        applied
    }

    /// Serialises logged commands (and a snapshot of the current state) into a batch and
    /// advances the log position. `None` (and the exchange marked failed) if a command does
    /// not serialise.
    fn prepare(&mut self, commands: &[Command], snapshot: bool) -> Option<Batch> {
        let mut batch = Batch {
            first_seq: self.next_seq,
            trim_to: self.checkpointer.as_ref().map_or(0, Checkpointer::covered),
            ..Batch::default()
        };
        for cmd in commands {
            match serde_json::to_vec(cmd) {
                Ok(bytes) => batch.commands.push(bytes),
                Err(e) => {
                    tracing::error!(error = %e, "arena command did not serialise");
                    self.failed = true;
                    return None;
                }
            }
        }
        if snapshot {
            // A copy now; its serialisation happens on the writer's thread.
            batch.snapshot = Some(self.state.snapshot());
        }
        let n = batch.commands.len() as u64;
        self.next_seq += n;
        self.since_snapshot = if batch.snapshot.is_some() {
            0
        } else {
            self.since_snapshot + n
        };
        Some(batch)
    }

    /// Starts writing a batch in one transaction on a blocking thread; resolves to whether
    /// it is durable. An exchange that has failed writes nothing and resolves to false.
    pub(crate) fn write(&self, batch: Option<Batch>) -> Writing {
        if self.failed {
            return Box::pin(std::future::ready(false));
        }
        let Some(batch) = batch else {
            return Box::pin(std::future::ready(true));
        };
        let durability = match self.fsync {
            FsyncPolicy::Never if batch.snapshot.is_none() => Durability::None,
            _ => Durability::Immediate,
        };
        let store = self.store.clone();
        Box::pin(async move {
            match tokio::task::spawn_blocking(move || store.write(&batch, durability)).await {
                Ok(Ok(())) => true,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "arena store write failed; the exchange stops accepting commands");
                    false
                }
                Err(e) => {
                    tracing::error!(error = %e, "arena store writer panicked; the exchange stops accepting commands");
                    false
                }
            }
        })
    }

    /// After a batch's write: the batch to publish and answer; or, if it is not durable,
    /// `None` after failing every request and stopping the exchange.
    pub(crate) fn commit(&mut self, applied: Applied, durable: bool) -> Option<Committed> {
        if !durable || self.failed {
            self.failed = true;
            applied.replies.into_iter().for_each(Reply::fail);
            applied.deferred.into_iter().for_each(fail);
            return None;
        }
        Some(Committed {
            emit: applied.emit,
            replies: applied.replies,
            deferred: applied.deferred,
            later: Later {
                logged: applied.logged,
                tally: applied.tally,
            },
        })
    }

    /// Once a batch is answered: hand its commands to the checkpoint replica, update the
    /// counters.
    pub(crate) fn after_replies(&mut self, later: Later) {
        if let (Some(checkpointer), Some((first_seq, commands))) =
            (&self.checkpointer, later.logged)
        {
            checkpointer.feed(first_seq, commands);
        }
        self.update_stats(later.tally.accepted, later.tally.rejected);
    }

    /// After a batch's write: publish its events and reply, then serve its reads and
    /// attaches; or, if it is not durable, fail them all and stop the exchange.
    fn finish(&mut self, applied: Applied, durable: bool) {
        let Some(committed) = self.commit(applied, durable) else {
            return;
        };
        self.publish(committed.emit);
        self.answer(
            committed.replies,
            committed.later,
            committed.deferred,
            Attaches::Here,
            |ex, pending| {
                let result = pending.view.and_then(|(ty, data)| {
                    let head = ex
                        .hub
                        .room_head(&pending.room)
                        .map_err(|e| AttachError::Subscribe(e.to_string()))?;
                    Ok(RoomSnapshot {
                        event_type: ty.to_owned(),
                        data,
                        head,
                    })
                });
                drop(pending.reply.send(result));
            },
        );
    }

    /// Answers a committed batch: sends its replies, hands it on
    /// ([`Exchange::after_replies`]), then serves its deferred requests in order: reads
    /// here, a snapshot's view through `snapshot`, an attach as `attaches` says, anything
    /// else fails.
    pub(crate) fn answer(
        &mut self,
        replies: Vec<Reply>,
        later: Later,
        deferred: Vec<Request>,
        attaches: Attaches,
        mut snapshot: impl FnMut(&Self, Pending),
    ) {
        replies.into_iter().for_each(Reply::send);
        self.after_replies(later);
        for request in deferred {
            match request {
                Request::Read(read) => read(&self.state),
                Request::Snapshot {
                    room,
                    principal,
                    reply,
                } => {
                    let view = self.view(&room, principal.as_ref());
                    snapshot(self, Pending { room, view, reply });
                }
                Request::Attach {
                    session,
                    room,
                    principal,
                    request_id,
                    reply,
                } if attaches == Attaches::Here => {
                    let r = self.attach(&session, &room, principal.as_ref(), request_id.as_ref());
                    drop(reply.send(r));
                }
                other => fail(other),
            }
        }
    }

    /// Publishes a durable batch's events. A room with no history and nobody in it (most
    /// `order:{collective}/{id}` rooms) is skipped without being created. If the history
    /// store refuses an event anyway (it failed after the batch was checked), the streams
    /// would silently diverge from the state, so the exchange stops: every later request
    /// gets `Unavailable`, and the restart that recovers it starts new room epochs.
    ///
    /// A batch of several events is published as a burst: a subscriber that gets several
    /// of them (its order, its portfolio, the market) receives them in one write.
    fn publish(&mut self, emit: Emit) {
        let fanout = if emit.events.len() > 1 {
            Fanout::Burst
        } else {
            Fanout::Auto
        };
        for event in emit.events {
            match self.hub.publish_observed(
                &event.room,
                event.event_type,
                &EventBody::data(&event.data),
                None,
                fanout,
            ) {
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(room = %event.room, error = %e,
                        "arena event could not be published; the exchange stops accepting commands");
                    self.failed = true;
                }
            }
        }
    }

    fn update_stats(&self, accepted: u64, rejected: u64) {
        let symbols = self
            .state
            .markets_view()
            .into_iter()
            .map(|m| SymbolStats {
                symbol: m.symbol,
                last_price: m.last_price,
                best_bid: m.best_bid,
                best_ask: m.best_ask,
                volume: m.volume,
            })
            .collect();
        let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        stats.orders_accepted += accepted;
        stats.orders_rejected += rejected;
        stats.trades = self.state.trade_count();
        stats.accounts = self.state.account_count() as u64;
        stats.symbols = symbols;
    }
}

/// The write in progress, if any (never resolves without one; the branch is guarded).
async fn wait(writing: Option<&mut Writing>) -> bool {
    match writing {
        Some(w) => w.await,
        None => std::future::pending().await,
    }
}

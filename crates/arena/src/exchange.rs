//! The exchange task: the single writer of the exchange state.
//!
//! Every state change and every read arrives as a [`Request`] on one bounded
//! `tokio::sync::mpsc` queue, each with a oneshot for its reply. The task loops:
//!
//! 1. take the first queued request, then drain whatever else is queued (at most
//!    [`MAX_BATCH`]; with fsync `always`, one);
//! 2. apply the batch's writes to the in-memory state, collecting the commands to log and
//!    the events they caused;
//! 3. write the logged commands (and, every `snapshot_every` commands, a snapshot) in ONE
//!    redb write transaction, on a blocking thread, durable per the fsync policy;
//! 4. only then publish the events into their rooms (the engine assigns their sequences)
//!    and send the replies: **an order whose reply was sent is durable**;
//! 5. serve the batch's reads and stream attaches, which therefore see exactly the state
//!    every published event describes.
//!
//! Nothing is locked across an `.await`: the state is owned by the task. If a write fails,
//! the in-memory state is ahead of the disk, so the task stops accepting work (every later
//! request gets `Unavailable`) and a restart recovers the last durable state.
//!
//! **Atomic snapshots.** The task is the only publisher into arena rooms, so between its
//! `hub.room_head(room)` and `hub.subscribe(session, room)` in [`Exchange::attach`] no
//! event can enter the room: the snapshot pushed into the session's outbox shows exactly
//! the state at that sequence, and every later event of the room has a higher sequence.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use redb::Durability;
use roomcast_engine::auth::CollectiveId;
use roomcast_engine::history::RoomHead;
use roomcast_engine::{Hub, Session};
use roomcast_protocol::request::RequestId;
use roomcast_protocol::server::EventBody;
use roomcast_protocol::RoomName;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::account::Funding;
use crate::arena::{ArenaStats, SymbolStats};
use crate::config::FsyncPolicy;
use crate::error::{ArenaError, AttachError, OrderError};
use crate::rooms::ArenaRoom;
use crate::state::{Command, Emit, ExchangeState, Mode, Placed};
use crate::store::{Batch, Store};
use crate::views::{OrderRequest, OrderView, PortfolioView};

/// Most requests handled as one batch (one write transaction).
pub const MAX_BATCH: usize = 512;

/// A read of the state, run by the task after the batch it arrived in is durable.
pub(crate) type Read = Box<dyn FnOnce(&ExchangeState) + Send>;

/// What the exchange task is asked to do.
pub(crate) enum Request {
    Open {
        id: CollectiveId,
        funding: Funding,
        reply: oneshot::Sender<Result<(), ArenaError>>,
    },
    Place {
        id: CollectiveId,
        request: OrderRequest,
        reply: oneshot::Sender<Result<OrderView, OrderError>>,
    },
    Cancel {
        id: CollectiveId,
        order_id: u64,
        reply: oneshot::Sender<Result<OrderView, OrderError>>,
    },
    Read(Read),
    Attach {
        session: Arc<Session>,
        room: RoomName,
        principal: Option<CollectiveId>,
        request_id: Option<RequestId>,
        reply: oneshot::Sender<Result<RoomHead, AttachError>>,
    },
}

enum Reply {
    Open(
        oneshot::Sender<Result<(), ArenaError>>,
        Result<(), ArenaError>,
    ),
    Order(
        oneshot::Sender<Result<OrderView, OrderError>>,
        Result<OrderView, OrderError>,
    ),
}

impl Reply {
    fn send(self) {
        // A dropped receiver (the caller went away) is not an error: the command stands.
        match self {
            Reply::Open(tx, r) => drop(tx.send(r)),
            Reply::Order(tx, r) => drop(tx.send(r)),
        }
    }

    fn fail(self) {
        match self {
            Reply::Open(tx, _) => drop(tx.send(Err(ArenaError::Unavailable))),
            Reply::Order(tx, _) => drop(tx.send(Err(OrderError::Unavailable))),
        }
    }
}

/// The task's state.
pub(crate) struct Exchange {
    pub(crate) state: ExchangeState,
    pub(crate) store: Store,
    pub(crate) hub: Hub,
    pub(crate) next_seq: u64,
    pub(crate) since_snapshot: u64,
    pub(crate) snapshot_every: u64,
    pub(crate) fsync: FsyncPolicy,
    pub(crate) stats: Arc<Mutex<ArenaStats>>,
    pub(crate) failed: bool,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Exchange {
    /// Runs until `cancel` fires or every sender is gone, then handles what is still
    /// queued and writes a final snapshot.
    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<Request>, cancel: CancellationToken) {
        let max = if self.fsync == FsyncPolicy::Always {
            1
        } else {
            MAX_BATCH
        };
        loop {
            let first = tokio::select! {
                biased;
                _ = cancel.cancelled() => None,
                m = rx.recv() => m,
            };
            let Some(first) = first else {
                break;
            };
            let mut batch = vec![first];
            while batch.len() < max {
                match rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            self.run_batch(batch).await;
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
        if !self.failed && self.since_snapshot > 0 {
            self.persist(Vec::new(), true).await;
        }
        tracing::info!("arena exchange stopped");
    }

    async fn run_batch(&mut self, batch: Vec<Request>) {
        let at_ms = now_ms();
        let mut emit = Emit::new();
        let mut logged = Vec::new();
        let mut replies = Vec::new();
        let mut deferred = Vec::new();
        let (mut accepted, mut rejected) = (0u64, 0u64);
        for request in batch {
            if self.failed {
                fail(request);
                continue;
            }
            match request {
                Request::Open { id, funding, reply } => {
                    if self.state.open_account(&id, &funding, &mut emit) {
                        logged.push(Command::OpenAccount {
                            collective: id,
                            funding,
                        });
                    }
                    replies.push(Reply::Open(reply, Ok(())));
                }
                Request::Place { id, request, reply } => {
                    let order_id = self.state.next_order_id();
                    let result = match self
                        .state
                        .place(&id, &request, at_ms, Mode::Live, &mut emit)
                    {
                        Ok(Placed::New(view)) => {
                            accepted += 1;
                            logged.push(Command::Place {
                                order_id,
                                collective: id,
                                request,
                                at_ms,
                            });
                            Ok(view)
                        }
                        Ok(Placed::Duplicate(view)) => Ok(view),
                        Err(e) => {
                            rejected += 1;
                            Err(e)
                        }
                    };
                    replies.push(Reply::Order(reply, result));
                }
                Request::Cancel {
                    id,
                    order_id,
                    reply,
                } => {
                    let result = self.state.cancel(&id, order_id, at_ms, &mut emit);
                    if result.is_ok() {
                        logged.push(Command::Cancel {
                            collective: id,
                            order_id,
                            at_ms,
                        });
                    }
                    replies.push(Reply::Order(reply, result));
                }
                other => deferred.push(other),
            }
        }
        if !logged.is_empty() {
            let snapshot_due = self.since_snapshot + logged.len() as u64 >= self.snapshot_every;
            if !self.persist(logged, snapshot_due).await {
                replies.into_iter().for_each(Reply::fail);
                deferred.into_iter().for_each(fail);
                return;
            }
        }
        self.publish(emit);
        replies.into_iter().for_each(Reply::send);
        self.update_stats(accepted, rejected);
        for request in deferred {
            match request {
                Request::Read(read) => read(&self.state),
                Request::Attach {
                    session,
                    room,
                    principal,
                    request_id,
                    reply,
                } => {
                    let r = self.attach(&session, &room, principal.as_ref(), request_id.as_ref());
                    drop(reply.send(r));
                }
                other => fail(other),
            }
        }
    }

    /// Writes commands (and maybe a snapshot) in one transaction. Returns false, and marks
    /// the exchange failed, when the write fails.
    async fn persist(&mut self, commands: Vec<Command>, snapshot: bool) -> bool {
        let mut batch = Batch {
            first_seq: self.next_seq,
            ..Batch::default()
        };
        for cmd in &commands {
            match serde_json::to_vec(cmd) {
                Ok(bytes) => batch.commands.push(bytes),
                Err(e) => {
                    tracing::error!(error = %e, "arena command did not serialise");
                    self.failed = true;
                    return false;
                }
            }
        }
        if snapshot {
            match serde_json::to_vec(&self.state.snapshot()) {
                Ok(bytes) => batch.snapshot = Some(bytes),
                Err(e) => tracing::error!(error = %e, "arena snapshot did not serialise"),
            }
        }
        let durability = match self.fsync {
            FsyncPolicy::Never if batch.snapshot.is_none() => Durability::None,
            _ => Durability::Immediate,
        };
        let n = batch.commands.len() as u64;
        let has_snapshot = batch.snapshot.is_some();
        let store = self.store.clone();
        let result = tokio::task::spawn_blocking(move || store.write(&batch, durability)).await;
        match result {
            Ok(Ok(())) => {
                self.next_seq += n;
                self.since_snapshot = if has_snapshot {
                    0
                } else {
                    self.since_snapshot + n
                };
                true
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "arena store write failed; the exchange stops accepting commands");
                self.failed = true;
                false
            }
            Err(e) => {
                tracing::error!(error = %e, "arena store writer panicked; the exchange stops accepting commands");
                self.failed = true;
                false
            }
        }
    }

    fn publish(&self, emit: Emit) {
        for event in emit.events {
            if let Err(e) = self.hub.publish(
                &event.room,
                event.event_type,
                &EventBody::data(&event.data),
                None,
            ) {
                tracing::warn!(room = %event.room, error = %e, "arena publish failed");
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

    /// Pushes the room's snapshot into `session`'s outbox and joins it to the room; see the
    /// module docs for why nothing can fall between the two.
    fn attach(
        &self,
        session: &Arc<Session>,
        room: &RoomName,
        principal: Option<&CollectiveId>,
        request_id: Option<&RequestId>,
    ) -> Result<RoomHead, AttachError> {
        let kind = ArenaRoom::parse(room)?.ok_or(AttachError::NotArenaRoom)?;
        if let Some(owner) = kind.owner() {
            if principal != Some(owner) {
                return Err(AttachError::Forbidden);
            }
        }
        let (ty, data) = match &kind {
            ArenaRoom::Portfolio(c) => {
                let view = self
                    .state
                    .portfolio_view(c)
                    .unwrap_or_else(|| PortfolioView {
                        collective_id: c.clone(),
                        balances: Vec::new(),
                        positions: Vec::new(),
                        equity: Vec::new(),
                    });
                ("portfolio_snapshot", serde_json::to_string(&view))
            }
            ArenaRoom::Orders(c) => (
                "orders_snapshot",
                serde_json::to_string(&self.state.orders_snapshot(c)),
            ),
            ArenaRoom::Order(c, id) => {
                let view = self
                    .state
                    .order_of(c, *id)
                    .ok_or(AttachError::UnknownOrder)?;
                ("order_snapshot", serde_json::to_string(&view))
            }
            ArenaRoom::Market(symbol) => {
                let view = self
                    .state
                    .book_view(symbol, usize::MAX)
                    .ok_or(AttachError::UnknownSymbol)?;
                ("book_snapshot", serde_json::to_string(&view))
            }
        };
        let data = data.map_err(|e| AttachError::Subscribe(e.to_string()))?;
        let head = self
            .hub
            .subscribe(session, room)
            .map_err(|e| AttachError::Subscribe(e.to_string()))?;
        let frame = snapshot_frame(ty, room, &head, request_id, &data);
        session.outbox.push(Bytes::from(frame));
        Ok(head)
    }
}

fn fail(request: Request) {
    match request {
        Request::Open { reply, .. } => drop(reply.send(Err(ArenaError::Unavailable))),
        Request::Place { reply, .. } | Request::Cancel { reply, .. } => {
            drop(reply.send(Err(OrderError::Unavailable)))
        }
        Request::Read(_) => {}
        Request::Attach { reply, .. } => drop(reply.send(Err(AttachError::Unavailable))),
    }
}

/// `{"type":T,"room":R,"sequence":n,"epoch":E[,"id":I],"data":D}`.
fn snapshot_frame(
    ty: &str,
    room: &RoomName,
    head: &RoomHead,
    id: Option<&RequestId>,
    data: &str,
) -> String {
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned());
    let mut s = String::with_capacity(data.len() + 128);
    s.push_str("{\"type\":\"");
    s.push_str(ty);
    s.push_str("\",\"room\":");
    s.push_str(&quote(room.as_str()));
    s.push_str(",\"sequence\":");
    s.push_str(&head.sequence.0.to_string());
    s.push_str(",\"epoch\":");
    s.push_str(&quote(head.epoch.as_str()));
    if let Some(id) = id {
        s.push_str(",\"id\":");
        s.push_str(id.as_json());
    }
    s.push_str(",\"data\":");
    s.push_str(data);
    s.push('}');
    s
}

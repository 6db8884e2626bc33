//! [`Arena`]: the cheap-to-clone handle the server (and the demo bots) use. Every call is a
//! [`Request`](crate::exchange::Request) to the exchange task and an await of its reply.
//!
//! Start-up ([`Arena::start`]) validates the config, opens `<data_dir>/arena.redb`,
//! rebuilds the state (snapshot + log replay), runs the conservation check (an inconsistent
//! state is an error: the server refuses to start) and spawns the exchange task on the
//! caller's `TaskTracker`; the task stops when the `CancellationToken` fires, after handling
//! what is already queued.
//!
//! Ids: the public API speaks [`CollectiveId`] only. The order books use a dense
//! [`AccountId`](crate::matching::AccountId) per collective, interned when its account opens
//! and stored with the account; it never leaves the crate's state.

use std::path::Path;
use std::sync::{Arc, Mutex};

use roomcast_engine::auth::CollectiveId;
use roomcast_engine::history::RoomHead;
use roomcast_engine::{Hub, Session};
use roomcast_protocol::request::RequestId;
use roomcast_protocol::RoomName;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::account::Funding;
use crate::checkpoint::Checkpointer;
use crate::cluster::{RoomSnapshot, Sequencer};
use crate::config::ArenaConfig;
use crate::error::{ArenaError, AttachError, FundingError, OrderError};
use crate::exchange::{Exchange, Request};
use crate::instrument::Instruments;
use crate::state::{Emit, ExchangeState, Mode, StateLimits};
use crate::store::Store;
use crate::views::{BookView, MarketView, OrderRequest, OrderView, PortfolioView, TradeView};

/// Counters for the dashboard and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ArenaStats {
    /// Orders accepted since start.
    pub orders_accepted: u64,
    /// Orders rejected by risk checks since start.
    pub orders_rejected: u64,
    /// Trades in the exchange's state (survives restarts).
    pub trades: u64,
    /// Accounts open.
    pub accounts: u64,
    /// Per symbol market data.
    pub symbols: Vec<SymbolStats>,
}

/// One symbol's market data in [`ArenaStats`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SymbolStats {
    /// Symbol.
    pub symbol: String,
    /// Last trade price.
    pub last_price: Option<String>,
    /// Best bid.
    pub best_bid: Option<String>,
    /// Best ask.
    pub best_ask: Option<String>,
    /// Volume traded.
    pub volume: String,
}

struct Shared {
    instruments: Instruments,
    after_crash: bool,
    stats: Arc<Mutex<ArenaStats>>,
}

/// Handle to the exchange task. Clone freely.
#[derive(Clone)]
pub struct Arena {
    tx: mpsc::Sender<Request>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Arena {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Arena").finish_non_exhaustive()
    }
}

impl Arena {
    /// Opens or creates `<data_dir>/arena.redb` (`None`: in memory), recovers the state,
    /// checks conservation and spawns the exchange task (and the demo bots, if configured)
    /// on `tasks`; they stop when `cancel` fires.
    ///
    /// # Errors
    /// [`ArenaError::Config`], [`ArenaError::Storage`], or [`ArenaError::Conservation`] when
    /// the recovered state is inconsistent.
    pub async fn start(
        config: ArenaConfig,
        hub: Hub,
        data_dir: Option<&Path>,
        tasks: &TaskTracker,
        cancel: CancellationToken,
    ) -> Result<Arena, ArenaError> {
        Arena::launch(config, hub, data_dir, None, tasks, cancel).await
    }

    /// [`Arena::start`] on the arena node of a cluster: the exchange's events are sequenced
    /// and broadcast by `sequencer` (see [`crate::cluster`]), so every node serves its
    /// streams ([`Arena::snapshot`] gives them their starting point).
    ///
    /// # Errors
    /// As [`Arena::start`].
    pub async fn start_clustered(
        config: ArenaConfig,
        hub: Hub,
        data_dir: Option<&Path>,
        sequencer: Arc<dyn Sequencer>,
        tasks: &TaskTracker,
        cancel: CancellationToken,
    ) -> Result<Arena, ArenaError> {
        Arena::launch(config, hub, data_dir, Some(sequencer), tasks, cancel).await
    }

    async fn launch(
        config: ArenaConfig,
        hub: Hub,
        data_dir: Option<&Path>,
        sequencer: Option<Arc<dyn Sequencer>>,
        tasks: &TaskTracker,
        cancel: CancellationToken,
    ) -> Result<Arena, ArenaError> {
        let instruments = config.validate()?;
        let dir = data_dir.map(Path::to_path_buf);
        let recover_instruments = instruments.clone();
        let limits = StateLimits::of(&config);
        let (store, state, recovered) = tokio::task::spawn_blocking(move || {
            recover(dir.as_deref(), recover_instruments, limits)
        })
        .await
        .map_err(|e| ArenaError::Storage(e.to_string()))??;
        let checkpointer = match Checkpointer::start(
            recovered.replica,
            recovered.next_seq,
            recovered.snapshot_seq,
            config.snapshot_every,
            store.clone(),
        ) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(error = %e, "arena checkpoint thread not started; the log keeps everything");
                None
            }
        };
        let stats = Arc::new(Mutex::new(ArenaStats {
            trades: state.trade_count(),
            accounts: state.account_count() as u64,
            ..ArenaStats::default()
        }));
        let (tx, rx) = mpsc::channel(config.queue_capacity);
        let exchange = Exchange {
            state,
            store,
            hub,
            next_seq: recovered.next_seq,
            since_snapshot: recovered.replayed,
            fsync: config.fsync,
            stats: stats.clone(),
            failed: false,
            checkpointer,
            sequencer,
            stale: Default::default(),
        };
        tasks.spawn(exchange.run(rx, cancel.clone()));
        let arena = Arena {
            tx,
            shared: Arc::new(Shared {
                instruments,
                after_crash: recovered.after_crash,
                stats,
            }),
        };
        if let Some(demo) = config.demo {
            tasks.spawn(crate::demo::run(arena.clone(), demo, cancel));
        }
        Ok(arena)
    }

    /// Validates the funding fields of a collective (`starting_cash`, `starting_positions`).
    ///
    /// # Errors
    /// [`FundingError`] naming the bad field.
    pub fn parse_funding(
        &self,
        fields: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Funding, FundingError> {
        crate::funding::parse_funding(&self.shared.instruments, fields)
    }

    /// Whether the previous run of this data dir stopped without a clean shutdown. Then
    /// commands that were durable at the crash may never have had their events published,
    /// so stream clients must not resume arena rooms from an old `last_sequence`: the server
    /// should start new epochs for arena rooms (or send fresh snapshots) when this is true.
    pub fn recovered_after_crash(&self) -> bool {
        self.shared.after_crash
    }

    /// The validated instruments.
    pub fn instruments(&self) -> &Instruments {
        &self.shared.instruments
    }

    async fn call<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Request) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).await.ok()?;
        rx.await.ok()
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ExchangeState) -> T + Send + 'static,
    ) -> Option<T> {
        self.call(|tx| {
            Request::Read(Box::new(move |state: &ExchangeState| {
                drop(tx.send(f(state)));
            }))
        })
        .await
    }

    /// Opens an account once; an existing account is left as it is. Durable when it returns.
    ///
    /// # Errors
    /// [`ArenaError::Unavailable`] when the exchange is not running.
    pub async fn open_account(&self, id: CollectiveId, funding: Funding) -> Result<(), ArenaError> {
        self.call(|reply| Request::Open { id, funding, reply })
            .await
            .unwrap_or(Err(ArenaError::Unavailable))
    }

    /// Places an order; durable when it returns `Ok`.
    ///
    /// # Errors
    /// See [`OrderError`].
    pub async fn place_order(
        &self,
        id: &CollectiveId,
        request: OrderRequest,
    ) -> Result<OrderView, OrderError> {
        let id = id.clone();
        self.call(|reply| Request::Place { id, request, reply })
            .await
            .unwrap_or(Err(OrderError::Unavailable))
    }

    /// Places several orders of `id` in the given order, inside one batch of the exchange
    /// (one durable commit): each gets its own result, as if placed one by one, and none
    /// of another request can come between them.
    ///
    /// # Errors
    /// Per order, see [`OrderError`]; all [`OrderError::Unavailable`] when the exchange is
    /// not running.
    pub async fn place_orders(
        &self,
        id: &CollectiveId,
        requests: Vec<OrderRequest>,
    ) -> Vec<Result<OrderView, OrderError>> {
        let id = id.clone();
        let count = requests.len();
        self.call(|reply| Request::PlaceMany {
            id,
            requests,
            reply,
        })
        .await
        .unwrap_or_else(|| (0..count).map(|_| Err(OrderError::Unavailable)).collect())
    }

    /// Cancels an open order of `id`.
    ///
    /// # Errors
    /// See [`OrderError`].
    pub async fn cancel_order(
        &self,
        id: &CollectiveId,
        order_id: u64,
    ) -> Result<OrderView, OrderError> {
        let id = id.clone();
        self.call(|reply| Request::Cancel {
            id,
            order_id,
            reply,
        })
        .await
        .unwrap_or(Err(OrderError::Unavailable))
    }

    /// The orders of `id`: open ones, or also the recent closed ones.
    ///
    /// # Errors
    /// [`ArenaError::Unavailable`].
    pub async fn orders(
        &self,
        id: &CollectiveId,
        open_only: bool,
    ) -> Result<Vec<OrderView>, ArenaError> {
        let id = id.clone();
        self.read(move |s| s.orders_of(&id, open_only))
            .await
            .ok_or(ArenaError::Unavailable)
    }

    /// One order of `id` (someone else's is `None`).
    ///
    /// # Errors
    /// [`ArenaError::Unavailable`].
    pub async fn order(
        &self,
        id: &CollectiveId,
        order_id: u64,
    ) -> Result<Option<OrderView>, ArenaError> {
        let id = id.clone();
        self.read(move |s| s.order_of(&id, order_id))
            .await
            .ok_or(ArenaError::Unavailable)
    }

    /// The portfolio of `id` (`None` without an account).
    ///
    /// # Errors
    /// [`ArenaError::Unavailable`].
    pub async fn portfolio(&self, id: &CollectiveId) -> Result<Option<PortfolioView>, ArenaError> {
        let id = id.clone();
        self.read(move |s| s.portfolio_view(&id))
            .await
            .ok_or(ArenaError::Unavailable)
    }

    /// Every market (empty when the exchange is not running).
    pub async fn markets(&self) -> Vec<MarketView> {
        self.read(|s| s.markets_view()).await.unwrap_or_default()
    }

    /// The best `depth` levels of a book (`None`: unknown symbol).
    ///
    /// # Errors
    /// [`ArenaError::Unavailable`].
    pub async fn book(&self, symbol: &str, depth: usize) -> Result<Option<BookView>, ArenaError> {
        let symbol = symbol.to_owned();
        self.read(move |s| s.book_view(&symbol, depth))
            .await
            .ok_or(ArenaError::Unavailable)
    }

    /// The latest `limit` trades, newest first (`None`: unknown symbol).
    ///
    /// # Errors
    /// [`ArenaError::Unavailable`].
    pub async fn trades(
        &self,
        symbol: &str,
        limit: usize,
    ) -> Result<Option<Vec<TradeView>>, ArenaError> {
        let symbol = symbol.to_owned();
        self.read(move |s| s.trades_view(&symbol, limit))
            .await
            .ok_or(ArenaError::Unavailable)
    }

    /// Stream attach: pushes the room's snapshot frame into `session`'s outbox and joins it
    /// to the room, atomically with respect to the arena's publishes. Returns the room head
    /// the snapshot shows.
    ///
    /// # Errors
    /// See [`AttachError`].
    pub async fn attach(
        &self,
        session: Arc<Session>,
        room: &RoomName,
        principal_collective: Option<&CollectiveId>,
        request_id: Option<RequestId>,
    ) -> Result<RoomHead, AttachError> {
        let room = room.clone();
        let principal = principal_collective.cloned();
        self.call(|reply| Request::Attach {
            session,
            room,
            principal,
            request_id,
            reply,
        })
        .await
        .unwrap_or(Err(AttachError::Unavailable))
    }

    /// A stream's snapshot and the room position it shows, without joining the room: on a
    /// cluster the node serving the stream joins the session from that position through
    /// the cluster's recovery. A private room of another collective than
    /// `principal_collective` is [`AttachError::Forbidden`].
    ///
    /// # Errors
    /// See [`AttachError`].
    pub async fn snapshot(
        &self,
        room: &RoomName,
        principal_collective: Option<&CollectiveId>,
    ) -> Result<RoomSnapshot, AttachError> {
        let room = room.clone();
        let principal = principal_collective.cloned();
        self.call(|reply| Request::Snapshot {
            room,
            principal,
            reply,
        })
        .await
        .unwrap_or(Err(AttachError::Unavailable))
    }

    /// Whether `room` is an arena room (`portfolio:`, `orders:`, `order:`, `market:`).
    pub fn is_arena_room(room: &RoomName) -> bool {
        crate::rooms::is_arena_room(room)
    }

    /// Counters, as of the last batch.
    pub fn stats(&self) -> ArenaStats {
        self.shared
            .stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// What [`recover`] found besides the store and the state.
struct RecoveredState {
    /// A copy of the state for the checkpoint replica.
    replica: ExchangeState,
    /// The sequence the next logged command gets.
    next_seq: u64,
    /// The last log sequence the snapshot used covers.
    snapshot_seq: u64,
    /// Log entries replayed on top of it.
    replayed: u64,
    /// The last run did not stop cleanly.
    after_crash: bool,
}

/// Opens the store and rebuilds the state: snapshot, then log replay, then the
/// conservation check; and a copy of it for the checkpoint replica.
fn recover(
    dir: Option<&Path>,
    instruments: Instruments,
    limits: StateLimits,
) -> Result<(Store, ExchangeState, RecoveredState), ArenaError> {
    let store = Store::open(dir)?;
    store.check_instruments(&instruments)?;
    let recovered = store.recover()?;
    let mut replica = ExchangeState::new(instruments.clone(), limits);
    let mut state = ExchangeState::new(instruments, limits);
    if let Some(snapshot) = recovered.snapshot {
        state.restore(snapshot).map_err(ArenaError::Conservation)?;
    }
    let replayed = recovered.commands.len() as u64;
    let mut emit = Emit::discard();
    for (i, command) in recovered.commands.iter().enumerate() {
        state.apply(command, &mut emit, Mode::Replay).map_err(|e| {
            ArenaError::Conservation(format!("log entry {} of {replayed}: {e}", i + 1))
        })?;
    }
    state
        .check_conservation()
        .map_err(ArenaError::Conservation)?;
    let after_crash = store.mark_running()?;
    tracing::info!(
        replayed,
        accounts = state.account_count(),
        after_crash,
        "arena state recovered"
    );
    replica
        .restore(state.snapshot())
        .map_err(ArenaError::Conservation)?;
    Ok((
        store,
        state,
        RecoveredState {
            replica,
            next_seq: recovered.next_seq,
            snapshot_seq: recovered.snapshot_seq,
            replayed,
            after_crash,
        },
    ))
}

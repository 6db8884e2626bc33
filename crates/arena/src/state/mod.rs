//! [`ExchangeState`]: the whole exchange as one deterministic, synchronous state machine —
//! accounts, order records, one [`OrderBook`] per symbol and recent market data.
//!
//! It is driven by [`Command`]s, the same values the durable log stores: applying the same
//! commands to the same state always gives the same state and the same events, so recovery
//! is "load the snapshot, apply the logged commands". Every value a command needs (its
//! order id, its timestamp) is in the command; nothing here reads a clock or a random
//! number, and nothing depends on hash map iteration order.
//!
//! Each applied command appends the [`DomainEvent`]s it caused to an [`Emit`] sink, in the
//! order they happened; the exchange task publishes them after the command is durable.
//!
//! Files: `place.rs` (risk checks, matching, settlement), `emit.rs` (per-command summary
//! events), `views.rs` (state → wire views),
//! `check.rs` (the conservation check), `snapshot.rs` (serialised form and rebuild).

mod check;
mod emit;
mod place;
mod snapshot;
mod views;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, VecDeque};

use roomcast_engine::auth::CollectiveId;
use roomcast_protocol::RoomName;
use serde::{Deserialize, Serialize};

use crate::account::{Account, Funding};
use crate::config::ArenaConfig;
use crate::error::OrderError;
use crate::instrument::Instruments;
use crate::matching::{AccountId, BookLimits, OrderBook, Quantity};
use crate::views::{
    CancelReason, OrderRequest, OrderSide, OrderStatus, OrderType, OrderView, TimeInForce,
};

pub use snapshot::StateSnapshot;

/// A state change, as logged. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    /// Opens an account with its funding (ignored when it exists).
    OpenAccount {
        /// The collective.
        collective: CollectiveId,
        /// Its starting cash and positions.
        funding: Funding,
    },
    /// Places an order.
    Place {
        /// The id the order gets (the state's next order id).
        order_id: u64,
        /// Whose.
        collective: CollectiveId,
        /// The request as received.
        request: OrderRequest,
        /// When, Unix milliseconds.
        at_ms: i64,
    },
    /// Cancels an open order.
    Cancel {
        /// Whose.
        collective: CollectiveId,
        /// Which.
        order_id: u64,
        /// When, Unix milliseconds.
        at_ms: i64,
    },
}

/// One event for one room, ready to publish: `data` is the JSON of a view, serialised once
/// (an event for two rooms shares it).
#[derive(Debug, Clone)]
pub struct DomainEvent {
    /// The room.
    pub room: RoomName,
    /// The event type (`order_created`, `trade`, ...).
    pub event_type: &'static str,
    /// The event's `data`.
    pub data: std::sync::Arc<serde_json::value::RawValue>,
}

/// Where applied commands put their events. A disabled sink (log replay) drops them without
/// building them.
#[derive(Debug, Default)]
pub struct Emit {
    enabled: bool,
    /// Summaries wait for [`ExchangeState::flush_summaries`] instead of ending each command.
    batched: bool,
    pending: emit::Pending,
    /// The events, in order.
    pub events: Vec<DomainEvent>,
}

impl Emit {
    /// A sink that keeps events; each command ends with its own summary events.
    pub fn new() -> Emit {
        Emit {
            enabled: true,
            ..Emit::default()
        }
    }

    /// A sink that keeps events and merges the summary events (balances, positions, book
    /// levels, ticker) of all commands until [`ExchangeState::flush_summaries`].
    pub fn batched() -> Emit {
        Emit {
            enabled: true,
            batched: true,
            ..Emit::default()
        }
    }

    /// A sink that drops them (replay).
    pub fn discard() -> Emit {
        Emit::default()
    }

    fn push<T: Serialize>(
        &mut self,
        room: Option<RoomName>,
        event_type: &'static str,
        data: impl FnOnce() -> T,
    ) {
        self.push_to([room], event_type, data);
    }

    /// One event for several rooms, serialised once.
    fn push_to<T: Serialize, const N: usize>(
        &mut self,
        rooms: [Option<RoomName>; N],
        event_type: &'static str,
        data: impl FnOnce() -> T,
    ) {
        if !self.enabled {
            return;
        }
        let data: std::sync::Arc<serde_json::value::RawValue> =
            match serde_json::value::to_raw_value(&data()) {
                Ok(raw) => raw.into(),
                Err(e) => {
                    tracing::error!(error = %e, "arena event did not serialise");
                    return;
                }
            };
        for room in rooms.into_iter().flatten() {
            self.events.push(DomainEvent {
                room,
                event_type,
                data: data.clone(),
            });
        }
    }
}

/// What a place command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placed {
    /// A new order was accepted (and must be logged).
    New(OrderView),
    /// The client order id was already used: the first order, unchanged (not logged).
    Duplicate(OrderView),
}

/// Whether checks that depend on the current configuration rather than on the state
/// (market open, max order size) apply: they do for new commands, not for log replay,
/// which must reproduce what was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A new command.
    Live,
    /// Replaying the log.
    Replay,
}

/// One order as the exchange remembers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRecord {
    /// Id.
    pub id: u64,
    /// Owner.
    pub owner: CollectiveId,
    /// Instrument.
    pub symbol: String,
    /// Side.
    pub side: OrderSide,
    /// Type.
    pub order_type: OrderType,
    /// Time in force as applied.
    pub tif: TimeInForce,
    /// Limit price in ticks.
    pub price: Option<u64>,
    /// Lots ordered.
    pub quantity: u64,
    /// Lots filled.
    pub filled: u64,
    /// Cash value of the fills.
    pub filled_value: i128,
    /// Status.
    pub status: OrderStatus,
    /// Why it was cancelled.
    pub cancel_reason: Option<CancelReason>,
    /// Cash still reserved for it (buys; 0 once closed).
    pub reserved_cash: i128,
    /// The client's id for it.
    pub client_order_id: Option<String>,
    /// Created, Unix ms.
    pub created_ms: i64,
    /// Last change, Unix ms.
    pub updated_ms: i64,
}

impl OrderRecord {
    /// Whether it still rests (open or partially filled).
    pub fn is_open(&self) -> bool {
        matches!(
            self.status,
            OrderStatus::Open | OrderStatus::PartiallyFilled
        )
    }

    /// Lots still open.
    pub fn remaining(&self) -> u64 {
        if self.is_open() {
            self.quantity - self.filled
        } else {
            0
        }
    }
}

/// One remembered trade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TradeRecord {
    /// Trade id.
    pub id: u64,
    /// Price in ticks.
    pub price: u64,
    /// Lots.
    pub quantity: u64,
    /// The taker's side.
    pub taker_side: OrderSide,
    /// When, Unix ms.
    pub at_ms: i64,
}

/// Market data of one symbol.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketData {
    /// Last trade price in ticks.
    pub last_price: Option<u64>,
    /// Lots traded in total.
    pub volume: u128,
    /// Recent trades, oldest first (bounded).
    pub trades: VecDeque<TradeRecord>,
}

/// Bounds the state keeps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateLimits {
    /// See [`ArenaConfig::allow_shorts`].
    pub allow_shorts: bool,
    /// See [`ArenaConfig::max_open_orders_per_collective`].
    pub max_open_orders: usize,
    /// See [`ArenaConfig::recent_orders_per_collective`].
    pub recent_orders: usize,
    /// See [`ArenaConfig::recent_trades_per_symbol`].
    pub recent_trades: usize,
    /// See [`ArenaConfig::max_orders_per_book`].
    pub max_orders_per_book: usize,
}

impl StateLimits {
    /// The limits of a configuration.
    pub fn of(config: &ArenaConfig) -> StateLimits {
        StateLimits {
            allow_shorts: config.allow_shorts,
            max_open_orders: config.max_open_orders_per_collective,
            recent_orders: config.recent_orders_per_collective,
            recent_trades: config.recent_trades_per_symbol,
            max_orders_per_book: config.max_orders_per_book,
        }
    }
}

/// The exchange. See the module docs.
#[derive(Debug, Clone)]
pub struct ExchangeState {
    instruments: Instruments,
    limits: StateLimits,
    accounts: BTreeMap<CollectiveId, Account>,
    by_handle: HashMap<AccountId, CollectiveId>,
    next_handle: u64,
    books: BTreeMap<String, OrderBook>,
    orders: HashMap<u64, OrderRecord>,
    markets: BTreeMap<String, MarketData>,
    next_order_id: u64,
    next_trade_id: u64,
    /// Scratch buffer for the book's match events.
    scratch: Vec<crate::matching::MatchEvent>,
}

impl ExchangeState {
    /// An empty exchange.
    pub fn new(instruments: Instruments, limits: StateLimits) -> ExchangeState {
        let mut books = BTreeMap::new();
        let mut markets = BTreeMap::new();
        for ins in instruments.iter() {
            let book_limits =
                BookLimits::new(limits.max_orders_per_book, Quantity(ins.max_order_lots))
                    .unwrap_or_default();
            books.insert(ins.symbol.clone(), OrderBook::new(book_limits));
            markets.insert(ins.symbol.clone(), MarketData::default());
        }
        ExchangeState {
            instruments,
            limits,
            accounts: BTreeMap::new(),
            by_handle: HashMap::new(),
            next_handle: 1,
            books,
            orders: HashMap::new(),
            markets,
            next_order_id: 1,
            next_trade_id: 1,
            scratch: Vec::new(),
        }
    }

    /// The instruments.
    pub fn instruments(&self) -> &Instruments {
        &self.instruments
    }

    /// The id the next accepted order gets.
    pub fn next_order_id(&self) -> u64 {
        self.next_order_id
    }

    /// Trades since the state began.
    pub fn trade_count(&self) -> u64 {
        self.next_trade_id - 1
    }

    /// Accounts opened.
    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }

    /// The book of a symbol.
    pub fn book(&self, symbol: &str) -> Option<&OrderBook> {
        self.books.get(symbol)
    }

    /// The account of a collective.
    pub fn account(&self, id: &CollectiveId) -> Option<&Account> {
        self.accounts.get(id)
    }

    /// An order record.
    pub fn order_record(&self, id: u64) -> Option<&OrderRecord> {
        self.orders.get(&id)
    }

    /// Market data of a symbol.
    pub fn market_data(&self, symbol: &str) -> Option<&MarketData> {
        self.markets.get(symbol)
    }

    /// Applies a logged command (replay). Errors mean the log does not fit the state.
    ///
    /// # Errors
    /// A description of the mismatch.
    pub fn apply(&mut self, command: &Command, emit: &mut Emit, mode: Mode) -> Result<(), String> {
        match command {
            Command::OpenAccount {
                collective,
                funding,
            } => {
                self.open_account(collective, funding, emit);
                Ok(())
            }
            Command::Place {
                order_id,
                collective,
                request,
                at_ms,
            } => {
                if *order_id != self.next_order_id {
                    return Err(format!(
                        "logged order id {order_id} but the state's next id is {}",
                        self.next_order_id
                    ));
                }
                match self.place(collective, request, *at_ms, mode, emit) {
                    Ok(Placed::New(_)) => Ok(()),
                    Ok(Placed::Duplicate(_)) => {
                        Err(format!("logged order {order_id} is a duplicate"))
                    }
                    Err(e) => Err(format!("logged order {order_id} is refused on replay: {e}")),
                }
            }
            Command::Cancel {
                collective,
                order_id,
                at_ms,
            } => self
                .cancel(collective, *order_id, *at_ms, emit)
                .map(|_| ())
                .map_err(|e| {
                    format!("logged cancel of order {order_id} is refused on replay: {e}")
                }),
        }
    }

    /// Opens an account with its funding. Returns false (and changes nothing) when the
    /// collective already has one. Funding must have been validated
    /// ([`crate::funding::parse_funding`]); unknown symbols are skipped.
    pub fn open_account(&mut self, id: &CollectiveId, funding: &Funding, emit: &mut Emit) -> bool {
        if self.accounts.contains_key(id) {
            return false;
        }
        let handle = AccountId(self.next_handle);
        self.next_handle += 1;
        let mut account = Account::new(id.clone(), handle);
        let primary = self.instruments.primary_currency().to_owned();
        for currency in self.instruments.currencies() {
            account.cash_mut(currency);
            account.funded_cash.insert(currency.to_owned(), 0);
        }
        let cash = self
            .instruments
            .cents_to_units(funding.cash_cents)
            .unwrap_or(0);
        account.cash_mut(&primary).total = cash;
        account.funded_cash.insert(primary.clone(), cash);
        for ins in self.instruments.iter() {
            let lots = funding.positions.get(&ins.symbol).copied().unwrap_or(0);
            account.position_mut(&ins.symbol).quantity = i128::from(lots);
            account
                .funded_positions
                .insert(ins.symbol.clone(), i128::from(lots));
        }
        self.by_handle.insert(handle, id.clone());
        self.accounts.insert(id.clone(), account);
        let currencies: Vec<String> = self.instruments.currencies().map(str::to_owned).collect();
        for c in currencies {
            self.emit_balance(id, &c, emit);
        }
        let symbols: Vec<String> = self.instruments.iter().map(|i| i.symbol.clone()).collect();
        for s in symbols {
            self.emit_position(id, &s, emit);
        }
        true
    }

    /// Cancels an open order of `id`.
    ///
    /// # Errors
    /// [`OrderError::NotFound`] for an unknown order or someone else's,
    /// [`OrderError::NotOpen`] for a closed one.
    pub fn cancel(
        &mut self,
        id: &CollectiveId,
        order_id: u64,
        at_ms: i64,
        emit: &mut Emit,
    ) -> Result<OrderView, OrderError> {
        let (symbol, side, price) = match self.orders.get(&order_id) {
            Some(o) if &o.owner == id => {
                if !o.is_open() {
                    return Err(OrderError::NotOpen);
                }
                (o.symbol.clone(), o.side, o.price)
            }
            _ => return Err(OrderError::NotFound),
        };
        let Some(book) = self.books.get_mut(&symbol) else {
            return Err(OrderError::NotFound);
        };
        let mut touched = emit::Touched {
            top_before: Some((
                book.best_bid().map(|b| b.0 .0),
                book.best_ask().map(|a| a.0 .0),
            )),
            ..emit::Touched::default()
        };
        if book.cancel(crate::matching::OrderId(order_id)).is_err() {
            return Err(OrderError::NotOpen);
        }
        self.close_order(order_id, CancelReason::Requested, at_ms, &mut touched, emit);
        if let Some(p) = price {
            touched.level(side, p);
        }
        self.flush_touched(&symbol, touched, emit);
        self.orders
            .get(&order_id)
            .map(|o| self.order_view(o))
            .ok_or(OrderError::NotFound)
    }
}

//! The events a command emits besides its order events: what it [`Touched`] (balances,
//! positions, book levels, best prices) is summed up once per command, so a command that
//! fills ten makers still publishes one `book_update` and one `balance_updated` per
//! account and currency, each with the absolute value after the whole command.
//!
//! The exchange task goes one step further with a [`Emit::batched`] sink: the summaries of
//! every command of a batch are merged and emitted once, after the batch's last command
//! ([`ExchangeState::flush_summaries`]). The batch's events are published together after
//! its commit anyway, so no subscriber could have seen the intermediate values; merging
//! keeps a burst of N orders at N order events and trades plus one `book_update` and one
//! `ticker` per symbol, instead of 3N market frames that could overrun a market
//! subscriber's outbox at once.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use roomcast_engine::auth::CollectiveId;

use super::{Emit, ExchangeState, OrderRecord};
use crate::matching::Price;
use crate::rooms;
use crate::views::{BookView, FillView, LevelView, OrderEventView, OrderSide};

/// What one command changed, for the summary events.
#[derive(Debug, Default)]
pub(super) struct Touched {
    pub(super) balances: Vec<(CollectiveId, String)>,
    pub(super) positions: Vec<(CollectiveId, String)>,
    pub(super) levels: Vec<(OrderSide, u64)>,
    /// Levels that were empty before the command (a resting order opened them).
    pub(super) created: Vec<(OrderSide, u64)>,
    pub(super) top_before: Option<(Option<u64>, Option<u64>)>,
    pub(super) traded: bool,
}

impl Touched {
    pub(super) fn balance(&mut self, id: &CollectiveId, currency: &str) {
        if !self.balances.iter().any(|(c, k)| c == id && k == currency) {
            self.balances.push((id.clone(), currency.to_owned()));
        }
    }

    pub(super) fn position(&mut self, id: &CollectiveId, symbol: &str) {
        if !self.positions.iter().any(|(c, k)| c == id && k == symbol) {
            self.positions.push((id.clone(), symbol.to_owned()));
        }
    }

    pub(super) fn level(&mut self, side: OrderSide, price: u64) {
        if !self.levels.contains(&(side, price)) {
            self.levels.push((side, price));
        }
    }
}

/// Summaries owed by the commands applied so far in a batch.
#[derive(Debug, Default)]
pub(super) struct Pending {
    balances: BTreeSet<(CollectiveId, String)>,
    positions: BTreeSet<(CollectiveId, String)>,
    markets: BTreeMap<String, MarketTouched>,
}

/// What a batch changed in one symbol's market.
#[derive(Debug, Default)]
struct MarketTouched {
    levels: HashSet<(OrderSide, u64)>,
    /// Levels that were empty when the batch first touched them: if they are empty again
    /// at its end, no subscriber ever saw them and no update is owed.
    created: HashSet<(OrderSide, u64)>,
    /// Best bid and ask before the batch's first command on the symbol.
    top_before: Option<(Option<u64>, Option<u64>)>,
    traded: bool,
}

impl Pending {
    /// Adds one command's summary.
    fn merge(&mut self, symbol: &str, touched: Touched) {
        self.balances.extend(touched.balances);
        self.positions.extend(touched.positions);
        let market = match self.markets.get_mut(symbol) {
            Some(m) => m,
            None => self.markets.entry(symbol.to_owned()).or_default(),
        };
        for level in touched.created {
            if !market.levels.contains(&level) {
                market.created.insert(level);
            }
        }
        market.levels.extend(touched.levels);
        if market.top_before.is_none() {
            market.top_before = touched.top_before;
        }
        market.traded |= touched.traded;
    }
}

impl ExchangeState {
    pub(super) fn emit_order(
        &self,
        order: &OrderRecord,
        ty: &'static str,
        fill: Option<FillView>,
        emit: &mut Emit,
    ) {
        if !emit.enabled {
            return;
        }
        let view = OrderEventView {
            order: self.order_view(order),
            fill,
        };
        emit.push_to(
            [
                rooms::order(&order.owner, order.id),
                rooms::orders(&order.owner),
            ],
            ty,
            || view,
        );
    }

    /// Ends a command: its summary is emitted now, or merged into the batch's when the
    /// sink is [`Emit::batched`].
    pub(super) fn flush_touched(&self, symbol: &str, touched: Touched, emit: &mut Emit) {
        if !emit.enabled {
            return;
        }
        emit.pending.merge(symbol, touched);
        if !emit.batched {
            self.flush_summaries(emit);
        }
    }

    /// Emits what the commands since the last flush changed: balances, positions, changed
    /// book levels and the ticker (when a trade happened or the best prices moved), each
    /// with its absolute value now.
    pub fn flush_summaries(&self, emit: &mut Emit) {
        if !emit.enabled {
            return;
        }
        let pending = std::mem::take(&mut emit.pending);
        for (id, currency) in &pending.balances {
            self.emit_balance(id, currency, emit);
        }
        for (id, sym) in &pending.positions {
            self.emit_position(id, sym, emit);
        }
        for (symbol, market) in pending.markets {
            self.emit_market(&symbol, market, emit);
        }
    }

    fn emit_market(&self, symbol: &str, touched: MarketTouched, emit: &mut Emit) {
        let (Some(ins), Some(book)) = (self.instruments.get(symbol), self.books.get(symbol)) else {
            return;
        };
        if !touched.levels.is_empty() {
            let mut update = BookView {
                symbol: symbol.to_owned(),
                bids: Vec::new(),
                asks: Vec::new(),
            };
            let mut levels: Vec<(OrderSide, u64)> = touched.levels.into_iter().collect();
            // Bids best (highest) first, then asks best (lowest) first: a total order over
            // both sides (comparing by the first side alone is not one).
            levels.sort_by_key(|&(side, price)| match side {
                OrderSide::Buy => (0, u64::MAX - price),
                OrderSide::Sell => (1, price),
            });
            for (side, price) in levels {
                let q = book.level_quantity(side.into(), Price(price));
                if q.0 == 0 && touched.created.contains(&(side, price)) {
                    continue;
                }
                let level = LevelView {
                    price: ins.format_price(price),
                    quantity: ins.format_quantity(i128::from(q.0)),
                };
                match side {
                    OrderSide::Buy => update.bids.push(level),
                    OrderSide::Sell => update.asks.push(level),
                }
            }
            if !update.bids.is_empty() || !update.asks.is_empty() {
                emit.push(rooms::market(symbol), "book_update", || update);
            }
        }
        let top = (
            book.best_bid().map(|b| b.0 .0),
            book.best_ask().map(|a| a.0 .0),
        );
        if touched.traded || touched.top_before.is_some_and(|before| before != top) {
            if let Some(ticker) = self.ticker_view(symbol) {
                emit.push(rooms::market(symbol), "ticker", || ticker);
            }
        }
    }

    pub(super) fn emit_balance(&self, id: &CollectiveId, currency: &str, emit: &mut Emit) {
        if let Some(view) = self.balance_view(id, currency) {
            emit.push(rooms::portfolio(id), "balance_updated", || view);
        }
    }

    pub(super) fn emit_position(&self, id: &CollectiveId, symbol: &str, emit: &mut Emit) {
        if let Some(view) = self.position_view(id, symbol) {
            emit.push(rooms::portfolio(id), "position_updated", || view);
        }
    }
}

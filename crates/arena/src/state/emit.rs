//! The events a command emits besides its order events: what it [`Touched`] (balances,
//! positions, book levels, best prices) is summed up once per command, so a command that
//! fills ten makers still publishes one `book_update` and one `balance_updated` per
//! account and currency, each with the absolute value after the whole command.

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

    /// The summary events of one command: balances, positions, changed book levels and the
    /// ticker (when a trade happened or the best prices moved).
    pub(super) fn flush_touched(&self, symbol: &str, touched: Touched, emit: &mut Emit) {
        if !emit.enabled {
            return;
        }
        for (id, currency) in &touched.balances {
            self.emit_balance(id, currency, emit);
        }
        for (id, sym) in &touched.positions {
            self.emit_position(id, sym, emit);
        }
        let (Some(ins), Some(book)) = (self.instruments.get(symbol), self.books.get(symbol)) else {
            return;
        };
        if !touched.levels.is_empty() {
            let mut update = BookView {
                symbol: symbol.to_owned(),
                bids: Vec::new(),
                asks: Vec::new(),
            };
            let mut levels = touched.levels.clone();
            levels.sort_by(|a, b| match a.0 {
                OrderSide::Buy => b.1.cmp(&a.1),
                OrderSide::Sell => a.1.cmp(&b.1),
            });
            for (side, price) in levels {
                let q = book.level_quantity(side.into(), Price(price));
                let level = LevelView {
                    price: ins.format_price(price),
                    quantity: ins.format_quantity(i128::from(q.0)),
                };
                match side {
                    OrderSide::Buy => update.bids.push(level),
                    OrderSide::Sell => update.asks.push(level),
                }
            }
            emit.push(rooms::market(symbol), "book_update", || update);
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

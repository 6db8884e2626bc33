//! The exchange state as the API shows it: every integer turned into the wire view with
//! decimal strings, using the instrument's units.

use roomcast_engine::auth::CollectiveId;

use super::{ExchangeState, OrderRecord, TradeRecord};
use crate::views::{
    BalanceView, BookView, EquityView, LevelView, MarketStatus, MarketView, OrderView,
    OrdersSnapshotView, PortfolioView, PositionView, TickerView, TradeView,
};

impl ExchangeState {
    /// An order record as the API shows it.
    pub fn order_view(&self, o: &OrderRecord) -> OrderView {
        let ins = self.instruments.get(&o.symbol);
        let qty = |lots: u64| {
            ins.map_or_else(|| lots.to_string(), |i| i.format_quantity(i128::from(lots)))
        };
        OrderView {
            order_id: o.id,
            client_order_id: o.client_order_id.clone(),
            collective_id: o.owner.clone(),
            symbol: o.symbol.clone(),
            side: o.side,
            order_type: o.order_type,
            time_in_force: o.tif,
            price: o.price.and_then(|p| ins.map(|i| i.format_price(p))),
            quantity: qty(o.quantity),
            filled_quantity: qty(o.filled),
            remaining_quantity: qty(o.remaining()),
            average_fill_price: ins
                .and_then(|i| i.format_average_price(o.filled_value, i128::from(o.filled))),
            status: o.status,
            cancel_reason: o.cancel_reason,
            reserved_cash: ins.map_or_else(
                || o.reserved_cash.to_string(),
                |i| i.format_cash(o.reserved_cash),
            ),
            created_at_ms: o.created_ms,
            updated_at_ms: o.updated_ms,
        }
    }

    /// One order of `id` (someone else's is `None`).
    pub fn order_of(&self, id: &CollectiveId, order_id: u64) -> Option<OrderView> {
        self.orders
            .get(&order_id)
            .filter(|o| &o.owner == id)
            .map(|o| self.order_view(o))
    }

    /// The orders of `id`: open ones, or open and recent closed ones, by id.
    pub fn orders_of(&self, id: &CollectiveId, open_only: bool) -> Vec<OrderView> {
        let Some(account) = self.accounts.get(id) else {
            return Vec::new();
        };
        let mut ids: Vec<u64> = account.open_orders.iter().copied().collect();
        if !open_only {
            ids.extend(account.recent.iter().copied());
            ids.sort_unstable();
        }
        ids.iter()
            .filter_map(|oid| self.orders.get(oid))
            .map(|o| self.order_view(o))
            .collect()
    }

    /// `orders_snapshot` data.
    pub fn orders_snapshot(&self, id: &CollectiveId) -> OrdersSnapshotView {
        OrdersSnapshotView {
            collective_id: id.clone(),
            orders: self.orders_of(id, true),
        }
    }

    /// Cash of `id` in `currency`.
    pub fn balance_view(&self, id: &CollectiveId, currency: &str) -> Option<BalanceView> {
        let cash = self.accounts.get(id)?.cash.get(currency)?;
        let f = |v: i128| self.instruments.format_cash(currency, v);
        Some(BalanceView {
            currency: currency.to_owned(),
            total: f(cash.total),
            reserved: f(cash.reserved),
            available: f(cash.available()),
            realised_pnl: f(cash.realised_pnl),
        })
    }

    /// Position of `id` in `symbol`.
    pub fn position_view(&self, id: &CollectiveId, symbol: &str) -> Option<PositionView> {
        let p = self.accounts.get(id)?.positions.get(symbol)?;
        let ins = self.instruments.get(symbol)?;
        Some(PositionView {
            symbol: symbol.to_owned(),
            quantity: ins.format_quantity(p.quantity),
            reserved: ins.format_quantity(p.reserved),
            available: ins.format_quantity(p.available()),
            average_entry_price: ins.format_average_price(p.cost_basis.abs(), p.quantity.abs()),
            realised_pnl: ins.format_cash(p.realised_pnl),
        })
    }

    /// The portfolio of `id`.
    pub fn portfolio_view(&self, id: &CollectiveId) -> Option<PortfolioView> {
        let account = self.accounts.get(id)?;
        let balances = account
            .cash
            .keys()
            .filter_map(|c| self.balance_view(id, c))
            .collect();
        let positions = self
            .instruments
            .iter()
            .filter_map(|i| self.position_view(id, &i.symbol))
            .collect();
        let equity = account
            .cash
            .iter()
            .map(|(currency, cash)| {
                let mut total = cash.total;
                for ins in self.instruments.iter().filter(|i| &i.quote == currency) {
                    let Some(p) = account.positions.get(&ins.symbol) else {
                        continue;
                    };
                    let last = self.markets.get(&ins.symbol).and_then(|m| m.last_price);
                    let value = match last {
                        Some(price) => i128::from(price)
                            .checked_mul(p.quantity)
                            .and_then(|v| v.checked_mul(ins.cash_per_tick_lot)),
                        None => Some(p.cost_basis),
                    };
                    total = total.saturating_add(value.unwrap_or(0));
                }
                EquityView {
                    currency: currency.clone(),
                    equity: self.instruments.format_cash(currency, total),
                }
            })
            .collect();
        Some(PortfolioView {
            collective_id: id.clone(),
            balances,
            positions,
            equity,
        })
    }

    /// A market's listing.
    pub fn market_view(&self, symbol: &str) -> Option<MarketView> {
        let ins = self.instruments.get(symbol)?;
        let ticker = self.ticker_view(symbol)?;
        Some(MarketView {
            symbol: symbol.to_owned(),
            quote_currency: ins.quote.clone(),
            tick_size: ins.tick_size.clone(),
            lot_size: ins.lot_size.clone(),
            max_order_size: ins.format_quantity(i128::from(ins.max_order_lots)),
            status: if ins.open {
                MarketStatus::Open
            } else {
                MarketStatus::Closed
            },
            last_price: ticker.last_price,
            best_bid: ticker.best_bid,
            best_ask: ticker.best_ask,
            volume: ticker.volume,
        })
    }

    /// Every market, in configuration order.
    pub fn markets_view(&self) -> Vec<MarketView> {
        self.instruments
            .iter()
            .filter_map(|i| self.market_view(&i.symbol))
            .collect()
    }

    /// The best `depth` levels of each side (`usize::MAX`: all of them).
    pub fn book_view(&self, symbol: &str, depth: usize) -> Option<BookView> {
        let ins = self.instruments.get(symbol)?;
        let book = self.books.get(symbol)?;
        let d = book.depth(depth);
        let levels = |side: &[(crate::matching::Price, crate::matching::Quantity)]| {
            side.iter()
                .map(|(p, q)| LevelView {
                    price: ins.format_price(p.0),
                    quantity: ins.format_quantity(i128::from(q.0)),
                })
                .collect()
        };
        Some(BookView {
            symbol: symbol.to_owned(),
            bids: levels(&d.bids),
            asks: levels(&d.asks),
        })
    }

    /// The most recent `limit` trades, newest first.
    pub fn trades_view(&self, symbol: &str, limit: usize) -> Option<Vec<TradeView>> {
        let market = self.markets.get(symbol)?;
        Some(
            market
                .trades
                .iter()
                .rev()
                .take(limit)
                .map(|t| self.trade_view(symbol, t))
                .collect(),
        )
    }

    pub(super) fn trade_view(&self, symbol: &str, t: &TradeRecord) -> TradeView {
        let ins = self.instruments.get(symbol);
        TradeView {
            trade_id: t.id,
            symbol: symbol.to_owned(),
            price: ins.map_or_else(|| t.price.to_string(), |i| i.format_price(t.price)),
            quantity: ins.map_or_else(
                || t.quantity.to_string(),
                |i| i.format_quantity(i128::from(t.quantity)),
            ),
            taker_side: t.taker_side,
            timestamp_ms: t.at_ms,
        }
    }

    /// `ticker` data.
    pub fn ticker_view(&self, symbol: &str) -> Option<TickerView> {
        let ins = self.instruments.get(symbol)?;
        let book = self.books.get(symbol)?;
        let market = self.markets.get(symbol)?;
        Some(TickerView {
            symbol: symbol.to_owned(),
            last_price: market.last_price.map(|p| ins.format_price(p)),
            best_bid: book.best_bid().map(|(p, _)| ins.format_price(p.0)),
            best_ask: book.best_ask().map(|(p, _)| ins.format_price(p.0)),
            volume: ins.format_quantity(i128::try_from(market.volume).unwrap_or(i128::MAX)),
        })
    }
}

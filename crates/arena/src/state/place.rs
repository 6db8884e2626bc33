//! Placing an order: the risk checks before the book sees it, the reservation, matching,
//! and the settlement of every fill into both accounts; plus closing orders.
//!
//! Reservations: a limit buy reserves `price × quantity` of cash; each fill consumes
//! `limit price × filled` of it and charges the actual (maker) price, so a better price
//! leaves the difference free at once, and whatever is left is released when the order
//! closes (filled, cancelled, IOC/FOK remainder). A **market buy** reserves what it would
//! cost to fill right now against the resting asks of other collectives (walking the book,
//! at most its quantity), and is refused with `insufficient_funds` when that is more than
//! the free cash; since the exchange is single-writer, that estimate is exactly what the
//! fills then cost. A sell reserves its quantity of the position (unless shorts are allowed,
//! the free position must cover it).

use roomcast_engine::auth::CollectiveId;

use super::emit::Touched;
use super::{Emit, ExchangeState, Mode, OrderRecord, Placed, TradeRecord};
use crate::error::{OrderError, RejectReason};
use crate::instrument::AmountError;
use crate::matching::{self, MatchEvent, NewOrder, OrderId, OrderKind, Price, Quantity};
use crate::rooms;
use crate::views::{
    CancelReason, FillView, Liquidity, OrderRequest, OrderSide, OrderStatus, OrderType, RejectView,
    TimeInForce,
};

/// Largest cash value of one order, in cash units: keeps every later sum far inside `i128`.
const MAX_ORDER_VALUE: i128 = i64::MAX as i128;

fn valid_client_order_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

fn reject(reason: RejectReason, message: impl Into<String>) -> OrderError {
    OrderError::Rejected {
        reason,
        message: message.into(),
    }
}

/// The checked, integer form of a request.
struct Checked {
    side: OrderSide,
    order_type: OrderType,
    tif: TimeInForce,
    price: Option<u64>,
    quantity: u64,
    /// Cash to reserve (buys).
    reserve_cash: i128,
}

impl ExchangeState {
    /// Places an order for `id`: see the module docs for the checks and reservations.
    ///
    /// # Errors
    /// [`OrderError::Rejected`] when a check fails (an `order_rejected` event is emitted).
    pub fn place(
        &mut self,
        id: &CollectiveId,
        request: &OrderRequest,
        at_ms: i64,
        mode: Mode,
        emit: &mut Emit,
    ) -> Result<Placed, OrderError> {
        if let Some(coid) = &request.client_order_id {
            if valid_client_order_id(coid) {
                let first = self
                    .accounts
                    .get(id)
                    .and_then(|a| a.client_ids.get(coid))
                    .and_then(|oid| self.orders.get(oid));
                if let Some(first) = first {
                    return Ok(Placed::Duplicate(self.order_view(first)));
                }
            }
        }
        let checked = match self.check(id, request, mode) {
            Ok(c) => c,
            Err(e) => {
                if let OrderError::Rejected { reason, message } = &e {
                    emit.push(rooms::orders(id), "order_rejected", || RejectView {
                        reason: reason.as_str().to_owned(),
                        message: message.clone(),
                        client_order_id: request.client_order_id.clone(),
                        symbol: request.symbol.clone(),
                        side: request.side,
                        order_type: request.order_type,
                        quantity: request.quantity.clone(),
                        price: request.price.clone(),
                    });
                }
                return Err(e);
            }
        };
        Ok(Placed::New(self.execute(id, request, checked, at_ms, emit)))
    }

    /// Every check that can refuse the order; changes nothing.
    fn check(
        &self,
        id: &CollectiveId,
        request: &OrderRequest,
        mode: Mode,
    ) -> Result<Checked, OrderError> {
        let Some(account) = self.accounts.get(id) else {
            return Err(reject(
                RejectReason::UnknownAccount,
                "the collective has no trading account",
            ));
        };
        if let Some(coid) = &request.client_order_id {
            if !valid_client_order_id(coid) {
                return Err(reject(
                    RejectReason::InvalidClientOrderId,
                    "client_order_id must be 1-64 characters of A-Z a-z 0-9 _ . : -",
                ));
            }
        }
        let Some(ins) = self.instruments.get(&request.symbol) else {
            return Err(reject(
                RejectReason::UnknownSymbol,
                format!("unknown symbol {:?}", request.symbol),
            ));
        };
        if mode == Mode::Live && !ins.open {
            return Err(reject(
                RejectReason::MarketClosed,
                format!("market {} is closed", ins.symbol),
            ));
        }
        let quantity = match ins.parse_quantity(&request.quantity) {
            Ok(q) => q.0,
            Err(AmountError::Invalid) => {
                return Err(reject(
                    RejectReason::InvalidQuantity,
                    "quantity must be a positive decimal string",
                ))
            }
            Err(AmountError::Misaligned) => {
                return Err(reject(
                    RejectReason::InvalidLot,
                    format!(
                        "quantity must be a multiple of the lot size {}",
                        ins.lot_size
                    ),
                ))
            }
        };
        if mode == Mode::Live && quantity > ins.max_order_lots {
            return Err(reject(
                RejectReason::OrderTooLarge,
                format!(
                    "quantity is above the max order size {}",
                    ins.format_quantity(i128::from(ins.max_order_lots))
                ),
            ));
        }
        let price = match (request.order_type, &request.price) {
            (OrderType::Limit, None) => {
                return Err(reject(
                    RejectReason::InvalidPrice,
                    "a limit order needs a price",
                ));
            }
            (OrderType::Market, Some(_)) => {
                return Err(reject(
                    RejectReason::InvalidPrice,
                    "a market order takes no price",
                ));
            }
            (OrderType::Market, None) => None,
            (OrderType::Limit, Some(p)) => match ins.parse_price(p) {
                Ok(p) => Some(p.0),
                Err(AmountError::Invalid) => {
                    return Err(reject(
                        RejectReason::InvalidPrice,
                        "price must be a positive decimal string",
                    ))
                }
                Err(AmountError::Misaligned) => {
                    return Err(reject(
                        RejectReason::InvalidTick,
                        format!(
                            "price must be a multiple of the tick size {}",
                            ins.tick_size
                        ),
                    ))
                }
            },
        };
        let tif = match (request.order_type, request.time_in_force) {
            (OrderType::Market, TimeInForce::Gtc) => TimeInForce::Ioc,
            (_, tif) => tif,
        };
        let book = self.books.get(&ins.symbol).ok_or(OrderError::Unavailable)?;
        if tif == TimeInForce::Gtc {
            if account.open_orders.len() >= self.limits.max_open_orders {
                return Err(reject(
                    RejectReason::TooManyOpenOrders,
                    format!(
                        "at most {} open orders per collective",
                        self.limits.max_open_orders
                    ),
                ));
            }
            if book.len() >= book.limits().max_orders() {
                return Err(reject(
                    RejectReason::BookFull,
                    format!("the {} book is full", ins.symbol),
                ));
            }
        }
        let too_large = || {
            reject(
                RejectReason::OrderTooLarge,
                "the order's value is too large",
            )
        };
        let side = request.side;
        let reserve_cash = match (side, price) {
            (_, Some(p)) => {
                let v = ins
                    .value(p, quantity)
                    .filter(|v| *v <= MAX_ORDER_VALUE)
                    .ok_or_else(too_large)?;
                if side == OrderSide::Buy {
                    v
                } else {
                    0
                }
            }
            (OrderSide::Buy, None) => {
                let (_, notional) = book.fill_estimate(
                    matching::Side::Buy,
                    account.handle,
                    None,
                    Quantity(quantity),
                );
                i128::try_from(notional)
                    .ok()
                    .and_then(|n| n.checked_mul(ins.cash_per_tick_lot))
                    .filter(|v| *v <= MAX_ORDER_VALUE)
                    .ok_or_else(too_large)?
            }
            (OrderSide::Sell, None) => 0,
        };
        match side {
            OrderSide::Buy => {
                let free = account.cash.get(&ins.quote).map_or(0, |c| c.available());
                if reserve_cash > free {
                    return Err(reject(
                        RejectReason::InsufficientFunds,
                        format!(
                            "the order needs {} {} but {} is available",
                            ins.format_cash(reserve_cash),
                            ins.quote,
                            ins.format_cash(free)
                        ),
                    ));
                }
            }
            OrderSide::Sell => {
                let free = account
                    .positions
                    .get(&ins.symbol)
                    .map_or(0, |p| p.available());
                if !self.limits.allow_shorts && i128::from(quantity) > free {
                    return Err(reject(
                        RejectReason::InsufficientPosition,
                        format!(
                            "the order sells {} {} but {} is available",
                            ins.format_quantity(i128::from(quantity)),
                            ins.symbol,
                            ins.format_quantity(free)
                        ),
                    ));
                }
            }
        }
        Ok(Checked {
            side,
            order_type: request.order_type,
            tif,
            price,
            quantity,
            reserve_cash,
        })
    }

    /// Reserves, records, matches and settles an order that passed its checks.
    fn execute(
        &mut self,
        id: &CollectiveId,
        request: &OrderRequest,
        c: Checked,
        at_ms: i64,
        emit: &mut Emit,
    ) -> crate::views::OrderView {
        let order_id = self.next_order_id;
        self.next_order_id += 1;
        let symbol = request.symbol.clone();
        let Some(ins) = self.instruments.get(&symbol).cloned() else {
            unreachable!("checked: {symbol} is an instrument");
        };
        let mut touched = Touched::default();
        let Some(account) = self.accounts.get_mut(id) else {
            unreachable!("checked: {id} has an account");
        };
        let handle = account.handle;
        match c.side {
            OrderSide::Buy => account.cash_mut(&ins.quote).reserved += c.reserve_cash,
            OrderSide::Sell => account.position_mut(&symbol).reserved += i128::from(c.quantity),
        }
        account.open_orders.insert(order_id);
        if let Some(coid) = &request.client_order_id {
            account.client_ids.insert(coid.clone(), order_id);
        }
        touched.balance(id, &ins.quote);
        touched.position(id, &symbol);
        let record = OrderRecord {
            id: order_id,
            owner: id.clone(),
            symbol: symbol.clone(),
            side: c.side,
            order_type: c.order_type,
            tif: c.tif,
            price: c.price,
            quantity: c.quantity,
            filled: 0,
            filled_value: 0,
            status: OrderStatus::Open,
            cancel_reason: None,
            reserved_cash: c.reserve_cash,
            client_order_id: request.client_order_id.clone(),
            created_ms: at_ms,
            updated_ms: at_ms,
        };
        self.emit_order(&record, "order_created", None, emit);
        self.orders.insert(order_id, record);

        let new = NewOrder {
            id: OrderId(order_id),
            account: handle,
            side: c.side.into(),
            kind: match c.price {
                Some(p) => OrderKind::Limit { price: Price(p) },
                None => OrderKind::Market,
            },
            quantity: Quantity(c.quantity),
            tif: c.tif.into(),
        };
        let mut events = std::mem::take(&mut self.scratch);
        events.clear();
        let Some(book) = self.books.get_mut(&symbol) else {
            unreachable!("every instrument has a book");
        };
        touched.top_before = Some((
            book.best_bid().map(|b| b.0 .0),
            book.best_ask().map(|a| a.0 .0),
        ));
        if let Err(e) = book.submit(new, &mut events) {
            // The checks make this unreachable; should it happen, the book is untouched and
            // the order is closed as unfilled, which releases its reservation.
            tracing::error!(order_id, error = %e, "book refused a checked order");
            self.close_order(order_id, CancelReason::Unfilled, at_ms, &mut touched, emit);
        }
        for event in &events {
            match *event {
                MatchEvent::Fill(fill) => self.settle(&ins, fill, at_ms, &mut touched, emit),
                MatchEvent::Rested {
                    side,
                    price,
                    quantity,
                    ..
                } => {
                    touched.level(side.into(), price.0);
                    // Nothing else of this command touches its own side: a level holding
                    // exactly the rested quantity was empty before it.
                    if self
                        .books
                        .get(&symbol)
                        .map(|b| b.level_quantity(side, price))
                        == Some(quantity)
                    {
                        touched.created.push((side.into(), price.0));
                    }
                }
                MatchEvent::Cancelled {
                    id: oid, reason, ..
                } => {
                    if oid.0 != order_id {
                        if let Some(o) = self.orders.get(&oid.0) {
                            if let Some(p) = o.price {
                                touched.level(o.side, p);
                            }
                        }
                    }
                    let reason = match reason {
                        matching::CancelReason::SelfTrade => CancelReason::SelfTrade,
                        matching::CancelReason::Unfilled => CancelReason::Unfilled,
                    };
                    self.close_order(oid.0, reason, at_ms, &mut touched, emit);
                }
            }
        }
        self.scratch = events;
        self.flush_touched(&symbol, touched, emit);
        match self.orders.get(&order_id) {
            Some(o) => self.order_view(o),
            None => unreachable!("order {order_id} was just recorded"),
        }
    }

    /// Settles one fill into both accounts and both orders.
    fn settle(
        &mut self,
        ins: &crate::instrument::Instrument,
        fill: matching::Fill,
        at_ms: i64,
        touched: &mut Touched,
        emit: &mut Emit,
    ) {
        let lots = fill.quantity.0;
        let value = ins.value(fill.price.0, lots).unwrap_or_else(|| {
            tracing::error!("fill value overflow despite checked order values");
            0
        });
        let trade_id = self.next_trade_id;
        self.next_trade_id += 1;
        let (buy_order, sell_order) = match fill.taker_side {
            matching::Side::Buy => (fill.taker.0, fill.maker.0),
            matching::Side::Sell => (fill.maker.0, fill.taker.0),
        };
        for (order_id, side) in [(buy_order, OrderSide::Buy), (sell_order, OrderSide::Sell)] {
            let Some(order) = self.orders.get_mut(&order_id) else {
                continue;
            };
            let consumed = match (side, order.price, order.order_type) {
                (OrderSide::Buy, Some(limit), OrderType::Limit) => {
                    ins.value(limit, lots).unwrap_or(value)
                }
                (OrderSide::Buy, _, _) => value,
                (OrderSide::Sell, ..) => 0,
            }
            .min(order.reserved_cash);
            order.reserved_cash -= consumed;
            order.filled += lots;
            order.filled_value += value;
            order.updated_ms = at_ms;
            let done = order.filled >= order.quantity;
            order.status = if done {
                OrderStatus::Filled
            } else {
                OrderStatus::PartiallyFilled
            };
            let owner = order.owner.clone();
            let Some(account) = self.accounts.get_mut(&owner) else {
                continue;
            };
            let cash = account.cash_mut(&ins.quote);
            let signed_lots = match side {
                OrderSide::Buy => {
                    cash.total -= value;
                    cash.reserved -= consumed;
                    i128::from(lots)
                }
                OrderSide::Sell => {
                    cash.total += value;
                    -i128::from(lots)
                }
            };
            let position = account.position_mut(&ins.symbol);
            if side == OrderSide::Sell {
                position.reserved -= i128::from(lots);
            }
            let pnl = position.apply_trade(signed_lots, value).unwrap_or_else(|| {
                tracing::error!("position arithmetic overflow");
                0
            });
            account.cash_mut(&ins.quote).realised_pnl += pnl;
            touched.balance(&owner, &ins.quote);
            touched.position(&owner, &ins.symbol);
            let liquidity = if order_id == fill.taker.0 {
                Liquidity::Taker
            } else {
                Liquidity::Maker
            };
            let fill_view = FillView {
                trade_id,
                price: ins.format_price(fill.price.0),
                quantity: ins.format_quantity(i128::from(lots)),
                liquidity,
            };
            if done {
                self.finish(order_id, touched);
            }
            if let Some(order) = self.orders.get(&order_id) {
                let ty = if done {
                    "order_filled"
                } else {
                    "order_partial"
                };
                self.emit_order(order, ty, Some(fill_view), emit);
            }
        }
        touched.level(fill.taker_side.opposite().into(), fill.price.0);
        touched.traded = true;
        let limit = self.limits.recent_trades;
        let trade = TradeRecord {
            id: trade_id,
            price: fill.price.0,
            quantity: lots,
            taker_side: fill.taker_side.into(),
            at_ms,
        };
        if let Some(market) = self.markets.get_mut(&ins.symbol) {
            market.last_price = Some(fill.price.0);
            market.volume += u128::from(lots);
            market.trades.push_back(trade.clone());
            while market.trades.len() > limit {
                market.trades.pop_front();
            }
        }
        let view = self.trade_view(&ins.symbol, &trade);
        emit.push(rooms::market(&ins.symbol), "trade", || view);
    }

    /// Closes an open order without filling the rest: releases its reservations.
    pub(super) fn close_order(
        &mut self,
        order_id: u64,
        reason: CancelReason,
        at_ms: i64,
        touched: &mut Touched,
        emit: &mut Emit,
    ) {
        let Some(order) = self.orders.get_mut(&order_id) else {
            return;
        };
        if !order.is_open() {
            return;
        }
        let remaining = i128::from(order.quantity - order.filled);
        order.status = OrderStatus::Cancelled;
        order.cancel_reason = Some(reason);
        order.updated_ms = at_ms;
        let owner = order.owner.clone();
        let symbol = order.symbol.clone();
        let side = order.side;
        if let Some(quote) = self.instruments.get(&symbol).map(|i| i.quote.clone()) {
            if let Some(account) = self.accounts.get_mut(&owner) {
                match side {
                    OrderSide::Sell => account.position_mut(&symbol).reserved -= remaining,
                    OrderSide::Buy => {}
                }
                touched.balance(&owner, &quote);
                touched.position(&owner, &symbol);
            }
        }
        self.finish(order_id, touched);
        if let Some(order) = self.orders.get(&order_id) {
            self.emit_order(order, "order_cancelled", None, emit);
        }
    }

    /// An order left the book: release its leftover cash reservation, move it from the open
    /// set to the recent ring, and forget the oldest closed orders past the bound.
    fn finish(&mut self, order_id: u64, touched: &mut Touched) {
        let Some(order) = self.orders.get_mut(&order_id) else {
            return;
        };
        let leftover = std::mem::take(&mut order.reserved_cash);
        let owner = order.owner.clone();
        let quote = self.instruments.get(&order.symbol).map(|i| i.quote.clone());
        let Some(account) = self.accounts.get_mut(&owner) else {
            return;
        };
        if let Some(quote) = quote {
            if leftover != 0 {
                account.cash_mut(&quote).reserved -= leftover;
                touched.balance(&owner, &quote);
            }
        }
        account.open_orders.remove(&order_id);
        account.recent.push_back(order_id);
        let mut evicted = Vec::new();
        while account.recent.len() > self.limits.recent_orders {
            if let Some(old) = account.recent.pop_front() {
                evicted.push(old);
            }
        }
        for old in evicted {
            if let Some(o) = self.orders.remove(&old) {
                if let Some(coid) = o.client_order_id {
                    if account.client_ids.get(&coid) == Some(&old) {
                        account.client_ids.remove(&coid);
                    }
                }
            }
        }
    }
}

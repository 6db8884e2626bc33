//! [`OrderBook`]: the resting orders of one symbol and the matching of incoming orders
//! against them.
//!
//! The book is three structures kept in step: two [`Ladder`]s (bids and asks, price → level,
//! best first), one [`OrderSlab`] holding every resting order linked into its level's FIFO,
//! and an index from [`OrderId`] to slab slot. A submit walks the opposite ladder from its best
//! level and each level from its oldest order; a cancel goes id → slot → node (which knows its
//! side and price) → level, and unlinks the node in place.
//!
//! Costs, with `L` price levels on a side and `F` orders touched: a submit that rests is one
//! index lookup plus one `O(log L)` level lookup; matching is `O(F)` plus `O(log L)` per level
//! emptied; a cancel is one index lookup plus `O(log L)`. Nothing allocates on these paths
//! once the slab, the index and the caller's event `Vec` have reached their working size
//! (a new price level may allocate a B-tree node).
//!
//! A submit validates everything (see [`MatchError`]) before it touches the book, so a
//! refused order leaves no trace. The index is std's `HashMap` with its default, randomly
//! seeded hasher: order ids may one day come from clients, and a predictable hasher would let
//! them collide every id into one bucket.

use std::collections::HashMap;

use super::error::MatchError;
use super::events::{CancelReason, Fill, MatchEvent, SubmitOutcome};
use super::ladder::Ladder;
use super::level::{Node, OrderSlab};
use super::limits::BookLimits;
use super::types::{
    AccountId, NewOrder, OrderId, OrderKind, Price, Quantity, RestingOrder, Side, TimeInForce,
};

/// The order book of one symbol. See the [module docs](super) for its invariants.
#[derive(Debug, Clone)]
pub struct OrderBook {
    limits: BookLimits,
    bids: Ladder,
    asks: Ladder,
    orders: OrderSlab,
    /// Resting order → its slot in `orders`. Its length is the number of resting orders.
    index: HashMap<OrderId, u32>,
}

/// Aggregated depth: per price level, the total resting quantity, best level first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Depth {
    /// Bid levels, highest price first.
    pub bids: Vec<(Price, Quantity)>,
    /// Ask levels, lowest price first.
    pub asks: Vec<(Price, Quantity)>,
}

impl Default for OrderBook {
    /// An empty book with the default [`BookLimits`].
    fn default() -> OrderBook {
        OrderBook::new(BookLimits::default())
    }
}

impl OrderBook {
    /// An empty book bounded by `limits`.
    pub fn new(limits: BookLimits) -> OrderBook {
        OrderBook {
            limits,
            bids: Ladder::new(Side::Buy),
            asks: Ladder::new(Side::Sell),
            orders: OrderSlab::default(),
            index: HashMap::new(),
        }
    }

    /// The book's limits.
    pub const fn limits(&self) -> BookLimits {
        self.limits
    }

    /// Matches `order` against the opposite side, then rests, cancels or kills its remainder
    /// according to its time in force.
    ///
    /// Appends to `events`, in order: a [`MatchEvent::Fill`] per trade (at the maker's price)
    /// and a [`MatchEvent::Cancelled`] with [`CancelReason::SelfTrade`] for each resting order
    /// of the same account met on the way; then, if something is left, either
    /// [`MatchEvent::Rested`] (GTC limit) or [`MatchEvent::Cancelled`] with
    /// [`CancelReason::Unfilled`] (IOC, market). A FOK order that cannot fill in full emits
    /// only that cancellation and changes nothing. `events` is not cleared first.
    ///
    /// # Errors
    /// Any [`MatchError`] but `UnknownOrder`; then the book and `events` are untouched.
    pub fn submit(
        &mut self,
        order: NewOrder,
        events: &mut Vec<MatchEvent>,
    ) -> Result<SubmitOutcome, MatchError> {
        self.validate(&order)?;
        let limit = match order.kind {
            OrderKind::Limit { price } => Some(price),
            OrderKind::Market => None,
        };
        let quantity = order.quantity.0;
        if order.tif == TimeInForce::Fok && !self.fillable(&order, limit) {
            events.push(MatchEvent::Cancelled {
                id: order.id,
                account: order.account,
                quantity: order.quantity,
                reason: CancelReason::Unfilled,
            });
            return Ok(SubmitOutcome {
                filled: Quantity::ZERO,
                rested: Quantity::ZERO,
                cancelled: order.quantity,
            });
        }

        let remaining = self.take(&order, limit, events);
        let filled = Quantity(quantity - remaining);
        let mut outcome = SubmitOutcome {
            filled,
            rested: Quantity::ZERO,
            cancelled: Quantity::ZERO,
        };
        if remaining == 0 {
            return Ok(outcome);
        }
        match (limit, order.tif) {
            (Some(price), TimeInForce::Gtc) => {
                let ladder = match order.side {
                    Side::Buy => &mut self.bids,
                    Side::Sell => &mut self.asks,
                };
                let level = ladder.level_or_insert(price);
                let node = Node::new(order.id, order.account, order.side, price, remaining);
                let slot = self.orders.push_back(level, node);
                self.index.insert(order.id, slot);
                events.push(MatchEvent::Rested {
                    id: order.id,
                    account: order.account,
                    side: order.side,
                    price,
                    quantity: Quantity(remaining),
                });
                outcome.rested = Quantity(remaining);
            }
            _ => {
                events.push(MatchEvent::Cancelled {
                    id: order.id,
                    account: order.account,
                    quantity: Quantity(remaining),
                    reason: CancelReason::Unfilled,
                });
                outcome.cancelled = Quantity(remaining);
            }
        }
        Ok(outcome)
    }

    /// Removes a resting order and returns it as it was (its remaining quantity, side,
    /// price and account).
    ///
    /// # Errors
    /// [`MatchError::UnknownOrder`] if no order with this id rests in the book.
    pub fn cancel(&mut self, id: OrderId) -> Result<RestingOrder, MatchError> {
        let Some(slot) = self.index.remove(&id) else {
            return Err(MatchError::UnknownOrder { id });
        };
        let (side, price) = {
            let node = self.orders.node(slot);
            (node.side, node.price)
        };
        let ladder = match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        };
        let Some(level) = ladder.level_mut(price) else {
            unreachable!("invariant: resting order {id} has a level at {price}");
        };
        let node = self.orders.unlink(level, slot);
        if level.is_empty() {
            ladder.remove(price);
        }
        Ok(node.resting())
    }

    /// The highest bid price and the total quantity resting there.
    pub fn best_bid(&self) -> Option<(Price, Quantity)> {
        self.bids.best().map(|(p, l)| (p, Quantity(l.total())))
    }

    /// The lowest ask price and the total quantity resting there.
    pub fn best_ask(&self) -> Option<(Price, Quantity)> {
        self.asks.best().map(|(p, l)| (p, Quantity(l.total())))
    }

    /// The best `levels` price levels of each side, aggregated.
    pub fn depth(&self, levels: usize) -> Depth {
        let side = |ladder: &Ladder| {
            ladder
                .iter()
                .take(levels)
                .map(|(p, l)| (p, Quantity(l.total())))
                .collect()
        };
        Depth {
            bids: side(&self.bids),
            asks: side(&self.asks),
        }
    }

    /// The total quantity resting at `price` on `side` (0 when no level is there).
    pub fn level_quantity(&self, side: Side, price: Price) -> Quantity {
        Quantity(self.ladder(side).level(price).map_or(0, |l| l.total()))
    }

    /// What a taker of `account` on `side` would trade right now for up to `quantity` lots
    /// at `limit` (`None`: any price): the lots and their notional in tick-lots. The
    /// account's own resting orders are skipped, as matching would cancel them rather than
    /// trade (self-trade prevention). The arena uses it to reserve cash for a market buy.
    pub fn fill_estimate(
        &self,
        side: Side,
        account: AccountId,
        limit: Option<Price>,
        quantity: Quantity,
    ) -> (Quantity, u128) {
        let mut left = quantity.0;
        let mut notional = 0u128;
        for (price, level) in self.ladder(side.opposite()).iter() {
            if left == 0 || !crosses(side, limit, price) {
                break;
            }
            for node in self.orders.iter(level) {
                if node.account == account {
                    continue;
                }
                let take = left.min(node.remaining);
                notional = notional.saturating_add(price.notional(Quantity(take)));
                left -= take;
                if left == 0 {
                    break;
                }
            }
        }
        (Quantity(quantity.0 - left), notional)
    }

    /// The resting order with this id, if any.
    pub fn order(&self, id: OrderId) -> Option<RestingOrder> {
        self.index
            .get(&id)
            .map(|&slot| self.orders.node(slot).resting())
    }

    /// Number of resting orders.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when no order rests.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Number of price levels on `side`.
    pub fn level_count(&self, side: Side) -> usize {
        self.ladder(side).len()
    }

    fn ladder(&self, side: Side) -> &Ladder {
        match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        }
    }

    /// Every check a submit needs, before anything changes.
    fn validate(&self, order: &NewOrder) -> Result<(), MatchError> {
        let id = order.id;
        if order.quantity.0 == 0 {
            return Err(MatchError::ZeroQuantity { id });
        }
        let max = self.limits.max_order_quantity();
        if order.quantity > max {
            return Err(MatchError::QuantityTooLarge {
                id,
                quantity: order.quantity,
                max,
            });
        }
        match (order.kind, order.tif) {
            (OrderKind::Limit { price }, _) if price.0 == 0 => {
                return Err(MatchError::ZeroPrice { id });
            }
            (OrderKind::Market, TimeInForce::Gtc) => {
                return Err(MatchError::MarketOrderCannotRest { id });
            }
            _ => {}
        }
        if self.index.contains_key(&id) {
            return Err(MatchError::DuplicateOrderId { id });
        }
        // Matching only removes orders, so a book below its limit before the match still has
        // room for the remainder after it.
        let max_orders = self.limits.max_orders();
        if order.tif == TimeInForce::Gtc && self.index.len() >= max_orders {
            return Err(MatchError::BookFull { max_orders });
        }
        Ok(())
    }

    /// Whether a FOK order can fill in full: enough quantity from other accounts at
    /// acceptable prices. Own orders do not count, since matching would cancel them
    /// (self-trade prevention) rather than fill against them.
    fn fillable(&self, order: &NewOrder, limit: Option<Price>) -> bool {
        let want = order.quantity.0;
        let acceptable = || {
            self.ladder(order.side.opposite())
                .iter()
                .take_while(|&(price, _)| crosses(order.side, limit, price))
        };
        // Cheap bound from the cached level totals: most kills end here.
        let mut upper = 0u64;
        for (_, level) in acceptable() {
            upper = upper.saturating_add(level.total());
            if upper >= want {
                break;
            }
        }
        if upper < want {
            return false;
        }
        let mut available = 0u64;
        for (_, level) in acceptable() {
            for node in self.orders.iter(level) {
                if node.account != order.account {
                    available = available.saturating_add(node.remaining);
                    if available >= want {
                        return true;
                    }
                }
            }
        }
        false
    }

    /// Trades `order` against the opposite side while it has quantity left and the best
    /// level is acceptable; returns the quantity left.
    fn take(
        &mut self,
        order: &NewOrder,
        limit: Option<Price>,
        events: &mut Vec<MatchEvent>,
    ) -> u64 {
        let mut remaining = order.quantity.0;
        let opposite = match order.side {
            Side::Buy => &mut self.asks,
            Side::Sell => &mut self.bids,
        };
        while remaining > 0 {
            let Some((price, level)) = opposite.best_mut() else {
                break;
            };
            if !crosses(order.side, limit, price) {
                break;
            }
            while remaining > 0 {
                let Some(slot) = level.head() else {
                    break;
                };
                let maker = *self.orders.node(slot);
                if maker.account == order.account {
                    self.orders.unlink(level, slot);
                    self.index.remove(&maker.id);
                    events.push(MatchEvent::Cancelled {
                        id: maker.id,
                        account: maker.account,
                        quantity: Quantity(maker.remaining),
                        reason: CancelReason::SelfTrade,
                    });
                    continue;
                }
                let traded = remaining.min(maker.remaining);
                if traded == maker.remaining {
                    self.orders.unlink(level, slot);
                    self.index.remove(&maker.id);
                } else {
                    self.orders.reduce(level, slot, traded);
                }
                remaining -= traded;
                events.push(MatchEvent::Fill(Fill {
                    taker: order.id,
                    maker: maker.id,
                    taker_account: order.account,
                    maker_account: maker.account,
                    taker_side: order.side,
                    price,
                    quantity: Quantity(traded),
                }));
            }
            if level.is_empty() {
                opposite.pop_best();
            }
        }
        remaining
    }

    /// Checks every structural invariant; panics with the first one broken. For tests.
    #[cfg(test)]
    pub(super) fn check_invariants(&self) {
        let mut linked = 0usize;
        for (side, ladder) in [(Side::Buy, &self.bids), (Side::Sell, &self.asks)] {
            for (price, level) in ladder.iter() {
                assert!(!level.is_empty(), "empty level {price} left in the ladder");
                let nodes: Vec<_> = self.orders.iter(level).collect();
                assert_eq!(nodes.len(), level.count() as usize, "level {price} count");
                let sum: u64 = nodes.iter().map(|n| n.remaining).sum();
                assert_eq!(sum, level.total(), "level {price} total");
                for n in nodes {
                    assert!(n.remaining > 0, "order {} has nothing left", n.id);
                    assert_eq!((n.side, n.price), (side, price), "order {} misfiled", n.id);
                    let slot = self.index.get(&n.id).copied();
                    let found = slot.map(|s| self.orders.node(s).id);
                    assert_eq!(found, Some(n.id), "order {} not indexed", n.id);
                    linked += 1;
                }
            }
        }
        assert_eq!(
            linked,
            self.index.len(),
            "index holds orders that are not linked"
        );
        if let (Some((bid, _)), Some((ask, _))) = (self.best_bid(), self.best_ask()) {
            assert!(bid < ask, "crossed book: bid {bid} >= ask {ask}");
        }
    }
}

/// Whether a taker on `side` with `limit` (`None` for market) accepts a maker at `price`.
const fn crosses(side: Side, limit: Option<Price>, price: Price) -> bool {
    match (limit, side) {
        (None, _) => true,
        (Some(limit), Side::Buy) => price.0 <= limit.0,
        (Some(limit), Side::Sell) => price.0 >= limit.0,
    }
}

//! What a submit produces: the [`MatchEvent`]s (fills, the rested remainder, cancellations)
//! in the order they happened, and the [`SubmitOutcome`] that sums them up for the taker.
//!
//! Events are the book's only output: portfolios and market data will be built by folding
//! them, so they carry everything a consumer needs (both ids, both accounts, the price) and
//! never need a look back into the book. [`OrderBook::submit`](super::OrderBook::submit)
//! appends them to a caller-owned `Vec` so the hot path allocates nothing once that `Vec` has
//! grown to its working size.

use super::types::{AccountId, OrderId, Price, Quantity, Side};

/// One thing that happened while matching an order, in the order it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchEvent {
    /// The incoming order (taker) traded with a resting order (maker).
    Fill(Fill),
    /// The taker's remainder now rests in the book (GTC limit orders only).
    Rested {
        /// The taker's id.
        id: OrderId,
        /// The taker's account.
        account: AccountId,
        /// Its side.
        side: Side,
        /// Its limit price, where it now rests.
        price: Price,
        /// The quantity that rests.
        quantity: Quantity,
    },
    /// An order left the book, or the taker's remainder was dropped, without trading.
    Cancelled {
        /// The order cancelled: the taker (reason [`CancelReason::Unfilled`]) or a resting
        /// order of the taker's own account ([`CancelReason::SelfTrade`]).
        id: OrderId,
        /// Its account.
        account: AccountId,
        /// The quantity cancelled.
        quantity: Quantity,
        /// Why.
        reason: CancelReason,
    },
}

/// A trade between the incoming order and one resting order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fill {
    /// The incoming order.
    pub taker: OrderId,
    /// The resting order it traded with.
    pub maker: OrderId,
    /// The taker's account.
    pub taker_account: AccountId,
    /// The maker's account.
    pub maker_account: AccountId,
    /// The taker's side (the aggressor side, as market data reports it).
    pub taker_side: Side,
    /// The trade price: always the maker's resting price.
    pub price: Price,
    /// The lots traded (above 0).
    pub quantity: Quantity,
}

impl Fill {
    /// The trade's value in tick-lots (`price * quantity`, in `u128` so it cannot overflow).
    pub const fn notional(&self) -> u128 {
        self.price.notional(self.quantity)
    }
}

/// Why an order or a remainder was cancelled during a submit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CancelReason {
    /// The taker's remainder could not rest: an IOC or market order found no more liquidity
    /// at acceptable prices, or a FOK order could not be filled in full (then nothing filled).
    Unfilled,
    /// A resting order of the taker's own account stood in the way and was cancelled
    /// (self-trade prevention, "cancel resting").
    SelfTrade,
}

/// What happened to the submitted order itself, summed up from its events.
///
/// Conservation: `filled + rested + cancelled` equals the order's quantity, and at most one
/// of `rested` and `cancelled` is above 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubmitOutcome {
    /// Lots traded.
    pub filled: Quantity,
    /// Lots left resting in the book.
    pub rested: Quantity,
    /// Lots dropped (IOC/market remainder, or the whole order for an unfillable FOK).
    pub cancelled: Quantity,
}

impl SubmitOutcome {
    /// The order's status after the submit.
    pub const fn status(&self) -> OrderStatus {
        if self.rested.0 > 0 {
            OrderStatus::Resting {
                partially_filled: self.filled.0 > 0,
            }
        } else if self.cancelled.0 > 0 {
            OrderStatus::Cancelled {
                partially_filled: self.filled.0 > 0,
            }
        } else {
            OrderStatus::Filled
        }
    }
}

/// The submitted order's status, see [`SubmitOutcome::status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    /// Fully filled; nothing rests.
    Filled,
    /// The remainder rests in the book.
    Resting {
        /// Some of it traded first.
        partially_filled: bool,
    },
    /// The remainder was cancelled.
    Cancelled {
        /// Some of it traded first.
        partially_filled: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(filled: u64, rested: u64, cancelled: u64) -> SubmitOutcome {
        SubmitOutcome {
            filled: Quantity(filled),
            rested: Quantity(rested),
            cancelled: Quantity(cancelled),
        }
    }

    #[test]
    fn status_follows_the_quantities() {
        assert_eq!(outcome(5, 0, 0).status(), OrderStatus::Filled);
        assert_eq!(
            outcome(0, 5, 0).status(),
            OrderStatus::Resting {
                partially_filled: false
            }
        );
        assert_eq!(
            outcome(2, 3, 0).status(),
            OrderStatus::Resting {
                partially_filled: true
            }
        );
        assert_eq!(
            outcome(2, 0, 3).status(),
            OrderStatus::Cancelled {
                partially_filled: true
            }
        );
    }

    #[test]
    fn fill_notional_is_price_times_quantity() {
        let fill = Fill {
            taker: OrderId(1),
            maker: OrderId(2),
            taker_account: AccountId(1),
            maker_account: AccountId(2),
            taker_side: Side::Buy,
            price: Price(101),
            quantity: Quantity(3),
        };
        assert_eq!(fill.notional(), 303);
    }
}

//! The vocabulary of an order: prices, quantities, ids, sides, order kinds, time in force,
//! and [`NewOrder`], the request the book is asked to match.
//!
//! Every number here is an integer newtype so that a price can never be passed where a
//! quantity is expected and no value is ever floating point: a [`Price`] counts ticks, a
//! [`Quantity`] counts lots. Their product, the notional value ([`Price::notional`]), is
//! computed in `u128`, where it cannot overflow.
//!
//! The fields are public because these values arrive from the wire; what makes them valid for
//! the book (a price above 0, a quantity above 0 and within the book's limit) is checked once,
//! at [`OrderBook::submit`](super::OrderBook::submit), and reported as a
//! [`MatchError`](super::MatchError).

use std::fmt;

/// A price in integer ticks. A limit price must be above 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Price(pub u64);

impl Price {
    /// The value of `quantity` lots at this price, in tick-lots. `u64 * u64` always fits a
    /// `u128`, so this cannot overflow.
    pub const fn notional(self, quantity: Quantity) -> u128 {
        self.0 as u128 * quantity.0 as u128
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A quantity in integer lots. An order's quantity must be above 0; a reported quantity
/// (filled, cancelled, a level's total) can be 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Quantity(pub u64);

impl Quantity {
    /// No lots.
    pub const ZERO: Quantity = Quantity(0);
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An order's id, chosen by the caller (the arena's sequencer). The book rejects an id that
/// is already resting; it does not remember ids of orders that left the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OrderId(pub u64);

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The account (a collective) that owns an order. Two orders of one account never trade with
/// each other (see self-trade prevention in [`super`]).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct AccountId(pub u64);

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Which side of the book an order is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// Buys; rests among the bids; trades against asks.
    Buy,
    /// Sells; rests among the asks; trades against bids.
    Sell,
}

impl Side {
    /// The side this one trades against.
    pub const fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }
}

/// What price an order accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderKind {
    /// Trades at `price` or better; a GTC remainder rests at `price`.
    Limit {
        /// The worst acceptable price (highest for a buy, lowest for a sell).
        price: Price,
    },
    /// Trades at any price; never rests, so it must be IOC or FOK.
    Market,
}

/// How long an order's unfilled quantity lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeInForce {
    /// Good till cancelled: the remainder of a limit order rests in the book.
    Gtc,
    /// Immediate or cancel: fill what can be filled now, cancel the remainder.
    Ioc,
    /// Fill or kill: fill the whole quantity now or nothing at all.
    Fok,
}

/// A request to buy or sell, as given to [`OrderBook::submit`](super::OrderBook::submit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NewOrder {
    /// Its id; must not be resting in the book already.
    pub id: OrderId,
    /// Who places it.
    pub account: AccountId,
    /// Buy or sell.
    pub side: Side,
    /// Limit (with its price) or market.
    pub kind: OrderKind,
    /// Lots wanted; above 0 and within the book's [`BookLimits`](super::BookLimits).
    pub quantity: Quantity,
    /// What happens to the part that does not fill at once.
    pub tif: TimeInForce,
}

impl NewOrder {
    /// A limit order.
    pub const fn limit(
        id: OrderId,
        account: AccountId,
        side: Side,
        price: Price,
        quantity: Quantity,
        tif: TimeInForce,
    ) -> NewOrder {
        NewOrder {
            id,
            account,
            side,
            kind: OrderKind::Limit { price },
            quantity,
            tif,
        }
    }

    /// A market order (IOC: fill what the book has, cancel the rest).
    pub const fn market(
        id: OrderId,
        account: AccountId,
        side: Side,
        quantity: Quantity,
    ) -> NewOrder {
        NewOrder {
            id,
            account,
            side,
            kind: OrderKind::Market,
            quantity,
            tif: TimeInForce::Ioc,
        }
    }
}

/// An order resting in the book, as [`OrderBook::order`](super::OrderBook::order) reports it
/// and as [`OrderBook::cancel`](super::OrderBook::cancel) hands it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RestingOrder {
    /// Its id.
    pub id: OrderId,
    /// Its owner.
    pub account: AccountId,
    /// Its side.
    pub side: Side,
    /// The price it rests at.
    pub price: Price,
    /// What is left of it (above 0 while it rests).
    pub quantity: Quantity,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notional_of_the_largest_values_does_not_overflow() {
        let n = Price(u64::MAX).notional(Quantity(u64::MAX));
        assert_eq!(n, (u64::MAX as u128) * (u64::MAX as u128));
        assert_eq!(Price(250).notional(Quantity(4)), 1000);
    }

    #[test]
    fn opposite_sides() {
        assert_eq!(Side::Buy.opposite(), Side::Sell);
        assert_eq!(Side::Sell.opposite(), Side::Buy);
    }
}

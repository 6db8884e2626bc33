//! [`MatchError`]: why the book refused a submit or a cancel.
//!
//! A refused request changes nothing: every check runs before the book is touched, so on an
//! error no event has been emitted and no order has moved. The messages name the offending
//! value and carry no trailing period, so callers can embed them in their own sentences.

use super::types::{OrderId, Quantity};

/// Why [`OrderBook::submit`](super::OrderBook::submit) or
/// [`OrderBook::cancel`](super::OrderBook::cancel) refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MatchError {
    /// The order's quantity is 0.
    #[error("order {id} has quantity 0")]
    ZeroQuantity {
        /// The order.
        id: OrderId,
    },
    /// The order's quantity is above the book's [`BookLimits::max_order_quantity`](super::BookLimits::max_order_quantity).
    #[error("order {id} has quantity {quantity}, above the limit of {max}")]
    QuantityTooLarge {
        /// The order.
        id: OrderId,
        /// Its quantity.
        quantity: Quantity,
        /// The limit.
        max: Quantity,
    },
    /// A limit order's price is 0.
    #[error("limit order {id} has price 0")]
    ZeroPrice {
        /// The order.
        id: OrderId,
    },
    /// A market order was sent good-till-cancelled: it has no price to rest at.
    #[error("market order {id} cannot be good-till-cancelled")]
    MarketOrderCannotRest {
        /// The order.
        id: OrderId,
    },
    /// An order with this id is already resting in the book.
    #[error("order {id} is already in the book")]
    DuplicateOrderId {
        /// The id.
        id: OrderId,
    },
    /// No order with this id rests in the book (never did, or it filled or was cancelled).
    #[error("order {id} is not in the book")]
    UnknownOrder {
        /// The id.
        id: OrderId,
    },
    /// The book holds its maximum number of resting orders, and this GTC limit order could
    /// rest. IOC, FOK and market orders, which never rest, are still accepted.
    #[error("the book is full ({max_orders} resting orders)")]
    BookFull {
        /// The limit.
        max_orders: usize,
    },
}

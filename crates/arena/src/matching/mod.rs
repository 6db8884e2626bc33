//! The order-matching engine: one [`OrderBook`] per symbol, a pure synchronous state machine.
//!
//! An incoming [`NewOrder`] (the *taker*) trades against resting orders (*makers*) on the
//! opposite side; what it produces is a list of [`MatchEvent`]s and a [`SubmitOutcome`]. The
//! book does no I/O, reads no clock and uses no randomness, so the same sequence of submits
//! and cancels always yields the same events: the arena can replay a log to rebuild a book,
//! and tests can compare it step by step with a naive reference model
//! (`tests/reference.rs`).
//!
//! # Invariants
//!
//! These hold after every [`OrderBook::submit`] and [`OrderBook::cancel`], whether it
//! succeeded or not:
//!
//! - **Price-time priority.** A taker meets the best-priced maker first (lowest ask for a
//!   buy, highest bid for a sell); among makers at one price, the oldest first. A partial
//!   fill keeps the maker's place in the queue.
//! - **Maker price.** Every fill trades at the resting order's price, never the taker's limit.
//! - **Conservation.** For each submitted order, its quantity equals the sum of its fills
//!   plus the remainder that rested or was cancelled (`filled + rested + cancelled`); every
//!   fill takes the same quantity off the maker.
//! - **Exact levels.** Each price level's total and order count equal the sums over its live
//!   orders; a level with no live order does not exist. [`OrderBook::depth`],
//!   [`OrderBook::best_bid`] and [`OrderBook::best_ask`] are therefore exact at all times,
//!   and cancelled orders leave no tombstones.
//! - **Never crossed.** After any submit, `best_bid < best_ask` when both exist: a limit
//!   order rests only once no acceptable maker is left.
//! - **Bounded.** At most [`BookLimits::max_orders`] orders rest; a GTC order that could add
//!   one more to a full book is refused with [`MatchError::BookFull`].
//! - **Integers only.** Prices are ticks and quantities are lots (`u64`); notional values are
//!   computed in `u128` ([`Fill::notional`]); [`BookLimits`] makes every quantity sum fit a
//!   `u64`.
//!
//! # Self-trade prevention: cancel resting
//!
//! An order never trades against a resting order of its own [`AccountId`] (a collective must
//! not be able to trade with itself to print prices or volume). When matching reaches such a
//! maker, the *resting* order is cancelled ([`MatchEvent::Cancelled`] with
//! [`CancelReason::SelfTrade`]) and matching continues with the next maker. We chose "cancel
//! resting" over "cancel incoming" because the newer order is the better statement of the
//! account's current intent, and because it can never leave the book crossed: the own order
//! that stood in the way is gone. A FOK order counts only other accounts' quantity when
//! deciding whether it can fill; if it cannot, nothing is cancelled.
//!
//! # Order types
//!
//! | kind   | tif | remainder after matching                                  |
//! |--------|-----|-----------------------------------------------------------|
//! | limit  | GTC | rests at its price                                        |
//! | limit  | IOC | cancelled ([`CancelReason::Unfilled`])                    |
//! | limit  | FOK | all or nothing, at its price or better                    |
//! | market | IOC | cancelled ([`CancelReason::Unfilled`])                    |
//! | market | FOK | all or nothing, at any price                              |
//! | market | GTC | refused: [`MatchError::MarketOrderCannotRest`]            |
//!
//! Ids are unique among *resting* orders only (a duplicate is refused); the book does not
//! remember the ids of orders that left it, so ids unique over time are the caller's job.

mod book;
mod error;
mod events;
mod ladder;
mod level;
mod limits;
mod types;

#[cfg(test)]
mod tests;

pub use book::{Depth, OrderBook};
pub use error::MatchError;
pub use events::{CancelReason, Fill, MatchEvent, OrderStatus, SubmitOutcome};
pub use limits::{BookLimits, InvalidLimits, DEFAULT_MAX_ORDERS, DEFAULT_MAX_ORDER_QUANTITY};
pub use types::{
    AccountId, NewOrder, OrderId, OrderKind, Price, Quantity, RestingOrder, Side, TimeInForce,
};

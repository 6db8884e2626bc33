//! Arena helpers (docs/ARENA.md): the signed REST client ([`ArenaRest`]) and its
//! [`SignatureClock`], the state of the trading streams kept from snapshot + events
//! ([`BookState`], [`OrdersState`], [`PortfolioState`]) and [`Feed`], which applies a
//! subscription's events to a state and waits for a fresh snapshot after `recovery_failed`. Prices and quantities stay decimal
//! strings; [`DecimalKey`] orders them exactly, never through `f64`.

mod clock;
mod decimal;
mod feed;
mod rest;
mod state;

pub use clock::SignatureClock;
pub use decimal::DecimalKey;
pub use feed::{follow_market, follow_stream, Feed};
pub use rest::ArenaRest;
pub use state::{ArenaState, BookState, OrdersState, PortfolioState};

//! The roomcast trading arena: the trading domain that collectives play on top of roomcast.
//!
//! - [`matching`]: the order-matching engine, one [`matching::OrderBook`] per symbol with
//!   price-time priority, self-trade prevention and bounded memory.
//!
//! Later this crate will hold portfolios (positions and cash per collective) and market data
//! (trades and depth published to rooms). It exists as its own crate so the trading rules stay
//! a plain, synchronous, deterministic library that can be tested and benchmarked without a
//! network.
//!
//! Architecture invariant: the arena talks only to the engine crate's public API (to publish
//! into rooms), never to the server: it knows nothing about HTTP, sockets or axum. Money and
//! quantities are integers everywhere (price ticks and lots), never floating point.

pub mod matching;

//! The roomcast trading arena: the trading domain that collectives play on top of roomcast.
//!
//! Module map, from the bottom up:
//!
//! - [`matching`]: the order-matching engine, one [`matching::OrderBook`] per symbol with
//!   price-time priority, self-trade prevention and bounded memory.
//! - [`decimal`]: exact decimal strings ↔ integers (no floating point anywhere).
//! - [`config`]: [`ArenaConfig`] as read from the config file; [`instrument`]: its
//!   validated form, every instrument's tick, lot and cash units.
//! - [`account`]: cash and positions of a collective, reservations, average entry price and
//!   realised PnL.
//! - [`state`]: [`state::ExchangeState`], the whole exchange as a deterministic state machine
//!   driven by logged [`state::Command`]s, with its conservation check.
//! - [`store`]: the durable command log and snapshots in `<data_dir>/arena.redb`, periodic
//!   snapshots in `<data_dir>/arena-checkpoint.redb`.
//! - [`exchange`]: the single exchange task: bounded command queue, batching, one write
//!   transaction per batch, then events published into rooms, then replies; stream attach.
//! - `checkpoint`: a replica of the state on its own thread, fed every durable batch's
//!   commands, that writes the periodic snapshots off the exchange task's path.
//! - [`cluster`]: the exchange on a cluster's arena node, publishing through the cluster's
//!   [`cluster::Sequencer`] instead of the local hub.
//! - [`arena`]: [`Arena`], the handle the server calls; [`funding`]: the collectives-file
//!   fields; [`rooms`]: the arena's room names; [`views`]: wire types; [`demo`]: the bots.
//!
//! It exists as its own crate so the trading rules stay a plain, deterministic library that
//! can be tested and benchmarked without a network.
//!
//! Architecture invariant: the arena talks only to the engine crate's public API (to publish
//! into rooms), never to the server: it knows nothing about HTTP, sockets or axum. Money and
//! quantities are integers everywhere (price ticks, lots, cash units), never floating point.
//! The exchange task is the only publisher into arena rooms.

pub mod account;
pub mod arena;
pub(crate) mod checkpoint;
pub mod cluster;
pub mod config;
pub mod decimal;
pub mod demo;
pub mod error;
pub mod exchange;
pub mod funding;
pub mod instrument;
pub mod matching;
pub mod rooms;
pub mod state;
pub mod store;
pub mod views;

pub use account::Funding;
pub use arena::{Arena, ArenaStats, SymbolStats};
pub use cluster::{RoomSnapshot, Sequencer};
pub use config::{ArenaConfig, DemoConfig, FsyncPolicy, InstrumentConfig};
pub use error::{ArenaError, AttachError, FundingError, OrderError, OrderErrorKind, RejectReason};
pub use views::*;

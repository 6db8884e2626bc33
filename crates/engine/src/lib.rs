//! The roomcast engine: everything a real-time server needs except HTTP.
//!
//! - [`hub`]: the registry of sessions and rooms; publish, fan-out, presence, supersede.
//! - [`outbox`]: each connection's bounded outbound queue and its slow-consumer policy.
//! - [`maintenance`]: the one timer that sends heartbeats, evicts dead connections and
//!   trims history.
//! - [`broker`]: the seam that carries room events between nodes (single node: [`broker::LocalBroker`]).
//! - [`history`]: per-room event logs (memory and durable) for reconnect recovery.
//! - [`config`]: validated engine settings.
//!
//! The engine never touches a socket. A transport (the axum server, a test harness) owns
//! each connection's I/O, feeds parsed requests to the hub and drains the session's
//! [`outbox::Outbox`]. That keeps the hub from ever waiting on one client's socket, and lets
//! domain crates (the trading arena) publish through the same API without a server.

pub mod auth;
pub mod broker;
pub mod config;
pub mod duration;
pub mod history;
pub mod hub;
pub mod limits;
pub mod maintenance;
pub mod outbox;
mod shard;

pub use config::{HubConfig, SlowConsumerPolicy};
pub use hub::{ConnId, Hub, Session, SessionMeta};
pub use outbox::{Outbox, Outgoing};

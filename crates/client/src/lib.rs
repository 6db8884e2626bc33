//! An async Rust client for the roomcast protocol (docs/PROTOCOL.md, docs/CLIENTS.md).
//!
//! Two layers:
//!
//! - [`RoomcastClient`]: one logical session that survives reconnects. It reconnects with
//!   exponential backoff and full jitter, stops on the fatal close codes, answers heartbeats
//!   and drops a silent link, resubscribes every room with `since` and delivers each event
//!   once and in order (a [`Subscription`] is a `Stream`), returns request acks as
//!   futures, authenticates with a JWT (refreshed on `token_expiring`) or the Ed25519
//!   challenge, and keeps the arena's state ([`arena`]).
//! - [`Connection`]: one raw WebSocket connection, for tests and tools that drive the
//!   protocol frame by frame.
//!
//! Module map: `connection` (raw connection), `backoff` (retry delays), `close_action`
//! (what each close code means to a client), `room` (per-room position and dedupe),
//! `options` (tunables and credentials), `client` (the public handle), `driver` (the task
//! that owns the socket; `driver::requests` its request table and dispatch), `error`
//! (typed errors), `auth` (Ed25519 signing), [`arena`].

pub mod arena;
mod auth;
mod backoff;
mod client;
mod close_action;
mod connection;
mod driver;
mod error;
mod options;
mod room;

pub use roomcast_protocol as protocol;

pub use auth::{Ed25519Credentials, KeyError};
pub use backoff::Backoff;
pub use client::{Builder, ClientEvent, RoomcastClient, State, Subscription};
pub use close_action::{action_for, CloseAction};
pub use connection::{ClientError, Connection, Incoming, Stream};
pub use error::Error;
pub use options::{ClientOptions, OfflinePolicy, TokenSource};
pub use room::Position;

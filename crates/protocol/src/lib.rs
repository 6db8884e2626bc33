//! The roomcast wire protocol, and nothing else.
//!
//! This crate is the single place that knows what travels over a roomcast WebSocket: the
//! validated identifiers ([`ClientId`], [`RoomName`]), the client requests ([`request`]),
//! the server messages ([`server`]), and the numeric vocabularies both ends must agree on
//! ([`CloseCode`], [`ErrorCode`]). It has no async runtime and no HTTP framework so that the
//! server, the Rust client, the load generator and later backends share one definition.
//!
//! Architecture invariant: only this crate defines wire JSON. Everything else builds and
//! reads messages through the types and encoders here.

pub mod close;
pub mod error;
pub mod ids;
pub mod request;
pub mod server;
pub mod time;

pub use close::CloseCode;
pub use error::ErrorCode;
pub use ids::{ClientId, Epoch, IdError, RoomName, Sequence};
pub use request::{parse_request, ParsedRequest, Request, RequestError, RequestId, Since};

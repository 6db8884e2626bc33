//! Error codes carried by `{"type":"error","code":..}` replies.
//!
//! An error reply never closes the connection by itself; codes that end a connection are
//! [`crate::CloseCode`]s instead.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The `code` of an error reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// The text frame is not valid JSON.
    InvalidJson,
    /// Valid JSON of the wrong shape: not an object, a missing or non-string `type`, a
    /// missing or mistyped field.
    InvalidMessage,
    /// A string `type` this endpoint does not know.
    UnknownType,
    /// Publishing to a room the connection has not joined.
    NotSubscribed,
    /// A room name outside 1-200 characters of `[A-Za-z0-9_.:@/-]`.
    InvalidRoom,
    /// The connection's credentials do not allow this room or action. Repeated forbidden
    /// subscriptions close the connection with 4031.
    Forbidden,
    /// The message was dropped because the connection exceeded its rate limit.
    RateLimited,
    /// The connection already joined the most rooms it may.
    TooManySubscriptions,
    /// A server-side dependency (history store, broker) failed; retry later.
    Unavailable,
    /// A `refresh` token was refused: it does not verify, has expired, names another
    /// subject or collective, or the session was not opened with a token. The session
    /// keeps its current expiry.
    InvalidToken,
}

impl ErrorCode {
    /// The wire spelling, e.g. `INVALID_JSON`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "INVALID_JSON",
            ErrorCode::InvalidMessage => "INVALID_MESSAGE",
            ErrorCode::UnknownType => "UNKNOWN_TYPE",
            ErrorCode::NotSubscribed => "NOT_SUBSCRIBED",
            ErrorCode::InvalidRoom => "INVALID_ROOM",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::TooManySubscriptions => "TOO_MANY_SUBSCRIPTIONS",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::InvalidToken => "INVALID_TOKEN",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

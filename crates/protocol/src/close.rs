//! WebSocket close codes used by roomcast, with their meaning for a reconnecting client.
//!
//! 1000-1011 are RFC 6455 codes; 4000-4999 is the application range. The application codes
//! are grouped by their first three digits so a client can decide what to do without a table:
//! 400x authentication (fix credentials before retrying), 401x session lifecycle (another
//! session took over, or it expired), 402x limits (back off), 403x authorisation of a
//! subscription, 409x server side (reconnect elsewhere or later).

use std::fmt;

/// Every close code the server sends. One type so the numbers live in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseCode {
    /// 1000: normal closure; the client asked to leave or the server finished.
    Normal,
    /// 1001: going away: the peer stopped answering heartbeats, or the server is leaving.
    GoingAway,
    /// 1002: the client broke the WebSocket framing rules (RFC 6455), e.g. reserved bits
    /// set, an unknown opcode, a fragmented control frame or a malformed close frame.
    ProtocolError,
    /// 1003: unsupported data, e.g. a binary frame on the JSON text protocol.
    UnsupportedData,
    /// 1007: a text message (or close reason) that is not valid UTF-8.
    InvalidPayload,
    /// 1008: policy violation, e.g. a slow consumer whose outbound queue overflowed.
    PolicyViolation,
    /// 1009: a message larger than the configured `max_message_bytes`.
    MessageTooBig,
    /// 1011: the server hit an unexpected internal condition.
    InternalError,
    /// 4001: no credentials, or the authentication flow was not followed.
    Unauthorized,
    /// 4002: the token is malformed or its signature does not verify.
    InvalidToken,
    /// 4003: the token has expired (or is not valid yet).
    TokenExpired,
    /// 4004: the client did not authenticate within `auth_timeout`.
    AuthTimeout,
    /// 4011: a newer connection with the same client id replaced this one. Do not reconnect
    /// automatically: the other session would be superseded in turn.
    SessionSuperseded,
    /// 4012: the session's lifetime ended (e.g. the credentials were revoked).
    SessionExpired,
    /// 4021: the client kept sending past its rate limit.
    RateLimited,
    /// 4022: a connection limit (total or per principal) was reached.
    TooManyConnections,
    /// 4031: repeated forbidden subscription attempts.
    InvalidSubscription,
    /// 4032: the market this stream belongs to is closed.
    MarketClosed,
    /// 4091: the server is shutting down; reconnect with back-off.
    ServerShutdown,
    /// 4092: the server failed while serving this connection.
    ServerError,
}

impl CloseCode {
    /// All codes, for documentation and exhaustive tests.
    pub const ALL: [CloseCode; 20] = [
        CloseCode::Normal,
        CloseCode::GoingAway,
        CloseCode::ProtocolError,
        CloseCode::UnsupportedData,
        CloseCode::InvalidPayload,
        CloseCode::PolicyViolation,
        CloseCode::MessageTooBig,
        CloseCode::InternalError,
        CloseCode::Unauthorized,
        CloseCode::InvalidToken,
        CloseCode::TokenExpired,
        CloseCode::AuthTimeout,
        CloseCode::SessionSuperseded,
        CloseCode::SessionExpired,
        CloseCode::RateLimited,
        CloseCode::TooManyConnections,
        CloseCode::InvalidSubscription,
        CloseCode::MarketClosed,
        CloseCode::ServerShutdown,
        CloseCode::ServerError,
    ];

    /// The numeric code carried in the close frame.
    pub const fn as_u16(self) -> u16 {
        match self {
            CloseCode::Normal => 1000,
            CloseCode::GoingAway => 1001,
            CloseCode::ProtocolError => 1002,
            CloseCode::UnsupportedData => 1003,
            CloseCode::InvalidPayload => 1007,
            CloseCode::PolicyViolation => 1008,
            CloseCode::MessageTooBig => 1009,
            CloseCode::InternalError => 1011,
            CloseCode::Unauthorized => 4001,
            CloseCode::InvalidToken => 4002,
            CloseCode::TokenExpired => 4003,
            CloseCode::AuthTimeout => 4004,
            CloseCode::SessionSuperseded => 4011,
            CloseCode::SessionExpired => 4012,
            CloseCode::RateLimited => 4021,
            CloseCode::TooManyConnections => 4022,
            CloseCode::InvalidSubscription => 4031,
            CloseCode::MarketClosed => 4032,
            CloseCode::ServerShutdown => 4091,
            CloseCode::ServerError => 4092,
        }
    }

    /// The code for a number, if roomcast uses it.
    pub fn from_u16(code: u16) -> Option<CloseCode> {
        CloseCode::ALL.into_iter().find(|c| c.as_u16() == code)
    }

    /// The symbolic name used in docs, logs and metrics labels.
    pub const fn name(self) -> &'static str {
        match self {
            CloseCode::Normal => "NORMAL",
            CloseCode::GoingAway => "GOING_AWAY",
            CloseCode::ProtocolError => "PROTOCOL_ERROR",
            CloseCode::UnsupportedData => "UNSUPPORTED_DATA",
            CloseCode::InvalidPayload => "INVALID_PAYLOAD",
            CloseCode::PolicyViolation => "POLICY_VIOLATION",
            CloseCode::MessageTooBig => "MESSAGE_TOO_BIG",
            CloseCode::InternalError => "INTERNAL_ERROR",
            CloseCode::Unauthorized => "UNAUTHORIZED",
            CloseCode::InvalidToken => "INVALID_TOKEN",
            CloseCode::TokenExpired => "TOKEN_EXPIRED",
            CloseCode::AuthTimeout => "AUTH_TIMEOUT",
            CloseCode::SessionSuperseded => "SESSION_SUPERSEDED",
            CloseCode::SessionExpired => "SESSION_EXPIRED",
            CloseCode::RateLimited => "RATE_LIMITED",
            CloseCode::TooManyConnections => "TOO_MANY_CONNECTIONS",
            CloseCode::InvalidSubscription => "INVALID_SUBSCRIPTION",
            CloseCode::MarketClosed => "MARKET_CLOSED",
            CloseCode::ServerShutdown => "SERVER_SHUTDOWN",
            CloseCode::ServerError => "SERVER_ERROR",
        }
    }

    /// The reason text sent with the code when the caller has nothing more specific.
    pub const fn default_reason(self) -> &'static str {
        match self {
            CloseCode::Normal => "Normal closure",
            CloseCode::GoingAway => "Going away",
            CloseCode::ProtocolError => "Protocol error",
            CloseCode::UnsupportedData => "Binary frames are not supported",
            CloseCode::InvalidPayload => "Invalid UTF-8",
            CloseCode::PolicyViolation => "Policy violation",
            CloseCode::MessageTooBig => "Message too big",
            CloseCode::InternalError => "Internal error",
            CloseCode::Unauthorized => "Unauthorized",
            CloseCode::InvalidToken => "Invalid token",
            CloseCode::TokenExpired => "Token expired",
            CloseCode::AuthTimeout => "Authentication timeout",
            CloseCode::SessionSuperseded => "Superseded",
            CloseCode::SessionExpired => "Session expired",
            CloseCode::RateLimited => "Rate limited",
            CloseCode::TooManyConnections => "Too many connections",
            CloseCode::InvalidSubscription => "Invalid subscription",
            CloseCode::MarketClosed => "Market closed",
            CloseCode::ServerShutdown => "Server shutting down",
            CloseCode::ServerError => "Server error",
        }
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.as_u16(), self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_are_unique() {
        for code in CloseCode::ALL {
            assert_eq!(CloseCode::from_u16(code.as_u16()), Some(code));
            // Close reasons must fit a control frame (123 bytes).
            assert!(code.default_reason().len() <= 123);
        }
        assert_eq!(CloseCode::from_u16(4000), None);
        assert_eq!(CloseCode::SessionSuperseded.as_u16(), 4011);
        assert_eq!(CloseCode::SessionSuperseded.default_reason(), "Superseded");
    }
}

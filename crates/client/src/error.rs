//! The typed errors of [`crate::RoomcastClient`].

use std::time::Duration;

/// Why a request or the client failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The server answered with an `error` (`code` is the wire code, e.g. `FORBIDDEN`).
    #[error("server refused: {code}: {message}")]
    Server {
        /// The wire error code.
        code: String,
        /// The server's message.
        message: String,
    },
    /// The connection dropped before the reply; the request may have been applied.
    #[error("connection lost before the reply")]
    Disconnected,
    /// Not connected and the offline policy is `Fail`, or the offline queue is full.
    #[error("not connected: {0}")]
    NotConnected(&'static str),
    /// No reply in time.
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    /// The client stopped for good (a fatal close code, `close()`, attempts used up).
    #[error("client closed: {reason}")]
    Closed {
        /// The close code that stopped it, if any.
        code: Option<u16>,
        /// Why it stopped.
        reason: String,
    },
    /// The room is already followed by a live subscription of this client.
    #[error("room {0} is already subscribed")]
    AlreadySubscribed(String),
    /// The arena's REST API failed or refused.
    #[error("arena http {status}: {body}")]
    Http {
        /// The HTTP status (0: the request did not complete).
        status: u16,
        /// The response body or the transport error.
        body: String,
    },
}

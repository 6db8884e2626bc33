//! Tunables and credentials of a [`crate::RoomcastClient`]; the defaults are those of
//! docs/CLIENTS.md, shared with the TypeScript and Python clients.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// What requests made while reconnecting do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfflinePolicy {
    /// Wait in a bounded queue and go out after the rooms are resubscribed.
    Queue,
    /// Fail at once with [`crate::Error::NotConnected`].
    Fail,
}

/// Returns a fresh JWT (on connect without a token, on `token_expiring`, after an auth
/// close); `None` when none is available.
pub type TokenSource =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Option<String>> + Send>> + Send + Sync>;

/// Client tunables.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Window of the first retry (full jitter); 500 ms.
    pub backoff_base: Duration,
    /// Largest retry window; 30 s.
    pub backoff_cap: Duration,
    /// Consecutive failed attempts before giving up (`None`: forever).
    pub max_attempts: Option<u32>,
    /// Uptime after which the backoff starts again from `backoff_base`; 10 s.
    pub stable_after: Duration,
    /// Silence tolerated beyond `welcome.heartbeat_interval` before the link is dead; 10 s.
    pub heartbeat_timeout: Duration,
    /// TCP + WebSocket handshake + authentication; 10 s.
    pub connect_timeout: Duration,
    /// Wait for a reply; 10 s.
    pub request_timeout: Duration,
    /// Requests while reconnecting: queue (default) or fail.
    pub offline_policy: OfflinePolicy,
    /// How many requests may wait for the connection; 1000.
    pub offline_queue: usize,
    /// Events buffered per subscription before the client stops reading the socket; 1024.
    pub subscription_buffer: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            backoff_base: Duration::from_millis(500),
            backoff_cap: Duration::from_secs(30),
            max_attempts: None,
            stable_after: Duration::from_secs(10),
            heartbeat_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            offline_policy: OfflinePolicy::Queue,
            offline_queue: 1000,
            subscription_buffer: 1024,
        }
    }
}

//! One live connection as the hub sees it: identity, outbox, liveness and the rooms it
//! joined. The transport owns the socket; the hub only ever touches the outbox.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use roomcast_protocol::{ClientId, RoomName};

use crate::outbox::Outbox;

/// A process-unique connection number. Client ids repeat across reconnects; this never does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "c{}", self.0)
    }
}

/// What the transport knows about a connection when it registers it.
#[derive(Debug, Clone, Default)]
pub struct SessionMeta {
    /// Peer address.
    pub remote: Option<SocketAddr>,
    /// The collective (account) the connection acts for, if authenticated as one.
    pub collective: Option<Arc<str>>,
}

/// A registered connection.
#[derive(Debug)]
pub struct Session {
    /// Unique connection number.
    pub conn_id: ConnId,
    /// The client's id.
    pub client_id: ClientId,
    /// Outbound queue drained by the connection's writer.
    pub outbox: Outbox,
    /// Peer address, when the transport knows it.
    pub remote: Option<SocketAddr>,
    /// The collective it acts for, if any.
    pub collective: Option<Arc<str>>,
    /// When the connection was accepted.
    pub connected_at: SystemTime,
    /// Milliseconds (hub clock) when the last frame of any kind arrived.
    last_seen: AtomicU64,
    /// Inbound messages counted by the transport.
    pub messages_in: AtomicU64,
    /// Rooms joined, in join order. Small: bounded by `max_subscriptions`.
    pub(crate) rooms: Mutex<Vec<RoomName>>,
}

impl Session {
    pub(crate) fn new(
        conn_id: ConnId,
        client_id: ClientId,
        outbox: Outbox,
        meta: SessionMeta,
        now_ms: u64,
    ) -> Session {
        Session {
            conn_id,
            client_id,
            outbox,
            remote: meta.remote,
            collective: meta.collective,
            connected_at: SystemTime::now(),
            last_seen: AtomicU64::new(now_ms),
            messages_in: AtomicU64::new(0),
            rooms: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn set_last_seen(&self, now_ms: u64) {
        self.last_seen.store(now_ms, Ordering::Relaxed);
    }

    pub(crate) fn last_seen(&self) -> u64 {
        self.last_seen.load(Ordering::Relaxed)
    }

    /// The rooms this session has joined.
    pub fn rooms(&self) -> Vec<RoomName> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether the session has joined `room`.
    pub fn is_member(&self, room: &RoomName) -> bool {
        self.rooms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|r| r == room)
    }
}

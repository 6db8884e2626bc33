//! One live connection as the hub sees it: identity, outbox, liveness and the rooms it
//! joined. The transport owns the socket; the hub only ever touches the outbox.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use roomcast_protocol::{ClientId, RoomName};

use super::expiry::Expiry;
use super::membership::Subscriptions;
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
    /// Rooms joined or being recovered into, and their states.
    pub(crate) subs: Mutex<Subscriptions>,
    /// When the session's credentials run out, if they do.
    pub(crate) expiry: Expiry,
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
            subs: Mutex::new(Subscriptions::default()),
            expiry: Expiry::none(),
        }
    }

    pub(crate) fn set_last_seen(&self, now_ms: u64) {
        self.last_seen.store(now_ms, Ordering::Relaxed);
    }

    pub(crate) fn last_seen(&self) -> u64 {
        self.last_seen.load(Ordering::Relaxed)
    }

    pub(crate) fn subs(&self) -> std::sync::MutexGuard<'_, Subscriptions> {
        self.subs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The rooms this session has joined or is recovering into, in join order.
    pub fn rooms(&self) -> Vec<RoomName> {
        self.subs().names()
    }

    /// Whether the session has joined `room` (or is recovering into it).
    pub fn is_member(&self, room: &RoomName) -> bool {
        self.subs().contains(room)
    }
}

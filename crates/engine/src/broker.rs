//! Carrying room events between nodes.
//!
//! A single node needs no broker: the hub sequences, stores and fans out every event itself.
//! With several nodes behind a load balancer, an event published on one node must reach the
//! members of its room on every other node. The [`Broker`] is that seam: the hub hands it
//! each event after sequencing, storing and delivering it locally, and a broker
//! implementation feeds events from other nodes back through [`crate::Hub::deliver_remote`].
//!
//! Contract for implementations (the Redis broker of the scale-out work follows it):
//! - `publish` is called under the room's publish lock, in sequence order, and must not
//!   block: queue internally and report failures through metrics/logs; the event is
//!   already durable in history, so a reconnecting client still recovers it;
//! - events delivered to `deliver_remote` must keep their per-room order; duplicates and
//!   events at or below the node's current head are ignored by the hub;
//! - `interest` tells the broker which rooms this node has state for (created when a
//!   member joins, swept once empty), so it subscribes only to those; the calls for one
//!   room strictly alternate, because the hub makes them under its room-map lock.
//!
//! A cluster node (the Redis broker, `roomcast-redis`) goes further: Redis sequences
//! every event, so the hub there is built with `Hub::clustered` and receives even its own
//! clients' events through `Hub::deliver_remote` (see `hub/remote.rs`).
//!
//! Sequencing across nodes belongs with the shared history store (atomic "next sequence +
//! append" per room), not with the broker.

use bytes::Bytes;
use roomcast_protocol::{RoomName, Sequence};

/// A broker failure. The event stays in history; only its live delivery to other nodes may
/// be late or missing.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The backend is unreachable or refused the event.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
}

/// Moves room events between nodes. See the module docs for the contract.
pub trait Broker: Send + Sync + 'static {
    /// Sends an event this node sequenced and stored to the other nodes.
    fn publish(
        &self,
        room: &RoomName,
        sequence: Sequence,
        frame: &Bytes,
    ) -> Result<(), BrokerError>;

    /// This node gained (`true`) or lost (`false`) its members in `room`.
    fn interest(&self, room: &RoomName, interested: bool);

    /// Whether the broker is connected and able to carry events (readiness).
    fn is_ready(&self) -> bool {
        true
    }

    /// Why the broker cannot carry events now (readiness answers 503 with it), or `None`.
    fn unavailable_reason(&self) -> Option<String> {
        None
    }
}

/// The single-node broker: there is nobody else to tell.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalBroker;

impl Broker for LocalBroker {
    fn publish(
        &self,
        _room: &RoomName,
        _sequence: Sequence,
        _frame: &Bytes,
    ) -> Result<(), BrokerError> {
        Ok(())
    }

    fn interest(&self, _room: &RoomName, _interested: bool) {}
}

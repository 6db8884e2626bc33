//! The engine's [`Broker`] seam for a Redis cluster node.
//!
//! The hub tells it which rooms this node has state for (`interest`, called under the
//! hub's room-map lock, so the calls for one room strictly alternate); it forwards them
//! to the subscriber task, which subscribes to or leaves the room's channel. Publishing
//! does not go through `Broker::publish` on a cluster node: events are sequenced by Redis
//! ([`crate::Cluster::publish`]), so the hub never calls it there.

use std::sync::Arc;

use bytes::Bytes;
use roomcast_engine::broker::{Broker, BrokerError};
use roomcast_protocol::{RoomName, Sequence};
use tokio::sync::mpsc::UnboundedSender;

use crate::health::Health;

/// A change of this node's interest in a room.
#[derive(Debug)]
pub(crate) struct Interest {
    pub(crate) room: RoomName,
    pub(crate) wanted: bool,
}

/// The broker a cluster node's hub is built with.
#[derive(Debug)]
pub struct RedisBroker {
    pub(crate) interest: UnboundedSender<Interest>,
    pub(crate) health: Arc<Health>,
}

impl Broker for RedisBroker {
    fn publish(
        &self,
        room: &RoomName,
        _sequence: Sequence,
        _frame: &Bytes,
    ) -> Result<(), BrokerError> {
        Err(BrokerError::Unavailable(format!(
            "room {room}: a cluster node publishes through Redis, not the hub"
        )))
    }

    fn interest(&self, room: &RoomName, interested: bool) {
        // The subscriber task owns the receiver for the life of the process; after
        // shutdown nobody needs the subscription any more.
        let _ = self.interest.send(Interest {
            room: room.clone(),
            wanted: interested,
        });
    }

    fn is_ready(&self) -> bool {
        self.health.check().is_ok()
    }

    fn unavailable_reason(&self) -> Option<String> {
        self.health.check().err()
    }
}

//! The control channel: notices every node hears, not tied to a room.
//!
//! - `connect NODE CLIENT`: `CLIENT` connected on `NODE`; every other node closes its own
//!   session of that client id with 4011, exactly as a single node supersedes the older
//!   connection of a client id;
//! - `left NODE CLIENT`: `CLIENT`'s session on `NODE` ended; every other node sends
//!   `user_left` to its members of `general`.
//!
//! Words are separated by single spaces; client ids and node ids contain none.

use bytes::Bytes;
use roomcast_engine::Hub;
use roomcast_protocol::server::Reply;
use roomcast_protocol::{ClientId, RoomName};

use crate::{ClusterError, Node};

pub(crate) async fn announce_connect(
    node: &Node,
    client_id: &ClientId,
) -> Result<(), ClusterError> {
    send(node, "connect", client_id).await
}

pub(crate) async fn announce_left(node: &Node, client_id: &ClientId) -> Result<(), ClusterError> {
    send(node, "left", client_id).await
}

async fn send(node: &Node, verb: &str, client_id: &ClientId) -> Result<(), ClusterError> {
    let mut conn = node.conn.clone();
    let message = format!("{verb} {} {}", node.id, client_id.as_str());
    let mut publish = redis::cmd("PUBLISH");
    publish.arg(node.keys.control()).arg(message);
    node.timed(publish.query_async::<i64>(&mut conn))
        .await
        .map(|_| ())
}

/// Applies a control message from the subscription.
pub(crate) fn receive(node: &Node, hub: &Hub, payload: &[u8]) {
    let Ok(text) = std::str::from_utf8(payload) else {
        return;
    };
    let mut words = text.split(' ');
    let (Some(verb), Some(from), Some(client)) = (words.next(), words.next(), words.next()) else {
        return;
    };
    if from == node.id {
        return;
    }
    let Ok(client_id) = ClientId::parse(client) else {
        return;
    };
    match verb {
        "connect" if hub.supersede_remote(&client_id) => {
            tracing::debug!(client = %client_id, node = from, "superseded by a connection on another node");
        }
        "left" => {
            let frame = Reply::UserLeft {
                client_id: &client_id,
            }
            .to_json();
            hub.broadcast_ephemeral(&RoomName::general(), Bytes::from(frame), None);
        }
        _ => {}
    }
}

//! The node's one pub/sub connection: it follows the rooms the hub has state for and
//! feeds their events to [`Hub::deliver_remote`], in channel order.
//!
//! One task owns the connection and does everything in order: apply an interest change
//! (`SUBSCRIBE`, wait for the confirmation, then read the room's snapshot and hand it to
//! [`Hub::sync_remote`]), or deliver the next message. A snapshot is read after the
//! subscription is confirmed, and messages received meanwhile wait in the connection's
//! queue, so every event is either in the snapshot or delivered after it (duplicates at or
//! below the head are dropped by the hub): nothing is lost or doubled at the switch.
//!
//! When the connection drops, the task marks the node unready, reconnects with
//! exponential backoff and full jitter, subscribes to every room again and resyncs each
//! from its snapshot: members get what they missed, or `recovery_failed` when Redis lost
//! it (see `hub/remote.rs`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use roomcast_engine::hub::{ConnId, RemoteSnapshot};
use roomcast_engine::Hub;
use roomcast_protocol::server::event_position;
use roomcast_protocol::RoomName;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

use crate::broker::Interest;
use crate::Node;

const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

enum Ended {
    Cancelled,
    Lost(String),
}

impl From<redis::RedisError> for Ended {
    fn from(e: redis::RedisError) -> Ended {
        Ended::Lost(e.to_string())
    }
}

/// Runs until `cancel` fires.
pub(crate) async fn run(
    node: Arc<Node>,
    hub: Hub,
    mut interest: UnboundedReceiver<Interest>,
    cancel: CancellationToken,
) {
    let mut rooms: HashSet<RoomName> = HashSet::new();
    let mut backoff = BACKOFF_MIN;
    loop {
        match session(
            &node,
            &hub,
            &mut interest,
            &mut rooms,
            &cancel,
            &mut backoff,
        )
        .await
        {
            Ended::Cancelled => return,
            Ended::Lost(why) => {
                node.health.pubsub_down(&why);
                tracing::warn!(error = %why, "redis pub/sub lost; reconnecting");
                let wait = backoff.mul_f64(rand::random::<f64>());
                backoff = (backoff * 2).min(BACKOFF_MAX);
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

fn apply(rooms: &mut HashSet<RoomName>, change: Interest) -> Option<Interest> {
    let changed = if change.wanted {
        rooms.insert(change.room.clone())
    } else {
        rooms.remove(&change.room)
    };
    changed.then_some(change)
}

async fn session(
    node: &Node,
    hub: &Hub,
    interest: &mut UnboundedReceiver<Interest>,
    rooms: &mut HashSet<RoomName>,
    cancel: &CancellationToken,
    backoff: &mut Duration,
) -> Ended {
    let pubsub =
        match tokio::time::timeout(node.config.command_timeout, node.client.get_async_pubsub())
            .await
        {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => return e.into(),
            Err(_) => return Ended::Lost("connecting timed out".into()),
        };
    let (mut sink, mut stream) = pubsub.split();
    while let Ok(change) = interest.try_recv() {
        apply(rooms, change);
    }
    let mut channels: Vec<String> = rooms.iter().map(|r| node.keys.channel(r)).collect();
    channels.push(node.keys.control());
    if let Err(e) = sink.subscribe(channels).await {
        return e.into();
    }
    for room in rooms.iter() {
        if let Err(e) = load(node, hub, room).await {
            return e;
        }
    }
    node.health.pubsub_up();
    *backoff = BACKOFF_MIN;
    tracing::info!(rooms = rooms.len(), "redis pub/sub connected");
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ended::Cancelled,
            change = interest.recv() => {
                let Some(change) = change else { return Ended::Cancelled };
                let Some(change) = apply(rooms, change) else { continue };
                let channel = node.keys.channel(&change.room);
                if change.wanted {
                    if let Err(e) = sink.subscribe(channel).await {
                        return e.into();
                    }
                    if let Err(e) = load(node, hub, &change.room).await {
                        return e;
                    }
                } else if let Err(e) = sink.unsubscribe(channel).await {
                    return e.into();
                }
            }
            msg = stream.next() => {
                let Some(msg) = msg else { return Ended::Lost("connection closed".into()) };
                dispatch(node, hub, &msg);
            }
        }
    }
}

/// Reads a room's snapshot and hands it to the hub.
async fn load(node: &Node, hub: &Hub, room: &RoomName) -> Result<(), Ended> {
    let snapshot = node
        .snapshot(room)
        .await
        .map_err(|e| Ended::Lost(e.to_string()))?;
    hub.sync_remote(room, snapshot);
    Ok(())
}

fn dispatch(node: &Node, hub: &Hub, msg: &redis::Msg) {
    let channel = msg.get_channel_name();
    let payload = msg.get_payload_bytes();
    if channel == node.keys.control() {
        crate::control::receive(node, hub, payload);
        return;
    }
    let Some(room) = node.keys.room_of_channel(channel) else {
        return;
    };
    let Some(split) = payload.iter().position(|b| *b == b'\n') else {
        tracing::warn!(%room, "dropping a malformed cluster message");
        return;
    };
    let (origin, frame) = (&payload[..split], &payload[split + 1..]);
    let Some((sequence, epoch)) = event_position(frame) else {
        tracing::warn!(%room, "dropping a cluster message without a position");
        return;
    };
    let exclude = std::str::from_utf8(origin)
        .ok()
        .and_then(|o| o.strip_prefix(node.id.as_str()))
        .and_then(|o| o.strip_prefix(':'))
        .and_then(|c| c.parse::<u64>().ok())
        .map(ConnId);
    let epoch = epoch.to_owned();
    hub.deliver_remote(
        &room,
        &epoch,
        sequence,
        Bytes::copy_from_slice(frame),
        exclude,
    );
}

/// Parses what `LOAD_SCRIPT` returns.
pub(crate) fn parse_snapshot(reply: Vec<Vec<u8>>) -> Result<RemoteSnapshot, String> {
    use roomcast_engine::history::{RoomHead, StoredEvent};
    use roomcast_protocol::{Epoch, Sequence};
    let text = |b: &[u8]| {
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|e| e.to_string())
    };
    let mut items = reply.into_iter();
    let (Some(epoch), Some(seq)) = (items.next(), items.next()) else {
        return Err("short snapshot reply".into());
    };
    let head = RoomHead {
        epoch: Epoch::new(&text(&epoch)?),
        sequence: Sequence(text(&seq)?.parse().map_err(|_| "bad sequence".to_owned())?),
    };
    let rest: Vec<Vec<u8>> = items.collect();
    let mut events = Vec::with_capacity(rest.len() / 3);
    for entry in rest.chunks(3).rev() {
        let [id, t, f] = entry else {
            return Err("short stream entry".into());
        };
        let id = text(id)?;
        let sequence = id
            .split('-')
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| format!("bad stream id {id}"))?;
        events.push(StoredEvent {
            sequence: Sequence(sequence),
            unix_millis: text(t)?.parse().unwrap_or(0),
            frame: Bytes::from(f.clone()),
        });
    }
    Ok(RemoteSnapshot { head, events })
}

//! Cluster-wide presence and the node heartbeat (which also keeps the node listed for the
//! connection limits, `limits.rs`).
//!
//! Each node keeps a heartbeat key (`PREFIX:node:ID`, expiring after [`NODE_TTL`]) and, for
//! every room it has members in, one field of the room's presence hash (`PREFIX:{room}:p`,
//! field = node id, value = its members' client ids separated by spaces). A task refreshes
//! the heartbeat and writes the fields that changed every [`SYNC_EVERY`]. A presence query
//! merges this node's live members with the fields of nodes whose heartbeat is alive; the
//! fields of dead nodes (killed, never cleaned up) are ignored and deleted.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use roomcast_engine::Hub;
use roomcast_protocol::{ClientId, RoomName};
use tokio_util::sync::CancellationToken;

use crate::{ClusterError, Node};

/// How often a node writes its heartbeat and changed presence.
pub(crate) const SYNC_EVERY: Duration = Duration::from_millis(200);
/// How long a node counts as alive after its last heartbeat.
pub(crate) const NODE_TTL: Duration = Duration::from_secs(3);

/// Writes this node's heartbeat and presence until cancelled, then removes its heartbeat.
pub(crate) async fn run(node: Arc<Node>, hub: Hub, cancel: CancellationToken) {
    let mut written: HashMap<RoomName, String> = HashMap::new();
    let mut tick = tokio::time::interval(SYNC_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        let mut now: HashMap<RoomName, String> = HashMap::new();
        for (room, members) in hub.rooms() {
            if members == 0 {
                continue;
            }
            let ids: Vec<String> = hub
                .presence(&room)
                .iter()
                .map(|c| c.as_str().to_owned())
                .collect();
            now.insert(room, ids.join(" "));
        }
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(node.keys.node(&node.id))
            .arg("1")
            .arg("PX")
            .arg(NODE_TTL.as_millis() as u64)
            .ignore();
        pipe.cmd("SADD")
            .arg(node.keys.nodes())
            .arg(&node.id)
            .ignore();
        pipe.cmd("PEXPIRE")
            .arg(node.keys.node_connections(&node.id))
            .arg(NODE_TTL.as_millis() as u64 * 10)
            .ignore();
        for (room, members) in &now {
            if written.get(room) != Some(members) {
                pipe.cmd("HSET")
                    .arg(node.keys.presence(room))
                    .arg(&node.id)
                    .arg(members)
                    .ignore();
            }
        }
        for room in written.keys().filter(|r| !now.contains_key(*r)) {
            pipe.cmd("HDEL")
                .arg(node.keys.presence(room))
                .arg(&node.id)
                .ignore();
        }
        let mut conn = node.conn.clone();
        if node.timed(pipe.query_async::<()>(&mut conn)).await.is_ok() {
            written = now;
        }
    }
    let mut conn = node.conn.clone();
    let mut pipe = redis::pipe();
    pipe.cmd("DEL").arg(node.keys.node(&node.id)).ignore();
    pipe.cmd("DEL")
        .arg(node.keys.node_connections(&node.id))
        .ignore();
    pipe.cmd("SREM")
        .arg(node.keys.nodes())
        .arg(&node.id)
        .ignore();
    for room in written.keys() {
        pipe.cmd("HDEL")
            .arg(node.keys.presence(room))
            .arg(&node.id)
            .ignore();
    }
    let _ = node.timed(pipe.query_async::<()>(&mut conn)).await;
}

/// Members of `room` on every live node, sorted and without duplicates.
pub(crate) async fn members(
    node: &Node,
    hub: &Hub,
    room: &RoomName,
) -> Result<Vec<ClientId>, ClusterError> {
    let mut conn = node.conn.clone();
    let mut hgetall = redis::cmd("HGETALL");
    hgetall.arg(node.keys.presence(room));
    let fields: HashMap<String, String> = node.timed(hgetall.query_async(&mut conn)).await?;
    let others: Vec<(&String, &String)> = fields.iter().filter(|(n, _)| **n != node.id).collect();
    let mut ids: Vec<ClientId> = hub.presence(room);
    if !others.is_empty() {
        let mut pipe = redis::pipe();
        for (n, _) in &others {
            pipe.cmd("EXISTS").arg(node.keys.node(n));
        }
        let alive: Vec<bool> = node.timed(pipe.query_async(&mut conn)).await?;
        let mut dead = Vec::new();
        for ((n, members), alive) in others.iter().zip(alive) {
            if alive {
                ids.extend(members.split(' ').filter_map(|c| ClientId::parse(c).ok()));
            } else {
                dead.push((*n).clone());
            }
        }
        if !dead.is_empty() {
            let mut del = redis::cmd("HDEL");
            del.arg(node.keys.presence(room)).arg(dead);
            let _ = node.timed(del.query_async::<i64>(&mut conn)).await;
        }
    }
    ids.sort();
    ids.dedup();
    Ok(ids)
}

//! One poll of a node (its stats and rooms), all nodes polled concurrently, and the JSON
//! snapshot that `--json` prints.

use serde_json::{json, Value};

use crate::args::NodeUrl;
use crate::http::{Client, FetchError};
use crate::stats::{rooms_from_json, RoomInfo, ShapeError, Stats};

/// Admin API path of the statistics.
pub const STATS_PATH: &str = "/api/admin/stats";
/// Admin API path of the rooms listing.
pub const ROOMS_PATH: &str = "/api/admin/rooms";

/// Why a node could not be read.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A request failed.
    #[error("{path}: {source}")]
    Fetch {
        /// The API path.
        path: &'static str,
        /// What went wrong.
        source: FetchError,
    },
    /// The node answered JSON of the wrong shape.
    #[error("{path}: {source}")]
    Shape {
        /// The API path.
        path: &'static str,
        /// What is wrong with it.
        source: ShapeError,
    },
    /// The poll task itself failed (a bug); reported rather than hidden.
    #[error("poll task failed")]
    Lost,
}

impl NodeError {
    /// The HTTP status the node answered with, if that is why it failed.
    pub fn status(&self) -> Option<u16> {
        match self {
            NodeError::Fetch { source, .. } => source.status().map(|s| s.as_u16()),
            NodeError::Shape { .. } | NodeError::Lost => None,
        }
    }
}

/// What one poll of one node returned.
#[derive(Debug, Clone)]
pub struct NodeData {
    /// Typed statistics.
    pub stats: Stats,
    /// Typed rooms, largest first, at most [`crate::stats::MAX_ROOMS`].
    pub rooms: Vec<RoomInfo>,
    /// The stats JSON as the node sent it (for `--json`).
    pub stats_raw: Value,
    /// The rooms JSON array as the node sent it (for `--json`).
    pub rooms_raw: Value,
}

/// One node's poll result.
#[derive(Debug)]
pub struct NodeReading {
    /// The node.
    pub url: NodeUrl,
    /// Its data, or why there is none.
    pub result: Result<NodeData, NodeError>,
}

/// Reads one node: stats and rooms, concurrently.
pub async fn poll_node(client: &Client, node: &NodeUrl) -> Result<NodeData, NodeError> {
    let (stats, rooms) = tokio::join!(
        client.get_json(node, STATS_PATH),
        client.get_json(node, ROOMS_PATH)
    );
    let stats_raw = stats.map_err(|source| NodeError::Fetch {
        path: STATS_PATH,
        source,
    })?;
    let rooms_raw = rooms.map_err(|source| NodeError::Fetch {
        path: ROOMS_PATH,
        source,
    })?;
    NodeData::from_json(stats_raw, rooms_raw)
}

impl NodeData {
    /// Types what a node's stats and rooms endpoints returned (`rooms_raw` is the whole
    /// `{"rooms": [...]}` body), keeping the JSON as sent.
    ///
    /// # Errors
    /// [`NodeError::Shape`] naming the endpoint whose JSON does not have the expected shape.
    pub fn from_json(stats_raw: Value, rooms_raw: Value) -> Result<NodeData, NodeError> {
        let stats = Stats::from_json(&stats_raw).map_err(|source| NodeError::Shape {
            path: STATS_PATH,
            source,
        })?;
        let rooms = rooms_from_json(&rooms_raw).map_err(|source| NodeError::Shape {
            path: ROOMS_PATH,
            source,
        })?;
        Ok(NodeData {
            stats,
            rooms,
            stats_raw,
            rooms_raw: rooms_raw["rooms"].clone(),
        })
    }
}

/// Reads every node concurrently; the result is in the order of `nodes`.
pub async fn poll_all(client: &Client, nodes: &[NodeUrl]) -> Vec<NodeReading> {
    let mut set = tokio::task::JoinSet::new();
    for (i, node) in nodes.iter().enumerate() {
        let client = client.clone();
        let node = node.clone();
        set.spawn(async move {
            let result = poll_node(&client, &node).await;
            (i, NodeReading { url: node, result })
        });
    }
    let mut slots: Vec<Option<NodeReading>> = nodes.iter().map(|_| None).collect();
    while let Some(joined) = set.join_next().await {
        // A poll task only panics on a bug; its slot is then reported below as failed.
        if let Ok((i, reading)) = joined {
            if let Some(slot) = slots.get_mut(i) {
                *slot = Some(reading);
            }
        }
    }
    slots
        .into_iter()
        .zip(nodes)
        .map(|(slot, node)| {
            slot.unwrap_or_else(|| NodeReading {
                url: node.clone(),
                result: Err(NodeError::Lost),
            })
        })
        .collect()
}

/// `{"nodes":[{"url":..,"stats":{..},"rooms":[..],"markets":[..]} | {"url":..,"error":".."}]}`;
/// `markets` (one `{"symbol","last_price","best_bid","best_ask","volume"}` per market) is
/// there only when the node runs a trading arena.
pub fn snapshot_json(readings: &[NodeReading]) -> Value {
    let nodes: Vec<Value> = readings
        .iter()
        .map(|r| match &r.result {
            Ok(data) => {
                let mut node = json!({
                    "url": r.url.to_string(),
                    "stats": data.stats_raw,
                    "rooms": data.rooms_raw,
                });
                if let Some(arena) = &data.stats.arena {
                    node["markets"] = arena.markets.iter().map(|m| m.to_json()).collect();
                }
                node
            }
            Err(e) => {
                let mut node = json!({"url": r.url.to_string(), "error": e.to_string()});
                if let Some(status) = e.status() {
                    node["status"] = json!(status);
                }
                node
            }
        })
        .collect();
    json!({ "nodes": nodes })
}

/// Polls every node once and returns the snapshot JSON (what `--once --json` prints).
pub async fn snapshot(client: &Client, nodes: &[NodeUrl]) -> Value {
    snapshot_json(&poll_all(client, nodes).await)
}

//! The figures the monitor reads, typed out of the admin API's JSON.
//!
//! Parsing is lenient on purpose: a counter the node does not report (an older or newer
//! server) is simply absent, while the three figures every node has (`connections`, `rooms`,
//! `subscriptions`) are required, so a wrong URL answering some other JSON is reported.

use serde_json::Value;

/// Most rooms kept from one rooms listing (the API lists largest first, so these are the
/// biggest rooms); bounds the monitor's memory on a node with very many rooms.
pub const MAX_ROOMS: usize = 10_000;

/// Counters shown when the node reports them: label and the JSON keys that may carry it.
/// A value may be a number or an object of numbers (e.g. failures by code), which is summed.
const COUNTERS: &[(&str, &[&str])] = &[
    ("slow consumers", &["slow_consumers"]),
    ("evicted", &["evicted"]),
    ("dropped oldest", &["dropped_oldest"]),
    ("rate limited", &["rate_limited", "rate_limit_hits"]),
    ("auth failures", &["auth_failures"]),
];

/// Most markets kept from one node's arena figures.
pub const MAX_MARKETS: usize = 32;

/// The JSON is not what the admin API returns.
#[derive(Debug, thiserror::Error)]
pub enum ShapeError {
    /// A required field is missing or not a number.
    #[error("not roomcast admin stats: missing {0:?}")]
    MissingField(&'static str),
    /// The rooms reply has no `rooms` array.
    #[error("not a roomcast rooms listing")]
    NotRooms,
}

/// One node's `GET /api/admin/stats`.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    /// Open connections.
    pub connections: u64,
    /// Rooms with members.
    pub rooms: u64,
    /// Room memberships summed over rooms.
    pub subscriptions: u64,
    /// Messages received from clients since start (counter).
    pub messages_in: Option<u64>,
    /// Frames written to clients since start (counter; newer nodes only).
    pub messages_out: Option<u64>,
    /// Messages queued to recipients by fan-out since start (counter).
    pub deliveries: Option<u64>,
    /// Events published since start (counter).
    pub publishes: Option<u64>,
    /// Seconds since the node started.
    pub uptime_secs: Option<u64>,
    /// Trouble counters the node reports, in a fixed order.
    pub counters: Vec<Counter>,
    /// The trading arena, when the node runs one (its `arena` object).
    pub arena: Option<ArenaInfo>,
    /// On a cluster node (`--broker`): live nodes and their connections together (its
    /// `cluster` object).
    pub cluster: Option<ClusterInfo>,
}

/// The cluster a node belongs to, as that node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterInfo {
    /// Live nodes.
    pub nodes: u64,
    /// Connections over every live node.
    pub connections: u64,
}

impl ClusterInfo {
    fn from_json(v: &Value) -> Option<ClusterInfo> {
        Some(ClusterInfo {
            nodes: v["nodes"].as_array()?.len() as u64,
            connections: v["connections"].as_u64()?,
        })
    }
}

/// A node's trading arena: counters and one line per market.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArenaInfo {
    /// Orders accepted since the node started (counter).
    pub orders_accepted: Option<u64>,
    /// Orders rejected by risk checks since the node started (counter).
    pub orders_rejected: Option<u64>,
    /// Trades in the exchange's state (counter; survives restarts).
    pub trades: Option<u64>,
    /// Markets, in the node's order, at most [`MAX_MARKETS`].
    pub markets: Vec<MarketLine>,
}

/// One market's figures. Prices and quantities stay the decimal strings the node sent:
/// the monitor shows them, it never computes with them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketLine {
    /// Symbol, e.g. `BTC-USD`.
    pub symbol: String,
    /// Last trade price.
    pub last_price: Option<String>,
    /// Best bid.
    pub best_bid: Option<String>,
    /// Best ask.
    pub best_ask: Option<String>,
    /// Quantity traded.
    pub volume: Option<String>,
}

impl ArenaInfo {
    /// Reads the stats' `arena` object; `None` when it is absent or null (no arena).
    pub fn from_json(v: &Value) -> Option<ArenaInfo> {
        if !v.is_object() {
            return None;
        }
        let text = |m: &Value, k: &str| m[k].as_str().map(str::to_owned);
        let markets = v["symbols"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|m| {
                        Some(MarketLine {
                            symbol: m["symbol"].as_str()?.to_owned(),
                            last_price: text(m, "last_price"),
                            best_bid: text(m, "best_bid"),
                            best_ask: text(m, "best_ask"),
                            volume: text(m, "volume"),
                        })
                    })
                    .take(MAX_MARKETS)
                    .collect()
            })
            .unwrap_or_default();
        Some(ArenaInfo {
            orders_accepted: v["orders_accepted"].as_u64(),
            orders_rejected: v["orders_rejected"].as_u64(),
            trades: v["trades"].as_u64(),
            markets,
        })
    }
}

impl MarketLine {
    /// The line as `--once --json` lists it.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "symbol": self.symbol,
            "last_price": self.last_price,
            "best_bid": self.best_bid,
            "best_ask": self.best_ask,
            "volume": self.volume,
        })
    }
}

/// A named counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    /// Human label.
    pub label: &'static str,
    /// Value since the node started.
    pub value: u64,
}

impl Stats {
    /// Reads the stats object.
    pub fn from_json(v: &Value) -> Result<Stats, ShapeError> {
        let required = |key: &'static str| v[key].as_u64().ok_or(ShapeError::MissingField(key));
        let counters = COUNTERS
            .iter()
            .filter_map(|(label, keys)| {
                keys.iter()
                    .find_map(|k| counter_value(&v[*k]))
                    .map(|value| Counter { label, value })
            })
            .collect();
        Ok(Stats {
            connections: required("connections")?,
            rooms: required("rooms")?,
            subscriptions: required("subscriptions")?,
            messages_in: v["messages_in"].as_u64(),
            messages_out: v["messages_out"].as_u64(),
            deliveries: v["deliveries"].as_u64(),
            publishes: v["publishes"].as_u64(),
            uptime_secs: v["uptime_secs"].as_u64(),
            counters,
            arena: ArenaInfo::from_json(&v["arena"]),
            cluster: ClusterInfo::from_json(&v["cluster"]),
        })
    }

    /// The counter with `label`, if reported.
    pub fn counter(&self, label: &str) -> Option<u64> {
        self.counters
            .iter()
            .find(|c| c.label == label)
            .map(|c| c.value)
    }
}

fn counter_value(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::Object(map) => Some(map.values().filter_map(Value::as_u64).sum()),
        _ => None,
    }
}

/// One room of `GET /api/admin/rooms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomInfo {
    /// Room name.
    pub name: String,
    /// Members now.
    pub members: u64,
    /// The room's last sequence (grows by one per published event).
    pub sequence: Option<u64>,
    /// The epoch `sequence` belongs to; a new epoch restarts the sequence.
    pub epoch: Option<String>,
}

/// Reads the rooms listing, keeping at most [`MAX_ROOMS`] (the first ones, the largest).
pub fn rooms_from_json(v: &Value) -> Result<Vec<RoomInfo>, ShapeError> {
    let list = v["rooms"].as_array().ok_or(ShapeError::NotRooms)?;
    Ok(list
        .iter()
        .filter_map(|r| {
            Some(RoomInfo {
                name: r["room"].as_str()?.to_owned(),
                members: r["members"].as_u64().unwrap_or(0),
                sequence: r["sequence"].as_u64(),
                epoch: r["epoch"].as_str().map(str::to_owned),
            })
        })
        .take(MAX_ROOMS)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_stats_and_optional_counters() -> Result<(), ShapeError> {
        let s = Stats::from_json(&json!({
            "connections": 3, "rooms": 2, "subscriptions": 4, "messages_in": 10,
            "deliveries": 20, "slow_consumers": 1, "evicted": 0,
            "auth_failures": {"4001": 2, "4003": 1}
        }))?;
        assert_eq!((s.connections, s.rooms, s.subscriptions), (3, 2, 4));
        assert_eq!(s.messages_in, Some(10));
        assert_eq!(s.publishes, None);
        assert_eq!(s.counter("slow consumers"), Some(1));
        assert_eq!(s.counter("auth failures"), Some(3));
        assert_eq!(s.counter("rate limited"), None);
        assert_eq!(s.arena, None);
        assert!(matches!(
            Stats::from_json(&json!({"ok": true})),
            Err(ShapeError::MissingField("connections"))
        ));
        Ok(())
    }

    #[test]
    fn reads_the_cluster_of_a_cluster_node() -> Result<(), ShapeError> {
        let s = Stats::from_json(&json!({
            "connections": 2, "rooms": 1, "subscriptions": 2,
            "cluster": {"node": "ab", "connections": 6, "nodes": [
                {"node": "ab", "connections": 2}, {"node": "cd", "connections": 4}
            ]}
        }))?;
        assert_eq!(
            s.cluster,
            Some(ClusterInfo {
                nodes: 2,
                connections: 6
            })
        );
        Ok(())
    }

    #[test]
    fn reads_the_arena() -> Result<(), ShapeError> {
        let s = Stats::from_json(&json!({
            "connections": 0, "rooms": 0, "subscriptions": 0,
            "arena": {"orders_accepted": 9, "orders_rejected": 1, "trades": 4, "accounts": 3,
                "symbols": [
                    {"symbol": "BTC-USD", "last_price": "101.25", "best_bid": "101.2",
                     "best_ask": null, "volume": "0.5"},
                    {"last_price": "1"}
                ]}
        }))?;
        let arena = s.arena.expect("arena");
        assert_eq!(arena.orders_accepted, Some(9));
        assert_eq!(arena.trades, Some(4));
        assert_eq!(
            arena.markets.len(),
            1,
            "a market without a symbol is skipped"
        );
        assert_eq!(arena.markets[0].last_price.as_deref(), Some("101.25"));
        assert_eq!(arena.markets[0].best_ask, None);
        let no_arena = Stats::from_json(&json!({
            "connections": 0, "rooms": 0, "subscriptions": 0, "arena": null
        }))?;
        assert_eq!(no_arena.arena, None);
        Ok(())
    }

    #[test]
    fn reads_rooms() -> Result<(), ShapeError> {
        let rooms = rooms_from_json(&json!({"rooms": [
            {"room": "a", "members": 2, "sequence": 5, "epoch": "e"},
            {"room": "b", "members": 1, "sequence": null},
            {"members": 1}
        ]}))?;
        assert_eq!(rooms.len(), 2);
        assert_eq!(rooms[0].sequence, Some(5));
        assert_eq!(rooms[1].sequence, None);
        assert!(rooms_from_json(&json!([])).is_err());
        Ok(())
    }
}

//! The monitor's state, with no I/O: poll results go in ([`Model::record`]), figures for the
//! screen come out (rates, sparkline series, top rooms).
//!
//! Rates are derived from two consecutive readings of a counter: `(now - before) / elapsed`.
//! A counter that went backwards means the node restarted; no rate is shown for that step
//! rather than a nonsense one. Room rates come from the room's `sequence` (one per published
//! event) and are skipped when the room's epoch changed.

use std::collections::{HashMap, VecDeque};
use std::fmt::Display;
use std::time::{Duration, Instant};

use crate::poll::NodeData;
use crate::stats::{RoomInfo, Stats};

/// Samples kept per sparkline.
pub const HISTORY: usize = 60;
/// Rows of each top-rooms table.
pub const TOP_ROOMS: usize = 10;

/// Everything the screen shows.
#[derive(Debug, Clone)]
pub struct Model {
    /// One entry per node, in the order given on the command line.
    pub nodes: Vec<NodeState>,
    /// Poll interval (shown in the header).
    pub interval: Duration,
}

impl Model {
    /// A model for these nodes, nothing read yet.
    pub fn new(urls: Vec<String>, interval: Duration) -> Model {
        Model {
            nodes: urls.into_iter().map(NodeState::new).collect(),
            interval,
        }
    }

    /// Records node `index`'s poll result taken at `at`. An out-of-range index is ignored.
    pub fn record<E: Display>(&mut self, index: usize, at: Instant, result: Result<NodeData, E>) {
        if let Some(node) = self.nodes.get_mut(index) {
            match result {
                Ok(data) => node.record(at, data),
                Err(e) => node.status = Status::Down(e.to_string()),
            }
        }
    }
}

/// Whether a node answered its last poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Not polled yet.
    Waiting,
    /// The last poll succeeded.
    Up,
    /// The last poll failed; why.
    Down(String),
}

/// Per-second rates between the last two readings.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rates {
    /// Messages received from clients per second.
    pub messages_in: Option<f64>,
    /// Messages written to clients per second: the node's `messages_out` counter, or its
    /// `deliveries` when it has no `messages_out`.
    pub messages_out: Option<f64>,
    /// Messages queued to recipients by fan-out per second.
    pub deliveries: Option<f64>,
    /// Events published per second.
    pub publishes: Option<f64>,
    /// Arena orders accepted per second.
    pub orders: Option<f64>,
    /// Arena trades per second.
    pub trades: Option<f64>,
}

/// A row of a top-rooms table.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomRow {
    /// Room name.
    pub name: String,
    /// Members now.
    pub members: u64,
    /// Events per second, when two readings of the room exist.
    pub rate: Option<f64>,
}

/// A bounded series of the last [`HISTORY`] values.
#[derive(Debug, Clone, Default)]
pub struct Series(VecDeque<f64>);

impl Series {
    /// Appends a value, dropping the oldest past [`HISTORY`].
    pub fn push(&mut self, v: f64) {
        if self.0.len() == HISTORY {
            self.0.pop_front();
        }
        self.0.push_back(v);
    }

    /// The values, oldest first.
    pub fn values(&self) -> impl Iterator<Item = f64> + '_ {
        self.0.iter().copied()
    }

    /// Values for a sparkline (whole numbers, rounded; a rate below 1/s but above 0 shows as 1
    /// so that activity is never drawn as silence).
    pub fn sparkline(&self) -> Vec<u64> {
        self.0
            .iter()
            .map(|v| match *v {
                v if v <= 0.0 => 0,
                v if v < 1.0 => 1,
                v => v.round() as u64,
            })
            .collect()
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What is known about one node.
#[derive(Debug, Clone)]
pub struct NodeState {
    /// Base URL.
    pub url: String,
    /// Last poll outcome.
    pub status: Status,
    /// The last statistics read (kept, and shown as stale, while the node is down).
    pub stats: Option<Stats>,
    /// Rates between the last two readings.
    pub rates: Rates,
    /// Inbound messages per second, last [`HISTORY`] polls.
    pub messages_in: Series,
    /// Outbound messages per second ([`Rates::messages_out`]), last [`HISTORY`] polls.
    pub messages_out: Series,
    /// Largest rooms.
    pub top_by_members: Vec<RoomRow>,
    /// Busiest rooms (events per second), only rooms with traffic.
    pub top_by_rate: Vec<RoomRow>,
    last: Option<Sample>,
}

/// The counters of the previous reading, to derive rates from.
#[derive(Debug, Clone)]
struct Sample {
    at: Instant,
    messages_in: Option<u64>,
    messages_out: Option<u64>,
    deliveries: Option<u64>,
    publishes: Option<u64>,
    orders: Option<u64>,
    trades: Option<u64>,
    /// Room → (epoch, sequence); bounded by [`crate::stats::MAX_ROOMS`].
    rooms: HashMap<String, (Option<String>, u64)>,
}

impl NodeState {
    fn new(url: String) -> NodeState {
        NodeState {
            url,
            status: Status::Waiting,
            stats: None,
            rates: Rates::default(),
            messages_in: Series::default(),
            messages_out: Series::default(),
            top_by_members: Vec::new(),
            top_by_rate: Vec::new(),
            last: None,
        }
    }

    /// Whether the last poll failed.
    pub fn is_down(&self) -> bool {
        matches!(self.status, Status::Down(_))
    }

    fn record(&mut self, at: Instant, data: NodeData) {
        let NodeData { stats, rooms, .. } = data;
        let elapsed = self
            .last
            .as_ref()
            .and_then(|l| at.checked_duration_since(l.at))
            .map(|d| d.as_secs_f64())
            .filter(|s| *s > 0.0);
        let last = self.last.as_ref();
        self.rates = match (last, elapsed) {
            (Some(l), Some(secs)) => Rates {
                messages_in: rate(l.messages_in, stats.messages_in, secs),
                messages_out: match (l.messages_out, stats.messages_out) {
                    (Some(before), Some(now)) => rate(Some(before), Some(now), secs),
                    _ => rate(l.deliveries, stats.deliveries, secs),
                },
                deliveries: rate(l.deliveries, stats.deliveries, secs),
                publishes: rate(l.publishes, stats.publishes, secs),
                orders: rate(l.orders, arena_counter(&stats, |a| a.orders_accepted), secs),
                trades: rate(l.trades, arena_counter(&stats, |a| a.trades), secs),
            },
            _ => Rates::default(),
        };
        if let Some(v) = self.rates.messages_in {
            self.messages_in.push(v);
        }
        if let Some(v) = self.rates.messages_out {
            self.messages_out.push(v);
        }
        let rows: Vec<RoomRow> = rooms
            .iter()
            .map(|r| RoomRow {
                name: r.name.clone(),
                members: r.members,
                rate: match (last, elapsed) {
                    (Some(l), Some(secs)) => room_rate(l, r, secs),
                    _ => None,
                },
            })
            .collect();
        self.top_by_members = top_by_members(&rows);
        self.top_by_rate = top_by_rate(&rows);
        self.last = Some(Sample {
            at,
            messages_in: stats.messages_in,
            messages_out: stats.messages_out,
            deliveries: stats.deliveries,
            publishes: stats.publishes,
            orders: arena_counter(&stats, |a| a.orders_accepted),
            trades: arena_counter(&stats, |a| a.trades),
            rooms: rooms
                .into_iter()
                .filter_map(|r| Some((r.name, (r.epoch, r.sequence?))))
                .collect(),
        });
        self.stats = Some(stats);
        self.status = Status::Up;
    }
}

fn arena_counter(
    stats: &Stats,
    f: impl Fn(&crate::stats::ArenaInfo) -> Option<u64>,
) -> Option<u64> {
    stats.arena.as_ref().and_then(f)
}

/// `(now - before) / secs`, or `None` if either is unknown or the counter went backwards.
pub fn rate(before: Option<u64>, now: Option<u64>, secs: f64) -> Option<f64> {
    let delta = now?.checked_sub(before?)?;
    (secs > 0.0).then(|| delta as f64 / secs)
}

fn room_rate(last: &Sample, room: &RoomInfo, secs: f64) -> Option<f64> {
    let (epoch, before) = last.rooms.get(&room.name)?;
    if *epoch != room.epoch {
        return None;
    }
    rate(Some(*before), room.sequence, secs)
}

fn top_by_members(rows: &[RoomRow]) -> Vec<RoomRow> {
    let mut top: Vec<RoomRow> = rows.to_vec();
    top.sort_by(|a, b| b.members.cmp(&a.members).then_with(|| a.name.cmp(&b.name)));
    top.truncate(TOP_ROOMS);
    top
}

fn top_by_rate(rows: &[RoomRow]) -> Vec<RoomRow> {
    let mut top: Vec<RoomRow> = rows
        .iter()
        .filter(|r| r.rate.is_some_and(|v| v > 0.0))
        .cloned()
        .collect();
    top.sort_by(|a, b| {
        let (ra, rb) = (a.rate.unwrap_or(0.0), b.rate.unwrap_or(0.0));
        rb.total_cmp(&ra).then_with(|| a.name.cmp(&b.name))
    });
    top.truncate(TOP_ROOMS);
    top
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data(messages_in: u64, deliveries: u64, chat_seq: u64) -> NodeData {
        let stats_raw = json!({"connections": 5, "rooms": 2, "subscriptions": 6,
            "messages_in": messages_in, "deliveries": deliveries, "publishes": messages_in});
        let rooms_raw = json!({"rooms": [
            {"room": "lobby", "members": 4, "sequence": 7, "epoch": "e1"},
            {"room": "chat", "members": 2, "sequence": chat_seq, "epoch": "e1"}
        ]});
        NodeData::from_json(stats_raw, rooms_raw).expect("fixture parses")
    }

    #[test]
    fn rates_come_from_two_samples() {
        let t0 = Instant::now();
        let mut m = Model::new(vec!["http://a".into()], Duration::from_secs(1));
        m.record::<String>(0, t0, Ok(data(100, 1000, 10)));
        assert_eq!(m.nodes[0].rates, Rates::default());
        assert!(m.nodes[0].messages_in.is_empty());
        assert!(m.nodes[0].top_by_rate.is_empty());

        m.record::<String>(0, t0 + Duration::from_secs(2), Ok(data(150, 1400, 30)));
        let n = &m.nodes[0];
        assert_eq!(n.rates.messages_in, Some(25.0));
        assert_eq!(n.rates.deliveries, Some(200.0));
        assert_eq!(
            n.rates.messages_out,
            Some(200.0),
            "no messages_out: deliveries"
        );
        assert_eq!(n.messages_in.sparkline(), vec![25]);
        assert_eq!(n.messages_out.sparkline(), vec![200]);
        assert_eq!(n.top_by_members[0].name, "lobby");
        assert_eq!(n.top_by_rate.len(), 1, "lobby had no events");
        assert_eq!(n.top_by_rate[0].name, "chat");
        assert_eq!(n.top_by_rate[0].rate, Some(10.0));
        assert_eq!(n.status, Status::Up);
    }

    #[test]
    fn a_restart_yields_no_rate_and_a_failure_keeps_the_last_figures() {
        let t0 = Instant::now();
        let mut m = Model::new(vec!["http://a".into()], Duration::from_secs(1));
        m.record::<String>(0, t0, Ok(data(100, 1000, 10)));
        m.record::<String>(0, t0 + Duration::from_secs(1), Ok(data(3, 4, 1)));
        assert_eq!(m.nodes[0].rates.messages_in, None);
        assert!(m.nodes[0].top_by_rate.is_empty());
        m.record(0, t0 + Duration::from_secs(2), Err("connection refused"));
        assert_eq!(m.nodes[0].status, Status::Down("connection refused".into()));
        assert_eq!(m.nodes[0].stats.as_ref().map(|s| s.connections), Some(5));
    }

    #[test]
    fn messages_out_is_preferred_when_reported() {
        let with_out = |out: u64| {
            let mut d = data(0, 1000, 0);
            d.stats.messages_out = Some(out);
            d
        };
        let t0 = Instant::now();
        let mut m = Model::new(vec!["http://a".into()], Duration::from_secs(1));
        m.record::<String>(0, t0, Ok(with_out(10)));
        m.record::<String>(0, t0 + Duration::from_secs(1), Ok(with_out(17)));
        assert_eq!(m.nodes[0].rates.messages_out, Some(7.0));
        assert_eq!(m.nodes[0].rates.deliveries, Some(0.0));
    }

    #[test]
    fn series_are_bounded() {
        let mut s = Series::default();
        for i in 0..(HISTORY + 10) {
            s.push(i as f64);
        }
        assert_eq!(s.len(), HISTORY);
        assert_eq!(s.values().next(), Some(10.0));
        let mut s = Series::default();
        s.push(0.2);
        s.push(0.0);
        assert_eq!(s.sparkline(), vec![1, 0]);
    }

    #[test]
    fn rate_edge_cases() {
        assert_eq!(rate(Some(1), Some(3), 2.0), Some(1.0));
        assert_eq!(rate(None, Some(3), 2.0), None);
        assert_eq!(rate(Some(4), Some(3), 2.0), None);
        assert_eq!(rate(Some(1), Some(3), 0.0), None);
    }
}

//! The figures of one run: [`Report`] (what every scenario shares: parameters, timing,
//! generator and server CPU) with the scenario's own [`Results`] flattened into it, the
//! human summary table, the JSON file, and the loss check that decides the exit status.
//!
//! Units are in the field names: `*_us` microseconds, `*_seconds`, `*_bytes`,
//! `*_per_sec`. Latency percentiles come from an HdrHistogram (3 significant digits).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::Serialize;

pub use crate::orders_report::OrdersResults;

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Latency {
    /// Samples.
    pub count: u64,
    /// Smallest.
    pub min: f64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    #[serde(rename = "p99.9")]
    pub p99_9: f64,
    /// Largest.
    pub max: f64,
}

impl Latency {
    /// Percentiles of a histogram of nanoseconds.
    pub(crate) fn from_ns(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        // Nanoseconds to microseconds, keeping nanosecond resolution.
        let us = |ns: u64| ns as f64 / 1000.0;
        Latency {
            count: h.len(),
            min: us(h.min()),
            mean: (h.mean()).round() / 1000.0,
            p50: us(h.value_at_quantile(0.50)),
            p90: us(h.value_at_quantile(0.90)),
            p99: us(h.value_at_quantile(0.99)),
            p99_9: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
        }
    }

    pub(crate) fn summary(&self) -> String {
        if self.count == 0 {
            return "no samples".into();
        }
        format!(
            "p50 {} · p90 {} · p99 {} · p99.9 {} · max {} (µs, n={})",
            fmt_us(self.p50),
            fmt_us(self.p90),
            fmt_us(self.p99),
            fmt_us(self.p99_9),
            fmt_us(self.max),
            self.count
        )
    }
}

fn fmt_us(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// The report of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `fanout`, `connect`, `echo` or `churn`.
    pub scenario: String,
    /// The server URL.
    pub url: String,
    /// When the run started (RFC 3339, UTC).
    pub started_at: String,
    /// The scenario's arguments (secrets omitted).
    pub parameters: serde_json::Value,
    /// Load before measuring, excluded from the figures.
    pub warmup_seconds: f64,
    /// The measured time every rate is divided by.
    pub measured_seconds: f64,
    /// CPU time (user + system) of the generator's process during the measured time. When
    /// the server runs in the same process (tests), it is included.
    pub generator_cpu_seconds: f64,
    /// Generator CPU over the measured time as a percentage of one core.
    pub generator_cpu_percent: f64,
    /// CPU time of the generator's process for the whole run (setup and drain included).
    pub generator_cpu_seconds_total: f64,
    /// `--server-pid`, when given (several: the nodes of a cluster).
    pub server_pid: Vec<u32>,
    /// CPU time of the server process during the measured time (needs `--server-pid`;
    /// with several, the sum over the nodes).
    pub server_cpu_seconds: Option<f64>,
    /// CPU time of redis-server during the measured time (needs `--redis-pid`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_cpu_seconds: Option<f64>,
    /// Local source addresses the connections were spread over (empty: kernel's choice).
    pub source_ips: Vec<String>,
    /// The scenario's own figures.
    #[serde(flatten)]
    pub results: Results,
    /// Where `--json` goes.
    #[serde(skip)]
    pub json_path: Option<PathBuf>,
    /// `--allow-loss`.
    #[serde(skip)]
    pub allow_loss: bool,
}

/// The figures of each scenario.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Results {
    /// `fanout`.
    Fanout(FanoutResults),
    /// `connect`.
    Connect(ConnectResults),
    /// `echo`.
    Echo(EchoResults),
    /// `churn`.
    Churn(ChurnResults),
    /// `replay`.
    Replay(ReplayResults),
    /// `orders`.
    Orders(OrdersResults),
}

/// Fan-out figures. Every count covers messages *sent* during the measured time.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FanoutResults {
    /// Subscribers connected and subscribed when the load started.
    pub subscribers: u64,
    /// Subscribers whose setup failed.
    pub subscribers_failed: u64,
    /// Subscribers the server disconnected during the run.
    pub subscribers_disconnected: u64,
    /// Their close codes.
    pub disconnect_codes: BTreeMap<String, u64>,
    /// Publishers connected.
    pub publishers: u64,
    /// Rooms.
    pub rooms: u64,
    /// Subscribers connected at the start on each node (`--url` order); one entry for a
    /// single server.
    pub subscribers_per_node: Vec<u64>,
    /// The node (index into `--url`) the publishers connected to.
    pub publisher_node: u64,
    /// Setup failures by reason.
    pub connect_failures: BTreeMap<String, u64>,
    /// Messages published during the measured time.
    pub published: u64,
    /// Messages published in the whole run (warmup included).
    pub published_total: u64,
    /// `published / measured_seconds`.
    pub publishes_per_sec: f64,
    /// Deliveries owed: each measured publish times its room's subscribers.
    pub expected: u64,
    /// Deliveries received, duplicates included.
    pub received: u64,
    /// `expected - (received - duplicated)`.
    pub lost: u64,
    /// Deliveries of a message a subscriber had already received.
    pub duplicated: u64,
    /// Deliveries that arrived after a later message of the same publisher.
    pub reordered: u64,
    /// Distinct deliveries per second of measured time.
    pub deliveries_per_sec: f64,
    /// Publish → deliver latency.
    pub latency_us: Latency,
    /// `message` events whose content was not a bench payload.
    pub foreign_messages: u64,
    /// `error` replies received, by code.
    pub server_errors: BTreeMap<String, u64>,
    /// Time spent waiting for in-flight deliveries after the load stopped.
    pub drain_seconds: f64,
    /// Whether every owed delivery arrived before the drain deadline.
    pub drain_complete: bool,
    /// Generator CPU per distinct delivery, in microseconds.
    pub generator_cpu_us_per_delivery: f64,
}

/// Connection figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ConnectResults {
    /// Connections asked for.
    pub connections: u64,
    /// Connections that completed TCP, upgrade and the subscribe ack.
    pub connected: u64,
    /// Attempts that failed.
    pub failed: u64,
    /// Failures by reason.
    pub failures: BTreeMap<String, u64>,
    /// From the first attempt to the last result.
    pub open_seconds: f64,
    /// `connected / open_seconds`.
    pub handshakes_per_sec: f64,
    /// TCP connect → subscribe ack.
    pub handshake_latency_us: Latency,
    /// TCP connect → `101 Switching Protocols`.
    pub upgrade_latency_us: Latency,
    /// How long all connections were held.
    pub held_seconds: f64,
    /// Connections the server closed while held.
    pub dropped: u64,
    /// Their close codes.
    pub drop_codes: BTreeMap<String, u64>,
    /// Server RSS before connecting (needs `--server-pid`).
    pub server_rss_before_bytes: Option<u64>,
    /// Server RSS once every connection was open.
    pub server_rss_open_bytes: Option<u64>,
    /// Server RSS at the end of the hold.
    pub server_rss_after_bytes: Option<u64>,
    /// `(after - before) / connected`.
    pub rss_per_connection_bytes: Option<f64>,
    /// Server CPU during the hold as a percentage of one core (heartbeat cost).
    pub server_cpu_percent_hold: Option<f64>,
}

/// Ping → pong figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EchoResults {
    /// Connections asked for.
    pub connections: u64,
    /// Connections that completed setup.
    pub connected: u64,
    /// Setup failures by reason.
    pub connect_failures: BTreeMap<String, u64>,
    /// Pings sent during the measured time.
    pub sent: u64,
    /// Their pongs received.
    pub received: u64,
    /// `sent - received` after the drain.
    pub lost: u64,
    /// Pongs for a ping already answered.
    pub duplicated: u64,
    /// `received / measured_seconds`.
    pub round_trips_per_sec: f64,
    /// Round-trip latency.
    pub latency_us: Latency,
    /// Connections the server closed during the run.
    pub dropped: u64,
}

/// Connect/subscribe/disconnect cycle figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChurnResults {
    /// Concurrent workers.
    pub workers: u64,
    /// Cycles completed that started during the measured time.
    pub cycles: u64,
    /// `cycles / measured_seconds`.
    pub cycles_per_sec: f64,
    /// Cycles that failed (started during the measured time).
    pub failed: u64,
    /// Failures by reason.
    pub failures: BTreeMap<String, u64>,
    /// One cycle: TCP connect → subscribe ack → close acknowledged.
    pub cycle_latency_us: Latency,
    /// TCP connect → subscribe ack.
    pub connect_latency_us: Latency,
}

/// Per-client completion times in milliseconds (barrier → that client's
/// `replay_complete`).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct DoneMs {
    /// Clients that completed.
    pub count: u64,
    /// Fastest.
    pub min: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
}

impl DoneMs {
    /// Percentiles (nearest rank) of completion times in nanoseconds.
    pub(crate) fn from_ns(mut v: Vec<u64>) -> DoneMs {
        if v.is_empty() {
            return DoneMs::default();
        }
        v.sort_unstable();
        let at = |q: f64| {
            let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
            round3(v[rank - 1] as f64 / 1e6)
        };
        DoneMs {
            count: v.len() as u64,
            min: at(0.0),
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

/// Catch-up figures: a room seeded with events, clients resuming from `since_sequence`
/// at one instant.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplayResults {
    /// Clients asked for.
    pub clients: u64,
    /// Clients connected when the barrier fell.
    pub connected: u64,
    /// Setup failures by reason.
    pub connect_failures: BTreeMap<String, u64>,
    /// The room replayed.
    pub room: String,
    /// `http` (`POST /api/publish/batch`) or `websocket` (`message` requests).
    pub seeded_via: String,
    /// Events seeded.
    pub seeded: u64,
    /// Time the seeding took.
    pub seed_seconds: f64,
    /// The room's sequence after seeding.
    pub head_sequence: u64,
    /// The position every client resumed from.
    pub since_sequence: u64,
    /// Events owed over all connected clients: `connected × (head - since)`.
    pub expected: u64,
    /// Distinct replayed events received, over all clients.
    pub events_replayed: u64,
    /// Owed events never received (gaps, clients that dropped or timed out).
    pub lost: u64,
    /// Replayed events received twice or out of order.
    pub duplicated: u64,
    /// Clients that got `replay_complete`.
    pub completed: u64,
    /// Clients that got `recovery_failed`.
    pub recovery_failed: u64,
    /// Clients the server disconnected or that timed out before `replay_complete`.
    pub incomplete: u64,
    /// Clients whose `replayed_count` differed from the events they received.
    pub count_mismatches: u64,
    /// Barrier → the last client's `replay_complete`.
    pub replay_seconds: f64,
    /// `events_replayed / replay_seconds`.
    pub events_per_sec: f64,
    /// Per-client time to `replay_complete`.
    pub client_done_ms: DoneMs,
    /// Generator CPU per replayed event, in microseconds.
    pub generator_cpu_us_per_event: f64,
}

impl Report {
    /// The replay figures, if this is a replay report.
    pub fn replay(&self) -> Option<&ReplayResults> {
        match &self.results {
            Results::Replay(r) => Some(r),
            _ => None,
        }
    }

    /// The fan-out figures, if this is a fan-out report.
    pub fn fanout(&self) -> Option<&FanoutResults> {
        match &self.results {
            Results::Fanout(r) => Some(r),
            _ => None,
        }
    }

    /// The connect figures, if this is a connect report.
    pub fn connect(&self) -> Option<&ConnectResults> {
        match &self.results {
            Results::Connect(r) => Some(r),
            _ => None,
        }
    }

    /// The echo figures, if this is an echo report.
    pub fn echo(&self) -> Option<&EchoResults> {
        match &self.results {
            Results::Echo(r) => Some(r),
            _ => None,
        }
    }

    /// The orders figures, if this is an orders report.
    pub fn orders(&self) -> Option<&OrdersResults> {
        match &self.results {
            Results::Orders(r) => Some(r),
            _ => None,
        }
    }

    /// The churn figures, if this is a churn report.
    pub fn churn(&self) -> Option<&ChurnResults> {
        match &self.results {
            Results::Churn(r) => Some(r),
            _ => None,
        }
    }

    /// Lost and duplicated messages (zero for scenarios without messages).
    pub fn lost_and_duplicated(&self) -> (u64, u64) {
        match &self.results {
            Results::Fanout(r) => (r.lost, r.duplicated),
            Results::Echo(r) => (r.lost, r.duplicated),
            Results::Replay(r) => (r.lost, r.duplicated),
            Results::Orders(r) => (r.lost, 0),
            Results::Connect(_) | Results::Churn(_) => (0, 0),
        }
    }

    /// Fails when messages were lost or duplicated, unless `--allow-loss`.
    pub(crate) fn check_loss(&self) -> anyhow::Result<()> {
        let (lost, dup) = self.lost_and_duplicated();
        if (lost > 0 || dup > 0) && !self.allow_loss {
            anyhow::bail!(
                "{lost} messages lost and {dup} duplicated during the {} run (pass --allow-loss to accept)",
                self.scenario
            );
        }
        Ok(())
    }

    /// Writes the report as pretty JSON.
    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self).context("encoding the report")?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
    }

    /// The summary table as text.
    pub fn summary(&self) -> String {
        let mut rows: Vec<(&str, String)> = vec![
            ("scenario", self.scenario.clone()),
            ("url", self.url.clone()),
            (
                "measured",
                format!(
                    "{:.1} s (after {:.1} s warmup)",
                    self.measured_seconds, self.warmup_seconds
                ),
            ),
        ];
        match &self.results {
            Results::Fanout(r) => fanout_rows(r, &mut rows),
            Results::Connect(r) => connect_rows(r, &mut rows),
            Results::Echo(r) => echo_rows(r, &mut rows),
            Results::Churn(r) => churn_rows(r, &mut rows),
            Results::Replay(r) => replay_rows(r, &mut rows),
            Results::Orders(r) => crate::orders_report::orders_rows(r, &mut rows),
        }
        rows.push((
            "generator cpu",
            format!(
                "{:.2} s ({:.0}% of a core)",
                self.generator_cpu_seconds, self.generator_cpu_percent
            ),
        ));
        if let Some(s) = self.server_cpu_seconds {
            let nodes = match self.server_pid.len() {
                0 | 1 => String::new(),
                n => format!(" (sum of {n} nodes)"),
            };
            rows.push(("server cpu", format!("{s:.2} s{nodes}")));
        }
        if let Some(s) = self.redis_cpu_seconds {
            rows.push((
                "redis cpu",
                format!(
                    "{s:.2} s ({:.0}% of a core)",
                    s / self.measured_seconds.max(f64::MIN_POSITIVE) * 100.0
                ),
            ));
        }
        if !self.source_ips.is_empty() {
            rows.push(("source ips", self.source_ips.len().to_string()));
        }
        let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        let mut out = String::new();
        for (k, v) in rows {
            out.push_str(&format!("{k:<width$}  {v}\n"));
        }
        out
    }

    /// Prints the summary table to stdout.
    pub fn print_summary(&self) {
        print!("{}", self.summary());
    }
}

fn map(m: &BTreeMap<String, u64>) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn fanout_rows(r: &FanoutResults, rows: &mut Vec<(&str, String)>) {
    rows.push((
        "connections",
        format!(
            "{} subscribers in {} rooms, {} publishers ({} failed, {} disconnected)",
            r.subscribers, r.rooms, r.publishers, r.subscribers_failed, r.subscribers_disconnected
        ),
    ));
    if r.subscribers_per_node.len() > 1 {
        let per: Vec<String> = r
            .subscribers_per_node
            .iter()
            .map(|n| n.to_string())
            .collect();
        rows.push((
            "nodes",
            format!(
                "{} (subscribers {}; publishers on node {})",
                per.len(),
                per.join(" / "),
                r.publisher_node
            ),
        ));
    }
    rows.push((
        "published",
        format!("{} ({:.0}/s)", r.published, r.publishes_per_sec),
    ));
    rows.push(("deliveries/s", format!("{:.0}", r.deliveries_per_sec)));
    rows.push((
        "expected",
        format!("{} received {}", r.expected, r.received),
    ));
    rows.push((
        "lost",
        format!(
            "{} · duplicated {} · reordered {}",
            r.lost, r.duplicated, r.reordered
        ),
    ));
    rows.push(("latency", r.latency_us.summary()));
    rows.push((
        "drain",
        format!(
            "{:.2} s{}",
            r.drain_seconds,
            if r.drain_complete {
                ""
            } else {
                " (incomplete)"
            }
        ),
    ));
    if !r.server_errors.is_empty() {
        rows.push(("server errors", map(&r.server_errors)));
    }
    if !r.connect_failures.is_empty() {
        rows.push(("connect failures", map(&r.connect_failures)));
    }
    if !r.disconnect_codes.is_empty() {
        rows.push(("disconnects", map(&r.disconnect_codes)));
    }
    rows.push((
        "cpu/delivery",
        format!("{:.3} µs (generator)", r.generator_cpu_us_per_delivery),
    ));
}

fn connect_rows(r: &ConnectResults, rows: &mut Vec<(&str, String)>) {
    rows.push((
        "connected",
        format!("{} of {} ({} failed)", r.connected, r.connections, r.failed),
    ));
    rows.push((
        "handshakes/s",
        format!("{:.0} over {:.2} s", r.handshakes_per_sec, r.open_seconds),
    ));
    rows.push(("handshake", r.handshake_latency_us.summary()));
    rows.push(("upgrade", r.upgrade_latency_us.summary()));
    rows.push((
        "held",
        format!("{:.1} s, {} dropped", r.held_seconds, r.dropped),
    ));
    if !r.failures.is_empty() {
        rows.push(("failures", map(&r.failures)));
    }
    if let (Some(b), Some(a)) = (r.server_rss_before_bytes, r.server_rss_after_bytes) {
        rows.push((
            "server rss",
            format!(
                "{:.1} MiB → {:.1} MiB ({:.0} B/connection)",
                b as f64 / 1048576.0,
                a as f64 / 1048576.0,
                r.rss_per_connection_bytes.unwrap_or(0.0)
            ),
        ));
    }
    if let Some(c) = r.server_cpu_percent_hold {
        rows.push(("server cpu hold", format!("{c:.2}% of a core")));
    }
}

fn echo_rows(r: &EchoResults, rows: &mut Vec<(&str, String)>) {
    rows.push((
        "connections",
        format!("{} of {}", r.connected, r.connections),
    ));
    rows.push(("round trips/s", format!("{:.0}", r.round_trips_per_sec)));
    rows.push((
        "sent",
        format!(
            "{} received {} lost {} duplicated {}",
            r.sent, r.received, r.lost, r.duplicated
        ),
    ));
    rows.push(("latency", r.latency_us.summary()));
    if !r.connect_failures.is_empty() {
        rows.push(("connect failures", map(&r.connect_failures)));
    }
}

fn churn_rows(r: &ChurnResults, rows: &mut Vec<(&str, String)>) {
    rows.push(("workers", r.workers.to_string()));
    rows.push((
        "cycles",
        format!(
            "{} ({:.0}/s), {} failed",
            r.cycles, r.cycles_per_sec, r.failed
        ),
    ));
    rows.push(("cycle", r.cycle_latency_us.summary()));
    rows.push(("connect", r.connect_latency_us.summary()));
    if !r.failures.is_empty() {
        rows.push(("failures", map(&r.failures)));
    }
}

fn replay_rows(r: &ReplayResults, rows: &mut Vec<(&str, String)>) {
    rows.push((
        "clients",
        format!(
            "{} of {} ({} completed, {} recovery_failed, {} incomplete)",
            r.connected, r.clients, r.completed, r.recovery_failed, r.incomplete
        ),
    ));
    rows.push((
        "seeded",
        format!(
            "{} events via {} in {:.2} s into {} (head {}, since {})",
            r.seeded, r.seeded_via, r.seed_seconds, r.room, r.head_sequence, r.since_sequence
        ),
    ));
    rows.push((
        "replayed",
        format!(
            "{} of {} in {:.3} s",
            r.events_replayed, r.expected, r.replay_seconds
        ),
    ));
    rows.push(("events/s", format!("{:.0}", r.events_per_sec)));
    rows.push((
        "lost",
        format!(
            "{} · duplicated {} · count mismatches {}",
            r.lost, r.duplicated, r.count_mismatches
        ),
    ));
    let d = &r.client_done_ms;
    rows.push((
        "client done",
        format!(
            "p50 {:.1} · p90 {:.1} · p99 {:.1} · max {:.1} (ms, n={})",
            d.p50, d.p90, d.p99, d.max, d.count
        ),
    ));
    if !r.connect_failures.is_empty() {
        rows.push(("connect failures", map(&r.connect_failures)));
    }
    rows.push((
        "cpu/event",
        format!("{:.3} µs (generator)", r.generator_cpu_us_per_event),
    ));
}

/// What every scenario measures around its run: CPU of the generator, the server (summed
/// over a cluster's nodes) and Redis.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuMark {
    generator: Option<f64>,
    server: Option<f64>,
    redis: Option<f64>,
}

/// CPU seconds spent between two [`CpuMark`]s.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuSpent {
    pub(crate) generator: f64,
    pub(crate) server: Option<f64>,
    pub(crate) redis: Option<f64>,
}

impl CpuMark {
    /// Reads all three now (the server's and Redis's when their PIDs were given).
    pub(crate) fn now(common: &crate::args::CommonArgs) -> CpuMark {
        CpuMark {
            generator: crate::sys::cpu_seconds(None),
            server: crate::sys::cpu_seconds_sum(&common.server_pid),
            redis: common
                .redis_pid
                .and_then(|p| crate::sys::cpu_seconds(Some(p))),
        }
    }

    /// The generator's alone.
    fn generator_now() -> CpuMark {
        CpuMark {
            generator: crate::sys::cpu_seconds(None),
            server: None,
            redis: None,
        }
    }

    /// CPU seconds from `self` to `later`.
    pub(crate) fn until(&self, later: &CpuMark) -> CpuSpent {
        let delta = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some((b - a).max(0.0)),
            _ => None,
        };
        CpuSpent {
            generator: delta(self.generator, later.generator).unwrap_or(0.0),
            server: delta(self.server, later.server),
            redis: delta(self.redis, later.redis),
        }
    }
}

/// Common parts of a report, filled in by each scenario.
pub(crate) struct ReportBase {
    pub(crate) scenario: &'static str,
    pub(crate) common: crate::args::CommonArgs,
    pub(crate) parameters: serde_json::Value,
    pub(crate) started_at: String,
    pub(crate) sources: Vec<String>,
    pub(crate) run_start: CpuMark,
    warmup_used: bool,
}

impl ReportBase {
    /// Captures the start of a run.
    pub(crate) fn start(
        scenario: &'static str,
        common: &crate::args::CommonArgs,
        parameters: serde_json::Value,
    ) -> ReportBase {
        let started_at = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        ReportBase {
            scenario,
            common: common.clone(),
            parameters,
            started_at,
            sources: Vec::new(),
            run_start: CpuMark::now(common),
            warmup_used: true,
        }
    }

    /// For scenarios without a warmup: reports it as zero.
    pub(crate) fn warmup_ignored(&mut self) {
        self.warmup_used = false;
    }

    /// The finished report.
    pub(crate) fn finish(
        self,
        measured_seconds: f64,
        measure: (CpuMark, CpuMark),
        results: Results,
    ) -> Report {
        let spent = measure.0.until(&measure.1);
        let total = self.run_start.until(&CpuMark::generator_now()).generator;
        // CPU times come in clock ticks (10 ms); keep the JSON free of float noise.
        let (gen, total) = (round3(spent.generator), round3(total));
        let (server, redis) = (spent.server.map(round3), spent.redis.map(round3));
        Report {
            scenario: self.scenario.into(),
            url: self.common.urls_text(),
            started_at: self.started_at,
            parameters: self.parameters,
            warmup_seconds: if self.warmup_used {
                self.common.warmup.get().as_secs_f64()
            } else {
                0.0
            },
            measured_seconds,
            generator_cpu_seconds: gen,
            generator_cpu_percent: if measured_seconds > 0.0 {
                round3(gen / measured_seconds * 100.0)
            } else {
                0.0
            },
            generator_cpu_seconds_total: total,
            server_pid: self.common.server_pid.clone(),
            server_cpu_seconds: server,
            redis_cpu_seconds: redis,
            source_ips: self.sources,
            results,
            json_path: self.common.json.clone(),
            allow_loss: self.common.allow_loss,
        }
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Adds one to `map[key]`.
pub(crate) fn bump(map: &mut BTreeMap<String, u64>, key: impl Into<String>) {
    *map.entry(key.into()).or_insert(0) += 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(lost: u64, duplicated: u64, allow_loss: bool) -> Report {
        Report {
            scenario: "fanout".into(),
            url: "ws://127.0.0.1:1".into(),
            started_at: String::new(),
            parameters: serde_json::Value::Null,
            warmup_seconds: 0.0,
            measured_seconds: 1.0,
            generator_cpu_seconds: 0.0,
            generator_cpu_percent: 0.0,
            generator_cpu_seconds_total: 0.0,
            server_pid: Vec::new(),
            server_cpu_seconds: None,
            redis_cpu_seconds: None,
            source_ips: Vec::new(),
            results: Results::Fanout(FanoutResults {
                expected: 10,
                received: 10 - lost + duplicated,
                lost,
                duplicated,
                ..FanoutResults::default()
            }),
            json_path: None,
            allow_loss,
        }
    }

    #[test]
    fn loss_and_duplicates_fail_the_run_unless_allowed() {
        assert!(report(0, 0, false).check_loss().is_ok());
        let err = report(2, 0, false).check_loss().expect_err("lost");
        assert!(err.to_string().contains("2 messages lost"), "{err}");
        assert!(report(0, 1, false).check_loss().is_err());
        assert!(report(2, 1, true).check_loss().is_ok());
    }

    #[test]
    fn json_has_flat_figures_and_dotted_percentiles() {
        let v = serde_json::to_value(report(0, 0, false)).expect("json");
        assert_eq!(v["lost"], 0);
        assert!(v["latency_us"]["p99.9"].is_number());
        assert!(v.get("json_path").is_none());
    }
}

//! `roomcast bench`: the load generator for any server speaking the roomcast JSON protocol
//! (`/ws/{client_id}`, `subscribe`, `message`, `ping`/`pong`, docs/PROTOCOL.md).
//!
//! The binary wires [`BenchArgs`] into its command line and calls [`run`]; tests call
//! [`run`] directly against an in-process server. Module map:
//!
//! - [`args`]: the command line of each scenario, validated before anything connects.
//! - `scenario`: one file per scenario (`fanout`, `connect`, `echo`, `churn`, `replay`,
//!   `orders`).
//! - `conn`: where connections come from: URL, auth token, source address, handshake.
//! - `ws`: a minimal client-side WebSocket codec that reads coalesced frames in large
//!   reads, so the generator does not measure itself.
//! - `socketio`: the same messages inside Socket.IO 4 packets, to load a Socket.IO server
//!   with the same generator (a URL ending in `/socket.io`).
//! - `http`: a minimal keep-alive HTTP/1.1 client (REST orders, admin calls).
//! - `trader`: the collectives of an `orders` run: keys, registration, request signing,
//!   the Ed25519 challenge of their orders streams.
//! - `client`: protocol steps over a connection (subscribe and wait for the ack, stay
//!   alive by answering heartbeats).
//! - `parse`: the hot-path scanner for server messages (no JSON tree per message).
//! - `stats`: latency histograms (sharded, merged at the end) and percentiles.
//! - `sys`: `/proc` readings (CPU time, RSS), the open-files limit, the local port range.
//! - `progress`: a live line on a terminal, one plain line per second otherwise.
//! - [`orders_report`]: the figures of an `orders` run.
//! - [`report`]: the figures of a run, the summary table and the JSON file.
//!
//! Architecture invariants: the generator connects only to the URLs it is given and never
//! opens more connections than it was told; every scenario stops by itself after
//! `--warmup + --duration` plus a bounded drain; lost and duplicated messages are always
//! counted and make [`run`] fail unless `--allow-loss`.

pub mod args;
mod client;
mod clock;
mod conn;
mod http;
pub mod orders_report;
mod parse;
mod progress;
pub mod report;
mod scenario;
mod socketio;
mod stats;
mod sys;
mod trader;
mod ws;

pub use args::{BenchArgs, Scenario};
pub use report::{Latency, Report, Results};

/// What [`run`] returns on success: the report of the run.
pub type BenchOutcome = Report;

/// Runs one scenario to completion: prints the summary table to stdout, writes `--json`
/// if asked, and returns the report.
///
/// Fails when the scenario could not run (bad arguments, file-descriptor limit, no
/// connection succeeded), and when messages were lost or duplicated unless
/// `--allow-loss` was given; the JSON file and the summary are written first.
pub async fn run(args: BenchArgs) -> anyhow::Result<BenchOutcome> {
    let report = match args.scenario {
        Scenario::Fanout(a) => scenario::fanout::run(a).await?,
        Scenario::Connect(a) => scenario::connect::run(a).await?,
        Scenario::Echo(a) => scenario::echo::run(a).await?,
        Scenario::Churn(a) => scenario::churn::run(a).await?,
        Scenario::Replay(a) => scenario::replay::run(a).await?,
        Scenario::Orders(a) => scenario::orders::run(a).await?,
    };
    report.print_summary();
    if let Some(path) = &report.json_path {
        report.write_json(path)?;
    }
    report.check_loss()?;
    Ok(report)
}

//! `roomcast monitor`: a live terminal view of one or more roomcast nodes, and a one-shot
//! JSON snapshot of them for scripts.
//!
//! It only reads: every figure comes from each node's admin API (`GET /api/admin/stats` and
//! `GET /api/admin/rooms` with `Authorization: Bearer <admin key>`), polled every
//! `--interval`. Rates are not asked of the server; they are derived here from consecutive
//! counters, so the monitor works against any node version that serves those two endpoints.
//! When a node runs the trading arena, its stats carry an `arena` object and the panel gets
//! a line per market (last, bid/ask, volume) with the order and trade rates.
//!
//! - [`args`]: the command line ([`MonitorArgs`]), validated into [`args::Settings`].
//! - [`http`]: a minimal HTTP/1.1 GET client with timeouts and a response size cap.
//! - [`stats`]: the figures typed out of the admin JSON.
//! - [`poll`]: one poll of one node ([`poll::NodeReading`]) and the `--once --json` snapshot.
//! - [`model`]: the pure state: readings in, rates, sparkline series and top rooms out.
//! - [`ui`]: [`ui::draw`] renders a [`model::Model`] into a ratatui frame.
//! - [`term`]: the terminal loop: raw mode behind a guard, keys, redraws.
//!
//! `examples/monitor.rs` runs it standalone (`cargo run -p roomcast-monitor --example
//! monitor -- --url ..`); the `roomcast` binary offers it as `roomcast monitor`.
//!
//! Architecture invariant: only [`ui`] and [`term`] know ratatui/crossterm, and only [`http`]
//! knows hyper; the model is plain data that tests build from fixture JSON.

pub mod args;
pub mod http;
pub mod model;
pub mod poll;
pub mod stats;
pub mod term;
pub mod ui;

use std::io::Write;

pub use args::MonitorArgs;

/// Runs `roomcast monitor`: the live view on a terminal, or `--once` / `--json` output.
///
/// With `--json` (with or without `--once`) the result is JSON on stdout; a run in which any
/// node could not be read still prints every node (the failed ones with `"error"`) and then
/// returns an error, so scripts can rely on the exit status.
pub async fn run(args: MonitorArgs) -> anyhow::Result<()> {
    let settings = args.validate()?;
    let client = http::Client::new(settings.admin_key.clone(), settings.request_timeout());
    if settings.json {
        return run_json(&settings, &client).await;
    }
    if settings.once {
        return print_once(&settings, &client).await;
    }
    term::run(&settings, client).await
}

/// `--json`: one snapshot (`--once`) or one JSON line per interval until interrupted.
async fn run_json(settings: &args::Settings, client: &http::Client) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(settings.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let readings = poll::poll_all(client, &settings.nodes).await;
        let snapshot = poll::snapshot_json(&readings);
        {
            let mut out = std::io::stdout().lock();
            if settings.once {
                writeln!(out, "{snapshot:#}")?;
            } else {
                writeln!(out, "{snapshot}")?;
            }
            out.flush()?;
        }
        if settings.once {
            let down = readings.iter().filter(|r| r.result.is_err()).count();
            if down > 0 {
                anyhow::bail!("{down} of {} nodes could not be read", readings.len());
            }
            return Ok(());
        }
    }
}

/// `--once` without `--json`: two polls one interval apart (so rates exist), rendered once
/// as plain text at the terminal's width.
async fn print_once(settings: &args::Settings, client: &http::Client) -> anyhow::Result<()> {
    let mut model = model::Model::new(
        settings.nodes.iter().map(|n| n.to_string()).collect(),
        settings.interval,
    );
    for round in 0..2 {
        if round > 0 {
            tokio::time::sleep(settings.interval).await;
        }
        let now = std::time::Instant::now();
        for (i, reading) in poll::poll_all(client, &settings.nodes)
            .await
            .into_iter()
            .enumerate()
        {
            model.record(i, now, reading.result);
        }
    }
    // The terminal's width when there is one; a height that fits every node panel.
    let width = ratatui::crossterm::terminal::size().map_or(120, |(w, _)| w.max(60));
    let rows: usize = model.nodes.iter().map(|n| 16 + ui::market_rows(n)).sum();
    let height = u16::try_from(1 + rows).unwrap_or(u16::MAX);
    let text = ui::render_text(&model, width, height)?;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    if model.nodes.iter().any(|n| n.is_down()) {
        anyhow::bail!("some nodes could not be read");
    }
    Ok(())
}

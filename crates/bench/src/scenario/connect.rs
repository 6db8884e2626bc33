//! `connect`: open N connections at `--rate` per second (or as fast as `--concurrency`
//! attempts in progress allow), each doing TCP connect → upgrade → subscribe `--room` →
//! ack, then hold them all for `--duration` while answering heartbeats.
//!
//! The measured time is the opening phase: handshakes per second, failures by reason and
//! handshake latency (TCP connect to subscribe ack, and to the `101`). With
//! `--server-pid`, the server's RSS is read before connecting, once all are open and at
//! the end of the hold (`rss_per_connection_bytes` = growth / connections), and its CPU
//! during the hold gives the cost of idle connections and heartbeats. `--warmup` is not
//! used.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::bail;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::args::ConnectArgs;
use crate::client::{self, HoldEnd};
use crate::clock;
use crate::conn::run_tag;
use crate::progress::{si, Progress, RateMeter};
use crate::report::{bump, ConnectResults, CpuMark, Report, Results};
use crate::stats::LatencySink;
use crate::ws::BufferSize;

#[derive(Debug, Default)]
struct Live {
    connected: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    drop_codes: Mutex<BTreeMap<String, u64>>,
}

/// Runs the scenario.
pub(crate) async fn run(args: ConnectArgs) -> anyhow::Result<Report> {
    let c = &args.common;
    if args.connections == 0 || args.concurrency == 0 {
        bail!("--connections and --concurrency must be at least 1");
    }
    super::check_room(&args.room)?;
    let n = args.connections as u64;
    let (connector, mut base) = super::prepare("connect", c, n, &args).await?;
    base.warmup_ignored();
    let tag = run_tag();
    let live = Arc::new(Live::default());
    let progress = {
        let live = live.clone();
        let meter = RateMeter::default();
        Progress::start(
            "connect",
            c.duration.get() + Duration::from_secs(1),
            move || {
                let ok = live.connected.load(Ordering::Relaxed);
                format!(
                    "connected {}/{n} ({}/s) failed {} dropped {}",
                    ok,
                    si(meter.rate(ok)),
                    live.failed.load(Ordering::Relaxed),
                    live.dropped.load(Ordering::Relaxed)
                )
            },
        )
    };
    progress.phase("open");

    let rss = || crate::sys::rss_sum(&c.server_pid);
    let rss_before = rss();
    let stop = CancellationToken::new();
    let _stop_guard = stop.clone().drop_guard();
    let handshake = LatencySink::new(8)?;
    let upgrade = LatencySink::new(8)?;
    let permits = Arc::new(Semaphore::new(args.concurrency));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Result<(), String>>();
    let room: Arc<str> = Arc::from(args.room.as_str());

    let cpu_from = CpuMark::now(c);
    let open_start = clock::now_ns();
    let rate = args.rate.per_sec();
    let mut handles = Vec::with_capacity(args.connections);
    for i in 0..args.connections {
        if let Some(r) = rate {
            super::sleep_until_ns(open_start + (i as f64 / r * 1e9) as u64).await;
        }
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let connector = connector.clone();
        let id = format!("bench-{tag}-c{i}");
        let room = room.clone();
        let done = done_tx.clone();
        let stop = stop.clone();
        let live = live.clone();
        let mut hs = handshake.recorder(i);
        let mut up = upgrade.recorder(i);
        handles.push(tokio::spawn(async move {
            let t0 = clock::now_ns();
            let setup = async {
                let (mut conn, upgraded) = connector.connect(&id, BufferSize::IDLE).await?;
                client::subscribe(&mut conn, &room, connector.timeout).await?;
                Ok::<_, crate::conn::ConnectError>((conn, upgraded))
            };
            let result = setup.await;
            drop(permit);
            match result {
                Ok((mut conn, upgraded)) => {
                    hs.record(clock::now_ns().saturating_sub(t0));
                    up.record(clock::ns(upgraded));
                    hs.flush();
                    up.flush();
                    live.connected.fetch_add(1, Ordering::Relaxed);
                    let _ = done.send(Ok(()));
                    drop(done);
                    if let HoldEnd::Dropped(code) = client::hold(&mut conn, &stop).await {
                        live.dropped.fetch_add(1, Ordering::Relaxed);
                        let key = code.map_or_else(|| "none".to_string(), |c| c.to_string());
                        bump(
                            &mut live.drop_codes.lock().unwrap_or_else(|e| e.into_inner()),
                            key,
                        );
                    }
                }
                Err(e) => {
                    live.failed.fetch_add(1, Ordering::Relaxed);
                    let _ = done.send(Err(e.reason()));
                }
            }
        }));
    }
    drop(done_tx);
    let mut failures = BTreeMap::new();
    let mut connected = 0u64;
    while let Some(r) = done_rx.recv().await {
        match r {
            Ok(()) => connected += 1,
            Err(reason) => bump(&mut failures, reason),
        }
        if connected + failures.values().sum::<u64>() == n {
            break;
        }
    }
    let open_secs = (clock::now_ns() - open_start) as f64 / 1e9;
    let cpu_open = CpuMark::now(c);
    if connected == 0 {
        progress.finish().await;
        bail!(
            "no connection to {} succeeded ({})",
            c.urls_text(),
            failures
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }

    progress.phase("hold");
    let rss_open = rss();
    let hold = c.duration.get();
    let hold_start = tokio::time::Instant::now();
    tokio::time::sleep(hold).await;
    let held_secs = hold_start.elapsed().as_secs_f64();
    let cpu_hold_end = CpuMark::now(c);
    let rss_after = rss();
    progress.phase("close");
    stop.cancel();
    let _ = super::join_all(handles, Duration::from_secs(10)).await;
    progress.finish().await;

    let server_hold = cpu_open.until(&cpu_hold_end).server;
    let res = ConnectResults {
        connections: n,
        connected,
        failed: failures.values().sum(),
        failures,
        open_seconds: open_secs,
        handshakes_per_sec: if open_secs > 0.0 {
            connected as f64 / open_secs
        } else {
            0.0
        },
        handshake_latency_us: crate::report::Latency::from_ns(&handshake.merged()?),
        upgrade_latency_us: crate::report::Latency::from_ns(&upgrade.merged()?),
        held_seconds: held_secs,
        dropped: live.dropped.load(Ordering::Relaxed),
        drop_codes: live
            .drop_codes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
        server_rss_before_bytes: rss_before,
        server_rss_open_bytes: rss_open,
        server_rss_after_bytes: rss_after,
        rss_per_connection_bytes: match (rss_before, rss_after) {
            (Some(b), Some(a)) => Some((a as f64 - b as f64) / connected as f64),
            _ => None,
        },
        server_cpu_percent_hold: server_hold.map(|s| s / held_secs.max(1e-9) * 100.0),
    };
    Ok(base.finish(open_secs, (cpu_from, cpu_open), Results::Connect(res)))
}

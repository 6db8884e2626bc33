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
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::bail;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::args::ConnectArgs;
use crate::client::{self, HoldEnd};
use crate::clock;
use crate::conn::{run_tag, Connector};
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
    let live = Arc::new(Live::default());
    let progress = show_progress(&live, n, c.duration.get() + Duration::from_secs(1));
    progress.phase("open");

    let rss = || crate::sys::rss_sum(&c.server_pid);
    let rss_before = rss();
    let stop = CancellationToken::new();
    let _stop_guard = stop.clone().drop_guard();
    let opener = Opener {
        connector,
        room: Arc::from(args.room.as_str()),
        tag: run_tag(),
        live: live.clone(),
        stop: stop.clone(),
        handshake: LatencySink::new(8)?,
        upgrade: LatencySink::new(8)?,
    };
    let cpu_from = CpuMark::now(c);
    let open_start = clock::now_ns();
    let (handles, done_rx) = opener.open_all(&args, open_start).await;
    let (connected, failures) = count_opened(done_rx, n).await;
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
        handshake_latency_us: crate::report::Latency::from_ns(&opener.handshake.merged()?),
        upgrade_latency_us: crate::report::Latency::from_ns(&opener.upgrade.merged()?),
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

/// The progress line: connected of `n`, the opening rate, failures and drops.
fn show_progress(live: &Arc<Live>, n: u64, limit: Duration) -> Progress {
    let live = live.clone();
    let meter = RateMeter::default();
    Progress::start("connect", limit, move || {
        let ok = live.connected.load(Ordering::Relaxed);
        format!(
            "connected {}/{n} ({}/s) failed {} dropped {}",
            ok,
            si(meter.rate(ok)),
            live.failed.load(Ordering::Relaxed),
            live.dropped.load(Ordering::Relaxed)
        )
    })
}

/// What every connection task shares.
struct Opener {
    connector: Arc<Connector>,
    room: Arc<str>,
    tag: String,
    live: Arc<Live>,
    stop: CancellationToken,
    handshake: Arc<LatencySink>,
    upgrade: Arc<LatencySink>,
}

/// Each connection task reports once: opened, or why not.
type Opened = mpsc::UnboundedReceiver<Result<(), String>>;

impl Opener {
    /// Starts `--connections` connection tasks at `--rate` (from `open_start`), at most
    /// `--concurrency` of them handshaking at once.
    async fn open_all(&self, args: &ConnectArgs, open_start: u64) -> (Vec<JoinHandle<()>>, Opened) {
        let permits = Arc::new(Semaphore::new(args.concurrency));
        let (done_tx, done_rx) = mpsc::unbounded_channel::<Result<(), String>>();
        let rate = args.rate.per_sec();
        let mut handles = Vec::with_capacity(args.connections);
        for i in 0..args.connections {
            if let Some(r) = rate {
                super::sleep_until_ns(open_start + (i as f64 / r * 1e9) as u64).await;
            }
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            handles.push(tokio::spawn(self.connection(i, permit, done_tx.clone())));
        }
        (handles, done_rx)
    }

    /// One connection: open and subscribe (holding a concurrency permit), report, then
    /// hold it until the stop, counting a drop by the server.
    fn connection(
        &self,
        i: usize,
        permit: OwnedSemaphorePermit,
        done: mpsc::UnboundedSender<Result<(), String>>,
    ) -> impl Future<Output = ()> + Send + 'static {
        let connector = self.connector.clone();
        let id = format!("bench-{}-c{i}", self.tag);
        let room = self.room.clone();
        let stop = self.stop.clone();
        let live = self.live.clone();
        let mut hs = self.handshake.recorder(i);
        let mut up = self.upgrade.recorder(i);
        async move {
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
        }
    }
}

/// Waits until every connection task reported (or all senders are gone); returns the
/// number opened and the failures by reason.
async fn count_opened(mut done_rx: Opened, n: u64) -> (u64, BTreeMap<String, u64>) {
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
    (connected, failures)
}

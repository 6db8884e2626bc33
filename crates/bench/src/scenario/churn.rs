//! `churn`: C workers, each repeating connect → subscribe `--room` → ack → close (and
//! waiting for the server's close) with its own client id, so every cycle after the
//! first is a reconnect of the same client. Cycles run back to back (`--rate max`) or at
//! a total rate; a cycle counts when it starts inside the measured window.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;

use crate::args::ChurnArgs;
use crate::client;
use crate::clock::{self, Schedule, Window};
use crate::conn::{run_tag, Connector};
use crate::progress::{Progress, RateMeter};
use crate::report::{bump, ChurnResults, Latency, Report, Results};
use crate::stats::{LatencySink, Recorder};
use crate::ws::BufferSize;

/// How long a cycle waits for the server to answer its close.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, Default)]
struct Live {
    cycles: AtomicU64,
    failed: AtomicU64,
}

#[derive(Debug, Default)]
struct WorkerResult {
    cycles: u64,
    failed: u64,
    failures: BTreeMap<String, u64>,
}

/// Runs the scenario.
pub(crate) async fn run(args: ChurnArgs) -> anyhow::Result<Report> {
    let c = &args.common;
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    super::check_room(&args.room)?;
    // A closing socket may linger while its successor connects.
    let sockets = args.concurrency as u64 * 2;
    let (connector, base) = super::prepare("churn", c, sockets, &args).await?;
    let tag = run_tag();
    let live = Arc::new(Live::default());
    let progress = {
        let live = live.clone();
        let meter = RateMeter::default();
        Progress::start("churn", c.warmup.get() + c.duration.get(), move || {
            let n = live.cycles.load(Ordering::Relaxed);
            format!(
                "cycles {} failed {}",
                meter.total_and_rate(n),
                live.failed.load(Ordering::Relaxed)
            )
        })
    };

    let window = Window::starting_now(c.warmup.get(), c.duration.get());
    progress.phase(if c.warmup.get().is_zero() {
        "measure"
    } else {
        "warmup"
    });
    let cycle_sink = LatencySink::new(8)?;
    let connect_sink = LatencySink::new(8)?;
    let rate_each = args.rate.per_sec().map(|r| r / args.concurrency as f64);
    let room: Arc<str> = Arc::from(args.room.as_str());
    let handles: Vec<_> = (0..args.concurrency)
        .map(|i| {
            let w = Worker {
                id: format!("bench-{tag}-w{i}"),
                room: room.clone(),
                connector: connector.clone(),
                window,
                schedule: rate_each.map(|r| Schedule::new(window.start, r, i, args.concurrency)),
                cycle: cycle_sink.recorder(i),
                connect: connect_sink.recorder(i),
                live: live.clone(),
            };
            tokio::spawn(w.run())
        })
        .collect();

    let (cpu_from, cpu_to) = super::measure_window(&window, &progress, c).await;
    progress.phase("finish");
    // A cycle in progress at the end may take a full connect timeout plus the close wait.
    let results = super::join_all(
        handles,
        connector.timeout * 2 + CLOSE_WAIT + Duration::from_secs(1),
    )
    .await;
    progress.finish().await;

    let mut res = ChurnResults {
        workers: args.concurrency as u64,
        ..ChurnResults::default()
    };
    for r in results {
        res.cycles += r.cycles;
        res.failed += r.failed;
        for (k, v) in r.failures {
            *res.failures.entry(k).or_insert(0) += v;
        }
    }
    let secs = window.measured_secs();
    res.cycles_per_sec = res.cycles as f64 / secs;
    res.cycle_latency_us = Latency::from_ns(&cycle_sink.merged()?);
    res.connect_latency_us = Latency::from_ns(&connect_sink.merged()?);
    Ok(base.finish(secs, (cpu_from, cpu_to), Results::Churn(res)))
}

struct Worker {
    id: String,
    room: Arc<str>,
    connector: Arc<Connector>,
    window: Window,
    /// `None`: cycles back to back.
    schedule: Option<Schedule>,
    cycle: Recorder,
    connect: Recorder,
    live: Arc<Live>,
}

impl Worker {
    async fn run(mut self) -> WorkerResult {
        let mut res = WorkerResult::default();
        let w = self.window;
        let mut started = 0u64;
        loop {
            let mut t0 = clock::now_ns();
            if t0 >= w.end {
                break;
            }
            if let Some(s) = self.schedule {
                let due = s.due(started);
                if due > t0 {
                    if due >= w.end {
                        break;
                    }
                    super::sleep_until_ns(due).await;
                    t0 = clock::now_ns();
                }
            }
            started += 1;
            let outcome = self.cycle_once().await;
            let done = clock::now_ns();
            if !w.measured(t0) {
                continue;
            }
            match outcome {
                Ok(ready) => {
                    res.cycles += 1;
                    self.live.cycles.fetch_add(1, Ordering::Relaxed);
                    self.cycle.record(done.saturating_sub(t0));
                    self.connect.record(ready.saturating_sub(t0));
                }
                Err(reason) => {
                    res.failed += 1;
                    self.live.failed.fetch_add(1, Ordering::Relaxed);
                    bump(&mut res.failures, reason);
                }
            }
        }
        self.cycle.flush();
        self.connect.flush();
        res
    }

    /// One cycle; returns when the subscribe ack arrived.
    async fn cycle_once(&self) -> Result<u64, String> {
        let (mut conn, _) = self
            .connector
            .connect(&self.id, BufferSize::IDLE)
            .await
            .map_err(|e| e.reason())?;
        client::subscribe(&mut conn, &self.room, self.connector.timeout)
            .await
            .map_err(|e| e.reason())?;
        let ready = clock::now_ns();
        conn.close(CLOSE_WAIT)
            .await
            .map_err(|e| format!("close: {e}"))?;
        Ok(ready)
    }
}

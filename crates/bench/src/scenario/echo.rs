//! `echo`: N connections doing application `ping` → `pong` round trips, one in flight per
//! connection (`--rate max`) or at a total rate. Each ping's `id` is its send time in
//! clock nanoseconds, which the server echoes back, so a pong carries its own latency and
//! needs no lookup. Pings count when sent inside the measured window; the ones never
//! answered by the end of the drain are `lost`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;

use crate::args::EchoArgs;
use crate::clock::{self, Schedule, Window};
use crate::conn::run_tag;
use crate::parse::{classify, Msg, PONG};
use crate::progress::{Progress, RateMeter};
use crate::report::{EchoResults, Latency, Report, Results};
use crate::stats::{LatencySink, Recorder};
use crate::ws::{BufferSize, Kind, WsConn};

/// Most pings one connection keeps unanswered in rate mode.
const MAX_OUTSTANDING: usize = 10_000;

#[derive(Debug, Default)]
struct Live {
    ready: Arc<AtomicU64>,
    round_trips: AtomicU64,
}

#[derive(Debug, Default)]
struct ConnResult {
    sent: u64,
    received: u64,
    duplicated: u64,
    dropped: bool,
}

/// Runs the scenario.
pub(crate) async fn run(args: EchoArgs) -> anyhow::Result<Report> {
    let c = &args.common;
    if args.connections == 0 {
        bail!("--connections must be at least 1");
    }
    let (connector, base) = super::prepare("echo", c, args.connections as u64, &args).await?;
    let tag = run_tag();
    let live = Arc::new(Live::default());
    let progress = {
        let live = live.clone();
        let n = args.connections;
        let meter = RateMeter::default();
        Progress::start("echo", c.warmup.get() + c.duration.get(), move || {
            let rt = live.round_trips.load(Ordering::Relaxed);
            format!(
                "connections {}/{n} round trips {}",
                live.ready.load(Ordering::Relaxed),
                meter.total_and_rate(rt)
            )
        })
    };

    // Connect everything first, a bounded number at a time.
    let (conns, failures) = super::connect_all(
        &connector,
        args.connections,
        256,
        &format!("bench-{tag}-e"),
        BufferSize::IDLE,
        live.ready.clone(),
    )
    .await;
    if conns.is_empty() {
        progress.finish().await;
        bail!("no connection to {} succeeded", c.urls_text());
    }

    let window = Window::starting_now(c.warmup.get(), c.duration.get());
    progress.phase(if c.warmup.get().is_zero() {
        "measure"
    } else {
        "warmup"
    });
    let sink = LatencySink::new(8)?;
    let rate_each = args.rate.per_sec().map(|r| r / conns.len() as f64);
    let drain = c.drain.get();
    let tasks = conns.len();
    let handles: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, conn)| {
            let task = Pinger {
                window,
                schedule: rate_each.map(|r| Schedule::new(window.start, r, i, tasks)),
                drain,
                rec: sink.recorder(i),
                live: live.clone(),
            };
            tokio::spawn(task.run(conn))
        })
        .collect();

    let (cpu_from, cpu_to) = super::measure_window(&window, &progress, c).await;
    progress.phase("drain");
    let results = super::join_all(handles, drain + Duration::from_secs(2)).await;
    progress.finish().await;

    let mut res = EchoResults {
        connections: args.connections as u64,
        connected: results.len() as u64,
        connect_failures: failures,
        ..EchoResults::default()
    };
    for r in &results {
        res.sent += r.sent;
        res.received += r.received;
        res.duplicated += r.duplicated;
        res.dropped += u64::from(r.dropped);
    }
    res.lost = res.sent.saturating_sub(res.received);
    let secs = window.measured_secs();
    res.round_trips_per_sec = res.received as f64 / secs;
    res.latency_us = Latency::from_ns(&sink.merged()?);
    Ok(base.finish(secs, (cpu_from, cpu_to), Results::Echo(res)))
}

struct Pinger {
    window: Window,
    /// `None`: one ping in flight at a time.
    schedule: Option<Schedule>,
    drain: Duration,
    rec: Recorder,
    live: Arc<Live>,
}

impl Pinger {
    async fn run(mut self, mut conn: WsConn) -> ConnResult {
        let mut res = ConnResult::default();
        let w = self.window;
        let mut outstanding: VecDeque<u64> = VecDeque::new();
        let mut last_id = 0u64;
        let mut sent = 0u64;
        let mut drain_until: Option<u64> = None;
        let mut text = Vec::with_capacity(48);
        loop {
            let now = clock::now_ns();
            if drain_until.is_none() && now >= w.end {
                drain_until = Some(now + clock::ns(self.drain));
            }
            if let Some(d) = drain_until {
                if outstanding.is_empty() || now >= d {
                    break;
                }
            } else {
                let due = match self.schedule {
                    None => u64::from(outstanding.is_empty()),
                    Some(s) => {
                        let owed = s.owed(now);
                        let room =
                            (MAX_OUTSTANDING - outstanding.len().min(MAX_OUTSTANDING)) as u64;
                        owed.saturating_sub(sent).min(room).min(64)
                    }
                };
                for _ in 0..due {
                    let id = now.max(last_id + 1);
                    last_id = id;
                    text.clear();
                    text.extend_from_slice(br#"{"type":"ping","id":"#);
                    text.extend_from_slice(id.to_string().as_bytes());
                    text.push(b'}');
                    conn.queue_text(&text);
                    outstanding.push_back(id);
                    sent += 1;
                    if w.measured(id) {
                        res.sent += 1;
                    }
                }
            }
            if conn.queued() > 0 && conn.flush().await.is_err() {
                res.dropped = true;
                break;
            }
            let wake = match (drain_until, self.schedule) {
                (Some(d), _) => d,
                (None, Some(s)) => s.due(sent).min(w.end),
                (None, None) => w.end,
            };
            tokio::select! {
                _ = super::sleep_until_ns(wake) => {}
                r = conn.fill() => match r {
                    Ok(0) | Err(_) => {
                        res.dropped = true;
                        break;
                    }
                    Ok(_) => {
                        let now = clock::now_ns();
                        if let Err(()) = self.on_frames(&mut conn, now, &mut outstanding, &mut res) {
                            res.dropped = true;
                            break;
                        }
                    }
                },
            }
        }
        self.rec.flush();
        res
    }

    fn on_frames(
        &mut self,
        conn: &mut WsConn,
        now: u64,
        outstanding: &mut VecDeque<u64>,
        res: &mut ConnResult,
    ) -> Result<(), ()> {
        let mut heartbeat = false;
        let mut matched = 0;
        loop {
            let f = match conn.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(_) => return Err(()),
            };
            match f.kind {
                Kind::Text => match classify(conn.payload(&f)) {
                    Msg::Pong(Some(id)) => {
                        // The server answers in order: anything older was skipped.
                        while outstanding.front().is_some_and(|&o| o < id) {
                            outstanding.pop_front();
                        }
                        if outstanding.front() == Some(&id) {
                            outstanding.pop_front();
                            matched += 1;
                            if self.window.measured(id) {
                                res.received += 1;
                                self.rec.record(now.saturating_sub(id));
                            }
                        } else if self.window.measured(id) {
                            res.duplicated += 1;
                        }
                    }
                    Msg::Heartbeat => heartbeat = true,
                    _ => {}
                },
                Kind::Ping => conn.answer_ping(&f),
                Kind::Close => return Err(()),
                Kind::Binary | Kind::Pong => {}
            }
        }
        if heartbeat {
            conn.queue_text(PONG);
        }
        if matched > 0 {
            self.live.round_trips.fetch_add(matched, Ordering::Relaxed);
        }
        self.rec.flush();
        Ok(())
    }
}

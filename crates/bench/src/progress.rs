//! Progress while a scenario runs: an indicatif bar with a live status line when stderr is
//! a terminal, one plain line per second otherwise (CI logs, pipes). The scenario supplies
//! the status line as a closure over its live counters; this module only decides when and
//! how to show it.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

type Line = Arc<dyn Fn() -> String + Send + Sync>;

/// A running progress display; stop it with [`Progress::finish`].
pub(crate) struct Progress {
    stop: CancellationToken,
    task: JoinHandle<()>,
    phase: Arc<Mutex<&'static str>>,
}

impl Progress {
    /// Starts showing `line()` for `scenario`; `planned` is the expected total time.
    pub(crate) fn start(
        scenario: &'static str,
        planned: Duration,
        line: impl Fn() -> String + Send + Sync + 'static,
    ) -> Progress {
        let line: Line = Arc::new(line);
        let stop = CancellationToken::new();
        let phase = Arc::new(Mutex::new("setup"));
        let task = if std::io::stderr().is_terminal() {
            tokio::spawn(tty(scenario, planned, line, stop.clone(), phase.clone()))
        } else {
            tokio::spawn(plain(scenario, line, stop.clone(), phase.clone()))
        };
        Progress { stop, task, phase }
    }

    /// Names the current phase (`setup`, `warmup`, `measure`, `drain`, …).
    pub(crate) fn phase(&self, phase: &'static str) {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner()) = phase;
    }

    /// Stops the display.
    pub(crate) async fn finish(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

fn current(phase: &Mutex<&'static str>) -> &'static str {
    *phase.lock().unwrap_or_else(|e| e.into_inner())
}

async fn tty(
    scenario: &'static str,
    planned: Duration,
    line: Line,
    stop: CancellationToken,
    phase: Arc<Mutex<&'static str>>,
) {
    let bar = ProgressBar::new(planned.as_millis().max(1) as u64);
    let style = ProgressStyle::with_template("{prefix:.bold} {elapsed:>4} [{bar:20}] {wide_msg}")
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(scenario);
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {
                bar.set_position(started.elapsed().as_millis() as u64);
                bar.set_message(format!("{:<7} {}", current(&phase), line()));
            }
        }
    }
    bar.finish_and_clear();
}

async fn plain(
    scenario: &'static str,
    line: Line,
    stop: CancellationToken,
    phase: Arc<Mutex<&'static str>>,
) {
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {
                eprintln!(
                    "[{scenario} {:>6.1}s {:<7}] {}",
                    started.elapsed().as_secs_f64(),
                    current(&phase),
                    line()
                );
            }
        }
    }
}

/// A compact count: `950`, `12.3k`, `4.56M`.
pub(crate) fn si(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.2}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// Per-second rate tracking for status lines: call with a running total.
#[derive(Debug, Default)]
pub(crate) struct RateMeter {
    last: Mutex<Option<(Instant, u64)>>,
}

impl RateMeter {
    /// The rate since the previous call (0 the first time).
    pub(crate) fn rate(&self, total: u64) -> f64 {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let r = match *last {
            Some((t, v)) => {
                let dt = now.duration_since(t).as_secs_f64();
                if dt > 0.0 {
                    total.saturating_sub(v) as f64 / dt
                } else {
                    0.0
                }
            }
            None => 0.0,
        };
        *last = Some((now, total));
        r
    }

    /// `total (rate/s)`, both in SI units, the rate as [`RateMeter::rate`].
    pub(crate) fn total_and_rate(&self, total: u64) -> String {
        format!("{} ({}/s)", si(total as f64), si(self.rate(total)))
    }
}

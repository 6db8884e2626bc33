//! The one clock every timestamp in a run is taken from: nanoseconds since a process-wide
//! `Instant`. Publishers embed it in each message and subscribers subtract it on receipt,
//! so latency needs no wall clock and no clock agreement (everything is one process).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// Nanoseconds since the process-wide base instant.
pub(crate) fn now_ns() -> u64 {
    u64::try_from(base().elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// The `Instant` of a clock reading.
pub(crate) fn instant_of(ns: u64) -> Instant {
    base() + Duration::from_nanos(ns)
}

/// A duration in clock nanoseconds.
pub(crate) fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The measurement window of a run: load starts at `start`, counting starts at
/// `measure_from` (after the warmup) and everything stops at `end`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    /// When load starts.
    pub(crate) start: u64,
    /// When the warmup ends and counting starts.
    pub(crate) measure_from: u64,
    /// When load stops.
    pub(crate) end: u64,
}

impl Window {
    /// A window starting now.
    pub(crate) fn starting_now(warmup: Duration, duration: Duration) -> Window {
        let start = now_ns();
        let measure_from = start.saturating_add(ns(warmup));
        Window {
            start,
            measure_from,
            end: measure_from.saturating_add(ns(duration)),
        }
    }

    /// Whether an event stamped `t` is counted.
    #[inline]
    pub(crate) fn measured(&self, t: u64) -> bool {
        t >= self.measure_from && t < self.end
    }

    /// Seconds counted.
    pub(crate) fn measured_secs(&self) -> f64 {
        (self.end - self.measure_from) as f64 / 1e9
    }
}

/// Evenly spaced events at a rate, for one of several tasks sharing a total rate: task
/// `i` of `n` is shifted by `i/n` of an interval so the tasks interleave instead of all
/// firing on the same tick (which would measure the generator's bursts, not the server).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Schedule {
    first: u64,
    interval: f64,
}

impl Schedule {
    /// `rate` events per second for task `task` of `tasks`, starting at `start`.
    pub(crate) fn new(start: u64, rate: f64, task: usize, tasks: usize) -> Schedule {
        let interval = 1e9 / rate;
        let phase = task as f64 / tasks.max(1) as f64 * interval;
        Schedule {
            first: start + phase as u64,
            interval,
        }
    }

    /// How many events are due by `now`.
    pub(crate) fn owed(&self, now: u64) -> u64 {
        if now < self.first {
            0
        } else {
            ((now - self.first) as f64 / self.interval) as u64 + 1
        }
    }

    /// When event number `k` (from 0) is due.
    pub(crate) fn due(&self, k: u64) -> u64 {
        self.first + (k as f64 * self.interval) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_interleave() {
        let a = Schedule::new(1_000, 10.0, 0, 2);
        let b = Schedule::new(1_000, 10.0, 1, 2);
        assert_eq!(a.due(0), 1_000);
        assert_eq!(b.due(0), 1_000 + 50_000_000);
        assert_eq!(a.due(1), 1_000 + 100_000_000);
        assert_eq!(a.owed(999), 0);
        assert_eq!(a.owed(1_000), 1);
        assert_eq!(b.owed(1_000), 0);
        assert_eq!(a.owed(1_000 + 250_000_000), 3);
    }
}

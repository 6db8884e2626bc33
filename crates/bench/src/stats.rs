//! Latency recording without a lock per message.
//!
//! Every task owns a [`Recorder`] that buffers its samples (nanoseconds) and hands them
//! to one of a few shared histograms once per read batch; the shards are merged into one
//! HdrHistogram at the end. One histogram per connection would cost ~200 KiB each at 3
//! significant digits, which 10k subscribers cannot afford; one global histogram would
//! take a lock per message.

use std::sync::{Arc, Mutex, MutexGuard};

use hdrhistogram::Histogram;

/// Largest latency recorded (one hour); longer values are clamped.
const MAX_NS: u64 = 3_600_000_000_000;

/// Samples buffered by a [`Recorder`] before it flushes on its own.
const PENDING_MAX: usize = 4096;

/// The shared histograms of one measurement.
#[derive(Debug)]
pub(crate) struct LatencySink {
    shards: Box<[Mutex<Histogram<u64>>]>,
}

fn lock(m: &Mutex<Histogram<u64>>) -> MutexGuard<'_, Histogram<u64>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, MAX_NS, 3)
        .map_err(|e| anyhow::anyhow!("creating a latency histogram: {e}"))
}

impl LatencySink {
    /// A sink with `shards` histograms.
    pub(crate) fn new(shards: usize) -> anyhow::Result<Arc<LatencySink>> {
        let shards = (0..shards.max(1))
            .map(|_| histogram().map(Mutex::new))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Arc::new(LatencySink {
            shards: shards.into_boxed_slice(),
        }))
    }

    /// A recorder for task number `index`.
    pub(crate) fn recorder(self: &Arc<Self>, index: usize) -> Recorder {
        Recorder {
            sink: self.clone(),
            shard: index % self.shards.len(),
            pending: Vec::new(),
        }
    }

    /// All shards merged.
    pub(crate) fn merged(&self) -> anyhow::Result<Histogram<u64>> {
        let mut all = histogram()?;
        for s in self.shards.iter() {
            all.add(&*lock(s))
                .map_err(|e| anyhow::anyhow!("merging latency histograms: {e}"))?;
        }
        Ok(all)
    }
}

/// One task's handle on a [`LatencySink`]; flushes when dropped.
#[derive(Debug)]
pub(crate) struct Recorder {
    sink: Arc<LatencySink>,
    shard: usize,
    pending: Vec<u64>,
}

impl Recorder {
    /// Buffers one sample in nanoseconds.
    #[inline]
    pub(crate) fn record(&mut self, ns: u64) {
        self.pending.push(ns);
        if self.pending.len() >= PENDING_MAX {
            self.flush();
        }
    }

    /// Moves the buffered samples into the shared histogram.
    pub(crate) fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut h = lock(&self.sink.shards[self.shard]);
        for &v in &self.pending {
            // Within bounds after the clamp, so recording cannot fail.
            let _ = h.record(v.clamp(1, MAX_NS));
        }
        drop(h);
        self.pending.clear();
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_merge() -> anyhow::Result<()> {
        let sink = LatencySink::new(4)?;
        let mut a = sink.recorder(0);
        let mut b = sink.recorder(1);
        for v in 1..=1000u64 {
            a.record(v * 1000);
            b.record(v * 1000);
        }
        drop(a);
        b.flush();
        let h = sink.merged()?;
        assert_eq!(h.len(), 2000);
        let p50 = h.value_at_quantile(0.5);
        assert!((499_000..=501_000).contains(&p50), "{p50}");
        Ok(())
    }
}

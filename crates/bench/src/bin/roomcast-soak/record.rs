//! The record lines every role appends to its JSONL file, and reading them back.
//!
//! `acks.jsonl` holds the publisher's acknowledged publishes; `sub-<name>.jsonl` what one
//! subscriber saw, in the order it saw it (the verifier relies on that order).

use std::io::{BufRead, BufWriter, Write};
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// An acknowledged publish: the server answered 200 with this position.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Ack {
    pub(crate) room: String,
    pub(crate) epoch: String,
    pub(crate) seq: u64,
    /// The payload id the publisher put in `data.pid`.
    pub(crate) pid: String,
}

/// One thing a subscriber saw.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
pub(crate) enum Seen {
    /// The first subscribe's ack: the subscriber is accountable for what follows it.
    Join {
        room: String,
        epoch: String,
        seq: u64,
    },
    /// A room event (live or replayed).
    Event {
        room: String,
        epoch: String,
        seq: u64,
        pid: String,
        replayed: bool,
    },
    /// `recovery_failed`: what lies between the last held position and `seq` is excused.
    RecoveryFailed {
        room: String,
        epoch: String,
        seq: u64,
        reason: String,
    },
    /// `replay_complete` after a `since` subscribe.
    ReplayComplete { room: String, count: u64 },
    /// The connection ended (close code if there was one).
    Closed { code: Option<u16> },
}

/// An append-only JSONL file.
pub(crate) struct Writer<T> {
    out: BufWriter<std::fs::File>,
    _kind: std::marker::PhantomData<T>,
}

impl<T: Serialize> Writer<T> {
    /// Creates (truncates) `path`.
    pub(crate) fn create(path: &Path) -> anyhow::Result<Writer<T>> {
        let file =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Writer {
            out: BufWriter::new(file),
            _kind: std::marker::PhantomData,
        })
    }

    /// Appends one line.
    pub(crate) fn push(&mut self, item: &T) -> anyhow::Result<()> {
        serde_json::to_writer(&mut self.out, item)?;
        self.out.write_all(b"\n")?;
        Ok(())
    }

    /// Flushes to the file (done at the end and now and then, so a killed role leaves
    /// most of its records).
    pub(crate) fn flush(&mut self) -> anyhow::Result<()> {
        self.out.flush().context("flushing a record file")
    }
}

/// Reads every line of a JSONL file.
pub(crate) fn read<T: for<'de> Deserialize<'de>>(path: &Path) -> anyhow::Result<Vec<T>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(
            serde_json::from_str(&line)
                .with_context(|| format!("{}:{}: bad record", path.display(), n + 1))?,
        );
    }
    Ok(out)
}

//! Durable history: the memory store as a write-through cache over an embedded redb file.
//!
//! Reads never touch disk: a [`MemoryHistory`] holds exactly the retained events and answers
//! `head` and `read_since`. Each append to a room that keeps history is checked and made
//! visible in that cache and, in the same step (under the cache's shard lock), queued to ONE
//! background writer thread, so the writer sees every room's events in sequence order. The
//! writer persists with group commit: it takes everything queued (waiting up to
//! `batch_window` for more), writes it in one transaction, commits, and only then resolves
//! each append's [`AppendReceipt::durable`]. [`FsyncPolicy`] says how durable a commit is.
//!
//! On disk (`roomcast-history.redb` in the store's directory):
//! - `events`: `(room, sequence)` → `(unix_millis, frame)`, the retained events;
//! - `heads`: `room` → `(epoch, last_sequence, last_unix_millis)`, written in the same
//!   transaction as the event it points at, so after any crash a room's head and events agree;
//! - `meta`: `"format"` → the layout version, checked on open; `"clean"` → 1 when the store
//!   was closed cleanly (everything handed out is on disk), 0 while it is open.
//!
//! Invariants: a room's stored events were numbered in the epoch of its head or, after a
//! crash, in the epoch that head's epoch continues (an append under any other epoch first
//! deletes the room's older events); the writer keeps at most `max_events` per
//! room as it appends; `trim` expires events on disk in the background, off the publish path.
//!
//! No `(epoch, sequence)` names two events. Events are visible (and fanned out, and
//! acknowledged over WebSocket) before they are committed, so a crash can forget sequences
//! clients were told about. Opening therefore reads the clean-shutdown marker and clears it
//! in the same transaction that loads the rooms: after a clean close every room continues
//! under its epoch; after anything else every stored room continues its numbering (and keeps
//! its retained events) under a NEW epoch, so a client resuming from the old epoch gets
//! `epoch_changed` instead of a replay of events it never saw. A room with no stored head
//! starts a new random epoch anyway.
//!
//! The writer thread lives in [`writer`]; the failure state it shares with publishers in
//! [`health`]. The writer's queue is bounded (`queue_capacity`): when the disk cannot keep
//! up, `append` fails with [`HistoryError::Storage`] instead of letting memory grow without
//! limit. While the disk is failing (a commit failed and the writer has not yet reopened the
//! store and rewritten what it owes), `append` fails with [`HistoryError::Unavailable`]
//! before the event is sequenced.

mod health;
mod writer;

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use redb::{Database, ReadableTable, TableDefinition};
use roomcast_protocol::{Epoch, RoomName, Sequence};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use self::health::Health;
use self::writer::{Command, Writer};
use super::memory::{new_epoch, now_unix_millis, RoomSeed};
use super::{
    AppendReceipt, Durable, History, HistoryError, MemoryHistory, ReadSince, Retention, RoomHead,
    StoredEvent,
};

/// The store's file name inside its directory.
pub const FILE_NAME: &str = "roomcast-history.redb";

/// Version of the on-disk layout described in the module docs. Version 2 added the
/// clean-shutdown marker; a version-1 store is upgraded on open (as if it had crashed), and
/// an older binary refuses a version-2 store, so it cannot reopen one without clearing the
/// marker.
const FORMAT_VERSION: u64 = 2;
/// The `meta` key of the clean-shutdown marker.
const CLEAN_KEY: &str = "clean";
const EVENTS: TableDefinition<'static, (&str, u64), (i64, &[u8])> = TableDefinition::new("events");
const HEADS: TableDefinition<'static, &str, (&str, u64, i64)> = TableDefinition::new("heads");
const META: TableDefinition<'static, &str, u64> = TableDefinition::new("meta");

/// When an appended event counts as durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// Group commit: events queued together share one transaction and one fsync; receipts
    /// resolve after it. The default.
    #[default]
    Batch,
    /// One transaction and one fsync per event; receipts resolve after it.
    Always,
    /// Commit without fsync and resolve receipts at once. A clean close (and a checkpoint
    /// every `checkpoint_interval`) syncs; a crash loses what was written since the last sync.
    Never,
}

/// How a [`DurableHistory`] keeps and persists events.
#[derive(Debug, Clone)]
pub struct DurableConfig {
    /// Which rooms keep how much history.
    pub retention: Retention,
    /// When an append counts as durable.
    pub fsync: FsyncPolicy,
    /// With [`FsyncPolicy::Batch`], how long the writer waits after a batch's first event for
    /// more to share its commit. Default 2 ms.
    pub batch_window: Duration,
    /// Most appends queued for the writer; past it `append` fails. Default 65 536.
    pub queue_capacity: usize,
    /// With [`FsyncPolicy::Never`], how often unsynced commits are synced. Default 1 s.
    pub checkpoint_interval: Duration,
}

impl Default for DurableConfig {
    fn default() -> DurableConfig {
        DurableConfig {
            retention: Retention::default(),
            fsync: FsyncPolicy::Batch,
            batch_window: Duration::from_millis(2),
            queue_capacity: 65_536,
            checkpoint_interval: Duration::from_secs(1),
        }
    }
}

/// History persisted to an embedded database, served from memory. See the module docs.
pub struct DurableHistory {
    cache: MemoryHistory,
    fsync: FsyncPolicy,
    path: PathBuf,
    /// `None` only while shutting down.
    queue: Option<SyncSender<Command>>,
    health: Arc<Health>,
    writer: Option<JoinHandle<Result<(), HistoryError>>>,
}

impl DurableHistory {
    /// Opens (or creates) the store in `dir`, loads every room's head and retained events,
    /// and starts the writer thread.
    pub fn open(dir: &Path, config: DurableConfig) -> Result<DurableHistory, HistoryError> {
        std::fs::create_dir_all(dir)
            .map_err(context(format_args!("creating {}", dir.display())))?;
        let path = dir.join(FILE_NAME);
        let db =
            Database::create(&path).map_err(context(format_args!("opening {}", path.display())))?;
        let cache = MemoryHistory::new(config.retention.clone());
        load(&db, &cache).map_err(context(format_args!("loading {}", path.display())))?;

        let (queue, commands) = mpsc::sync_channel(config.queue_capacity.max(1));
        let fsync = config.fsync;
        let health = Arc::new(Health::default());
        let writer = Writer::new(db, path.clone(), config, commands, health.clone());
        let writer = std::thread::Builder::new()
            .name("roomcast-history-writer".into())
            .spawn(move || writer.run())
            .map_err(context("starting the history writer thread"))?;
        Ok(DurableHistory {
            cache,
            fsync,
            path,
            queue: Some(queue),
            health,
            writer: Some(writer),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Resolves once everything queued before it is committed (per the fsync policy: with
    /// [`FsyncPolicy::Never`] that commit is not synced). Never blocks the caller; fails at
    /// once if the writer's queue is full.
    pub fn flush(&self) -> Durable {
        let (done, receipt) = oneshot::channel();
        match self.send(Command::Flush { done }) {
            Ok(()) => receipt_future(receipt),
            Err(e) => Box::pin(std::future::ready(Err(e))),
        }
    }

    /// Stops the writer after it has written and synced everything queued, and reports the
    /// writer's last error, if any. Dropping the store does the same and logs the error.
    pub fn close(mut self) -> Result<(), HistoryError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), HistoryError> {
        drop(self.queue.take());
        match self.writer.take() {
            Some(writer) => writer
                .join()
                .map_err(|_| HistoryError::Storage("history writer thread panicked".into()))?,
            None => Ok(()),
        }
    }

    fn send(&self, command: Command) -> Result<(), HistoryError> {
        let queue = self.queue.as_ref().ok_or(HistoryError::Closed)?;
        queue.try_send(command).map_err(|e| match e {
            TrySendError::Full(_) => HistoryError::Storage(format!(
                "history write queue is full: {} cannot keep up",
                self.path.display()
            )),
            TrySendError::Disconnected(_) => HistoryError::Closed,
        })
    }
}

impl Drop for DurableHistory {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!(path = %self.path.display(), error = %e, "closing history store");
        }
    }
}

impl History for DurableHistory {
    fn keeps(&self, room: &RoomName) -> bool {
        self.cache.keeps(room)
    }

    fn head(&self, room: &RoomName) -> Result<RoomHead, HistoryError> {
        self.cache.head(room)
    }

    fn append(&self, room: &RoomName, event: StoredEvent) -> Result<AppendReceipt, HistoryError> {
        if !self.cache.keeps(room) {
            // Nothing to replay, so nothing to persist: only the sequence is checked.
            return self.cache.append(room, event);
        }
        self.health.check()?;
        self.cache.append_then(room, event, |epoch, event| {
            let (done, receipt) = match self.fsync {
                FsyncPolicy::Never => (None, AppendReceipt::ready()),
                FsyncPolicy::Batch | FsyncPolicy::Always => {
                    let (done, receipt) = oneshot::channel();
                    (
                        Some(done),
                        AppendReceipt {
                            durable: receipt_future(receipt),
                        },
                    )
                }
            };
            self.send(Command::Append {
                room: room.clone(),
                epoch: epoch.clone(),
                event: event.clone(),
                done,
            })?;
            Ok(receipt)
        })
    }

    fn read_since(
        &self,
        room: &RoomName,
        after: Sequence,
        limit: usize,
    ) -> Result<ReadSince, HistoryError> {
        self.cache.read_since(room, after, limit)
    }

    fn trim(&self, now_unix_millis: i64) {
        self.cache.trim(now_unix_millis);
        // A trim that finds the queue full is skipped; the next one covers it.
        if let Err(e) = self.send(Command::Trim { now_unix_millis }) {
            tracing::debug!(error = %e, "history disk trim skipped");
        }
    }

    fn room_count(&self) -> usize {
        self.cache.room_count()
    }

    fn writable(&self) -> Result<(), HistoryError> {
        self.health.check()
    }

    fn write_errors(&self) -> u64 {
        self.health.write_errors()
    }
}

fn receipt_future(receipt: oneshot::Receiver<Result<(), HistoryError>>) -> Durable {
    Box::pin(async move { receipt.await.unwrap_or(Err(HistoryError::Closed)) })
}

/// Maps any error to [`HistoryError::Storage`] with what was being done.
fn context<E: Display>(what: impl Display) -> impl FnOnce(E) -> HistoryError {
    move |e| HistoryError::Storage(format!("{what}: {e}"))
}

/// Checks the layout version and seeds `cache` with every stored room that keeps history.
fn load(db: &Database, cache: &MemoryHistory) -> Result<(), HistoryError> {
    let now = now_unix_millis();
    let txn = db.begin_write().map_err(context("begin"))?;
    {
        let mut meta = txn.open_table(META).map_err(context("meta table"))?;
        let format = meta
            .get("format")
            .map_err(context("meta table"))?
            .map(|v| v.value());
        match format {
            Some(FORMAT_VERSION) => {}
            None | Some(1) => {
                meta.insert("format", FORMAT_VERSION)
                    .map_err(context("meta table"))?;
            }
            Some(other) => {
                return Err(HistoryError::Storage(format!(
                    "unsupported layout version {other} (this build reads {FORMAT_VERSION})"
                )));
            }
        }
    }
    let clean = {
        let mut meta = txn.open_table(META).map_err(context("meta table"))?;
        let clean = meta
            .insert(CLEAN_KEY, 0)
            .map_err(context("meta table"))?
            .is_some_and(|v| v.value() == 1);
        clean
    };
    let mut renewed = Vec::new();
    {
        let heads = txn.open_table(HEADS).map_err(context("heads table"))?;
        let events = txn.open_table(EVENTS).map_err(context("events table"))?;
        for entry in heads.iter().map_err(context("heads table"))? {
            let (key, value) = entry.map_err(context("heads table"))?;
            let name = key.value();
            let (epoch, head, last_unix_millis) = value.value();
            if epoch.is_empty() || epoch.len() > 64 {
                return Err(HistoryError::Storage(format!(
                    "room {name:?}: stored epoch {epoch:?} is invalid"
                )));
            }
            // After a crash the tail this head ends may have been longer: a new epoch.
            let epoch = if clean {
                Epoch::new(epoch)
            } else {
                let renewed_epoch = new_epoch();
                renewed.push((
                    name.to_owned(),
                    renewed_epoch.clone(),
                    head,
                    last_unix_millis,
                ));
                renewed_epoch
            };
            let room = RoomName::parse(name)
                .map_err(context(format_args!("stored room name {name:?}")))?;
            let Some(rule) = cache.retention().rule_for(&room).filter(|r| r.keeps()) else {
                continue; // no longer keeps history: the next disk trim deletes it
            };
            let from = head
                .saturating_sub(u64::try_from(rule.max_events).unwrap_or(u64::MAX))
                .saturating_add(1);
            let mut stored = Vec::new();
            for entry in events
                .range((name, from)..=(name, head))
                .map_err(context(format_args!("events of {room}")))?
            {
                let (key, value) = entry.map_err(context(format_args!("events of {room}")))?;
                let (unix_millis, frame) = value.value();
                stored.push(StoredEvent {
                    sequence: Sequence(key.value().1),
                    unix_millis,
                    frame: Bytes::copy_from_slice(frame),
                });
            }
            let seed = RoomSeed {
                epoch,
                head: Sequence(head),
                last_unix_millis,
                events: stored,
            };
            let dropped = cache.seed(room.clone(), seed, now);
            if dropped > 0 {
                tracing::warn!(%room, dropped, "stored history had a gap; kept only the events after it");
            }
        }
    }
    if !renewed.is_empty() {
        tracing::warn!(
            rooms = renewed.len(),
            "history store was not closed cleanly: every room continues under a new epoch"
        );
        let mut heads = txn.open_table(HEADS).map_err(context("heads table"))?;
        for (name, epoch, head, last_unix_millis) in &renewed {
            heads
                .insert(name.as_str(), (epoch.as_str(), *head, *last_unix_millis))
                .map_err(context("heads table"))?;
        }
    }
    txn.commit().map_err(context("commit"))
}

//! The history writer thread: owns the redb database and applies queued commands in order.
//!
//! Group commit: after the first command of a batch it gathers more (for
//! [`FsyncPolicy::Batch`], whatever arrives within `batch_window`; for `Never`, what is
//! already queued; for `Always`, nothing), writes them all in one transaction, commits, then
//! resolves every receipt in the batch with the outcome, so a receipt never resolves before
//! its event is committed. A failed transaction fails every receipt in it; the thread goes on
//! with the next batch. A batch's trims run after its receipts resolved, coalesced into one
//! transaction of their own, so a trim over many rooms never delays an acknowledgement. With `Never`, commits are not synced; the writer syncs them every
//! `checkpoint_interval` and before it exits.
//!
//! The thread exits when the store drops its queue sender, after writing what is left.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use redb::{Database, Durability, ReadableTable};
use roomcast_protocol::{Epoch, RoomName};
use tokio::sync::oneshot;

use super::{context, DurableConfig, FsyncPolicy, EVENTS, HEADS};
use crate::history::{HistoryError, Retention, StoredEvent};

/// Most commands the writer puts in one transaction.
const MAX_BATCH: usize = 4096;

type EventsTable<'t> = redb::Table<'t, (&'static str, u64), (i64, &'static [u8])>;
type HeadsTable<'t> = redb::Table<'t, &'static str, (&'static str, u64, i64)>;

/// What the writer thread is asked to do, in queue order.
pub(super) enum Command {
    Append {
        room: RoomName,
        epoch: Epoch,
        event: StoredEvent,
        done: Option<oneshot::Sender<Result<(), HistoryError>>>,
    },
    Trim {
        now_unix_millis: i64,
    },
    Flush {
        done: oneshot::Sender<Result<(), HistoryError>>,
    },
}

/// The background thread's state. See the module docs.
pub(super) struct Writer {
    db: Database,
    path: PathBuf,
    retention: Retention,
    fsync: FsyncPolicy,
    batch_window: Duration,
    checkpoint_interval: Duration,
    commands: Receiver<Command>,
    /// With [`FsyncPolicy::Never`]: when the oldest commit not yet synced was made.
    unsynced_since: Option<Instant>,
}

impl Writer {
    pub(super) fn new(
        db: Database,
        path: PathBuf,
        config: DurableConfig,
        commands: Receiver<Command>,
    ) -> Writer {
        Writer {
            db,
            path,
            retention: config.retention,
            fsync: config.fsync,
            batch_window: config.batch_window,
            checkpoint_interval: config.checkpoint_interval,
            commands,
            unsynced_since: None,
        }
    }

    /// Runs until the store is closed (the queue's sender is dropped), then writes what is
    /// left and syncs.
    pub(super) fn run(mut self) -> Result<(), HistoryError> {
        let mut batch = Vec::new();
        while let Some(first) = self.next_command() {
            batch.push(first);
            self.gather(&mut batch);
            self.commit(&mut batch);
        }
        self.sync()
    }

    /// Waits for the next command, syncing unsynced commits when they come due.
    fn next_command(&mut self) -> Option<Command> {
        loop {
            let Some(since) = self.unsynced_since else {
                return self.commands.recv().ok();
            };
            let wait = (since + self.checkpoint_interval).saturating_duration_since(Instant::now());
            if wait.is_zero() {
                // Due (checked before receiving, so a queue that never empties still syncs).
                if let Err(e) = self.sync() {
                    tracing::error!(path = %self.path.display(), error = %e, "history checkpoint");
                    self.unsynced_since = Some(Instant::now()); // retry after another interval
                }
                continue;
            }
            match self.commands.recv_timeout(wait) {
                Ok(command) => return Some(command),
                Err(RecvTimeoutError::Disconnected) => return None,
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    /// Adds what else belongs in the batch: nothing for `Always`, everything already queued
    /// for `Never`, and for `Batch` whatever arrives within `batch_window`.
    fn gather(&self, batch: &mut Vec<Command>) {
        let deadline = Instant::now() + self.batch_window;
        while batch.len() < MAX_BATCH {
            let next = match self.fsync {
                FsyncPolicy::Always => None,
                FsyncPolicy::Never => self.commands.try_recv().ok(),
                FsyncPolicy::Batch => match self.commands.try_recv() {
                    Ok(command) => Some(command),
                    Err(TryRecvError::Disconnected) => None,
                    Err(TryRecvError::Empty) => self
                        .commands
                        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                        .ok(),
                },
            };
            match next {
                Some(command) => batch.push(command),
                None => break,
            }
        }
    }

    /// Writes the batch's appends in one transaction and resolves its receipts with the
    /// outcome. Then the batch's latest trim runs in a transaction of its own, so no receipt
    /// waits for it (moving a trim after appends only lets it see newer data).
    fn commit(&mut self, batch: &mut Vec<Command>) {
        let durability = match self.fsync {
            FsyncPolicy::Never => Durability::None,
            FsyncPolicy::Batch | FsyncPolicy::Always => Durability::Immediate,
        };
        let mut appends = 0;
        let mut trim_at: Option<i64> = None;
        for command in batch.iter() {
            match command {
                Command::Append { .. } => appends += 1,
                Command::Trim { now_unix_millis } => {
                    trim_at = Some(trim_at.map_or(*now_unix_millis, |t| t.max(*now_unix_millis)));
                }
                Command::Flush { .. } => {}
            }
        }
        // With no appends there is nothing to wait for: earlier batches are committed.
        let outcome = if appends == 0 {
            Ok(())
        } else {
            self.write(batch, durability)
                .map_err(|e| format!("writing {}: {e}", self.path.display()))
        };
        match &outcome {
            Ok(()) => self.committed(appends),
            Err(e) => tracing::error!(error = %e, appends, "history write failed"),
        }
        for command in batch.drain(..) {
            let done = match command {
                Command::Append { done, .. } => done,
                Command::Flush { done } => Some(done),
                Command::Trim { .. } => None,
            };
            if let Some(done) = done {
                // The publisher may have stopped waiting; that is not the writer's problem.
                let _ = done.send(outcome.clone().map_err(HistoryError::Storage));
            }
        }
        if let Some(now) = trim_at {
            match self.transact(durability, |w, events, heads| w.trim(events, heads, now)) {
                Ok(()) => self.committed(1),
                Err(e) => {
                    tracing::error!(path = %self.path.display(), error = %e, "history trim failed")
                }
            }
        }
    }

    /// Notes a successful commit of `writes` changes: with `Never`, it still needs a sync.
    fn committed(&mut self, writes: usize) {
        if writes > 0 && self.fsync == FsyncPolicy::Never {
            self.unsynced_since.get_or_insert_with(Instant::now);
        }
    }

    /// Writes the batch's appends, in order, in one transaction.
    fn write(&self, batch: &[Command], durability: Durability) -> Result<(), redb::Error> {
        self.transact(durability, |w, events, heads| {
            for command in batch {
                if let Command::Append {
                    room, epoch, event, ..
                } = command
                {
                    w.put(events, heads, room, epoch, event)?;
                }
            }
            Ok(())
        })
    }

    /// Runs `f` on the tables in one write transaction and commits it.
    fn transact(
        &self,
        durability: Durability,
        f: impl FnOnce(&Writer, &mut EventsTable<'_>, &mut HeadsTable<'_>) -> Result<(), redb::Error>,
    ) -> Result<(), redb::Error> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(durability)?;
        {
            let mut events = txn.open_table(EVENTS)?;
            let mut heads = txn.open_table(HEADS)?;
            f(self, &mut events, &mut heads)?;
        }
        txn.commit()?;
        Ok(())
    }

    fn put(
        &self,
        events: &mut EventsTable<'_>,
        heads: &mut HeadsTable<'_>,
        room: &RoomName,
        epoch: &Epoch,
        event: &StoredEvent,
    ) -> Result<(), redb::Error> {
        let name = room.as_str();
        let sequence = event.sequence.0;
        let stale = heads
            .get(name)?
            .is_some_and(|head| head.value().0 != epoch.as_str());
        if stale {
            events.retain_in((name, 0)..=(name, u64::MAX), |_, _| false)?;
        }
        events.insert((name, sequence), (event.unix_millis, event.frame.as_ref()))?;
        heads.insert(name, (epoch.as_str(), sequence, event.unix_millis))?;
        let (max_events, _) = self.limits(name);
        if let Some(old) = sequence.checked_sub(max_events).filter(|s| *s > 0) {
            events.remove((name, old))?;
        }
        Ok(())
    }

    /// Deletes, room by room, the oldest events while they are past `max_events` or older
    /// than the TTL (the memory store's rule), and forgets rooms left empty and idle.
    fn trim(
        &self,
        events: &mut EventsTable<'_>,
        heads: &mut HeadsTable<'_>,
        now: i64,
    ) -> Result<(), redb::Error> {
        let mut rooms = Vec::new();
        for entry in heads.iter()? {
            let (key, value) = entry?;
            let (_, head, last_unix_millis) = value.value();
            rooms.push((key.value().to_owned(), head, last_unix_millis));
        }
        for (name, head, last_unix_millis) in rooms {
            let name = name.as_str();
            let (max_events, ttl_millis) = self.limits(name);
            let mut last_dropped = None;
            let mut any_left = false;
            for entry in events.range((name, 0)..=(name, u64::MAX))? {
                let (key, value) = entry?;
                let sequence = key.value().1;
                let (unix_millis, _) = value.value();
                if head.saturating_sub(sequence) >= max_events
                    || now.saturating_sub(unix_millis) > ttl_millis
                {
                    last_dropped = Some(sequence);
                } else {
                    any_left = true;
                    break;
                }
            }
            if let Some(last) = last_dropped {
                events.retain_in((name, 0)..=(name, last), |_, _| false)?;
            }
            if !any_left && now.saturating_sub(last_unix_millis) > ttl_millis {
                heads.remove(name)?;
            }
        }
        Ok(())
    }

    /// `(max_events, ttl_millis)` for a stored room name; a room without a rule keeps nothing.
    fn limits(&self, name: &str) -> (u64, i64) {
        RoomName::parse(name)
            .ok()
            .and_then(|room| {
                self.retention
                    .rule_for(&room)
                    .map(|r| (r.max_events, r.ttl_millis()))
            })
            .map_or((0, 0), |(max, ttl)| {
                (u64::try_from(max).unwrap_or(u64::MAX), ttl)
            })
    }

    /// Makes every commit so far durable (an empty commit with `Durability::Immediate`
    /// persists the `Durability::None` ones before it).
    fn sync(&mut self) -> Result<(), HistoryError> {
        if self.unsynced_since.is_none() {
            return Ok(());
        }
        let txn = self
            .db
            .begin_write()
            .map_err(context(format_args!("syncing {}", self.path.display())))?;
        txn.commit()
            .map_err(context(format_args!("syncing {}", self.path.display())))?;
        self.unsynced_since = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use roomcast_protocol::Sequence;

    use super::super::FILE_NAME;
    use super::*;
    use crate::history::memory::now_unix_millis;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn writer(db: Database, retention: Retention) -> Writer {
        let (_queue, commands) = std::sync::mpsc::sync_channel(1);
        let config = DurableConfig {
            retention,
            batch_window: Duration::ZERO,
            ..DurableConfig::default()
        };
        Writer::new(db, PathBuf::from("test"), config, commands)
    }

    fn append(room: &RoomName, epoch: &str, seq: u64) -> Command {
        let event = StoredEvent {
            sequence: Sequence(seq),
            unix_millis: now_unix_millis(),
            frame: Bytes::from_static(b"{}"),
        };
        Command::Append {
            room: room.clone(),
            epoch: Epoch::new(epoch),
            event,
            done: None,
        }
    }

    fn stored(db: &Database, room: &str) -> Result<Vec<u64>, redb::Error> {
        let txn = db.begin_write()?;
        let events = txn.open_table(EVENTS)?;
        let mut out = Vec::new();
        for entry in events.range((room, 0)..=(room, u64::MAX))? {
            out.push(entry?.0.value().1);
        }
        Ok(out)
    }

    #[test]
    fn new_epoch_replaces_old_events_and_max_events_bounds_disk() -> TestResult {
        let dir = tempfile::tempdir()?;
        let db = Database::create(dir.path().join(FILE_NAME))?;
        let w = writer(db, Retention::all(3, Duration::from_secs(60)));
        let r = RoomName::parse("r")?;
        let old: Vec<Command> = (1..=5).map(|s| append(&r, "old", s)).collect();
        w.write(&old, Durability::Immediate)?;
        assert_eq!(stored(&w.db, "r")?, [3, 4, 5]);
        w.write(&[append(&r, "new", 1)], Durability::Immediate)?;
        assert_eq!(stored(&w.db, "r")?, [1]);
        Ok(())
    }

    #[test]
    fn disk_trim_forgets_rooms_without_a_rule() -> TestResult {
        let dir = tempfile::tempdir()?;
        let db = Database::create(dir.path().join(FILE_NAME))?;
        let mut w = writer(db, Retention::default());
        let r = RoomName::parse("r")?;
        w.write(
            &[append(&r, "e", 1), append(&r, "e", 2)],
            Durability::Immediate,
        )?;
        w.retention = Retention::none();
        let now = now_unix_millis() + 1;
        w.transact(Durability::Immediate, |w, events, heads| {
            w.trim(events, heads, now)
        })?;
        assert!(stored(&w.db, "r")?.is_empty());
        let txn = w.db.begin_write()?;
        assert!(txn.open_table(HEADS)?.get("r")?.is_none());
        Ok(())
    }
}

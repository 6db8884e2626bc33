//! The history writer thread: owns the redb database and applies queued commands in order.
//!
//! Group commit: after the first command of a batch it gathers more (for
//! [`FsyncPolicy::Batch`], whatever arrives within `batch_window`; for `Never`, what is
//! already queued; for `Always`, nothing), writes them all in one transaction, commits, then
//! resolves every receipt in the batch with the outcome, so a receipt never resolves before
//! its event is committed. A batch's trims run after its receipts resolved, coalesced into
//! one transaction of their own, so a trim over many rooms never delays an acknowledgement.
//! With `Never`, commits are not synced; the writer syncs them every `checkpoint_interval`
//! and before it exits.
//!
//! A failed commit or sync never lets the thread carry on as if nothing happened (redb
//! refuses every later transaction after an I/O error anyway). The writer marks the store
//! failed in its shared [`Health`] (publishers, `/readyz` and metrics read it), logs the
//! path and the error, fails the batch's receipts with [`HistoryError::Unavailable`] and
//! keeps the batch's appends as *owed*: those events were already visible (and fanned out),
//! so they must still reach the disk. It then reopens the database with exponential backoff
//! and rewrites what it owes (rewriting is idempotent: same keys, same values); once that
//! commits, the store is healthy again. Appends that slipped past the publishers' health
//! check meanwhile join the owed list in queue order.
//!
//! The thread exits when the store drops its queue sender, after writing what is left. Only
//! then, and only if nothing is owed and no unsynced commit was lost to a failure, does it
//! write the clean-shutdown marker (see the parent module): every other exit makes the next
//! start continue each room under a new epoch.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::{Database, Durability, ReadableTable};
use roomcast_protocol::{Epoch, RoomName};
use tokio::sync::oneshot;

use super::health::Health;
use super::{context, DurableConfig, FsyncPolicy, CLEAN_KEY, EVENTS, HEADS, META};
use crate::history::{HistoryError, Retention, StoredEvent};

/// Most commands the writer puts in one transaction.
const MAX_BATCH: usize = 4096;
/// First wait before reopening a failed store; doubled after each failed attempt.
const RETRY_FIRST: Duration = Duration::from_millis(100);
/// Longest wait between two attempts to reopen a failed store: how long a store may stay
/// failed after its disk is healthy again.
const RETRY_MAX: Duration = Duration::from_secs(2);

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

/// An append whose commit failed: still owed to the disk.
struct Owed {
    room: RoomName,
    epoch: Epoch,
    event: StoredEvent,
}

/// The background thread's state. See the module docs.
pub(super) struct Writer {
    /// `None` only between dropping a failed database and reopening it.
    db: Option<Database>,
    path: PathBuf,
    retention: Retention,
    fsync: FsyncPolicy,
    batch_window: Duration,
    checkpoint_interval: Duration,
    commands: Receiver<Command>,
    /// With [`FsyncPolicy::Never`]: when the oldest commit not yet synced was made.
    unsynced_since: Option<Instant>,
    health: Arc<Health>,
    /// Appends whose commit failed, in queue order; rewritten once the store reopens.
    owed: Vec<Owed>,
    /// A failure may have lost unsynced (`Never`) commits that cannot be rewritten: the
    /// store must not be marked cleanly closed.
    lost_unsynced: bool,
}

impl Writer {
    pub(super) fn new(
        db: Database,
        path: PathBuf,
        config: DurableConfig,
        commands: Receiver<Command>,
        health: Arc<Health>,
    ) -> Writer {
        Writer {
            db: Some(db),
            path,
            retention: config.retention,
            fsync: config.fsync,
            batch_window: config.batch_window,
            checkpoint_interval: config.checkpoint_interval,
            commands,
            unsynced_since: None,
            health,
            owed: Vec::new(),
            lost_unsynced: false,
        }
    }

    /// Runs until the store is closed (the queue's sender is dropped), then writes what is
    /// left, syncs and, if nothing was lost, marks the store cleanly closed.
    pub(super) fn run(mut self) -> Result<(), HistoryError> {
        let mut batch = Vec::new();
        loop {
            if self.health.is_failed() && !self.recover() {
                break; // closed while failed
            }
            let Some(first) = self.next_command() else {
                break;
            };
            batch.push(first);
            self.gather(&mut batch);
            self.commit(&mut batch);
        }
        if self.health.is_failed() {
            tracing::error!(
                path = %self.path.display(),
                owed = self.owed.len(),
                "history store closed while failed: the next start continues every room under a new epoch"
            );
            return self.health.check();
        }
        self.sync()?;
        if self.lost_unsynced {
            tracing::warn!(
                path = %self.path.display(),
                "unsynced history commits were lost to a disk error: the next start continues every room under a new epoch"
            );
            return Ok(());
        }
        self.mark_clean()
    }

    /// Writes the clean-shutdown marker: everything handed out is on disk.
    fn mark_clean(&self) -> Result<(), HistoryError> {
        let mark = || -> Result<(), redb::Error> {
            let db = self.db.as_ref().ok_or_else(not_open)?;
            let txn = db.begin_write()?;
            txn.open_table(META)?.insert(CLEAN_KEY, 1)?;
            txn.commit()?;
            Ok(())
        };
        mark().map_err(context(format_args!(
            "marking {} cleanly closed",
            self.path.display()
        )))
    }

    fn db(&self) -> Result<&Database, HistoryError> {
        self.db.as_ref().ok_or_else(|| {
            HistoryError::Unavailable(format!("{} is not open", self.path.display()))
        })
    }

    /// Marks the store failed and says so, with the path.
    fn fail(&mut self, what: &str, error: &dyn std::fmt::Display) {
        let reason = format!("{what} {}: {error}", self.path.display());
        tracing::error!(
            path = %self.path.display(),
            %error,
            "history {what} failed: refusing publishes to rooms with history until the store recovers"
        );
        if self.fsync == FsyncPolicy::Never {
            self.lost_unsynced = true;
        }
        self.health.failed(reason);
    }

    /// Reopens the failed database with backoff until everything owed is written. Returns
    /// false if the store was closed first.
    fn recover(&mut self) -> bool {
        let mut backoff = RETRY_FIRST;
        loop {
            let deadline = Instant::now() + backoff;
            loop {
                let wait = deadline.saturating_duration_since(Instant::now());
                match self.commands.recv_timeout(wait) {
                    Ok(command) => self.owe(command),
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => return false,
                }
            }
            match self.reopen() {
                Ok(()) => {
                    self.health.recovered();
                    tracing::info!(path = %self.path.display(), "history store recovered");
                    return true;
                }
                Err(e) => {
                    self.fail("reopening", &e);
                    backoff = (backoff * 2).min(RETRY_MAX);
                }
            }
        }
    }

    /// While failed: an append joins the owed list (its receipt fails), a flush fails, a
    /// trim is dropped (the next one covers it).
    fn owe(&mut self, command: Command) {
        let done = match command {
            Command::Append {
                room,
                epoch,
                event,
                done,
            } => {
                self.owed.push(Owed { room, epoch, event });
                done
            }
            Command::Flush { done } => Some(done),
            Command::Trim { .. } => None,
        };
        if let Some(done) = done {
            let _ = done.send(Err(self.unavailable()));
        }
    }

    fn unavailable(&self) -> HistoryError {
        match self.health.check() {
            Err(e) => e,
            Ok(()) => HistoryError::Unavailable(format!("{} is recovering", self.path.display())),
        }
    }

    /// Drops the database handle (redb must be closed after an I/O error), opens it again
    /// and writes what is owed in one durable transaction.
    fn reopen(&mut self) -> Result<(), redb::Error> {
        self.db = None;
        self.db = Some(Database::create(&self.path)?);
        let owed = std::mem::take(&mut self.owed);
        let written = self.transact(Durability::Immediate, |w, events, heads| {
            for o in &owed {
                w.put(events, heads, &o.room, &o.epoch, &o.event)?;
            }
            Ok(())
        });
        if written.is_err() {
            self.owed = owed;
        } else {
            // Everything before this durable commit is durable too.
            self.unsynced_since = None;
        }
        written
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
                    self.fail("syncing", &e);
                    if !self.recover() {
                        return None;
                    }
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
        };
        match &outcome {
            Ok(()) => self.committed(appends),
            Err(e) => {
                self.fail("writing", e);
                // Every append of the batch is owed; its receipts fail below.
                for command in batch.drain(..) {
                    self.owe(command);
                }
                return;
            }
        }
        for command in batch.drain(..) {
            let done = match command {
                Command::Append { done, .. } => done,
                Command::Flush { done } => Some(done),
                Command::Trim { .. } => None,
            };
            if let Some(done) = done {
                // The publisher may have stopped waiting; that is not the writer's problem.
                let _ = done.send(Ok(()));
            }
        }
        if let Some(now) = trim_at {
            if let Err(e) = self.transact(durability, |w, events, heads| w.trim(events, heads, now))
            {
                self.fail("trimming", &e);
                return;
            }
            self.committed(1);
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
        let db = self.db.as_ref().ok_or_else(not_open)?;
        let mut txn = db.begin_write()?;
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
            .db()?
            .begin_write()
            .map_err(context(format_args!("syncing {}", self.path.display())))?;
        txn.commit()
            .map_err(context(format_args!("syncing {}", self.path.display())))?;
        self.unsynced_since = None;
        Ok(())
    }
}

fn not_open() -> redb::Error {
    redb::Error::Io(std::io::Error::other("the database is not open"))
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
        Writer::new(db, PathBuf::from("test"), config, commands, Arc::default())
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
        assert_eq!(stored(w.db()?, "r")?, [3, 4, 5]);
        w.write(&[append(&r, "new", 1)], Durability::Immediate)?;
        assert_eq!(stored(w.db()?, "r")?, [1]);
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
        assert!(stored(w.db()?, "r")?.is_empty());
        let txn = w.db()?.begin_write()?;
        assert!(txn.open_table(HEADS)?.get("r")?.is_none());
        Ok(())
    }
}

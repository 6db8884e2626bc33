//! The exchange's durable state in `<data_dir>/arena.redb` (an append-only command log and
//! the snapshot written at a clean stop) and `<data_dir>/arena-checkpoint.redb` (the
//! periodic snapshots the [`crate::checkpoint`] replica writes). Two files, because a
//! snapshot of a few MB held redb's write lock for tens of milliseconds, and every order
//! batch's commit waited behind it; in its own file it holds only its own lock.
//!
//! # Invariants
//!
//! - **Log.** Table `log` maps a sequence number (from 1, gapless while kept) to the JSON of
//!   one [`Command`], the exact value the state machine applied, with its order id and
//!   timestamp. Only accepted state changes are logged (not rejects, duplicates or reads).
//! - **Snapshot.** In each file, table `snapshot` holds the JSON [`StateSnapshot`] under
//!   `state` and the last log sequence it includes under meta `snapshot_seq`, written in
//!   one transaction. Recovery takes the newer of the two, so the state is always `newest
//!   snapshot + log entries after its snapshot_seq`. The log entries a durable snapshot
//!   covers are deleted afterwards, a few per later batch ([`TRIM_PER_BATCH`] plus the
//!   batch's own command count, so trimming keeps up with any rate): deleting a
//!   snapshot's worth of entries (10,000) in one commit stalled every order behind it,
//!   and so did 1,024 per batch (~10 ms each, measured). Recovery
//!   reads only the entries after the snapshot it uses, so covered entries still present
//!   are never replayed; a log that does not continue that snapshot is refused.
//! - **Batch.** The commands of one exchange batch are written in one transaction; with
//!   fsync `always` or `batch` it commits with immediate durability before any reply is sent.
//! - **Instruments.** Meta `instruments` records each symbol's tick, lot and quote currency;
//!   opening with a configuration that changes them for a known symbol is refused, since
//!   the stored integers would change meaning.
//!
//! - **Running flag.** Meta `running` is 1 from start-up until a clean stop has written the
//!   final snapshot. Finding it at 1 on start means the last run crashed: commands after the
//!   last publish may be durable without their events having reached any room.
//!
//! An in-memory database (no data dir) runs the same code on redb's in-memory backend.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use crate::error::ArenaError;
use crate::instrument::Instruments;
use crate::state::{Command, StateSnapshot};

/// The database file inside the data dir.
pub const FILE_NAME: &str = "arena.redb";
/// The periodic snapshots' file inside the data dir.
pub const CHECKPOINT_FILE_NAME: &str = "arena-checkpoint.redb";

const LOG: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("log");
const SNAPSHOT: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("snapshot");
const META: TableDefinition<'static, &str, u64> = TableDefinition::new("meta");

/// What was recovered: the snapshot (if any) and the commands logged after it.
#[derive(Debug)]
pub struct Recovered {
    /// The latest snapshot.
    pub snapshot: Option<StateSnapshot>,
    /// Commands after it, in order.
    pub commands: Vec<Command>,
    /// The sequence the next logged command gets.
    pub next_seq: u64,
    /// The last log sequence the snapshot covers (0: none).
    pub snapshot_seq: u64,
}

/// Covered log entries one batch's transaction deletes besides as many as it appends.
pub const TRIM_PER_BATCH: u64 = 64;

/// One batch to write.
#[derive(Debug, Default)]
pub struct Batch {
    /// Sequence of the first command.
    pub first_seq: u64,
    /// The commands' JSON.
    pub commands: Vec<Vec<u8>>,
    /// A snapshot covering everything up to the last command of this batch, serialised
    /// by [`Store::write`] (on the writer's blocking thread, not the exchange task).
    pub snapshot: Option<StateSnapshot>,
    /// The last log sequence a durable checkpoint covers: entries up to it may be trimmed.
    pub trim_to: u64,
}

/// The arena's database. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    checkpoints: Arc<Database>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

fn storage(e: impl std::fmt::Display) -> ArenaError {
    ArenaError::Storage(e.to_string())
}

impl Store {
    /// Opens (or creates) `<dir>/arena.redb`, or an in-memory database for `None`.
    ///
    /// # Errors
    /// [`ArenaError::Storage`] when the file cannot be opened.
    pub fn open(dir: Option<&Path>) -> Result<Store, ArenaError> {
        let open = |name: &str| match dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(storage)?;
                Database::create(dir.join(name)).map_err(storage)
            }
            None => Database::builder()
                .create_with_backend(redb::backends::InMemoryBackend::new())
                .map_err(storage),
        };
        let db = open(FILE_NAME)?;
        let checkpoints = open(CHECKPOINT_FILE_NAME)?;
        for db in [&db, &checkpoints] {
            let txn = db.begin_write().map_err(storage)?;
            {
                txn.open_table(LOG).map_err(storage)?;
                txn.open_table(SNAPSHOT).map_err(storage)?;
                txn.open_table(META).map_err(storage)?;
            }
            txn.commit().map_err(storage)?;
        }
        Ok(Store {
            db: Arc::new(db),
            checkpoints: Arc::new(checkpoints),
        })
    }

    /// Checks that no known symbol changed units, then records the current instruments.
    ///
    /// # Errors
    /// [`ArenaError::Conservation`] when a symbol's tick, lot or quote changed.
    pub fn check_instruments(&self, instruments: &Instruments) -> Result<(), ArenaError> {
        let txn = self.db.begin_write().map_err(storage)?;
        {
            let mut table = txn.open_table(SNAPSHOT).map_err(storage)?;
            let mut known: BTreeMap<String, (String, String, String)> =
                match table.get("instruments").map_err(storage)? {
                    Some(v) => serde_json::from_slice(v.value()).map_err(storage)?,
                    None => BTreeMap::new(),
                };
            for ins in instruments.iter() {
                let now = (
                    ins.tick_size.clone(),
                    ins.lot_size.clone(),
                    ins.quote.clone(),
                );
                if let Some(before) = known.get(&ins.symbol) {
                    let same = crate::decimal::parse_units(&before.0, 18)
                        == crate::decimal::parse_units(&now.0, 18)
                        && crate::decimal::parse_units(&before.1, 18)
                            == crate::decimal::parse_units(&now.1, 18)
                        && before.2 == now.2;
                    if !same {
                        return Err(ArenaError::Conservation(format!(
                            "instrument {} changed from tick {} lot {} {} to tick {} lot {} {}: the stored state would change meaning",
                            ins.symbol, before.0, before.1, before.2, now.0, now.1, now.2
                        )));
                    }
                }
                known.insert(ins.symbol.clone(), now);
            }
            let bytes = serde_json::to_vec(&known).map_err(storage)?;
            table
                .insert("instruments", bytes.as_slice())
                .map_err(storage)?;
        }
        txn.commit().map_err(storage)
    }

    /// Sets the running flag; returns whether it was already set (the last run did not stop
    /// cleanly).
    ///
    /// # Errors
    /// [`ArenaError::Storage`].
    pub fn mark_running(&self) -> Result<bool, ArenaError> {
        let txn = self.db.begin_write().map_err(storage)?;
        let was = {
            let mut meta = txn.open_table(META).map_err(storage)?;
            let was = meta
                .get("running")
                .map_err(storage)?
                .is_some_and(|v| v.value() == 1);
            meta.insert("running", 1).map_err(storage)?;
            was
        };
        txn.commit().map_err(storage)?;
        Ok(was)
    }

    /// Clears the running flag (a clean stop).
    ///
    /// # Errors
    /// [`ArenaError::Storage`].
    pub fn mark_stopped(&self) -> Result<(), ArenaError> {
        let txn = self.db.begin_write().map_err(storage)?;
        txn.open_table(META)
            .map_err(storage)?
            .insert("running", 0)
            .map_err(storage)?;
        txn.commit().map_err(storage)
    }

    /// Reads the snapshot and the log after it.
    ///
    /// # Errors
    /// [`ArenaError::Storage`] on a read failure or an entry that does not decode.
    pub fn recover(&self) -> Result<Recovered, ArenaError> {
        let (main_seq, main) = read_snapshot(&self.db)?;
        let (checkpoint_seq, checkpoint) = read_snapshot(&self.checkpoints)?;
        let (snap_seq, snapshot) = if checkpoint_seq > main_seq {
            (checkpoint_seq, checkpoint)
        } else {
            (main_seq, main)
        };
        let txn = self.db.begin_read().map_err(storage)?;
        let log = txn.open_table(LOG).map_err(storage)?;
        let mut commands = Vec::new();
        let mut next_seq = snap_seq + 1;
        for entry in log.range(snap_seq + 1..).map_err(storage)? {
            let (k, v) = entry.map_err(storage)?;
            let seq = k.value();
            if seq != next_seq {
                return Err(storage(format!(
                    "command log gap: expected {next_seq}, found {seq}"
                )));
            }
            let cmd: Command = serde_json::from_slice(v.value())
                .map_err(|e| storage(format!("log entry {seq}: {e}")))?;
            commands.push(cmd);
            next_seq += 1;
        }
        Ok(Recovered {
            snapshot,
            commands,
            next_seq,
            snapshot_seq: snap_seq,
        })
    }

    /// Writes a periodic snapshot (the JSON of a [`StateSnapshot`], see
    /// [`crate::state::ExchangeState::snapshot_json`]) covering the log up to `seq` into the checkpoint file,
    /// durably, unless a newer one is already there (blocking: the checkpoint thread calls
    /// it). It takes only the checkpoint file's write lock, never the log's.
    ///
    /// # Errors
    /// The storage error; then the previous checkpoint stands.
    pub fn write_checkpoint(&self, seq: u64, bytes: &[u8]) -> Result<(), ArenaError> {
        let txn = self.checkpoints.begin_write().map_err(storage)?;
        {
            let mut meta = txn.open_table(META).map_err(storage)?;
            let current = meta
                .get("snapshot_seq")
                .map_err(storage)?
                .map_or(0, |v| v.value());
            if current >= seq {
                return Ok(());
            }
            let mut snap = txn.open_table(SNAPSHOT).map_err(storage)?;
            snap.insert("state", bytes).map_err(storage)?;
            meta.insert("snapshot_seq", seq).map_err(storage)?;
        }
        txn.commit().map_err(storage)
    }

    /// Writes one batch in one transaction (blocking: call from a blocking thread).
    ///
    /// # Errors
    /// The storage error; then nothing of the batch is stored.
    pub fn write(&self, batch: &Batch, durability: Durability) -> Result<(), ArenaError> {
        let snapshot = match &batch.snapshot {
            Some(s) => Some(serde_json::to_vec(s).map_err(storage)?),
            None => None,
        };
        let mut txn = self.db.begin_write().map_err(storage)?;
        txn.set_durability(durability).map_err(storage)?;
        {
            let mut log = txn.open_table(LOG).map_err(storage)?;
            for (i, cmd) in batch.commands.iter().enumerate() {
                log.insert(batch.first_seq + i as u64, cmd.as_slice())
                    .map_err(storage)?;
            }
            let mut meta = txn.open_table(META).map_err(storage)?;
            let mut snap_seq = meta
                .get("snapshot_seq")
                .map_err(storage)?
                .map_or(0, |v| v.value());
            if let Some(bytes) = &snapshot {
                snap_seq = (batch.first_seq + batch.commands.len() as u64).saturating_sub(1);
                let mut snap = txn.open_table(SNAPSHOT).map_err(storage)?;
                snap.insert("state", bytes.as_slice()).map_err(storage)?;
                meta.insert("snapshot_seq", snap_seq).map_err(storage)?;
            }
            // Delete a bounded slice of the entries a durable snapshot covers.
            let covered = snap_seq.max(batch.trim_to);
            let first = log.first().map_err(storage)?.map(|(k, _)| k.value());
            if let Some(first) = first.filter(|&f| f <= covered) {
                let budget = TRIM_PER_BATCH + batch.commands.len() as u64;
                let end = covered.min(first + budget - 1);
                log.retain_in(first..=end, |_, _| false).map_err(storage)?;
            }
        }
        txn.commit().map_err(storage)
    }
}

/// A database's snapshot and the last log sequence it covers (0 and `None`: none).
fn read_snapshot(db: &Database) -> Result<(u64, Option<StateSnapshot>), ArenaError> {
    let txn = db.begin_read().map_err(storage)?;
    let meta = txn.open_table(META).map_err(storage)?;
    let seq = meta
        .get("snapshot_seq")
        .map_err(storage)?
        .map_or(0, |v| v.value());
    let snapshots = txn.open_table(SNAPSHOT).map_err(storage)?;
    let snapshot = match snapshots.get("state").map_err(storage)? {
        Some(v) => {
            Some(serde_json::from_slice(v.value()).map_err(|e| storage(format!("snapshot: {e}")))?)
        }
        None => None,
    };
    Ok((seq, snapshot))
}

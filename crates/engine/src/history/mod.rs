//! Room event history: what a reconnecting client is replayed from.
//!
//! The hub assigns each room event its sequence under the room's publish lock and then calls
//! [`History::append`] in that same order, so a store never reorders or renumbers: it keeps
//! what it is given. Reads ([`History::read_since`]) must see every appended event at once,
//! before it is durable, because the hub replays from the store while live publishes go on.
//!
//! Contract for implementations:
//! - per room, `append` is called with strictly consecutive sequences (`head + 1`);
//! - `head` of a room that never had history (or whose history was lost) starts a new
//!   random epoch at sequence 0;
//! - `read_since` returns events with `sequence > after` in order, and says whether the
//!   range after `after` is complete (no event trimmed away);
//! - [`AppendReceipt::durable`] resolves once the event is as durable as the configured
//!   fsync policy promises; a publish API acknowledges only after it;
//! - `trim` may forget a room whose events have all expired and that has been idle (no
//!   `append`, `head` or `read_since`) for longer than its TTL; the room then starts over
//!   at sequence 0 under a new epoch. A caller that caches a room's head (the hub does)
//!   treats [`HistoryError::OutOfOrder`] as "re-read the head";
//! - no `(epoch, sequence)` ever names two different events, across restarts and crashes:
//!   a store that may have lost events it already handed out continues those rooms under a
//!   new epoch (see [`DurableHistory`]);
//! - while [`History::writable`] fails, `append` to a room that keeps history fails with
//!   [`HistoryError::Unavailable`] and changes nothing.
//!
//! Stores: [`MemoryHistory`] (rings in memory, lost on restart) and [`DurableHistory`] (the
//! same rings as a cache over an embedded redb file written by a background group-commit
//! thread). [`Retention`] decides per room prefix how much either keeps.

mod durable;
mod memory;
mod retention;
mod routed;

pub use durable::{DurableConfig, DurableHistory, FsyncPolicy, FILE_NAME};
pub use memory::MemoryHistory;
pub use retention::{Retention, RetentionRule};
pub use routed::RoutedHistory;

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use roomcast_protocol::{Epoch, RoomName, Sequence};

/// A stored room event: its sequence, when it was published, and its encoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// The event's sequence in its room.
    pub sequence: Sequence,
    /// Publish time, milliseconds since the Unix epoch (for TTL trimming).
    pub unix_millis: i64,
    /// The JSON text exactly as delivered live.
    pub frame: Bytes,
}

/// A room's position: the last sequence assigned and the epoch it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomHead {
    /// Last sequence assigned (0 before the first event).
    pub sequence: Sequence,
    /// The current epoch.
    pub epoch: Epoch,
}

/// The result of a history read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadSince {
    /// Events with `sequence > after`, in order, at most `limit` of them.
    pub events: Vec<StoredEvent>,
    /// False when some events after `after` are no longer stored (trimmed or expired).
    pub complete: bool,
    /// The room's head at the time of the read.
    pub head: RoomHead,
}

/// Errors from a history store.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The embedded store failed.
    #[error("history storage error: {0}")]
    Storage(String),
    /// An append did not continue the room's sequence.
    #[error("append out of order in room {room}: expected {expected}, got {got}")]
    OutOfOrder {
        /// The room.
        room: RoomName,
        /// The sequence the store expected.
        expected: Sequence,
        /// The sequence it was given.
        got: Sequence,
    },
    /// The store cannot write (its disk failed) and is recovering by itself; nothing was
    /// appended. The text says why and where.
    #[error("history store unavailable: {0}")]
    Unavailable(String),
    /// The store has shut down.
    #[error("history store is closed")]
    Closed,
}

/// Resolves when an appended event is durable per the store's fsync policy.
pub type Durable = Pin<Box<dyn Future<Output = Result<(), HistoryError>> + Send>>;

/// What `append` hands back.
pub struct AppendReceipt {
    /// Completes once the event is durable.
    pub durable: Durable,
}

impl AppendReceipt {
    /// A receipt for a store with nothing to wait for.
    pub fn ready() -> AppendReceipt {
        AppendReceipt {
            durable: Box::pin(std::future::ready(Ok(()))),
        }
    }
}

/// A per-room event log. See the module docs for the contract.
pub trait History: Send + Sync + 'static {
    /// Whether this room keeps history at all (by the retention rules).
    fn keeps(&self, room: &RoomName) -> bool;

    /// The room's current head; creates a fresh epoch at sequence 0 for an unknown room.
    fn head(&self, room: &RoomName) -> Result<RoomHead, HistoryError>;

    /// Appends the next event of a room. Must be `head.sequence + 1`.
    fn append(&self, room: &RoomName, event: StoredEvent) -> Result<AppendReceipt, HistoryError>;

    /// Reads up to `limit` events with sequence greater than `after`.
    fn read_since(
        &self,
        room: &RoomName,
        after: Sequence,
        limit: usize,
    ) -> Result<ReadSince, HistoryError>;

    /// Drops events past their room's `max_events` or `ttl`. Called periodically.
    fn trim(&self, now_unix_millis: i64);

    /// Number of rooms with stored state (for metrics and bounded-memory tests).
    fn room_count(&self) -> usize;

    /// Whether `append` to a room that keeps history can succeed now: a store whose disk
    /// failed answers [`HistoryError::Unavailable`] until it has recovered. Cheap (an atomic
    /// load): callers check it before doing anything they cannot undo.
    fn writable(&self) -> Result<(), HistoryError> {
        Ok(())
    }

    /// Cluster mode: replaces a room's state with a copy of what the shared store holds
    /// (its head and its retained events, ascending), so reads and later appends continue
    /// from there. Only a mirror store (memory) supports it.
    fn mirror(
        &self,
        room: &RoomName,
        head: &RoomHead,
        events: Vec<StoredEvent>,
    ) -> Result<(), HistoryError> {
        let _ = (head, events);
        Err(HistoryError::Storage(format!(
            "this history store cannot mirror room {room}"
        )))
    }

    /// Failed disk writes (commits, syncs, reopen attempts) since start, for metrics.
    fn write_errors(&self) -> u64 {
        0
    }
}

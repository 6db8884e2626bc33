//! A history that keeps some rooms in one store and the rest in another, by room-name
//! prefix: e.g. a domain whose own log is the durable record (the trading arena) keeps
//! its rooms' event history in memory, so every event is not written to disk twice,
//! while every other room stays in the durable store.
//!
//! A room lives in exactly one store for the life of the process, chosen by its name, so
//! heads, epochs and sequences never mix. Health (`writable`, `write_errors`) is the
//! primary store's: a failing disk still refuses publishes to the rooms it holds.

use std::sync::Arc;

use roomcast_protocol::{RoomName, Sequence};

use super::{AppendReceipt, History, HistoryError, ReadSince, RoomHead, StoredEvent};

/// Routes rooms under `prefixes` to `secondary`, every other room to `primary`.
pub struct RoutedHistory {
    primary: Arc<dyn History>,
    secondary: Arc<dyn History>,
    prefixes: Vec<String>,
}

impl std::fmt::Debug for RoutedHistory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoutedHistory")
            .field("prefixes", &self.prefixes)
            .finish_non_exhaustive()
    }
}

impl RoutedHistory {
    /// Rooms under any of `prefixes` go to `secondary`.
    pub fn new(
        primary: Arc<dyn History>,
        secondary: Arc<dyn History>,
        prefixes: Vec<String>,
    ) -> RoutedHistory {
        RoutedHistory {
            primary,
            secondary,
            prefixes,
        }
    }

    fn store(&self, room: &RoomName) -> &dyn History {
        if self.prefixes.iter().any(|p| room.as_str().starts_with(p)) {
            &*self.secondary
        } else {
            &*self.primary
        }
    }
}

impl History for RoutedHistory {
    fn keeps(&self, room: &RoomName) -> bool {
        self.store(room).keeps(room)
    }

    fn head(&self, room: &RoomName) -> Result<RoomHead, HistoryError> {
        self.store(room).head(room)
    }

    fn append(&self, room: &RoomName, event: StoredEvent) -> Result<AppendReceipt, HistoryError> {
        self.store(room).append(room, event)
    }

    fn read_since(
        &self,
        room: &RoomName,
        after: Sequence,
        limit: usize,
    ) -> Result<ReadSince, HistoryError> {
        self.store(room).read_since(room, after, limit)
    }

    fn trim(&self, now_unix_millis: i64) {
        self.primary.trim(now_unix_millis);
        self.secondary.trim(now_unix_millis);
    }

    fn room_count(&self) -> usize {
        self.primary.room_count() + self.secondary.room_count()
    }

    fn writable(&self) -> Result<(), HistoryError> {
        self.primary.writable()
    }

    fn write_errors(&self) -> u64 {
        self.primary.write_errors()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{MemoryHistory, Retention};
    use bytes::Bytes;
    use std::time::Duration;

    fn room(s: &str) -> RoomName {
        RoomName::parse(s).expect("room")
    }

    fn event(n: u64) -> StoredEvent {
        StoredEvent {
            sequence: Sequence(n),
            unix_millis: 0,
            frame: Bytes::from(format!("{{\"n\":{n}}}")),
        }
    }

    #[test]
    fn rooms_go_to_the_store_their_prefix_names() {
        let primary = Arc::new(MemoryHistory::new(Retention::all(
            10,
            Duration::from_secs(60),
        )));
        let secondary = Arc::new(MemoryHistory::new(Retention::all(
            10,
            Duration::from_secs(60),
        )));
        let routed = RoutedHistory::new(primary.clone(), secondary.clone(), vec!["market:".into()]);
        for (name, n) in [("chat", 2), ("market:BTC-USD", 3)] {
            let r = room(name);
            routed.head(&r).expect("head");
            for i in 1..=n {
                routed.append(&r, event(i)).expect("append");
            }
            assert_eq!(
                routed
                    .read_since(&r, Sequence(0), 10)
                    .expect("read")
                    .events
                    .len(),
                n as usize
            );
        }
        assert_eq!(primary.room_count(), 1);
        assert_eq!(secondary.room_count(), 1);
        assert_eq!(routed.room_count(), 2);
        assert_eq!(
            secondary
                .head(&room("market:BTC-USD"))
                .expect("head")
                .sequence,
            Sequence(3)
        );
    }
}

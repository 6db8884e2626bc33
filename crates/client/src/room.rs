//! Per-room recovery state: the last delivered `(sequence, epoch)`, the client's own
//! acked publishes, and the dedupe rule of docs/CLIENTS.md "Recovery semantics".
//!
//! An `(epoch, sequence)` pair names one event, so an event of the room's current epoch at
//! or below the last delivered sequence was delivered already and is dropped. A
//! `*_snapshot` or a `recovery_failed` resets the position. The server never echoes a
//! publish to its sender, but a replay after a reconnect would: the sequences of the
//! client's own acked publishes are remembered (bounded) and dropped from replays.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use crate::error::Error;

/// How many own publish sequences a room remembers for replay dedupe.
const OWN_LIMIT: usize = 4096;

/// The last event of a room that was delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The room sequence.
    pub sequence: u64,
    /// The room's history epoch.
    pub epoch: String,
}

impl Position {
    /// The `since` object of a resubscribe.
    pub(crate) fn as_since(&self) -> Value {
        json!({"sequence": self.sequence, "epoch": self.epoch})
    }

    /// Reads `sequence` and `epoch` from a message, if it has both.
    pub(crate) fn of(msg: &Value) -> Option<Position> {
        Some(Position {
            sequence: msg.get("sequence")?.as_u64()?,
            epoch: msg.get("epoch")?.as_str()?.to_owned(),
        })
    }
}

/// A room the client follows.
#[derive(Debug)]
pub(crate) struct RoomState {
    pub(crate) name: String,
    /// `general` and a stream's room: joined by the server, recovered via the URL.
    pub(crate) joined_by_server: bool,
    pub(crate) position: Option<Position>,
    pub(crate) sink: mpsc::Sender<Value>,
    /// Answered by the first subscribe ack or error.
    pub(crate) join_reply: Option<oneshot::Sender<Result<Value, Error>>>,
    own: BTreeSet<u64>,
    own_epoch: Option<String>,
}

impl RoomState {
    pub(crate) fn new(
        name: String,
        joined_by_server: bool,
        since: Option<Position>,
        sink: mpsc::Sender<Value>,
        join_reply: Option<oneshot::Sender<Result<Value, Error>>>,
    ) -> RoomState {
        RoomState {
            name,
            joined_by_server,
            position: since,
            sink,
            join_reply,
            own: BTreeSet::new(),
            own_epoch: None,
        }
    }

    /// The subscribe request that (re)joins the room.
    pub(crate) fn subscribe_message(&self) -> Value {
        match &self.position {
            Some(p) => json!({"type": "subscribe", "room": self.name, "since": p.as_since()}),
            None => json!({"type": "subscribe", "room": self.name}),
        }
    }

    /// Updates the position for `event`; false when it is a duplicate to drop.
    pub(crate) fn accept(&mut self, event: &Value) -> bool {
        let Some(at) = Position::of(event) else {
            return true;
        };
        let kind = event.get("type").and_then(Value::as_str).unwrap_or("");
        if kind == "recovery_failed" || kind.ends_with("_snapshot") {
            self.position = Some(at);
            return true;
        }
        if let Some(p) = &self.position {
            if p.epoch == at.epoch && at.sequence <= p.sequence {
                return false;
            }
        }
        let own =
            self.own_epoch.as_deref() == Some(at.epoch.as_str()) && self.own.remove(&at.sequence);
        self.position = Some(at);
        !own
    }

    /// A plain subscribe's ack names the room's head: nothing before it is owed.
    pub(crate) fn note_join_ack(&mut self, ack: &Value) {
        if self.position.is_none() {
            self.position = Position::of(ack);
        }
    }

    /// Remembers an acked own publish, so a replay does not hand it back.
    pub(crate) fn note_own(&mut self, ack: &Value) {
        let Some(at) = Position::of(ack) else { return };
        if self.own_epoch.as_deref() != Some(at.epoch.as_str()) {
            self.own.clear();
            self.own_epoch = Some(at.epoch.clone());
        }
        if self.position.as_ref().is_some_and(|p| p.epoch == at.epoch) {
            // Own publishes right after the position advance it directly.
            if let Some(p) = &mut self.position {
                if at.sequence == p.sequence + 1 {
                    p.sequence = at.sequence;
                    return;
                }
            }
        }
        self.own.insert(at.sequence);
        while self.own.len() > OWN_LIMIT {
            self.own.pop_first();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room() -> RoomState {
        let (tx, _rx) = mpsc::channel(1);
        RoomState::new("chat".into(), false, None, tx, None)
    }

    fn ev(seq: u64, epoch: &str) -> Value {
        json!({"type": "message", "room": "chat", "sequence": seq, "epoch": epoch})
    }

    #[test]
    fn duplicates_of_the_same_epoch_are_dropped() {
        let mut r = room();
        assert!(r.accept(&ev(1, "a")));
        assert!(r.accept(&ev(2, "a")));
        assert!(!r.accept(&ev(2, "a")));
        assert!(!r.accept(&ev(1, "a")));
        assert!(r.accept(&ev(1, "b")), "a new epoch starts over");
    }

    #[test]
    fn own_publishes_are_not_replayed() {
        let mut r = room();
        r.note_join_ack(&json!({"sequence": 0, "epoch": "a"}));
        r.note_own(&json!({"sequence": 1, "epoch": "a"}));
        assert_eq!(r.position.as_ref().map(|p| p.sequence), Some(1));
        r.note_own(&json!({"sequence": 3, "epoch": "a"}));
        assert!(r.accept(&ev(2, "a")));
        assert!(!r.accept(&ev(3, "a")), "own publish replayed");
        assert!(r.accept(&ev(4, "a")));
    }
}

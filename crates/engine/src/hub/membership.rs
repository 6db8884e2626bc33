//! The subscription state machine of one session: for each room it names, whether the
//! session is live in it or still recovering into it.
//!
//! Every transition of a (session, room) pair goes through [`Subscriptions`], under the
//! session's one mutex, and the hub adds or removes the session from the room's member
//! map while still holding that mutex. So the member map and this list never disagree:
//!
//! ```text
//!   (none) --subscribe--------------------------> Live        (member from now on)
//!   (none) --subscribe since---------------------> Recovering(t)
//!   Recovering(t) --replay caught up, room lock--> Live        (member; ticket t only)
//!   Recovering(t) | Live --unsubscribe-----------> (none)      (replay t sees it, stops)
//!   any --supersede / kick / evict / disconnect--> Closed      (terminal: nothing joins)
//! ```
//!
//! A recovering entry counts against `max_subscriptions` like a live one, and a replay
//! can only make *its own* ticket live: a replay whose entry was removed (or replaced by a
//! later subscribe-since) finds its ticket gone and stops without joining.

use roomcast_protocol::RoomName;

/// Identifies one subscribe-with-recovery of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(u64);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Recovering(Ticket),
    Live,
}

/// The outcome of reserving a room for a recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reserved {
    /// A new entry in state `Recovering(ticket)`.
    New(Ticket),
    /// The session already names the room (live or recovering): nothing to replay.
    Already,
    /// The session has closed; nothing will join.
    Closed,
}

/// The session already holds `max_subscriptions` rooms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Full;

/// A session's rooms and their states. Small: bounded by `max_subscriptions`.
#[derive(Debug, Default)]
pub(crate) struct Subscriptions {
    entries: Vec<(RoomName, State)>,
    closed: bool,
    next_ticket: u64,
}

impl Subscriptions {
    fn find(&self, room: &RoomName) -> Option<usize> {
        self.entries.iter().position(|(r, _)| r == room)
    }

    fn room_for_one_more(&self, max: usize) -> Result<(), Full> {
        if self.entries.len() >= max {
            Err(Full)
        } else {
            Ok(())
        }
    }

    /// `(none) -> Live`. Returns whether the caller must add the session to the room's
    /// members (false when already named, or closed).
    pub(crate) fn join_live(&mut self, room: &RoomName, max: usize) -> Result<bool, Full> {
        if self.closed || self.find(room).is_some() {
            return Ok(false);
        }
        self.room_for_one_more(max)?;
        self.entries.push((room.clone(), State::Live));
        Ok(true)
    }

    /// `(none) -> Recovering(t)`.
    pub(crate) fn reserve_recovery(
        &mut self,
        room: &RoomName,
        max: usize,
    ) -> Result<Reserved, Full> {
        if self.closed {
            return Ok(Reserved::Closed);
        }
        if self.find(room).is_some() {
            return Ok(Reserved::Already);
        }
        self.room_for_one_more(max)?;
        self.next_ticket += 1;
        let ticket = Ticket(self.next_ticket);
        self.entries.push((room.clone(), State::Recovering(ticket)));
        Ok(Reserved::New(ticket))
    }

    /// Whether `ticket`'s recovery of `room` is still wanted.
    pub(crate) fn is_recovering(&self, room: &RoomName, ticket: Ticket) -> bool {
        self.find(room)
            .is_some_and(|i| self.entries[i].1 == State::Recovering(ticket))
    }

    /// `Recovering(t) -> Live`. Returns false (and changes nothing) when the entry is no
    /// longer `Recovering(t)`: the caller must then not join.
    pub(crate) fn go_live(&mut self, room: &RoomName, ticket: Ticket) -> bool {
        match self.find(room) {
            Some(i) if self.entries[i].1 == State::Recovering(ticket) => {
                self.entries[i].1 = State::Live;
                true
            }
            _ => false,
        }
    }

    /// `Recovering(t) -> (none)` after a failed replay. No-op if the entry moved on.
    pub(crate) fn abandon(&mut self, room: &RoomName, ticket: Ticket) {
        if self.is_recovering(room, ticket) {
            self.entries.retain(|(r, _)| r != room);
        }
    }

    /// `any -> (none)`. Returns whether the room was named.
    pub(crate) fn leave(&mut self, room: &RoomName) -> bool {
        let before = self.entries.len();
        self.entries.retain(|(r, _)| r != room);
        self.entries.len() != before
    }

    /// `any -> Closed`: returns every room that was named.
    pub(crate) fn close(&mut self) -> Vec<RoomName> {
        self.closed = true;
        std::mem::take(&mut self.entries)
            .into_iter()
            .map(|(r, _)| r)
            .collect()
    }

    /// Room names in join order (recovering ones included).
    pub(crate) fn names(&self) -> Vec<RoomName> {
        self.entries.iter().map(|(r, _)| r.clone()).collect()
    }

    /// Whether `room` is named (live or recovering).
    pub(crate) fn contains(&self, room: &RoomName) -> bool {
        self.find(room).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> RoomName {
        RoomName::parse(s).unwrap_or_else(|_| RoomName::general())
    }

    #[test]
    fn a_replay_joins_only_with_its_own_ticket() {
        let mut s = Subscriptions::default();
        let Ok(Reserved::New(t1)) = s.reserve_recovery(&r("a"), 2) else {
            panic!("reserved")
        };
        assert!(s.leave(&r("a")));
        let Ok(Reserved::New(t2)) = s.reserve_recovery(&r("a"), 2) else {
            panic!("reserved again")
        };
        assert!(!s.go_live(&r("a"), t1), "a stale replay must not join");
        assert!(s.go_live(&r("a"), t2));
        assert_eq!(s.reserve_recovery(&r("a"), 2), Ok(Reserved::Already));
    }

    #[test]
    fn recovering_counts_against_the_limit_and_close_is_terminal() {
        let mut s = Subscriptions::default();
        assert!(matches!(
            s.reserve_recovery(&r("a"), 1),
            Ok(Reserved::New(_))
        ));
        assert_eq!(s.join_live(&r("b"), 1), Err(Full));
        assert_eq!(s.close(), vec![r("a")]);
        assert_eq!(s.join_live(&r("b"), 1), Ok(false));
        assert_eq!(s.reserve_recovery(&r("b"), 1), Ok(Reserved::Closed));
    }
}

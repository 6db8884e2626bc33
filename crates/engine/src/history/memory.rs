//! In-memory history: a ring of recent events per room, sharded so rooms don't contend.
//!
//! Invariants of a room's log ([`RoomLog`]):
//! - the ring holds events with strictly consecutive sequences, and when it is not empty its
//!   last event is the room's head; so the event with sequence `s` sits at index
//!   `s - first_sequence` and a read finds its start in O(1), never by scanning;
//! - the ring never holds more than the rule's `max_events` (trimmed on append) and `trim`
//!   drops events older than the rule's `ttl` from the front;
//! - a room's epoch is drawn at random (16 hex digits) when its log is created; `trim`
//!   forgets a room whose ring is empty and that nobody touched for longer than its `ttl`,
//!   and a forgotten room starts over with a new epoch at sequence 0, which tells clients
//!   that their old sequences mean nothing.
//!
//! Frames are [`bytes::Bytes`]: reads hand out reference-counted clones, never copies.
//! Rooms live in the engine's `Sharded` map; a shard's lock is held for one room operation
//! (or one shard's trim) and never across an `.await`.

use std::collections::{HashMap, VecDeque};

use rand::Rng;
use roomcast_protocol::{Epoch, RoomName, Sequence};

use super::{AppendReceipt, History, HistoryError, ReadSince, Retention, RoomHead, StoredEvent};
use crate::shard::Sharded;

/// Number of independently locked shards of the room map.
const SHARDS: usize = 32;

/// History held in memory only; lost on restart. See the module docs.
pub struct MemoryHistory {
    retention: Retention,
    rooms: Sharded<RoomName, RoomLog>,
}

/// What a durable store found on disk for one room, to seed the cache with.
pub(crate) struct RoomSeed {
    /// The room's stored epoch.
    pub(crate) epoch: Epoch,
    /// The last sequence assigned in that epoch.
    pub(crate) head: Sequence,
    /// When the last event was appended (for idle-room trimming).
    pub(crate) last_unix_millis: i64,
    /// Stored events in ascending sequence order.
    pub(crate) events: Vec<StoredEvent>,
}

/// One room's ring and position. See the module docs for its invariants.
struct RoomLog {
    epoch: Epoch,
    head: u64,
    events: VecDeque<StoredEvent>,
    /// Last append (or head/read) time; a room idle for longer than `ttl_millis` and with an
    /// empty ring is forgotten by `trim`.
    last_touch_millis: i64,
    max_events: usize,
    ttl_millis: i64,
}

impl MemoryHistory {
    /// An empty store applying `retention`.
    pub fn new(retention: Retention) -> MemoryHistory {
        MemoryHistory {
            retention,
            rooms: Sharded::new(SHARDS),
        }
    }

    /// The retention rules this store applies.
    pub fn retention(&self) -> &Retention {
        &self.retention
    }

    /// Appends like [`History::append`], but calls `persist` after the sequence check and
    /// before the event becomes visible, with the shard lock held: a durable store queues the
    /// event for its writer there, so the queue order is the append order and a failed
    /// `persist` leaves the room unchanged. `persist` must be quick and must not block.
    pub(crate) fn append_then<T>(
        &self,
        room: &RoomName,
        event: StoredEvent,
        persist: impl FnOnce(&Epoch, &StoredEvent) -> Result<T, HistoryError>,
    ) -> Result<T, HistoryError> {
        let mut map = self.rooms.write(room);
        let log = self.log_mut(&mut map, room);
        let expected = Sequence(log.head.saturating_add(1));
        if event.sequence != expected {
            return Err(HistoryError::OutOfOrder {
                room: room.clone(),
                expected,
                got: event.sequence,
            });
        }
        let out = persist(&log.epoch, &event)?;
        log.push(event);
        Ok(out)
    }

    /// Replaces a room's state with what a durable store loaded. Keeps only the run of
    /// consecutive events ending at `seed.head`, then applies the room's retention as of
    /// `now_unix_millis`. Returns how many events were dropped for not fitting that run.
    pub(crate) fn seed(&self, room: RoomName, seed: RoomSeed, now_unix_millis: i64) -> usize {
        let (max_events, ttl_millis) = self.limits(&room);
        let mut events = VecDeque::with_capacity(seed.events.len().min(max_events));
        let mut expected = seed.head.0;
        let mut inconsistent = 0;
        let mut broken = false;
        for event in seed.events.into_iter().rev() {
            if !broken && event.sequence.0 == expected && expected > 0 {
                expected -= 1;
                if events.len() < max_events {
                    events.push_front(event);
                }
            } else {
                // Past the head (before the run starts) or below a hole: not part of the run.
                broken |= event.sequence.0 < expected;
                inconsistent += 1;
            }
        }
        let mut log = RoomLog {
            epoch: seed.epoch,
            head: seed.head.0,
            events,
            last_touch_millis: seed.last_unix_millis,
            max_events,
            ttl_millis,
        };
        log.expire(now_unix_millis);
        self.rooms.write(&room).insert(room, log);
        inconsistent
    }

    fn log_mut<'m>(
        &self,
        map: &'m mut HashMap<RoomName, RoomLog>,
        room: &RoomName,
    ) -> &'m mut RoomLog {
        map.entry(room.clone()).or_insert_with(|| {
            let (max_events, ttl_millis) = self.limits(room);
            RoomLog {
                epoch: new_epoch(),
                head: 0,
                events: VecDeque::new(),
                last_touch_millis: now_unix_millis(),
                max_events,
                ttl_millis,
            }
        })
    }

    /// `(max_events, ttl_millis)` for a room; a room without a rule keeps nothing.
    fn limits(&self, room: &RoomName) -> (usize, i64) {
        self.retention
            .rule_for(room)
            .map_or((0, 0), |rule| (rule.max_events, rule.ttl_millis()))
    }
}

impl RoomLog {
    fn head(&self) -> RoomHead {
        RoomHead {
            sequence: Sequence(self.head),
            epoch: self.epoch.clone(),
        }
    }

    fn touch(&mut self, now_unix_millis: i64) {
        self.last_touch_millis = self.last_touch_millis.max(now_unix_millis);
    }

    /// Pushes the next event (sequence already checked) and trims to `max_events`.
    fn push(&mut self, event: StoredEvent) {
        self.head = event.sequence.0;
        self.touch(event.unix_millis);
        self.events.push_back(event);
        while self.events.len() > self.max_events {
            self.events.pop_front();
        }
    }

    /// Sequence of the oldest stored event, or `head + 1` when nothing is stored.
    fn first_sequence(&self) -> u64 {
        self.events
            .front()
            .map_or(self.head.saturating_add(1), |e| e.sequence.0)
    }

    fn read_since(&self, after: Sequence, limit: usize) -> ReadSince {
        let head = self.head();
        if after.0 >= self.head {
            return ReadSince {
                events: Vec::new(),
                complete: true,
                head,
            };
        }
        let first = self.first_sequence();
        let start = after.0.saturating_add(1).max(first);
        // `start - first` is below the ring's length (its last sequence is the head and
        // `start <= head`); the `min` only keeps `range` from panicking if that ever broke.
        let index = usize::try_from(start - first)
            .unwrap_or(usize::MAX)
            .min(self.events.len());
        let events = self.events.range(index..).take(limit).cloned().collect();
        ReadSince {
            events,
            complete: first <= after.0.saturating_add(1),
            head,
        }
    }

    /// Drops events older than the TTL from the front of the ring.
    fn expire(&mut self, now_unix_millis: i64) {
        while self
            .events
            .front()
            .is_some_and(|e| now_unix_millis.saturating_sub(e.unix_millis) > self.ttl_millis)
        {
            self.events.pop_front();
        }
    }

    fn is_idle(&self, now_unix_millis: i64) -> bool {
        self.events.is_empty()
            && now_unix_millis.saturating_sub(self.last_touch_millis) > self.ttl_millis
    }
}

impl History for MemoryHistory {
    fn keeps(&self, room: &RoomName) -> bool {
        self.retention.keeps(room)
    }

    fn mirror(
        &self,
        room: &RoomName,
        head: &RoomHead,
        events: Vec<StoredEvent>,
    ) -> Result<(), HistoryError> {
        let now = now_unix_millis();
        let seed = RoomSeed {
            epoch: head.epoch.clone(),
            head: head.sequence,
            last_unix_millis: now,
            events,
        };
        self.seed(room.clone(), seed, now);
        Ok(())
    }

    fn head(&self, room: &RoomName) -> Result<RoomHead, HistoryError> {
        let mut map = self.rooms.write(room);
        let log = self.log_mut(&mut map, room);
        log.touch(now_unix_millis());
        Ok(log.head())
    }

    fn append(&self, room: &RoomName, event: StoredEvent) -> Result<AppendReceipt, HistoryError> {
        self.append_then(room, event, |_, _| Ok(AppendReceipt::ready()))
    }

    fn read_since(
        &self,
        room: &RoomName,
        after: Sequence,
        limit: usize,
    ) -> Result<ReadSince, HistoryError> {
        let mut map = self.rooms.write(room);
        let log = self.log_mut(&mut map, room);
        log.touch(now_unix_millis());
        Ok(log.read_since(after, limit))
    }

    fn trim(&self, now_unix_millis: i64) {
        self.rooms.for_each_shard_mut(|map| {
            map.retain(|_, log| {
                log.expire(now_unix_millis);
                !log.is_idle(now_unix_millis)
            });
        });
    }

    fn room_count(&self) -> usize {
        self.rooms.len()
    }
}

/// A fresh random epoch: 16 lowercase hex digits from the thread-local CSPRNG.
pub(crate) fn new_epoch() -> Epoch {
    Epoch::new(&format!("{:016x}", rand::rng().random::<u64>()))
}

/// Wall-clock milliseconds since the Unix epoch.
pub(crate) fn now_unix_millis() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::history::RetentionRule;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn room(name: &str) -> RoomName {
        RoomName::parse(name).expect("valid room name")
    }

    fn event(seq: u64, at: i64) -> StoredEvent {
        StoredEvent {
            sequence: Sequence(seq),
            unix_millis: at,
            frame: Bytes::from(format!("{{\"n\":{seq}}}")),
        }
    }

    fn seqs(read: &ReadSince) -> Vec<u64> {
        read.events.iter().map(|e| e.sequence.0).collect()
    }

    fn fill(h: &MemoryHistory, r: &RoomName, n: u64, at: i64) -> TestResult {
        let start = h.head(r)?.sequence.0;
        for s in start + 1..=start + n {
            h.append(r, event(s, at))?;
        }
        Ok(())
    }

    #[test]
    fn fresh_room_has_random_epoch_at_zero() -> TestResult {
        let h = MemoryHistory::new(Retention::default());
        let a = h.head(&room("a"))?;
        let b = h.head(&room("b"))?;
        assert_eq!(a.sequence, Sequence(0));
        assert_eq!(a.epoch.as_str().len(), 16);
        assert!(a.epoch.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a.epoch, b.epoch);
        assert_eq!(h.head(&room("a"))?, a);
        assert_eq!(h.room_count(), 2);
        Ok(())
    }

    #[test]
    fn append_checks_order() -> TestResult {
        let h = MemoryHistory::new(Retention::default());
        let r = room("a");
        h.append(&r, event(1, 0))?;
        let err = h.append(&r, event(3, 0)).err();
        assert!(matches!(
            err,
            Some(HistoryError::OutOfOrder {
                expected: Sequence(2),
                got: Sequence(3),
                ..
            })
        ));
        assert!(h.append(&r, event(1, 0)).is_err());
        h.append(&r, event(2, 0))?;
        assert_eq!(h.head(&r)?.sequence, Sequence(2));
        Ok(())
    }

    #[test]
    fn read_since_is_ordered_limited_and_shares_bytes() -> TestResult {
        let h = MemoryHistory::new(Retention::default());
        let r = room("a");
        fill(&h, &r, 10, 0)?;
        let read = h.read_since(&r, Sequence(3), 4)?;
        assert_eq!(seqs(&read), [4, 5, 6, 7]);
        assert!(read.complete);
        assert_eq!(read.head.sequence, Sequence(10));
        let again = h.read_since(&r, Sequence(3), 1)?;
        assert_eq!(
            again.events[0].frame.as_ptr(),
            read.events[0].frame.as_ptr()
        );
        assert_eq!(
            seqs(&h.read_since(&r, Sequence(0), 100)?),
            (1..=10).collect::<Vec<_>>()
        );
        let at_head = h.read_since(&r, Sequence(10), 100)?;
        assert!(at_head.events.is_empty() && at_head.complete);
        let past_head = h.read_since(&r, Sequence(99), 100)?;
        assert!(past_head.events.is_empty() && past_head.complete);
        Ok(())
    }

    #[test]
    fn max_events_trims_on_append_and_reports_gap() -> TestResult {
        let h = MemoryHistory::new(Retention::all(5, Duration::from_secs(60)));
        let r = room("a");
        fill(&h, &r, 12, 0)?;
        let all = h.read_since(&r, Sequence(0), 100)?;
        assert_eq!(seqs(&all), [8, 9, 10, 11, 12]);
        assert!(!all.complete);
        let edge = h.read_since(&r, Sequence(7), 100)?;
        assert_eq!(seqs(&edge), [8, 9, 10, 11, 12]);
        assert!(edge.complete);
        let gap = h.read_since(&r, Sequence(6), 2)?;
        assert_eq!(seqs(&gap), [8, 9]);
        assert!(!gap.complete);
        Ok(())
    }

    #[test]
    fn zero_max_events_keeps_sequence_but_no_events() -> TestResult {
        let rules = vec![
            RetentionRule {
                prefix: String::new(),
                max_events: 10,
                ttl: Duration::from_secs(60),
            },
            RetentionRule {
                prefix: "tick:".into(),
                max_events: 0,
                ttl: Duration::from_secs(60),
            },
        ];
        let h = MemoryHistory::new(Retention { rules });
        let r = room("tick:btc");
        assert!(!h.keeps(&r));
        assert!(h.keeps(&room("chat")));
        fill(&h, &r, 3, 0)?;
        let read = h.read_since(&r, Sequence(1), 10)?;
        assert!(read.events.is_empty());
        assert!(!read.complete);
        assert_eq!(read.head.sequence, Sequence(3));
        Ok(())
    }

    #[test]
    fn trim_expires_by_ttl_and_forgets_idle_rooms() -> TestResult {
        let h = MemoryHistory::new(Retention::all(100, Duration::from_secs(10)));
        let r = room("a");
        let t0 = now_unix_millis();
        fill(&h, &r, 3, t0)?;
        fill(&h, &r, 2, t0 + 5_000)?;
        let epoch = h.head(&r)?.epoch;
        h.trim(t0 + 12_000);
        let read = h.read_since(&r, Sequence(0), 100)?;
        assert_eq!(seqs(&read), [4, 5]);
        assert!(!read.complete);
        assert_eq!(
            read.head,
            RoomHead {
                sequence: Sequence(5),
                epoch: epoch.clone()
            }
        );
        // The last events expire, and the room has been idle as long: it is forgotten.
        h.trim(t0 + 16_000);
        assert_eq!(h.room_count(), 0);
        let fresh = h.head(&r)?;
        assert_eq!(fresh.sequence, Sequence(0));
        assert_ne!(fresh.epoch, epoch);
        Ok(())
    }

    #[test]
    fn seed_keeps_consecutive_tail_and_applies_retention() -> TestResult {
        let h = MemoryHistory::new(Retention::all(3, Duration::from_secs(10)));
        let r = room("a");
        let now = now_unix_millis();
        let events = vec![
            event(1, now),
            event(2, now),
            event(4, now),
            event(5, now),
            event(6, now),
            event(7, now),
        ];
        let seed = RoomSeed {
            epoch: Epoch::new("00000000000000aa"),
            head: Sequence(7),
            last_unix_millis: now,
            events,
        };
        assert_eq!(h.seed(r.clone(), seed, now), 2);
        let read = h.read_since(&r, Sequence(0), 10)?;
        assert_eq!(seqs(&read), [5, 6, 7]);
        assert_eq!(read.head.epoch, Epoch::new("00000000000000aa"));
        h.append(&r, event(8, now))?;
        assert_eq!(seqs(&h.read_since(&r, Sequence(0), 10)?), [6, 7, 8]);
        Ok(())
    }

    #[test]
    fn rooms_append_concurrently() -> TestResult {
        let h = Arc::new(MemoryHistory::new(Retention::all(
            50,
            Duration::from_secs(60),
        )));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let h = Arc::clone(&h);
                std::thread::spawn(move || -> Result<(), HistoryError> {
                    for i in 0..20 {
                        let r = room(&format!("room-{t}-{i}"));
                        for s in 1..=100 {
                            h.append(&r, event(s, 0))?;
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        for t in threads {
            t.join().map_err(|_| "thread panicked")??;
        }
        assert_eq!(h.room_count(), 80);
        let read = h.read_since(&room("room-3-19"), Sequence(0), 100)?;
        assert_eq!(read.events.len(), 50);
        assert_eq!(read.head.sequence, Sequence(100));
        Ok(())
    }
}

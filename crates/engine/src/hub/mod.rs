//! The hub: who is connected, who is in which room, and how an event reaches them.
//!
//! A cheap-to-clone handle over sharded maps of sessions (by client id) and rooms (by
//! name). Nothing here awaits while holding a lock, and nothing here writes to a socket:
//! delivery is a non-blocking push into each recipient's [`Outbox`](crate::outbox::Outbox).
//! A publish encodes its event once and hands every recipient the same `Bytes`.

mod expiry;
mod membership;
mod queued_bytes;
mod recovery;
mod remote;
mod room;
mod session;
mod stats;

pub use expiry::{warn_lead, MAX_WARN_LEAD};
pub use membership::Ticket;
pub use recovery::{Recovery, RecoveryFailure, RecoveryStart};
pub use remote::{RemoteSnapshot, RoomHold};
pub use room::Delivery;
pub use session::{ConnId, Session, SessionMeta};
pub use stats::HubStats;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use roomcast_protocol::server::{encode_event, EventBody, Reply};
use roomcast_protocol::{ClientId, CloseCode, Epoch, RoomName, Sequence};

use crate::broker::{Broker, LocalBroker};
use crate::config::HubConfig;
use crate::history::{AppendReceipt, History, HistoryError, RoomHead, StoredEvent};
use crate::outbox::{Outbox, OutboxLimits};
use crate::shard::Sharded;
use room::{Reliability, Room};

const SHARDS: usize = 64;

/// Why a subscribe was refused.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    /// The connection already holds `max_subscriptions` rooms.
    #[error("subscription limit of {0} rooms reached")]
    TooManySubscriptions(usize),
    /// The room's history could not be read.
    #[error(transparent)]
    History(#[from] HistoryError),
}

impl SubscribeError {
    /// The wire error code a client gets for it (the one mapping, for every transport).
    pub const fn error_code(&self) -> roomcast_protocol::ErrorCode {
        match self {
            SubscribeError::TooManySubscriptions(_) => {
                roomcast_protocol::ErrorCode::TooManySubscriptions
            }
            SubscribeError::History(_) => roomcast_protocol::ErrorCode::Unavailable,
        }
    }
}

/// Why a publish failed. Nothing was delivered.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The event type is not 1-64 characters of `[A-Za-z0-9_.:-]`, or it is one of the
    /// server's own types ([`roomcast_protocol::server::RESERVED_EVENT_TYPES`]).
    #[error("{0}")]
    InvalidType(#[from] roomcast_protocol::server::EventTypeError),
    /// The history store refused the event.
    #[error(transparent)]
    History(#[from] HistoryError),
}

impl PublishError {
    /// The wire error code a client gets for it.
    pub const fn error_code(&self) -> roomcast_protocol::ErrorCode {
        match self {
            PublishError::InvalidType(_) => roomcast_protocol::ErrorCode::InvalidMessage,
            PublishError::History(_) => roomcast_protocol::ErrorCode::Unavailable,
        }
    }
}

/// The outcome of a publish.
pub struct Published {
    /// The event's sequence in its room.
    pub sequence: Sequence,
    /// The room's epoch.
    pub epoch: Epoch,
    /// Fan-out counts.
    pub delivery: Delivery,
    /// Resolves when the event is durable; `None` when the room keeps no history.
    pub receipt: Option<AppendReceipt>,
}

struct Inner {
    config: HubConfig,
    sessions: Sharded<ClientId, Arc<Session>>,
    rooms: Sharded<RoomName, Arc<Room>>,
    history: Arc<dyn History>,
    broker: Arc<dyn Broker>,
    /// Cluster mode: another store sequences events and rooms start unsynced (see
    /// [`Hub::clustered`]).
    clustered: bool,
    /// Metric handles resolved once (the recorder is installed before hubs are built),
    /// so a publish does not look them up by name.
    fanout_seconds: metrics::Histogram,
    append_seconds: metrics::Histogram,
    next_conn: AtomicU64,
    clock: Instant,
    stats: HubStats,
}

/// Handle to the shared hub. Clone freely.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").finish_non_exhaustive()
    }
}

/// A fresh random epoch: 16 hex characters.
pub fn new_epoch() -> Epoch {
    Epoch::new(&format!("{:016x}", rand::random::<u64>()))
}

/// Wall-clock milliseconds since the Unix epoch (history timestamps and TTLs).
pub(crate) fn unix_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// How a published event reaches the members' sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fanout {
    /// Written straight to each idle member's socket when the room's previous fan-out
    /// ended a moment ago or longer (nothing would coalesce with it), queued otherwise.
    Auto,
    /// Always queued: the caller is publishing several events at once (to one room or
    /// several), which each member's writer then sends in one write.
    Burst,
}

impl Hub {
    /// A single-node hub with the given settings and history store.
    pub fn new(config: HubConfig, history: Arc<dyn History>) -> Hub {
        Hub::with_broker(config, history, Arc::new(LocalBroker))
    }

    /// A hub whose events also travel to other nodes through `broker`.
    pub fn with_broker(
        config: HubConfig,
        history: Arc<dyn History>,
        broker: Arc<dyn Broker>,
    ) -> Hub {
        Hub::build(config, history, broker, false)
    }

    /// A hub of one node of a cluster: events are sequenced and stored by a shared store
    /// behind `broker` and arrive through [`Hub::deliver_remote`]; `history` is this node's
    /// mirror of the rooms it has members in, loaded by [`Hub::sync_remote`]. A room created
    /// here is unsynced until then ([`RoomHold::synced`]). [`Hub::publish`] is not used.
    pub fn clustered(config: HubConfig, history: Arc<dyn History>, broker: Arc<dyn Broker>) -> Hub {
        Hub::build(config, history, broker, true)
    }

    fn build(
        config: HubConfig,
        history: Arc<dyn History>,
        broker: Arc<dyn Broker>,
        clustered: bool,
    ) -> Hub {
        Hub {
            inner: Arc::new(Inner {
                config,
                sessions: Sharded::new(SHARDS),
                rooms: Sharded::new(SHARDS),
                history,
                broker,
                clustered,
                fanout_seconds: metrics::histogram!("roomcast_publish_fanout_seconds"),
                append_seconds: metrics::histogram!("roomcast_history_append_seconds"),
                next_conn: AtomicU64::new(1),
                clock: Instant::now(),
                stats: HubStats::default(),
            }),
        }
    }

    /// The hub's settings.
    pub fn config(&self) -> &HubConfig {
        &self.inner.config
    }

    /// Counters for metrics.
    pub fn stats(&self) -> &HubStats {
        &self.inner.stats
    }

    /// The broker.
    pub fn broker(&self) -> &Arc<dyn Broker> {
        &self.inner.broker
    }

    /// The history store.
    pub fn history(&self) -> &Arc<dyn History> {
        &self.inner.history
    }

    /// Milliseconds since the hub started (monotonic; liveness bookkeeping).
    pub fn now_ms(&self) -> u64 {
        self.inner.clock.elapsed().as_millis() as u64
    }

    /// Registers a connection for `client_id`. An existing session with the same id is
    /// superseded: its outbox is closed with 4011 before this returns, so nothing published
    /// afterwards can reach it, and it leaves every room.
    pub fn connect(&self, client_id: ClientId, meta: SessionMeta) -> Arc<Session> {
        let conn_id = ConnId(self.inner.next_conn.fetch_add(1, Ordering::Relaxed));
        let outbox = Outbox::new(
            OutboxLimits {
                messages: self.inner.config.outbox_capacity,
                bytes: self.inner.config.outbox_max_bytes,
            },
            self.inner.config.slow_consumer,
        );
        let session = Arc::new(Session::new(
            conn_id,
            client_id.clone(),
            outbox,
            meta,
            self.now_ms(),
        ));
        let old = self
            .inner
            .sessions
            .write(&client_id)
            .insert(client_id, session.clone());
        if let Some(old) = old {
            old.outbox.close(
                CloseCode::SessionSuperseded,
                CloseCode::SessionSuperseded.default_reason(),
                true,
            );
            self.leave_all(&old);
            self.inner.stats.superseded.fetch_add(1, Ordering::Relaxed);
        }
        self.inner
            .stats
            .connections_total
            .fetch_add(1, Ordering::Relaxed);
        session
    }

    /// Removes a connection when its transport ends. If it was still the current session
    /// of its client id, the remaining members of `general` get `user_left`. Returns
    /// whether it was current (false when it had been superseded).
    pub fn disconnect(&self, session: &Arc<Session>) -> bool {
        let current = {
            let mut shard = self.inner.sessions.write(&session.client_id);
            match shard.get(&session.client_id) {
                Some(s) if s.conn_id == session.conn_id => {
                    shard.remove(&session.client_id);
                    true
                }
                _ => false,
            }
        };
        self.leave_all(session);
        let (frames, bytes) = session.outbox.delivered_totals();
        self.inner
            .stats
            .retired_frames_out
            .fetch_add(frames, Ordering::Relaxed);
        self.inner
            .stats
            .retired_bytes_out
            .fetch_add(bytes, Ordering::Relaxed);
        if current && self.user_left_wanted() {
            let frame = Bytes::from(
                Reply::UserLeft {
                    client_id: &session.client_id,
                }
                .to_json(),
            );
            self.broadcast_ephemeral(&RoomName::general(), frame, None);
        }
        current
    }

    fn user_left_wanted(&self) -> bool {
        let max = self.inner.config.user_left_max_members;
        max == 0
            || self
                .existing_room(&RoomName::general())
                .is_some_and(|room| room.len() <= max)
    }

    /// Records that a frame arrived from this session.
    pub fn touch(&self, session: &Session) {
        session.set_last_seen(self.now_ms());
    }

    fn room(&self, name: &RoomName) -> Result<Arc<Room>, HistoryError> {
        if let Some(room) = self.inner.rooms.read(name).get(name) {
            return Ok(room.clone());
        }
        let mut shard = self.inner.rooms.write(name);
        if let Some(room) = shard.get(name) {
            return Ok(room.clone());
        }
        let keeps = self.inner.history.keeps(name);
        let head = if keeps {
            self.inner.history.head(name)?
        } else {
            RoomHead {
                sequence: Sequence(0),
                epoch: new_epoch(),
            }
        };
        let room = Arc::new(Room::new(name.clone(), head, keeps, !self.inner.clustered));
        shard.insert(name.clone(), room.clone());
        self.inner.broker.interest(name, true);
        Ok(room)
    }

    fn existing_room(&self, name: &RoomName) -> Option<Arc<Room>> {
        self.inner.rooms.read(name).get(name).cloned()
    }

    /// Joins a room for live events. Idempotent (also while a recovery of the room is
    /// under way: that recovery makes the session live). Returns the room's head.
    pub fn subscribe(
        &self,
        session: &Arc<Session>,
        name: &RoomName,
    ) -> Result<RoomHead, SubscribeError> {
        let room = self.room(name)?;
        let max = self.inner.config.max_subscriptions;
        {
            // The membership change happens under the session's lock, so an unsubscribe
            // or close cannot interleave between the list and the member map.
            let mut subs = session.subs();
            // The session lists the room's own name, so the request's copy is freed.
            if subs
                .join_live(&room.name, max)
                .map_err(|_| SubscribeError::TooManySubscriptions(max))?
            {
                room.add(session);
            }
        }
        Ok(room.head())
    }

    /// Leaves a room, live or still recovering (a replay under way stops before its next
    /// frame). Returns whether the session had named the room.
    pub fn unsubscribe(&self, session: &Session, name: &RoomName) -> bool {
        let was = {
            let mut subs = session.subs();
            let was = subs.leave(name);
            if let Some(room) = self.existing_room(name) {
                room.remove(session.conn_id);
            }
            was
        };
        session.outbox.wake_replay();
        was
    }

    /// Closes the session's subscription list for good and leaves every room: nothing
    /// can join after this, not even a replay that was under way.
    pub(crate) fn leave_all(&self, session: &Session) {
        {
            let mut subs = session.subs();
            for name in subs.close() {
                if let Some(room) = self.existing_room(&name) {
                    room.remove(session.conn_id);
                }
            }
        }
        session.outbox.wake_replay();
    }

    /// Publishes an event to a room: assigns the next sequence, encodes once, appends to
    /// history (if the room keeps it) and fans out to every member except `exclude`.
    pub fn publish(
        &self,
        name: &RoomName,
        event_type: &str,
        body: &EventBody,
        exclude: Option<ConnId>,
    ) -> Result<Published, PublishError> {
        self.publish_with(name, event_type, body, exclude, Fanout::Auto)
    }

    /// [`Hub::publish`], saying how the event reaches the members' sockets.
    pub fn publish_with(
        &self,
        name: &RoomName,
        event_type: &str,
        body: &EventBody,
        exclude: Option<ConnId>,
        fanout: Fanout,
    ) -> Result<Published, PublishError> {
        roomcast_protocol::server::check_event_type(event_type)?;
        let room = self.room(name)?;
        let started = std::time::Instant::now();
        let mut log = room.log();
        let timestamp = roomcast_protocol::time::now_rfc3339();
        let unix_ms = unix_millis();
        let encode = |head: &RoomHead| {
            let sequence = head.sequence.next();
            let frame = encode_event(event_type, name, sequence, &head.epoch, &timestamp, body);
            (sequence, Bytes::from(frame))
        };
        let (mut sequence, mut frame) = encode(&log.head);
        let receipt = if log.keeps_history {
            let append_started = std::time::Instant::now();
            let stored = |sequence, frame: &Bytes| StoredEvent {
                sequence,
                unix_millis: unix_ms,
                frame: frame.clone(),
            };
            let receipt = match self.inner.history.append(name, stored(sequence, &frame)) {
                Ok(r) => r,
                Err(HistoryError::OutOfOrder { .. }) => {
                    // The store dropped this room's log (expired and idle) and started a new
                    // epoch: follow it rather than fail every later publish.
                    log.head = self.inner.history.head(name)?;
                    (sequence, frame) = encode(&log.head);
                    self.inner.history.append(name, stored(sequence, &frame))?
                }
                Err(e) => return Err(e.into()),
            };
            self.inner
                .append_seconds
                .record(append_started.elapsed().as_secs_f64());
            Some(receipt)
        } else {
            None
        };
        log.head.sequence = sequence;
        let reliability = if fanout == Fanout::Auto && log.isolated(started) {
            Reliability::ReliableNow
        } else {
            Reliability::Reliable
        };
        let delivery = room.fan_out(&frame, exclude, reliability);
        log.fanned_out(std::time::Instant::now());
        if let Err(e) = self.inner.broker.publish(name, sequence, &frame) {
            self.inner
                .stats
                .broker_errors
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(room = %name, error = %e, "broker publish failed");
        }
        let epoch = log.head.epoch.clone();
        drop(log);
        self.inner
            .fanout_seconds
            .record(started.elapsed().as_secs_f64());
        self.inner.stats.record_publish(&delivery);
        Ok(Published {
            sequence,
            epoch,
            delivery,
            receipt,
        })
    }

    /// [`Hub::publish`], except that an event for a room that keeps no history and does
    /// not exist (nobody has joined it) is dropped without creating the room: nothing
    /// could ever observe it. Returns `None` then. A domain that publishes to many
    /// rarely-watched rooms (one per order) uses it to keep the room map small.
    pub fn publish_observed(
        &self,
        name: &RoomName,
        event_type: &str,
        body: &EventBody,
        exclude: Option<ConnId>,
        fanout: Fanout,
    ) -> Result<Option<Published>, PublishError> {
        if self.existing_room(name).is_none() && !self.inner.history.keeps(name) {
            roomcast_protocol::server::check_event_type(event_type)?;
            return Ok(None);
        }
        self.publish_with(name, event_type, body, exclude, fanout)
            .map(Some)
    }

    /// Sends a best-effort frame that is not part of the room's history (e.g. `user_left`)
    /// to its current members: a member whose queue is full skips it rather than being
    /// disconnected.
    pub fn broadcast_ephemeral(
        &self,
        name: &RoomName,
        frame: Bytes,
        exclude: Option<ConnId>,
    ) -> Delivery {
        match self.existing_room(name) {
            Some(room) => {
                let d = room.fan_out(&frame, exclude, Reliability::BestEffort);
                self.inner.stats.record_publish(&d);
                d
            }
            None => Delivery::default(),
        }
    }

    /// Sends a frame to every connected session.
    pub fn broadcast_all(&self, frame: &Bytes) -> Delivery {
        self.push_all(frame, Reliability::Reliable)
    }

    /// Sends a best-effort frame (the heartbeat ping) to every session: a full queue skips it.
    pub(crate) fn broadcast_heartbeat(&self, frame: &Bytes) -> Delivery {
        self.push_all(frame, Reliability::BestEffort)
    }

    fn push_all(&self, frame: &Bytes, reliability: Reliability) -> Delivery {
        let mut d = Delivery::default();
        self.inner.sessions.for_each_shard(|shard| {
            for s in shard.values() {
                d.count(match reliability {
                    Reliability::Reliable => s.outbox.push(frame.clone()),
                    Reliability::ReliableNow => s.outbox.push_direct(frame),
                    Reliability::BestEffort => s.outbox.push_lossy(frame.clone()),
                });
            }
        });
        self.inner.stats.record_publish(&d);
        d
    }

    /// Sends a frame to one client's current session. Returns whether it was queued.
    pub fn send_to(&self, client_id: &ClientId, frame: Bytes) -> bool {
        let session = self.session(client_id);
        matches!(
            session.map(|s| s.outbox.push(frame)),
            Some(crate::outbox::Pushed::Queued | crate::outbox::Pushed::DroppedOldest)
        )
    }

    /// The current session of a client id.
    pub fn session(&self, client_id: &ClientId) -> Option<Arc<Session>> {
        self.inner.sessions.read(client_id).get(client_id).cloned()
    }

    /// Every current session (a snapshot).
    pub fn sessions(&self) -> Vec<Arc<Session>> {
        let mut all = Vec::new();
        self.inner
            .sessions
            .for_each_shard(|shard| all.extend(shard.values().cloned()));
        all
    }

    /// Client ids in a room, sorted.
    pub fn presence(&self, name: &RoomName) -> Vec<ClientId> {
        self.existing_room(name)
            .map(|r| r.member_ids())
            .unwrap_or_default()
    }

    /// Names and member counts of rooms that currently exist.
    pub fn rooms(&self) -> Vec<(RoomName, usize)> {
        let mut all = Vec::new();
        self.inner
            .rooms
            .for_each_shard(|shard| all.extend(shard.values().map(|r| (r.name.clone(), r.len()))));
        all
    }

    /// The head of a room (creating the room's state if needed).
    pub fn room_head(&self, name: &RoomName) -> Result<RoomHead, HistoryError> {
        Ok(self.room(name)?.head())
    }

    /// Frames and bytes handed to connection writers since start (live sessions counted
    /// from their outboxes, closed ones from the retired totals): the outbound counters
    /// cost the write path nothing.
    pub fn outbound_totals(&self) -> (u64, u64) {
        let stats = &self.inner.stats;
        let mut frames = stats.retired_frames_out.load(Ordering::Relaxed);
        let mut bytes = stats.retired_bytes_out.load(Ordering::Relaxed);
        self.inner.sessions.for_each_shard(|shard| {
            for s in shard.values() {
                let (f, b) = s.outbox.delivered_totals();
                frames += f;
                bytes += b;
            }
        });
        (frames, bytes)
    }

    /// Current number of sessions.
    pub fn connection_count(&self) -> usize {
        self.inner.sessions.len()
    }

    /// Current number of rooms with state.
    pub fn room_count(&self) -> usize {
        self.inner.rooms.len()
    }

    /// Asks every session to close (shutdown), flushing what is queued first.
    pub fn close_all(&self, code: CloseCode, reason: &'static str) {
        self.inner.sessions.for_each_shard(|shard| {
            for s in shard.values() {
                s.outbox.close(code, reason, true);
            }
        });
    }

    /// Closes one session with `code`; it leaves every room at once. Returns whether a
    /// session was found.
    pub fn kick(&self, client_id: &ClientId, code: CloseCode, reason: String) -> bool {
        match self.session(client_id) {
            Some(s) => {
                s.outbox.close(code, reason, false);
                self.leave_all(&s);
                true
            }
            None => false,
        }
    }

    /// Closes sessions silent for longer than `heartbeat_interval + heartbeat_timeout`
    /// with 1001 and removes them from every room. Returns how many.
    pub(crate) fn evict_dead(&self) -> usize {
        let now = self.now_ms();
        let dead_after = self.inner.config.dead_after().as_millis() as u64;
        let mut dead = Vec::new();
        self.inner.sessions.for_each_shard(|shard| {
            dead.extend(
                shard
                    .values()
                    .filter(|s| now.saturating_sub(s.last_seen()) > dead_after)
                    .cloned(),
            )
        });
        for s in &dead {
            s.outbox
                .close(CloseCode::GoingAway, "Heartbeat timeout", false);
            self.leave_all(s);
        }
        self.inner
            .stats
            .evicted
            .fetch_add(dead.len() as u64, Ordering::Relaxed);
        dead.len()
    }

    /// Drops rooms with no members that nobody is using, so the room map is bounded by
    /// live subscriptions. A room's sequence lives on in history, so recreating it later
    /// continues where it left off.
    ///
    /// The broker hears of each removal under the shard's lock, as it hears of each
    /// creation ([`Hub::room`]), so its interest calls for one room name strictly alternate.
    pub(crate) fn sweep_empty_rooms(&self) -> usize {
        let mut removed = 0;
        let broker = &self.inner.broker;
        self.inner.rooms.for_each_shard_mut(|shard| {
            shard.retain(|name, room| {
                let keep = Arc::strong_count(room) > 1 || room.len() > 0;
                if !keep {
                    removed += 1;
                    broker.interest(name, false);
                }
                keep
            })
        });
        removed
    }
}

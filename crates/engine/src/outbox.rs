//! A connection's bounded outbound queue.
//!
//! Publishers never wait on a client: [`Outbox::push`] is synchronous, takes a short
//! mutex, and either queues the shared frame bytes, applies the slow-consumer policy, or
//! reports the outbox closed. The connection's writer drains everything queued at once
//! ([`Outbox::drain`]) so several messages go out in one socket flush.
//!
//! Closing is a state of the outbox, not a separate channel: once [`Outbox::close`] runs,
//! no later push is accepted. That is what guarantees a superseded session never receives
//! a message meant for its replacement.
//!
//! A connection whose transport allows it attaches a [`DirectWrite`]: then
//! [`Outbox::push_direct`] writes a frame straight to the socket from the publisher's
//! thread when nothing is queued and the writer is not mid-batch, the way µWS sends from
//! `publish`. An isolated event then costs one `send` and no task wake-up, poll or
//! timer; under load frames still queue, and the writer coalesces them into one write.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use roomcast_protocol::CloseCode;
use tokio::sync::Notify;

use crate::config::SlowConsumerPolicy;

/// A close the writer must perform after (optionally) flushing what is queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseRequest {
    /// The close code.
    pub code: CloseCode,
    /// The reason text (≤ 123 bytes).
    pub reason: Cow<'static, str>,
}

/// The result of a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Queued.
    Queued,
    /// Queued after dropping the oldest message (drop-oldest policy).
    DroppedOldest,
    /// The queue was full: the outbox is now closing with 1008 "slow consumer".
    Overflow,
    /// The outbox is closed; the frame was discarded.
    Closed,
    /// The queue was full and the frame was best-effort ([`Outbox::push_lossy`]): it was
    /// dropped and the connection kept.
    Skipped,
}

/// What a [`DirectWrite`] did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectWritten {
    /// The kernel took the whole frame.
    All,
    /// The kernel took part of it; the transport keeps the rest, which goes out before
    /// anything else, once the connection's writer flushes.
    Partly,
    /// Nothing was written (the socket is full, or earlier bytes are still pending): the
    /// frame must be queued.
    Not,
}

/// A socket a publisher may write a text frame to without waiting.
///
/// Implementations keep every byte stream whole: a frame is written only when no earlier
/// bytes of another writer are pending on the socket, and a partial write keeps its
/// remainder ahead of everything written later.
pub trait DirectWrite: Send + Sync + std::fmt::Debug {
    /// Writes `payload` as one unfragmented text frame, never waiting. Takes the shared
    /// frame, so the unsent part of a partial write is kept without a copy.
    fn try_write_text(&self, payload: &Bytes) -> DirectWritten;

    /// Bytes of frames handed to this socket that the kernel has not taken yet (kept
    /// in the process, so they count against the process-wide queued-bytes cap).
    fn unsent_bytes(&self) -> usize;
}

/// What the writer gets from [`Outbox::drain`].
#[derive(Debug)]
pub enum Outgoing {
    /// Frames to write, in order.
    Frames,
    /// Write the frames, then close with this request.
    Close(CloseRequest),
}

/// How much one outbox may hold before the slow-consumer policy applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxLimits {
    /// Most frames queued at once.
    pub messages: usize,
    /// Most bytes queued at once. A frame larger than this is still accepted into an
    /// empty queue, so one big event never disconnects a reader that keeps up.
    pub bytes: usize,
}

/// Where a queue stops accepting frames of one kind, as a fraction of [`OutboxLimits`].
///
/// A history replay may fill only a quarter of the queue (it tops the queue up to that
/// quarter after each drain, so the writer's every flush is mostly live frames when live
/// traffic is heavy), and its final tail only half: acks, events of other rooms and the
/// room's own live events always find at least half of the queue free, and a replay
/// never makes a reading client a slow consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Share {
    /// Live frames: the whole queue.
    Live,
    /// Replay bulk: a quarter.
    Replay,
    /// The replay's final tail, pushed under the room lock: half.
    Tail,
}

impl Share {
    fn of(self, n: usize) -> usize {
        match self {
            Share::Live => n,
            Share::Replay => (n / 4).max(1),
            Share::Tail => (n / 2).max(1),
        }
    }
}

/// The result of [`Outbox::push_replay`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayPush {
    /// Queued.
    Queued,
    /// The outbox closed while waiting; the frame was discarded.
    Closed,
    /// `wanted` turned false while waiting (the replay was cancelled).
    Cancelled,
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Bytes>,
    /// Bytes of the frames in `queue`: each frame counted once, at its full length.
    queued_bytes: usize,
    close: Option<CloseRequest>,
    /// Set once the writer has taken the close request.
    close_taken: bool,
    dropped: u64,
    /// Set while the writer holds a drained batch: until [`Outbox::written`], frames queue.
    writing: bool,
    /// A direct write left bytes on the transport: the writer must flush them.
    flush_needed: bool,
    /// Frames handed to the writer (or written directly) so far.
    delivered: u64,
    /// Bytes of those frames.
    delivered_bytes: u64,
}

impl State {
    /// Whether a frame of `len` bytes fits in `share` of the queue. An empty queue
    /// takes any one frame.
    fn fits(&self, limits: &OutboxLimits, share: Share, len: usize) -> bool {
        self.queue.is_empty()
            || (self.queue.len() < share.of(limits.messages)
                && self.queued_bytes + len <= share.of(limits.bytes))
    }

    fn enqueue(&mut self, frame: Bytes) {
        self.queued_bytes += frame.len();
        self.queue.push_back(frame);
    }

    fn drop_front(&mut self) {
        if let Some(f) = self.queue.pop_front() {
            self.queued_bytes -= f.len();
            self.dropped += 1;
        }
    }

    fn clear(&mut self) {
        self.queue.clear();
        self.queued_bytes = 0;
    }
}

fn slow_consumer() -> CloseRequest {
    CloseRequest {
        code: CloseCode::PolicyViolation,
        reason: Cow::Borrowed("slow consumer"),
    }
}

/// A bounded, closable queue of frames for one connection.
#[derive(Debug)]
pub struct Outbox {
    state: Mutex<State>,
    ready: Notify,
    space: Notify,
    limits: OutboxLimits,
    policy: SlowConsumerPolicy,
    direct: OnceLock<Arc<dyn DirectWrite>>,
}

impl Outbox {
    /// An empty outbox. Allocates no queue storage until the first push.
    pub fn new(limits: OutboxLimits, policy: SlowConsumerPolicy) -> Outbox {
        Outbox {
            state: Mutex::new(State::default()),
            ready: Notify::new(),
            space: Notify::new(),
            limits: OutboxLimits {
                messages: limits.messages.max(1),
                bytes: limits.bytes.max(1),
            },
            policy,
            direct: OnceLock::new(),
        }
    }

    /// Lets [`Outbox::push_direct`] write to this socket. Set once, by the connection.
    pub fn set_direct(&self, sink: Arc<dyn DirectWrite>) {
        let _ = self.direct.set(sink);
    }

    /// [`Outbox::push`], except that when nothing is queued, the writer holds no batch and
    /// a [`DirectWrite`] is attached, the frame is written to the socket right away (text
    /// frames only). Falls back to queueing when the socket does not take it.
    /// Takes the frame by reference: a direct write needs no reference of its own.
    pub fn push_direct(&self, frame: &Bytes) -> Pushed {
        let Some(sink) = self.direct.get() else {
            return self.push(frame.clone());
        };
        let mut st = self.lock();
        if st.close.is_none() && st.queue.is_empty() && !st.writing && !st.flush_needed {
            match sink.try_write_text(frame) {
                DirectWritten::All => {
                    st.delivered += 1;
                    st.delivered_bytes += frame.len() as u64;
                    return Pushed::Queued;
                }
                DirectWritten::Partly => {
                    st.delivered += 1;
                    st.delivered_bytes += frame.len() as u64;
                    st.flush_needed = true;
                    drop(st);
                    self.ready.notify_one();
                    return Pushed::Queued;
                }
                DirectWritten::Not => {}
            }
        }
        drop(st);
        self.push(frame.clone())
    }

    /// The writer finished writing the batch [`Outbox::drain`] gave it.
    pub fn written(&self) {
        self.lock().writing = false;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the queue inconsistent (every
        // mutation is a single VecDeque call), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a frame without waiting. Applies the slow-consumer policy when the queue is
    /// full in messages or bytes.
    pub fn push(&self, frame: Bytes) -> Pushed {
        let mut st = self.lock();
        if st.close.is_some() {
            return Pushed::Closed;
        }
        let outcome = if st.fits(&self.limits, Share::Live, frame.len()) {
            st.enqueue(frame);
            Pushed::Queued
        } else {
            match self.policy {
                SlowConsumerPolicy::DropOldest => {
                    while !st.fits(&self.limits, Share::Live, frame.len()) {
                        st.drop_front();
                    }
                    st.enqueue(frame);
                    Pushed::DroppedOldest
                }
                SlowConsumerPolicy::Disconnect => {
                    st.clear();
                    st.close = Some(slow_consumer());
                    Pushed::Overflow
                }
            }
        };
        let was_empty = st.queue.len() == 1 || outcome == Pushed::Overflow;
        drop(st);
        if was_empty {
            self.ready.notify_one();
        }
        outcome
    }

    /// Queues a best-effort frame (heartbeat pings, presence notices): when the queue is
    /// full it is dropped instead of applying the slow-consumer policy, so a burst of such
    /// notices never disconnects anyone.
    pub fn push_lossy(&self, frame: Bytes) -> Pushed {
        let mut st = self.lock();
        if st.close.is_some() {
            return Pushed::Closed;
        }
        if !st.fits(&self.limits, Share::Live, frame.len()) {
            st.dropped += 1;
            return Pushed::Skipped;
        }
        st.enqueue(frame);
        let was_empty = st.queue.len() == 1;
        drop(st);
        if was_empty {
            self.ready.notify_one();
        }
        Pushed::Queued
    }

    /// Queues one small control frame (`replay_complete`, `recovery_failed`) even past
    /// the limits: it ends a replay and must not be lost. Never for fan-out.
    pub fn push_unbounded(&self, frame: Bytes) -> Pushed {
        let mut st = self.lock();
        if st.close.is_some() {
            return Pushed::Closed;
        }
        st.enqueue(frame);
        drop(st);
        self.ready.notify_one();
        Pushed::Queued
    }

    /// Queues a replay's final tail at once if it fits in half of the queue
    /// (or the queue is empty); otherwise queues nothing and returns false, and the
    /// caller replays more in bulk first. Returns false when closed, too.
    pub fn push_tail(&self, frames: &[Bytes]) -> bool {
        let mut st = self.lock();
        if st.close.is_some() {
            return false;
        }
        let bytes: usize = frames.iter().map(Bytes::len).sum();
        let fits = st.queue.is_empty()
            || (st.queue.len() + frames.len() <= Share::Tail.of(self.limits.messages)
                && st.queued_bytes + bytes <= Share::Tail.of(self.limits.bytes));
        if !fits {
            return false;
        }
        for f in frames {
            st.enqueue(f.clone());
        }
        drop(st);
        if !frames.is_empty() {
            self.ready.notify_one();
        }
        true
    }

    /// Queues a replayed frame, waiting while a quarter of the queue (messages or bytes)
    /// is in use: back-pressure for replays that leaves the rest to live frames.
    /// `wanted` is checked before every attempt; [`Outbox::wake_replay`] makes a waiting
    /// replay check it again.
    pub async fn push_replay(&self, frame: Bytes, wanted: impl Fn() -> bool) -> ReplayPush {
        loop {
            let space = self.space.notified();
            if !wanted() {
                return ReplayPush::Cancelled;
            }
            {
                let mut st = self.lock();
                if st.close.is_some() {
                    return ReplayPush::Closed;
                }
                if st.fits(&self.limits, Share::Replay, frame.len()) {
                    st.enqueue(frame);
                    let was_empty = st.queue.len() == 1;
                    drop(st);
                    if was_empty {
                        self.ready.notify_one();
                    }
                    return ReplayPush::Queued;
                }
            }
            space.await;
        }
    }

    /// Wakes replays waiting in [`Outbox::push_replay`] so they re-check `wanted`.
    pub fn wake_replay(&self) {
        self.space.notify_waiters();
    }

    /// Waits until the replay share of the queue has room (or the outbox closed, or
    /// `wanted` turned false).
    pub async fn replay_room(&self, wanted: impl Fn() -> bool) {
        loop {
            let space = self.space.notified();
            if !wanted() {
                return;
            }
            {
                let st = self.lock();
                if st.close.is_some() || st.fits(&self.limits, Share::Replay, 0) {
                    return;
                }
            }
            space.await;
        }
    }

    /// Asks the writer to close the connection. With `drain`, frames already queued are
    /// written first; without, they are discarded. The first close wins.
    pub fn close(&self, code: CloseCode, reason: impl Into<Cow<'static, str>>, drain: bool) {
        let mut st = self.lock();
        if st.close.is_some() {
            return;
        }
        if !drain {
            st.clear();
        }
        st.close = Some(CloseRequest {
            code,
            reason: reason.into(),
        });
        drop(st);
        self.ready.notify_one();
        self.space.notify_waiters();
    }

    /// Closes the connection as a slow consumer (1008), discarding its queue; used when
    /// the process-wide cap on queued bytes is exceeded. Returns false when it was
    /// already closing.
    pub fn close_slow(&self) -> bool {
        let mut st = self.lock();
        if st.close.is_some() {
            return false;
        }
        st.clear();
        st.close = Some(slow_consumer());
        drop(st);
        self.ready.notify_one();
        self.space.notify_waiters();
        true
    }

    /// Whether a close has been requested.
    pub fn is_closed(&self) -> bool {
        self.lock().close.is_some()
    }

    /// Messages currently queued.
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    /// Bytes currently queued.
    pub fn queued_bytes(&self) -> usize {
        self.lock().queued_bytes
    }

    /// Bytes this connection holds in the process: queued, plus what its writer or a
    /// direct write handed to the socket that the kernel has not taken yet (a stalled
    /// reader's whole last batch, once its socket is full). What the process-wide cap
    /// counts.
    pub fn held_bytes(&self) -> usize {
        let queued = self.queued_bytes();
        queued + self.direct.get().map_or(0, |d| d.unsent_bytes())
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Frames handed to the connection's writer so far.
    pub fn delivered(&self) -> u64 {
        self.lock().delivered
    }

    /// Frames and bytes handed to the connection's writer so far.
    pub fn delivered_totals(&self) -> (u64, u64) {
        let st = self.lock();
        (st.delivered, st.delivered_bytes)
    }

    /// Messages dropped so far: by the drop-oldest policy, or best-effort frames skipped
    /// because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// Waits until there is something to write or a close to perform, then moves every
    /// queued frame into `out` (in order). Returns the close request once, after which the
    /// writer must stop.
    ///
    /// When `out` is empty the two buffers are swapped rather than copied: under load the
    /// writer's spent buffer becomes the next queue, so steady traffic allocates nothing,
    /// and a writer that drops its buffer when idle leaves the connection holding no
    /// queue storage at all.
    pub async fn drain(&self, out: &mut VecDeque<Bytes>) -> Outgoing {
        loop {
            let ready = self.ready.notified();
            {
                let mut st = self.lock();
                if !st.queue.is_empty() {
                    st.delivered += st.queue.len() as u64;
                    st.delivered_bytes += st.queued_bytes as u64;
                    st.queued_bytes = 0;
                    if out.is_empty() {
                        std::mem::swap(&mut st.queue, out);
                    } else {
                        out.extend(st.queue.drain(..));
                    }
                    // Release a large ring when a burst is over rather than keep it
                    // for the connection's lifetime.
                    if st.queue.capacity() > 64 {
                        st.queue = VecDeque::new();
                    }
                }
                if let Some(close) = st.close.clone() {
                    if !st.close_taken {
                        st.close_taken = true;
                        st.writing = true;
                        st.flush_needed = false;
                        drop(st);
                        self.space.notify_waiters();
                        return Outgoing::Close(close);
                    }
                }
                if !out.is_empty() || st.flush_needed {
                    st.writing = true;
                    st.flush_needed = false;
                    drop(st);
                    self.space.notify_waiters();
                    return Outgoing::Frames;
                }
            }
            ready.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    fn msgs(n: usize) -> OutboxLimits {
        OutboxLimits {
            messages: n,
            bytes: usize::MAX / 2,
        }
    }

    #[tokio::test]
    async fn drains_in_order_and_overflow_closes() {
        let o = Outbox::new(msgs(2), SlowConsumerPolicy::Disconnect);
        assert_eq!(o.push(b("1")), Pushed::Queued);
        assert_eq!(o.push(b("2")), Pushed::Queued);
        assert_eq!(o.push(b("3")), Pushed::Overflow);
        assert_eq!(o.push(b("4")), Pushed::Closed);
        let mut out = VecDeque::new();
        match o.drain(&mut out).await {
            Outgoing::Close(c) => assert_eq!(c.code, CloseCode::PolicyViolation),
            other => panic!("expected close, got {other:?}"),
        }
        assert!(out.is_empty(), "overflow discards the backlog");
    }

    #[tokio::test]
    async fn lossy_pushes_never_close() {
        let o = Outbox::new(msgs(1), SlowConsumerPolicy::Disconnect);
        assert_eq!(o.push_lossy(b("1")), Pushed::Queued);
        assert_eq!(o.push_lossy(b("2")), Pushed::Skipped);
        assert!(!o.is_closed());
        assert_eq!(o.dropped(), 1);
    }

    #[tokio::test]
    async fn drop_oldest_keeps_newest() {
        let o = Outbox::new(msgs(2), SlowConsumerPolicy::DropOldest);
        for s in ["1", "2", "3"] {
            o.push(b(s));
        }
        assert_eq!(o.dropped(), 1);
        let mut out = VecDeque::new();
        assert!(matches!(o.drain(&mut out).await, Outgoing::Frames));
        assert_eq!(out, vec![b("2"), b("3")]);
    }

    #[tokio::test]
    async fn draining_close_flushes_first_and_blocks_later_pushes() {
        let o = Outbox::new(msgs(8), SlowConsumerPolicy::Disconnect);
        o.push(b("a"));
        o.close(CloseCode::SessionSuperseded, "Superseded", true);
        assert_eq!(o.push(b("late")), Pushed::Closed);
        let mut out = VecDeque::new();
        assert!(matches!(o.drain(&mut out).await, Outgoing::Close(_)));
        assert_eq!(out, vec![b("a")]);
    }

    #[tokio::test]
    async fn push_replay_resumes_when_writer_drains() {
        let o = std::sync::Arc::new(Outbox::new(msgs(2), SlowConsumerPolicy::Disconnect));
        o.push(b("1"));
        let o2 = o.clone();
        let waiter = tokio::spawn(async move { o2.push_replay(b("2"), || true).await });
        tokio::task::yield_now().await;
        let mut out = VecDeque::new();
        o.drain(&mut out).await;
        assert_eq!(waiter.await.ok(), Some(ReplayPush::Queued));
        out.clear();
        o.drain(&mut out).await;
        assert_eq!(out, vec![b("2")]);
    }

    #[tokio::test]
    async fn replay_leaves_three_quarters_of_the_queue_to_live_frames() {
        let o = Outbox::new(msgs(8), SlowConsumerPolicy::Disconnect);
        for _ in 0..2 {
            assert_eq!(o.push_replay(b("r"), || true).await, ReplayPush::Queued);
        }
        // The replay share is full: a third replayed frame would wait...
        let third = o.push_replay(b("r"), || true);
        tokio::pin!(third);
        assert!(futures_poll_once(third.as_mut()).await.is_none());
        // ...while live frames still fit, without a slow-consumer close.
        for _ in 0..6 {
            assert_eq!(o.push(b("live")), Pushed::Queued);
        }
        assert!(!o.is_closed());
    }

    #[tokio::test]
    async fn a_cancelled_replay_stops_waiting() {
        let o = std::sync::Arc::new(Outbox::new(msgs(2), SlowConsumerPolicy::Disconnect));
        o.push(b("1"));
        let wanted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (o2, w2) = (o.clone(), wanted.clone());
        let waiter = tokio::spawn(async move {
            o2.push_replay(b("2"), || w2.load(std::sync::atomic::Ordering::SeqCst))
                .await
        });
        tokio::task::yield_now().await;
        wanted.store(false, std::sync::atomic::Ordering::SeqCst);
        o.wake_replay();
        assert_eq!(waiter.await.ok(), Some(ReplayPush::Cancelled));
        assert_eq!(o.len(), 1);
    }

    #[tokio::test]
    async fn bytes_bound_the_queue() {
        let o = Outbox::new(
            OutboxLimits {
                messages: 1000,
                bytes: 10,
            },
            SlowConsumerPolicy::Disconnect,
        );
        assert_eq!(o.push(b("12345")), Pushed::Queued);
        assert_eq!(o.push(b("12345")), Pushed::Queued);
        assert_eq!(o.queued_bytes(), 10);
        assert_eq!(o.push(b("1")), Pushed::Overflow);
        // A frame larger than the whole budget still goes into an empty queue.
        let big = Outbox::new(
            OutboxLimits {
                messages: 1000,
                bytes: 4,
            },
            SlowConsumerPolicy::DropOldest,
        );
        assert_eq!(big.push(b("123456")), Pushed::Queued);
        assert_eq!(big.push(b("12")), Pushed::DroppedOldest);
        assert_eq!(big.queued_bytes(), 2);
        let mut out = VecDeque::new();
        big.drain(&mut out).await;
        assert_eq!(big.queued_bytes(), 0);
        assert_eq!(big.delivered_totals(), (1, 2));
    }

    /// Polls a future once; `None` if it is pending.
    async fn futures_poll_once<F: std::future::Future + Unpin>(f: F) -> Option<F::Output> {
        let mut f = f;
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut f).poll(cx) {
                std::task::Poll::Ready(v) => Some(v),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }
}

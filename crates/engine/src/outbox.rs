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

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Mutex;

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

/// What the writer gets from [`Outbox::drain`].
#[derive(Debug)]
pub enum Outgoing {
    /// Frames to write, in order.
    Frames,
    /// Write the frames, then close with this request.
    Close(CloseRequest),
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Bytes>,
    close: Option<CloseRequest>,
    /// Set once the writer has taken the close request.
    close_taken: bool,
    dropped: u64,
    /// Frames handed to the writer so far.
    delivered: u64,
    /// Bytes of those frames.
    delivered_bytes: u64,
}

/// A bounded, closable queue of frames for one connection.
#[derive(Debug)]
pub struct Outbox {
    state: Mutex<State>,
    ready: Notify,
    space: Notify,
    capacity: usize,
    policy: SlowConsumerPolicy,
}

impl Outbox {
    /// An empty outbox. Allocates no queue storage until the first push.
    pub fn new(capacity: usize, policy: SlowConsumerPolicy) -> Outbox {
        Outbox {
            state: Mutex::new(State::default()),
            ready: Notify::new(),
            space: Notify::new(),
            capacity: capacity.max(1),
            policy,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the queue inconsistent (every
        // mutation is a single VecDeque call), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a frame without waiting. Applies the slow-consumer policy when full.
    pub fn push(&self, frame: Bytes) -> Pushed {
        let mut st = self.lock();
        if st.close.is_some() {
            return Pushed::Closed;
        }
        let outcome = if st.queue.len() < self.capacity {
            st.queue.push_back(frame);
            Pushed::Queued
        } else {
            match self.policy {
                SlowConsumerPolicy::DropOldest => {
                    st.queue.pop_front();
                    st.queue.push_back(frame);
                    st.dropped += 1;
                    Pushed::DroppedOldest
                }
                SlowConsumerPolicy::Disconnect => {
                    st.queue.clear();
                    st.close = Some(CloseRequest {
                        code: CloseCode::PolicyViolation,
                        reason: Cow::Borrowed("slow consumer"),
                    });
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
        if st.queue.len() >= self.capacity {
            st.dropped += 1;
            return Pushed::Skipped;
        }
        st.queue.push_back(frame);
        let was_empty = st.queue.len() == 1;
        drop(st);
        if was_empty {
            self.ready.notify_one();
        }
        Pushed::Queued
    }

    /// Queues a frame even past capacity. For the bounded tail of a history replay that
    /// must stay ahead of live events; never for fan-out.
    pub fn push_unbounded(&self, frame: Bytes) -> Pushed {
        let mut st = self.lock();
        if st.close.is_some() {
            return Pushed::Closed;
        }
        st.queue.push_back(frame);
        drop(st);
        self.ready.notify_one();
        Pushed::Queued
    }

    /// Queues a frame, waiting while the queue is full (back-pressure for replays).
    /// Returns false if the outbox closed.
    pub async fn push_wait(&self, frame: Bytes) -> bool {
        loop {
            let space = self.space.notified();
            {
                let mut st = self.lock();
                if st.close.is_some() {
                    return false;
                }
                if st.queue.len() < self.capacity {
                    st.queue.push_back(frame);
                    drop(st);
                    self.ready.notify_one();
                    return true;
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
            st.queue.clear();
        }
        st.close = Some(CloseRequest {
            code,
            reason: reason.into(),
        });
        drop(st);
        self.ready.notify_one();
        self.space.notify_waiters();
    }

    /// Whether a close has been requested.
    pub fn is_closed(&self) -> bool {
        self.lock().close.is_some()
    }

    /// Messages currently queued.
    pub fn len(&self) -> usize {
        self.lock().queue.len()
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
                    st.delivered_bytes += st.queue.iter().map(|b| b.len() as u64).sum::<u64>();
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
                        drop(st);
                        self.space.notify_waiters();
                        return Outgoing::Close(close);
                    }
                }
                if !out.is_empty() {
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

    #[tokio::test]
    async fn drains_in_order_and_overflow_closes() {
        let o = Outbox::new(2, SlowConsumerPolicy::Disconnect);
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
        let o = Outbox::new(1, SlowConsumerPolicy::Disconnect);
        assert_eq!(o.push_lossy(b("1")), Pushed::Queued);
        assert_eq!(o.push_lossy(b("2")), Pushed::Skipped);
        assert!(!o.is_closed());
        assert_eq!(o.dropped(), 1);
    }

    #[tokio::test]
    async fn drop_oldest_keeps_newest() {
        let o = Outbox::new(2, SlowConsumerPolicy::DropOldest);
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
        let o = Outbox::new(8, SlowConsumerPolicy::Disconnect);
        o.push(b("a"));
        o.close(CloseCode::SessionSuperseded, "Superseded", true);
        assert_eq!(o.push(b("late")), Pushed::Closed);
        let mut out = VecDeque::new();
        assert!(matches!(o.drain(&mut out).await, Outgoing::Close(_)));
        assert_eq!(out, vec![b("a")]);
    }

    #[tokio::test]
    async fn push_wait_resumes_when_writer_drains() {
        let o = std::sync::Arc::new(Outbox::new(1, SlowConsumerPolicy::Disconnect));
        o.push(b("1"));
        let o2 = o.clone();
        let waiter = tokio::spawn(async move { o2.push_wait(b("2")).await });
        let mut out = VecDeque::new();
        o.drain(&mut out).await;
        assert!(waiter.await.unwrap_or(false));
        out.clear();
        o.drain(&mut out).await;
        assert_eq!(out, vec![b("2")]);
    }
}

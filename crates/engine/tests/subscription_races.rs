//! The per-(session, room) subscription state machine under the interleavings that used
//! to break it (issue 11, point 5), driven deterministically: the recovering subscribe is
//! a future polled by hand, parked in its replay back-pressure on a small outbox while the
//! test performs the competing operation, then driven to completion by draining the
//! outbox the way a connection's writer would.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use roomcast_engine::history::{MemoryHistory, Retention, RetentionRule};
use roomcast_engine::hub::{Recovery, SubscribeError};
use roomcast_engine::outbox::Outgoing;
use roomcast_engine::{Hub, HubConfig, Session, SessionMeta};
use roomcast_protocol::server::EventBody;
use roomcast_protocol::{ClientId, CloseCode, RoomName, Sequence};
use serde_json::value::RawValue;
use serde_json::Value;

/// Events stored before each test: far more than the outbox can hold.
const STORED: u64 = 100;

fn hub(max_subscriptions: usize) -> Hub {
    hub_with_outbox(max_subscriptions, 8)
}

fn hub_with_outbox(max_subscriptions: usize, outbox_capacity: usize) -> Hub {
    let mut retention = Retention::all(10_000, Duration::from_secs(300));
    retention.rules.insert(
        0,
        RetentionRule {
            prefix: "live-".into(),
            max_events: 0,
            ttl: Duration::from_secs(1),
        },
    );
    Hub::new(
        HubConfig {
            outbox_capacity,
            outbox_max_bytes: outbox_capacity.saturating_mul(1024),
            max_subscriptions,
            replay_batch: 16,
            ..HubConfig::default()
        },
        Arc::new(MemoryHistory::new(retention)),
    )
}

fn room(s: &str) -> RoomName {
    RoomName::parse(s).expect("room")
}

fn publish(hub: &Hub, name: &RoomName, n: u64) {
    let content = RawValue::from_string("1".into()).expect("raw");
    let who = ClientId::parse("publisher").expect("id");
    for _ in 0..n {
        hub.publish(name, "tick", &EventBody::chat(&who, &content), None)
            .expect("publish");
    }
}

fn connect(hub: &Hub, id: &str) -> Arc<Session> {
    hub.connect(ClientId::parse(id).expect("id"), SessionMeta::default())
}

/// Polls `fut` once.
async fn poll_once<F: Future + ?Sized>(fut: Pin<&mut F>) -> Poll<F::Output> {
    let mut fut = Some(fut);
    std::future::poll_fn(|cx| {
        let f = fut.take().expect("polled once");
        Poll::Ready(f.poll(cx))
    })
    .await
}

/// Takes what the outbox holds right now without waiting (the writer's drain).
async fn take(s: &Session) -> (Vec<Value>, Option<CloseCode>) {
    let mut out: VecDeque<Bytes> = VecDeque::new();
    let close = {
        let drained = std::pin::pin!(s.outbox.drain(&mut out));
        match poll_once(drained).await {
            Poll::Ready(Outgoing::Close(c)) => Some(c.code),
            _ => None,
        }
    };
    let frames = out
        .iter()
        .map(|b| serde_json::from_slice(b).expect("json frame"))
        .collect();
    (frames, close)
}

/// Drives a parked recovery to its end, draining the outbox as a reader would.
async fn finish<F: Future>(s: &Session, mut fut: Pin<&mut F>) -> (F::Output, Vec<Value>) {
    let mut seen = Vec::new();
    for _ in 0..10_000 {
        if let Poll::Ready(out) = poll_once(fut.as_mut()).await {
            seen.extend(take(s).await.0);
            return (out, seen);
        }
        seen.extend(take(s).await.0);
    }
    panic!("the recovery never finished");
}

/// A recovery of `name` from 0 parked in its back-pressure wait.
macro_rules! parked_recovery {
    ($hub:expr, $s:expr, $name:expr) => {{
        let mut fut = Box::pin($hub.subscribe_since(&$s, &$name, Sequence(0), None));
        assert!(
            poll_once(fut.as_mut()).await.is_pending(),
            "the replay must be waiting for the writer"
        );
        fut
    }};
}

fn is_member(hub: &Hub, name: &RoomName, s: &Session) -> bool {
    hub.presence(name).contains(&s.client_id)
}

#[tokio::test]
async fn unsubscribe_during_the_replay_wait_leaves_no_ghost_and_stops_the_replay() {
    let hub = hub(10);
    let r = room("r");
    publish(&hub, &r, STORED);
    let s = connect(&hub, "s");
    let mut fut = parked_recovery!(hub, s, r);
    assert!(hub.unsubscribe(&s, &r));
    let (before, _) = take(&s).await;
    let (result, after) = finish(&s, fut.as_mut()).await;
    assert!(
        !matches!(result, Ok(Recovery::Replayed { .. })),
        "the replay stopped: {result:?}"
    );
    assert!(
        after.is_empty(),
        "nothing of the room after the unsubscribe: {after:?}"
    );
    assert!(before.len() < STORED as usize);
    assert!(!is_member(&hub, &r, &s), "ghost member");
    assert!(s.rooms().is_empty());
    publish(&hub, &r, 1);
    assert!(take(&s).await.0.is_empty(), "an event after unsubscribe");
}

#[tokio::test]
async fn supersede_during_the_replay_wait_leaves_no_ghost() {
    let hub = hub(10);
    let r = room("r");
    publish(&hub, &r, STORED);
    let old = connect(&hub, "same");
    let mut fut = parked_recovery!(hub, old, r);
    let new = connect(&hub, "same");
    let (_, after) = finish(&old, fut.as_mut()).await;
    assert!(after.iter().all(|v| v["type"] != "replay_complete"));
    assert!(hub.presence(&r).is_empty(), "the superseded session joined");
    assert!(new.rooms().is_empty() && old.rooms().is_empty());
}

#[tokio::test]
async fn kick_during_the_replay_wait_leaves_no_ghost() {
    let hub = hub(10);
    let r = room("r");
    publish(&hub, &r, STORED);
    let s = connect(&hub, "s");
    let mut fut = parked_recovery!(hub, s, r);
    assert!(hub.kick(&s.client_id, CloseCode::PolicyViolation, "kicked".into()));
    let _ = finish(&s, fut.as_mut()).await;
    assert!(!is_member(&hub, &r, &s));
    assert!(s.rooms().is_empty());
}

#[tokio::test]
async fn eviction_during_the_replay_wait_leaves_no_ghost() {
    let hub = Hub::new(
        HubConfig {
            outbox_capacity: 8,
            replay_batch: 16,
            heartbeat_interval: Duration::from_millis(20),
            heartbeat_timeout: Duration::ZERO,
            ..HubConfig::default()
        },
        Arc::new(MemoryHistory::new(Retention::default())),
    );
    let r = room("r");
    publish(&hub, &r, STORED);
    let s = connect(&hub, "s");
    let mut fut = parked_recovery!(hub, s, r);
    let cancel = tokio_util::sync::CancellationToken::new();
    let maintenance = tokio::spawn(roomcast_engine::maintenance::run(
        hub.clone(),
        cancel.clone(),
    ));
    // The session never touches the hub, so the maintenance tick evicts it.
    tokio::time::timeout(Duration::from_secs(10), async {
        while !s.outbox.is_closed() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("evicted in time");
    let _ = finish(&s, fut.as_mut()).await;
    cancel.cancel();
    maintenance.await.expect("maintenance");
    assert!(!is_member(&hub, &r, &s));
    assert!(s.rooms().is_empty());
}

#[tokio::test]
async fn max_subscriptions_is_not_bypassed_through_an_abandoned_replay() {
    let hub = hub(1);
    let (a, b) = (room("a"), room("b"));
    publish(&hub, &a, STORED);
    let s = connect(&hub, "s");
    let mut fut = parked_recovery!(hub, s, a);
    // The recovering room counts: a second room is refused while it recovers.
    assert!(matches!(
        hub.subscribe(&s, &b),
        Err(SubscribeError::TooManySubscriptions(1))
    ));
    hub.unsubscribe(&s, &a);
    hub.subscribe(&s, &b).expect("one room again");
    let _ = finish(&s, fut.as_mut()).await;
    let joined: Vec<_> = [&a, &b]
        .into_iter()
        .filter(|n| is_member(&hub, n, &s))
        .collect();
    assert_eq!(
        joined,
        vec![&b],
        "member of more rooms than max_subscriptions"
    );
    assert_eq!(s.rooms(), vec![b.clone()]);
}

#[tokio::test]
async fn a_replay_leaves_room_for_live_frames_of_other_rooms() {
    let hub = hub(10);
    let (r, busy) = (room("r"), room("busy"));
    publish(&hub, &r, STORED);
    let s = connect(&hub, "s");
    hub.subscribe(&s, &busy).expect("sub");
    let mut fut = parked_recovery!(hub, s, r);
    // The replay waits for the writer; events of another room must still fit.
    publish(&hub, &busy, 3);
    assert!(
        !s.outbox.is_closed(),
        "closed as a slow consumer by its own replay"
    );
    let (result, mut frames) = {
        let (first, _) = take(&s).await;
        let (result, rest) = finish(&s, fut.as_mut()).await;
        (result, [first, rest].concat())
    };
    assert!(
        matches!(result, Ok(Recovery::Replayed { count: STORED, .. })),
        "{result:?}"
    );
    frames.retain(|v| v["room"] == "r" && v["type"] == "tick");
    let seqs: Vec<u64> = frames
        .iter()
        .filter_map(|v| v["sequence"].as_u64())
        .collect();
    assert_eq!(seqs, (1..=STORED).collect::<Vec<_>>());
}

/// A room without history: an event published while the recovering subscribe is being
/// handled must either reach the client or make the recovery report a gap; it may never
/// be missed under a `replay_complete`. A publisher thread hammers the room while the
/// test subscribes from the head it just read, many times over.
#[test]
fn a_room_without_history_never_hides_a_missed_event_under_replay_complete() {
    // A queue the hammering publisher cannot overflow before the test reads it.
    let hub = hub_with_outbox(10, 1 << 20);
    let r = room("live-r");
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (hub, r, stop) = (hub.clone(), r.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                publish(&hub, &r, 1);
                // Leave the room lock to the subscriber now and then (std's mutex is
                // not fair).
                std::thread::yield_now();
            }
        })
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    const ROUNDS: usize = 1000;
    let mut complete = 0;
    for i in 0..ROUNDS {
        let s = connect(&hub, &format!("c{i}"));
        let after = hub.room_head(&r).expect("head").sequence;
        let result = rt.block_on(hub.subscribe_since(&s, &r, after, None));
        if let Ok(Recovery::Replayed { .. }) = result {
            complete += 1;
            // The first live event after the switch must be the one after `after`.
            let first = rt.block_on(async {
                loop {
                    let (frames, close) = take(&s).await;
                    assert!(close.is_none(), "iteration {i}: closed {close:?}");
                    if let Some(v) = frames.iter().find(|v| v["type"] == "tick") {
                        return v["sequence"].as_u64().expect("sequence");
                    }
                    tokio::task::yield_now().await;
                }
            });
            assert_eq!(first, after.0 + 1, "iteration {i}: an event was missed");
        }
        hub.disconnect(&s);
    }
    stop.store(true, Ordering::Relaxed);
    publisher.join().expect("publisher");
    eprintln!("{complete} of {ROUNDS} recoveries completed without a gap");
}

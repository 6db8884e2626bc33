//! The hub as a library: publish, supersede, broker hand-off and remote delivery, without a
//! transport.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use roomcast_engine::broker::{Broker, BrokerError};
use roomcast_engine::history::{MemoryHistory, Retention};
use roomcast_engine::outbox::Outgoing;
use roomcast_engine::{Hub, HubConfig, Session, SessionMeta};
use roomcast_protocol::server::EventBody;
use roomcast_protocol::{ClientId, CloseCode, RoomName, Sequence};
use serde_json::value::RawValue;

#[derive(Default)]
struct RecordingBroker {
    published: Mutex<Vec<(String, u64)>>,
    interest: Mutex<Vec<(String, bool)>>,
}

impl Broker for RecordingBroker {
    fn publish(
        &self,
        room: &RoomName,
        sequence: Sequence,
        _frame: &Bytes,
    ) -> Result<(), BrokerError> {
        self.published
            .lock()
            .map_err(|_| BrokerError::Unavailable("poisoned".into()))?
            .push((room.to_string(), sequence.0));
        Ok(())
    }

    fn interest(&self, room: &RoomName, interested: bool) {
        if let Ok(mut v) = self.interest.lock() {
            v.push((room.to_string(), interested));
        }
    }
}

fn hub_with(broker: Arc<RecordingBroker>) -> Hub {
    let history = Arc::new(MemoryHistory::new(Retention::all(
        100,
        Duration::from_secs(60),
    )));
    Hub::with_broker(HubConfig::default(), history, broker)
}

async fn frames(s: &Session) -> Vec<serde_json::Value> {
    let mut out = std::collections::VecDeque::new();
    if s.outbox.is_empty() {
        return Vec::new();
    }
    s.outbox.drain(&mut out).await;
    out.iter()
        .map(|b| serde_json::from_slice(b).expect("json frame"))
        .collect()
}

fn id(s: &str) -> ClientId {
    ClientId::parse(s).expect("client id")
}

#[tokio::test]
async fn publish_goes_to_members_and_broker_in_sequence_order() {
    let broker = Arc::new(RecordingBroker::default());
    let hub = hub_with(broker.clone());
    let room = RoomName::parse("r").expect("room");
    let a = hub.connect(id("a"), SessionMeta::default());
    let b = hub.connect(id("b"), SessionMeta::default());
    hub.subscribe(&a, &room).expect("sub");
    hub.subscribe(&b, &room).expect("sub");
    let content = RawValue::from_string("1".into()).expect("raw");
    for _ in 0..3 {
        hub.publish(
            &room,
            "message",
            &EventBody::chat(&a.client_id, &content),
            Some(a.conn_id),
        )
        .expect("publish");
    }
    assert!(frames(&a).await.is_empty(), "sender excluded");
    let got: Vec<u64> = frames(&b)
        .await
        .iter()
        .filter_map(|v| v["sequence"].as_u64())
        .collect();
    assert_eq!(got, vec![1, 2, 3]);
    let published = broker.published.lock().expect("lock").clone();
    assert_eq!(
        published,
        vec![("r".into(), 1), ("r".into(), 2), ("r".into(), 3)]
    );
    assert!(broker
        .interest
        .lock()
        .expect("lock")
        .contains(&("r".into(), true)));
}

#[tokio::test]
async fn remote_events_are_delivered_once_and_advance_the_head() {
    let broker = Arc::new(RecordingBroker::default());
    let hub = hub_with(broker);
    let room = RoomName::parse("remote").expect("room");
    let s = hub.connect(id("s"), SessionMeta::default());
    hub.subscribe(&s, &room).expect("sub");
    let frame = |n: u64| Bytes::from(format!("{{\"type\":\"x\",\"sequence\":{n}}}"));
    let epoch = hub.room_head(&room).expect("head").epoch;
    let epoch = epoch.as_str();
    assert_eq!(
        hub.deliver_remote(&room, epoch, Sequence(1), frame(1), None)
            .delivered,
        1
    );
    assert_eq!(
        hub.deliver_remote(&room, epoch, Sequence(1), frame(1), None)
            .delivered,
        0,
        "duplicate ignored"
    );
    assert_eq!(
        hub.deliver_remote(&room, epoch, Sequence(2), frame(2), None)
            .delivered,
        1
    );
    let got: Vec<u64> = frames(&s)
        .await
        .iter()
        .filter_map(|v| v["sequence"].as_u64())
        .collect();
    assert_eq!(got, vec![1, 2]);
    assert_eq!(hub.room_head(&room).expect("head").sequence, Sequence(2));
}

#[tokio::test]
async fn supersede_closes_the_old_session_before_returning() {
    let hub = hub_with(Arc::new(RecordingBroker::default()));
    let old = hub.connect(id("dup"), SessionMeta::default());
    let new = hub.connect(id("dup"), SessionMeta::default());
    assert!(old.outbox.is_closed());
    assert!(!new.outbox.is_closed());
    let mut buf = std::collections::VecDeque::new();
    match old.outbox.drain(&mut buf).await {
        Outgoing::Close(c) => assert_eq!(c.code, CloseCode::SessionSuperseded),
        other => panic!("expected close, got {other:?}"),
    }
    assert!(
        !hub.disconnect(&old),
        "the old session is no longer current"
    );
    assert_eq!(hub.connection_count(), 1);
    assert!(hub.disconnect(&new));
    assert_eq!(hub.connection_count(), 0);
}

#[tokio::test]
async fn the_process_wide_byte_cap_closes_the_largest_queues_first() {
    let hub = Hub::new(
        HubConfig {
            outbox_max_bytes: 64 * 1024,
            max_queued_bytes: 5000,
            ..HubConfig::default()
        },
        Arc::new(MemoryHistory::new(Retention::default())),
    );
    let (wide, narrow) = (
        RoomName::parse("wide").expect("room"),
        RoomName::parse("narrow").expect("room"),
    );
    let big = hub.connect(id("big"), SessionMeta::default());
    let small = hub.connect(id("small"), SessionMeta::default());
    hub.subscribe(&big, &wide).expect("sub");
    hub.subscribe(&big, &narrow).expect("sub");
    hub.subscribe(&small, &wide).expect("sub");
    let content = RawValue::from_string(format!("\"{}\"", "x".repeat(1000))).expect("raw");
    let body = EventBody::chat(&big.client_id, &content);
    for _ in 0..2 {
        hub.publish(&wide, "t", &body, None).expect("publish");
    }
    hub.publish(&narrow, "t", &body, None).expect("publish");
    // ~3 KB queued for `big`, ~2 KB for `small`: over the 5,000-byte cap.
    assert!(big.outbox.queued_bytes() + small.outbox.queued_bytes() > 5000);
    assert_eq!(hub.enforce_queued_bytes_cap(), 1);
    assert!(big.outbox.is_closed(), "the largest queue goes first");
    assert!(!small.outbox.is_closed(), "and only as many as needed");
    assert!(!hub.presence(&wide).contains(&big.client_id));
    let mut out = std::collections::VecDeque::new();
    match big.outbox.drain(&mut out).await {
        Outgoing::Close(c) => assert_eq!(c.code, CloseCode::PolicyViolation),
        other => panic!("expected a close, got {other:?}"),
    }
    assert_eq!(hub.enforce_queued_bytes_cap(), 0);
}

/// A cluster node's room: unsynced until the store's snapshot arrives (live events before
/// it are dropped, the snapshot has them), then remote events in order; a resync after a
/// lost link delivers what was missed, or `recovery_failed` `epoch_changed` when the store
/// lost the room, then the new epoch's events.
#[tokio::test]
async fn a_clustered_room_syncs_from_the_store_and_resyncs_after_a_lost_link() {
    use roomcast_engine::history::{RoomHead, StoredEvent};
    use roomcast_engine::hub::RemoteSnapshot;
    use roomcast_protocol::Epoch;

    let history = Arc::new(MemoryHistory::new(Retention::all(
        100,
        Duration::from_secs(60),
    )));
    let hub = Hub::clustered(
        HubConfig::default(),
        history,
        Arc::new(RecordingBroker::default()),
    );
    let room = RoomName::parse("c").expect("room");
    let frame = |e: &str, n: u64| {
        Bytes::from(format!(
            "{{\"type\":\"x\",\"room\":\"c\",\"sequence\":{n},\"epoch\":\"{e}\"}}"
        ))
    };
    let event = |e: &str, n: u64| StoredEvent {
        sequence: Sequence(n),
        unix_millis: 0,
        frame: frame(e, n),
    };
    let snapshot = |e: &str, head: u64, events: Vec<StoredEvent>| RemoteSnapshot {
        head: RoomHead {
            sequence: Sequence(head),
            epoch: Epoch::new(e),
        },
        events,
    };
    let hold = hub.hold_room(&room).expect("hold");
    assert!(!hold.is_synced());
    assert_eq!(
        hub.deliver_remote(&room, "e1", Sequence(3), frame("e1", 3), None)
            .delivered,
        0
    );
    assert!(hub.sync_remote(
        &room,
        snapshot("e1", 3, (1..=3).map(|n| event("e1", n)).collect())
    ));
    tokio::time::timeout(Duration::from_secs(1), hold.synced())
        .await
        .expect("synced");
    let s = hub.connect(id("s"), SessionMeta::default());
    let head = hub.subscribe(&s, &room).expect("sub");
    assert_eq!((head.sequence, head.epoch.as_str()), (Sequence(3), "e1"));
    drop(hold);
    assert_eq!(
        hub.deliver_remote(&room, "e1", Sequence(3), frame("e1", 3), None)
            .delivered,
        0
    );
    assert_eq!(
        hub.deliver_remote(&room, "e1", Sequence(4), frame("e1", 4), None)
            .delivered,
        1
    );
    // The link was lost while 5 and 6 were published: the resync delivers them.
    hub.sync_remote(
        &room,
        snapshot("e1", 6, (1..=6).map(|n| event("e1", n)).collect()),
    );
    // The store lost the room (restart without persistence): a new epoch.
    hub.sync_remote(&room, snapshot("e2", 1, vec![event("e2", 1)]));
    let got: Vec<(String, u64)> = frames(&s)
        .await
        .iter()
        .map(|v| {
            let kind = v["type"].as_str().unwrap_or_default().to_owned();
            let label = match kind.as_str() {
                "recovery_failed" => format!(
                    "failed:{}:{}",
                    v["reason"].as_str().unwrap_or(""),
                    v["epoch"].as_str().unwrap_or("")
                ),
                _ => v["epoch"].as_str().unwrap_or_default().to_owned(),
            };
            (label, v["sequence"].as_u64().unwrap_or(0))
        })
        .collect();
    let expected: Vec<(String, u64)> = vec![
        ("e1".into(), 4),
        ("e1".into(), 5),
        ("e1".into(), 6),
        ("failed:epoch_changed:e2".into(), 0),
        ("e2".into(), 1),
    ];
    assert_eq!(got, expected);
    // Recovery on this node reads the mirror of the new epoch.
    let head = hub.room_head(&room).expect("head");
    assert_eq!((head.sequence, head.epoch.as_str()), (Sequence(1), "e2"));
}

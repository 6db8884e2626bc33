//! Fan-out benchmark: one publish to a room of N in-process sessions (no sockets), i.e. the
//! hub's part of a broadcast: sequence, encode once, history append (memory), and one
//! `Outbox::push` of the shared bytes per member. Outboxes are drained between iterations
//! the way a connection's writer would.
//!
//! Run: `cargo bench -p roomcast-engine --bench fanout -- --warm-up-time 1 --measurement-time 3`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput};
use roomcast_engine::history::{MemoryHistory, Retention};
use roomcast_engine::{Hub, HubConfig, Session, SessionMeta};
use roomcast_protocol::server::EventBody;
use roomcast_protocol::{ClientId, RoomName};
use serde_json::value::RawValue;

fn setup(n: usize) -> (Hub, Vec<Arc<Session>>, RoomName) {
    let config = HubConfig {
        outbox_capacity: 4096,
        ..HubConfig::default()
    };
    let hub = Hub::new(
        config,
        Arc::new(MemoryHistory::new(Retention::all(
            1000,
            Duration::from_secs(300),
        ))),
    );
    let room = RoomName::parse("bench").expect("room");
    let sessions = (0..n)
        .map(|i| {
            let id = ClientId::parse(&format!("c{i}")).expect("id");
            let s = hub.connect(id, SessionMeta::default());
            hub.subscribe(&s, &room).expect("subscribe");
            s
        })
        .collect();
    (hub, sessions, room)
}

fn drain(sessions: &[Arc<Session>]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut buf: std::collections::VecDeque<Bytes> = std::collections::VecDeque::new();
    rt.block_on(async {
        for s in sessions {
            if !s.outbox.is_empty() {
                s.outbox.drain(&mut buf).await;
                buf.clear();
            }
        }
    });
}

fn fanout(c: &mut Criterion) {
    let content =
        RawValue::from_string(format!("{{\"pad\":\"{}\"}}", "x".repeat(80))).expect("raw");
    let from = ClientId::parse("publisher").expect("id");
    let body = EventBody::chat(&from, &content);
    let mut group = c.benchmark_group("fanout");
    for n in [1_000usize, 10_000] {
        let (hub, sessions, room) = setup(n);
        group.throughput(Throughput::Elements(n as u64));
        // 64 publishes per drain keeps queues far from their capacity.
        group.bench_with_input(BenchmarkId::new("publish_to_members", n), &n, |b, _| {
            let mut since_drain = 0;
            b.iter(|| {
                hub.publish(&room, "message", &body, None).expect("publish");
                since_drain += 1;
                if since_drain == 64 {
                    drain(&sessions);
                    since_drain = 0;
                }
            })
        });
        drain(&sessions);
    }
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    fanout(&mut c);
    c.final_summary();
}

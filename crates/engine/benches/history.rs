//! Benchmarks of the history stores: `append` and `read_since` on the memory store and on the
//! durable store with fsync policies `batch` and `never`.
//!
//! Run: `cargo bench -p roomcast-engine --bench history -- --warm-up-time 1 --measurement-time 3`.
//! The durable figures include the writer thread: `append_await_N` appends N events and waits
//! for all N receipts (one group commit with fsync when they arrive together; measured with
//! the default 2 ms batch window and with none). With fsync `never`, `append_ack` appends one
//! event (its receipt is ready at once) and waits for the writer every 1000, so it measures
//! the writer's sustained rate; `append_flush_100` appends 100 and waits until they are
//! committed. Frames are ~120 bytes.

use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, Throughput};
use roomcast_engine::history::{
    Durable, DurableConfig, DurableHistory, FsyncPolicy, History, MemoryHistory, Retention,
    StoredEvent,
};
use roomcast_protocol::{RoomName, Sequence};
use tokio::runtime::Runtime;

/// A frame of a typical size (about 120 bytes of JSON), built once: the hub serialises a
/// frame once and hands the store a reference-counted `Bytes`, so the benchmark does too.
static FRAME: &[u8] = br#"{"type":"event","room":"bench:room","seq":123456,"epoch":"0123456789abcdef","data":{"price":101.25,"qty":3}}"#;

fn event(seq: u64) -> StoredEvent {
    StoredEvent {
        sequence: Sequence(seq),
        unix_millis: 1_700_000_000_000,
        frame: Bytes::from_static(FRAME),
    }
}

fn room(name: &str) -> RoomName {
    RoomName::parse(name).expect("valid bench room name")
}

fn retention() -> Retention {
    Retention::all(1000, Duration::from_secs(3600))
}

/// Appends the next `n` events to `room` and returns their receipts' futures.
fn append_n(store: &dyn History, room: &RoomName, n: u64) -> Vec<Durable> {
    let head = store.head(room).expect("head").sequence.0;
    (head + 1..=head + n)
        .map(|s| store.append(room, event(s)).expect("append").durable)
        .collect()
}

/// `read_since` of 100 events from the middle of a 1000-event room.
fn bench_read(c: &mut Criterion, group: &str, store: &dyn History, rt: &Runtime) {
    let r = room("bench:read");
    rt.block_on(async {
        for durable in append_n(store, &r, 1000) {
            durable.await.expect("durable");
        }
    });
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(100));
    g.bench_function("read_since_100_of_1000", |b| {
        b.iter(|| store.read_since(&r, Sequence(500), 100).expect("read"))
    });
    g.finish();
}

fn memory(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let store = MemoryHistory::new(retention());
    let r = room("bench:append");
    let mut g = c.benchmark_group("history/memory");
    g.throughput(Throughput::Elements(1));
    let mut seq = 0;
    g.bench_function("append", |b| {
        b.iter(|| {
            seq += 1;
            store.append(&r, event(seq)).expect("append")
        })
    });
    g.finish();
    bench_read(c, "history/memory", &store, &rt);
}

fn durable_batch(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    // The default 2 ms window, then 0 (commit whatever is queued, no waiting).
    for (group, window) in [
        ("history/durable_batch", Duration::from_millis(2)),
        ("history/durable_batch_window0", Duration::ZERO),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = DurableConfig {
            retention: retention(),
            fsync: FsyncPolicy::Batch,
            batch_window: window,
            ..DurableConfig::default()
        };
        let store = DurableHistory::open(dir.path(), config).expect("open");
        let r = room("bench:append");
        let mut g = c.benchmark_group(group);
        for n in [1u64, 100] {
            g.throughput(Throughput::Elements(n));
            g.bench_function(format!("append_await_{n}"), |b| {
                b.iter(|| {
                    rt.block_on(async {
                        for durable in append_n(&store, &r, n) {
                            durable.await.expect("durable");
                        }
                    })
                })
            });
        }
        g.finish();
        if !window.is_zero() {
            bench_read(c, group, &store, &rt);
        }
        store.close().expect("close");
    }
}

fn durable_never(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = DurableConfig {
        retention: retention(),
        fsync: FsyncPolicy::Never,
        ..DurableConfig::default()
    };
    let store = DurableHistory::open(dir.path(), config).expect("open");
    let r = room("bench:append");
    let mut g = c.benchmark_group("history/durable_never");
    g.throughput(Throughput::Elements(1));
    g.bench_function("append_ack", |b| {
        // The receipt is ready at once; flush every 1000 so the writer's queue never fills.
        let mut since_flush = 0;
        b.iter(|| {
            let receipts = append_n(&store, &r, 1);
            since_flush += 1;
            if since_flush == 1000 {
                since_flush = 0;
                rt.block_on(store.flush()).expect("flush");
            }
            receipts
        })
    });
    g.throughput(Throughput::Elements(100));
    g.bench_function("append_flush_100", |b| {
        b.iter(|| {
            drop(append_n(&store, &r, 100));
            rt.block_on(store.flush()).expect("flush");
        })
    });
    g.finish();
    bench_read(c, "history/durable_never", &store, &rt);
    store.close().expect("close");
}

fn main() {
    // What `criterion_group!`/`criterion_main!` expand to, minus an undocumented `pub fn`.
    let mut c = Criterion::default().configure_from_args();
    memory(&mut c);
    durable_batch(&mut c);
    durable_never(&mut c);
    c.final_summary();
}

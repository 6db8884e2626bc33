//! A measurement: orders per second through the whole exchange path (queue, risk,
//! matching, one redb transaction per batch with fsync, publish into hub rooms, reply)
//! from concurrent callers, and the place-order latency they see.
//!
//! `ARENA_CALLERS=128 cargo bench -p roomcast-arena --bench throughput`
//! (`ARENA_STORE=memory` measures without the disk).

use std::sync::Arc;
use std::time::{Duration, Instant};

use roomcast_arena::{
    Arena, ArenaConfig, Funding, OrderRequest, OrderSide, OrderType, TimeInForce,
};
use roomcast_engine::auth::CollectiveId;
use roomcast_engine::history::{MemoryHistory, Retention};
use roomcast_engine::{Hub, HubConfig};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(orders_per_second_end_to_end());
}

async fn orders_per_second_end_to_end() {
    // ARENA_CALLERS concurrent callers (default 32): the exchange batches what is queued,
    // so more callers share each fsync.
    let callers: usize = std::env::var("ARENA_CALLERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let per_caller: usize = 16_000 / callers.max(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let history = Arc::new(MemoryHistory::new(Retention::all(
        1_000,
        Duration::from_secs(60),
    )));
    let hub = Hub::new(HubConfig::default(), history);
    let tasks = TaskTracker::new();
    let cancel = CancellationToken::new();
    // ARENA_STORE=memory measures without disk (the exchange's CPU cost alone).
    let in_memory = std::env::var("ARENA_STORE").is_ok_and(|v| v == "memory");
    let data_dir = (!in_memory).then(|| dir.path());
    let arena = Arena::start(
        ArenaConfig::default(),
        hub,
        data_dir,
        &tasks,
        cancel.clone(),
    )
    .await
    .expect("start");
    for i in 0..callers {
        let funding = Funding {
            cash_cents: 100_000_000_000,
            positions: [("BTC-USD".to_owned(), 100_000_000)].into_iter().collect(),
        };
        arena
            .open_account(CollectiveId::parse(&format!("c{i}")).expect("id"), funding)
            .await
            .expect("open");
    }
    let started = Instant::now();
    let mut handles = Vec::new();
    for i in 0..callers {
        let arena = arena.clone();
        handles.push(tokio::spawn(async move {
            let id = CollectiveId::parse(&format!("c{i}")).expect("id");
            let mut lat = Vec::with_capacity(per_caller);
            for n in 0..per_caller {
                let side = if (n + i) % 2 == 0 {
                    OrderSide::Buy
                } else {
                    OrderSide::Sell
                };
                // Sells rest a little above 10,000; buys cross them as IOC, so about half the
                // orders trade.
                let (price, tif) = match side {
                    OrderSide::Sell => (10_000 + (n * 7 + i * 13) % 40, TimeInForce::Gtc),
                    OrderSide::Buy => (10_040, TimeInForce::Ioc),
                };
                let r = OrderRequest {
                    symbol: "BTC-USD".into(),
                    side,
                    order_type: OrderType::Limit,
                    quantity: "0.01".into(),
                    price: Some(format!("{}.00", price)),
                    time_in_force: tif,
                    client_order_id: None,
                };
                let t = Instant::now();
                arena.place_order(&id, r).await.expect("accepted");
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for h in handles {
        lat.extend(h.await.expect("caller"));
    }
    let elapsed = started.elapsed();
    lat.sort();
    let n = lat.len();
    println!(
        "{n} orders from {callers} callers in {:.2?}: {:.0} orders/s; latency p50 {:.2?} p99 {:.2?}; trades {}",
        elapsed,
        n as f64 / elapsed.as_secs_f64(),
        lat[n / 2],
        lat[n * 99 / 100],
        arena.stats().trades
    );
    cancel.cancel();
    tasks.close();
    tasks.wait().await;
}

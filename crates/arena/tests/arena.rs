//! The arena on a real engine hub: events reach subscribed sessions, private rooms are
//! refused to other collectives, a stream snapshot plus the events after it rebuilds the
//! exchange's state exactly, and the durable store survives a runtime that dies without a
//! clean shutdown (and refuses a state that breaks conservation).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use roomcast_arena::store::{Batch, Store};
use roomcast_arena::{
    Arena, ArenaConfig, ArenaError, AttachError, BookView, Funding, OrderRequest, OrderSide,
    OrderType, TimeInForce,
};
use roomcast_engine::auth::CollectiveId;
use roomcast_engine::history::{MemoryHistory, Retention};
use roomcast_engine::{Hub, HubConfig, Session, SessionMeta};
use roomcast_protocol::{ClientId, RoomName};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

fn hub() -> Hub {
    let history = Arc::new(MemoryHistory::new(Retention::all(
        100_000,
        Duration::from_secs(600),
    )));
    Hub::new(HubConfig::default(), history)
}

fn cid(s: &str) -> CollectiveId {
    CollectiveId::parse(s).expect("id")
}

fn room(s: &str) -> RoomName {
    RoomName::parse(s).expect("room")
}

fn funding(cents: u64, btc: u64) -> Funding {
    Funding {
        cash_cents: cents,
        positions: [("BTC-USD".to_owned(), btc)].into_iter().collect(),
    }
}

fn limit(side: OrderSide, qty: &str, price: &str) -> OrderRequest {
    OrderRequest {
        symbol: "BTC-USD".into(),
        side,
        order_type: OrderType::Limit,
        quantity: qty.into(),
        price: Some(price.into()),
        time_in_force: TimeInForce::Gtc,
        client_order_id: None,
    }
}

/// A random limit order on either side: a price in `whole` with random cents, a random
/// quantity below 1.
fn random_limit(rng: &mut StdRng, whole: std::ops::Range<i32>) -> OrderRequest {
    let side = if rng.random_bool(0.5) {
        OrderSide::Buy
    } else {
        OrderSide::Sell
    };
    let price = format!(
        "{}.{:02}",
        rng.random_range(whole),
        rng.random_range(0..100)
    );
    let qty = format!("0.{:04}", rng.random_range(1..9999));
    limit(side, &qty, &price)
}

async fn start(
    config: ArenaConfig,
    hub: Hub,
    dir: Option<&std::path::Path>,
) -> (Arena, CancellationToken, TaskTracker) {
    let tasks = TaskTracker::new();
    let cancel = CancellationToken::new();
    let arena = Arena::start(config, hub, dir, &tasks, cancel.clone())
        .await
        .expect("arena starts");
    (arena, cancel, tasks)
}

/// Every frame queued for `s` (the arena publishes before it replies, so after an awaited
/// call everything it caused is queued).
async fn frames(s: &Session) -> Vec<Value> {
    let mut out = VecDeque::new();
    if !s.outbox.is_empty() {
        tokio::time::timeout(Duration::from_secs(5), s.outbox.drain(&mut out))
            .await
            .expect("drain");
    }
    out.iter()
        .map(|b| serde_json::from_slice(b).expect("json frame"))
        .collect()
}

fn session(hub: &Hub, name: &str) -> Arc<Session> {
    hub.connect(
        ClientId::parse(name).expect("client id"),
        SessionMeta::default(),
    )
}

#[tokio::test]
async fn events_reach_subscribers_and_private_rooms_stay_private() {
    let hub = hub();
    let (arena, cancel, tasks) = start(ArenaConfig::default(), hub.clone(), None).await;
    arena
        .open_account(cid("alice"), funding(1_000_000, 0))
        .await
        .expect("open");
    arena
        .open_account(cid("bob"), funding(0, 100_000))
        .await
        .expect("open");

    let alice = session(&hub, "alice-conn");
    let head = arena
        .attach(
            alice.clone(),
            &room("orders:alice"),
            Some(&cid("alice")),
            None,
        )
        .await
        .expect("own orders");
    arena
        .attach(
            alice.clone(),
            &room("portfolio:alice"),
            Some(&cid("alice")),
            None,
        )
        .await
        .expect("own portfolio");
    arena
        .attach(alice.clone(), &room("market:BTC-USD"), None, None)
        .await
        .expect("public market");
    let snap = frames(&alice).await;
    let types: Vec<&str> = snap.iter().filter_map(|f| f["type"].as_str()).collect();
    assert_eq!(
        types,
        ["orders_snapshot", "portfolio_snapshot", "book_snapshot"]
    );
    assert_eq!(snap[0]["sequence"].as_u64(), Some(head.sequence.0));
    assert_eq!(snap[0]["epoch"].as_str(), Some(head.epoch.as_str()));
    assert_eq!(snap[1]["data"]["balances"][0]["total"], "10000");

    let mallory = session(&hub, "mallory-conn");
    for r in ["orders:alice", "portfolio:alice"] {
        let e = arena
            .attach(mallory.clone(), &room(r), Some(&cid("bob")), None)
            .await;
        assert!(matches!(e, Err(AttachError::Forbidden)), "{r}");
        let e = arena.attach(mallory.clone(), &room(r), None, None).await;
        assert!(
            matches!(e, Err(AttachError::Forbidden)),
            "{r} without principal"
        );
    }
    assert!(matches!(
        arena
            .attach(mallory.clone(), &room("market:NOPE"), None, None)
            .await,
        Err(AttachError::UnknownSymbol)
    ));
    assert!(matches!(
        arena
            .attach(mallory.clone(), &room("chat"), None, None)
            .await,
        Err(AttachError::NotArenaRoom)
    ));
    assert!(frames(&mallory).await.is_empty());

    arena
        .place_order(&cid("bob"), limit(OrderSide::Sell, "1", "100"))
        .await
        .expect("sell");
    let buy = arena
        .place_order(&cid("alice"), limit(OrderSide::Buy, "1", "100"))
        .await
        .expect("buy");
    assert_eq!(buy.status, roomcast_arena::OrderStatus::Filled);
    let got = frames(&alice).await;
    let seen: Vec<(String, String)> = got
        .iter()
        .map(|f| {
            (
                f["room"].as_str().unwrap_or("").to_owned(),
                f["type"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    for want in [
        ("orders:alice", "order_created"),
        ("orders:alice", "order_filled"),
        ("portfolio:alice", "balance_updated"),
        ("portfolio:alice", "position_updated"),
        ("market:BTC-USD", "trade"),
        ("market:BTC-USD", "book_update"),
        ("market:BTC-USD", "ticker"),
    ] {
        assert!(
            seen.contains(&(want.0.to_owned(), want.1.to_owned())),
            "missing {want:?} in {seen:?}"
        );
    }
    assert!(
        !seen.iter().any(|(r, _)| r.contains("bob")),
        "alice sees nothing of bob's private rooms"
    );
    let trade = got.iter().find(|f| f["type"] == "trade").expect("trade");
    assert_eq!(
        (
            trade["data"]["price"].as_str(),
            trade["data"]["quantity"].as_str()
        ),
        (Some("100"), Some("1"))
    );
    // The order room: only the owner, with an order_snapshot.
    let one = format!("order:alice/{}", buy.order_id);
    assert!(matches!(
        arena
            .attach(mallory.clone(), &room(&one), Some(&cid("bob")), None)
            .await,
        Err(AttachError::Forbidden)
    ));
    let request_id = roomcast_protocol::parse_request(r#"{"type":"ping","id":"req-7"}"#)
        .expect("ping")
        .id;
    assert!(request_id.is_some());
    arena
        .attach(alice.clone(), &room(&one), Some(&cid("alice")), request_id)
        .await
        .expect("own order");
    let snap = frames(&alice).await;
    assert_eq!(snap[0]["type"], "order_snapshot");
    assert_eq!(snap[0]["id"], "req-7", "the request id is echoed");
    assert_eq!(snap[0]["data"]["status"], "filled");
    // Rejects are events too.
    let e = arena
        .place_order(&cid("alice"), limit(OrderSide::Buy, "1", "100.001"))
        .await
        .expect_err("bad tick");
    assert_eq!(e.reason(), "invalid_tick");
    let got = frames(&alice).await;
    assert_eq!(got[0]["type"], "order_rejected");
    assert_eq!(got[0]["data"]["reason"], "invalid_tick");
    cancel.cancel();
    tasks.close();
    tasks.wait().await;
}

/// Applies a stream (snapshot, then events) and returns the state it shows.
#[derive(Default)]
struct Rebuilt {
    last_seq: BTreeMap<String, u64>,
    bids: BTreeMap<String, String>,
    asks: BTreeMap<String, String>,
    balances: BTreeMap<String, Value>,
    positions: BTreeMap<String, Value>,
    open: BTreeMap<u64, Value>,
}

impl Rebuilt {
    /// Asserts that what the frames rebuilt is the arena's book, `watched`'s portfolio and
    /// its open orders now; returns the book.
    async fn assert_is(&self, arena: &Arena, watched: &CollectiveId) -> BookView {
        let book = arena
            .book("BTC-USD", usize::MAX)
            .await
            .expect("book")
            .expect("symbol");
        let as_map = |levels: &[roomcast_arena::LevelView]| -> BTreeMap<String, String> {
            levels
                .iter()
                .map(|l| (l.price.clone(), l.quantity.clone()))
                .collect()
        };
        assert_eq!(self.bids, as_map(&book.bids));
        assert_eq!(self.asks, as_map(&book.asks));
        let portfolio = arena.portfolio(watched).await.expect("p").expect("account");
        for b in &portfolio.balances {
            assert_eq!(
                self.balances.get(&b.currency),
                Some(&serde_json::to_value(b).expect("json"))
            );
        }
        for p in &portfolio.positions {
            assert_eq!(
                self.positions.get(&p.symbol),
                Some(&serde_json::to_value(p).expect("json"))
            );
        }
        let open = arena.orders(watched, true).await.expect("orders");
        let open: BTreeMap<u64, Value> = open
            .iter()
            .map(|o| (o.order_id, serde_json::to_value(o).expect("json")))
            .collect();
        assert_eq!(self.open, open);
        book
    }

    fn apply(&mut self, f: &Value) {
        let room = f["room"].as_str().expect("room").to_owned();
        let seq = f["sequence"].as_u64().expect("sequence");
        let ty = f["type"].as_str().expect("type");
        let data = &f["data"];
        if ty.ends_with("_snapshot") {
            self.last_seq.insert(room, seq);
        } else {
            let last = self
                .last_seq
                .get(&room)
                .copied()
                .expect("event after a snapshot");
            assert_eq!(seq, last + 1, "{room}: no gap, no double");
            self.last_seq.insert(room, seq);
        }
        let levels = |m: &mut BTreeMap<String, String>, v: &Value| {
            for l in v.as_array().expect("levels") {
                let (p, q) = (
                    l["price"].as_str().expect("p").to_owned(),
                    l["quantity"].as_str().expect("q").to_owned(),
                );
                if q == "0" {
                    m.remove(&p);
                } else {
                    m.insert(p, q);
                }
            }
        };
        match ty {
            "book_snapshot" | "book_update" => {
                levels(&mut self.bids, &data["bids"]);
                levels(&mut self.asks, &data["asks"]);
            }
            "portfolio_snapshot" => {
                for b in data["balances"].as_array().expect("b") {
                    self.balances
                        .insert(b["currency"].as_str().expect("c").to_owned(), b.clone());
                }
                for p in data["positions"].as_array().expect("p") {
                    self.positions
                        .insert(p["symbol"].as_str().expect("s").to_owned(), p.clone());
                }
            }
            "balance_updated" => {
                self.balances.insert(
                    data["currency"].as_str().expect("c").to_owned(),
                    data.clone(),
                );
            }
            "position_updated" => {
                self.positions
                    .insert(data["symbol"].as_str().expect("s").to_owned(), data.clone());
            }
            "orders_snapshot" => {
                for o in data["orders"].as_array().expect("orders") {
                    self.open
                        .insert(o["order_id"].as_u64().expect("id"), o.clone());
                }
            }
            "order_created" | "order_partial" | "order_filled" | "order_cancelled" => {
                let id = data["order_id"].as_u64().expect("id");
                let mut order = data.clone();
                if let Some(o) = order.as_object_mut() {
                    o.remove("fill");
                }
                match data["status"].as_str() {
                    Some("open" | "partially_filled") => self.open.insert(id, order),
                    _ => self.open.remove(&id),
                };
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn snapshot_plus_events_rebuilds_the_state_exactly() {
    let hub = hub();
    let (arena, cancel, tasks) = start(ArenaConfig::default(), hub.clone(), None).await;
    let names: Vec<String> = (0..6).map(|i| format!("trader-{i}")).collect();
    for n in &names {
        arena
            .open_account(cid(n), funding(5_000_000, 200_000))
            .await
            .expect("open");
    }
    let mut rng = StdRng::seed_from_u64(7);
    let watched = cid("trader-0");
    let watcher = session(&hub, "watcher");
    let mut rebuilt = Rebuilt::default();
    let mut attached = false;
    for i in 0..600 {
        if i == 150 {
            // Attach mid-trading: the snapshot must line up with the events after it.
            for r in ["market:BTC-USD", "portfolio:trader-0", "orders:trader-0"] {
                arena
                    .attach(watcher.clone(), &room(r), Some(&watched), None)
                    .await
                    .expect("attach");
            }
            attached = true;
        }
        let who = cid(&names[rng.random_range(0..names.len())]);
        if rng.random_bool(0.2) {
            let open = arena.orders(&who, true).await.expect("orders");
            if !open.is_empty() {
                let o = &open[rng.random_range(0..open.len())];
                arena
                    .cancel_order(&who, o.order_id)
                    .await
                    .expect("cancel open order");
            }
        } else {
            let mut r = random_limit(&mut rng, 95..105);
            let tif =
                [TimeInForce::Gtc, TimeInForce::Gtc, TimeInForce::Ioc][rng.random_range(0..3)];
            r.time_in_force = tif;
            if rng.random_bool(0.05) {
                r.order_type = OrderType::Market;
                r.price = None;
            }
            // Rejects (insufficient funds/position) are part of the stream too.
            let _ = arena.place_order(&who, r).await;
        }
        if attached {
            for f in frames(&watcher).await {
                rebuilt.apply(&f);
            }
        }
    }
    let book = rebuilt.assert_is(&arena, &watched).await;
    assert!(
        !book.bids.is_empty() && !book.asks.is_empty(),
        "the test traded something"
    );
    assert!(arena.stats().trades > 0);
    cancel.cancel();
    tasks.close();
    tasks.wait().await;
}

/// Places a fixed script of orders and returns what the arena shows afterwards.
async fn script(arena: &Arena) {
    arena
        .open_account(cid("a"), funding(1_000_000, 50_000))
        .await
        .expect("open");
    arena
        .open_account(cid("b"), funding(1_000_000, 50_000))
        .await
        .expect("open");
    for i in 0..20u32 {
        let p = format!("{}", 100 + (i % 5));
        arena
            .place_order(&cid("a"), limit(OrderSide::Sell, "0.1", &p))
            .await
            .expect("sell");
        if i % 3 == 0 {
            arena
                .place_order(&cid("b"), limit(OrderSide::Buy, "0.15", "102"))
                .await
                .expect("buy");
        }
    }
    let open = arena.orders(&cid("a"), true).await.expect("orders");
    arena
        .cancel_order(&cid("a"), open[0].order_id)
        .await
        .expect("cancel");
    let mut tagged = limit(OrderSide::Buy, "0.01", "50");
    tagged.client_order_id = Some("tagged-1".into());
    arena.place_order(&cid("b"), tagged).await.expect("tagged");
}

async fn observe(arena: &Arena) -> Value {
    serde_json::json!({
        "a": arena.portfolio(&cid("a")).await.expect("p"),
        "b": arena.portfolio(&cid("b")).await.expect("p"),
        "a_orders": arena.orders(&cid("a"), false).await.expect("o"),
        "b_orders": arena.orders(&cid("b"), false).await.expect("o"),
        "book": arena.book("BTC-USD", usize::MAX).await.expect("b"),
        "trades": arena.trades("BTC-USD", 100).await.expect("t"),
        "markets": arena.markets().await,
    })
}

#[test]
fn the_store_survives_a_runtime_that_dies_without_shutdown() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (snapshot_every, fsync) in [
        (3u64, roomcast_arena::FsyncPolicy::Batch),
        (10_000, roomcast_arena::FsyncPolicy::Batch),
        (5, roomcast_arena::FsyncPolicy::Always),
    ] {
        let sub = dir.path().join(format!("every-{snapshot_every}-{fsync:?}"));
        let config = ArenaConfig {
            snapshot_every,
            fsync,
            ..ArenaConfig::default()
        };
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let (before, alive) = rt.block_on(async {
            let (arena, _cancel, _tasks) = start(config.clone(), hub(), Some(&sub)).await;
            script(&arena).await;
            (observe(&arena).await, arena)
        });
        // No cancel, no final snapshot: the tasks are dropped with the runtime. The handle
        // stays alive until then, so the exchange cannot see its queue close and stop cleanly.
        // Shutting down drops every task where it stands and waits for the store's
        // blocking writes (and, through the exchange's drop, the checkpoint thread).
        rt.shutdown_timeout(Duration::from_secs(10));
        drop(alive);
        if snapshot_every == 3 {
            // Only the checkpoint replica writes snapshots before a clean stop.
            let store = Store::open(Some(&sub)).expect("open");
            let rec = store.recover().expect("recover");
            assert!(
                rec.snapshot_seq > 0 && rec.snapshot.is_some(),
                "the replica wrote a checkpoint before the crash"
            );
        }
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let after = rt.block_on(async {
            let (arena, cancel, tasks) = start(config.clone(), hub(), Some(&sub)).await;
            assert!(
                arena.recovered_after_crash(),
                "the dropped runtime left the running flag"
            );
            let seen = observe(&arena).await;
            // client_order_id idempotency survives the restart.
            let mut tagged = limit(OrderSide::Buy, "0.01", "50");
            tagged.client_order_id = Some("tagged-1".into());
            let again = arena
                .place_order(&cid("b"), tagged)
                .await
                .expect("duplicate");
            let first = arena
                .orders(&cid("b"), false)
                .await
                .expect("orders")
                .into_iter()
                .find(|o| o.client_order_id.as_deref() == Some("tagged-1"))
                .map(|o| o.order_id);
            assert_eq!(Some(again.order_id), first);
            assert_eq!(
                arena.orders(&cid("b"), true).await.expect("orders").len(),
                1,
                "the duplicate placed nothing"
            );
            // And it keeps working: the next order gets the next id.
            let next = arena
                .place_order(&cid("b"), limit(OrderSide::Buy, "0.1", "1"))
                .await
                .expect("buy");
            cancel.cancel();
            tasks.close();
            tasks.wait().await;
            (seen, next.order_id)
        });
        assert_eq!(
            before, after.0,
            "snapshot_every {snapshot_every}, fsync {fsync:?}"
        );
        let max_id = before["a_orders"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(before["b_orders"].as_array().into_iter().flatten())
            .filter_map(|o| o["order_id"].as_u64())
            .max()
            .expect("orders");
        assert_eq!(after.1, max_id + 1);
    }
}

#[tokio::test]
async fn a_state_that_breaks_conservation_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (arena, cancel, tasks) = start(ArenaConfig::default(), hub(), Some(dir.path())).await;
        script(&arena).await;
        cancel.cancel();
        tasks.close();
        tasks.wait().await;
    }
    // Tamper: one cent appears in a's cash.
    {
        let store = Store::open(Some(dir.path())).expect("open");
        let rec = store.recover().expect("recover");
        assert!(
            rec.commands.is_empty(),
            "a clean stop leaves a snapshot and no log"
        );
        let mut snap = rec.snapshot.expect("snapshot");
        let cash = snap.accounts[0].cash.get_mut("USD").expect("usd");
        cash.total += 10_000;
        let batch = Batch {
            first_seq: rec.next_seq,
            commands: Vec::new(),
            snapshot: Some(snap),
            trim_to: 0,
        };
        store
            .write(&batch, redb::Durability::Immediate)
            .expect("write");
    }
    let tasks = TaskTracker::new();
    let e = Arena::start(
        ArenaConfig::default(),
        hub(),
        Some(dir.path()),
        &tasks,
        CancellationToken::new(),
    )
    .await;
    match e {
        Err(ArenaError::Conservation(msg)) => assert!(msg.contains("USD"), "{msg}"),
        other => panic!("expected a conservation error, got {other:?}"),
    }
    // Changing an instrument's units is refused too.
    let mut changed = ArenaConfig::default();
    changed.instruments[0].tick_size = "0.1".into();
    let e = Arena::start(
        changed,
        hub(),
        Some(dir.path()),
        &tasks,
        CancellationToken::new(),
    )
    .await;
    assert!(matches!(e, Err(ArenaError::Conservation(_))));
}

#[tokio::test]
async fn demo_bots_trade_through_the_public_path() {
    let hub = hub();
    let config = ArenaConfig {
        demo: Some(roomcast_arena::DemoConfig {
            orders_per_second: 400,
            ..roomcast_arena::DemoConfig::default()
        }),
        ..ArenaConfig::default()
    };
    let (arena, cancel, tasks) = start(config, hub.clone(), None).await;
    let watcher = session(&hub, "watcher");
    arena
        .attach(watcher.clone(), &room("market:BTC-USD"), None, None)
        .await
        .expect("attach");
    // Await the first trade the bots make (event-driven, bounded by a timeout).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut traded = false;
    while !traded {
        let mut out = VecDeque::new();
        tokio::time::timeout_at(deadline, watcher.outbox.drain(&mut out))
            .await
            .expect("a trade within 20 s");
        traded = out
            .iter()
            .filter_map(|b| serde_json::from_slice::<Value>(b).ok())
            .any(|f| f["type"] == "trade");
    }
    let bot = arena
        .portfolio(&cid("bot-1"))
        .await
        .expect("p")
        .expect("bot-1 has an account");
    assert_eq!(bot.positions.len(), 2);
    assert!(arena.stats().orders_accepted > 0);
    cancel.cancel();
    tasks.close();
    tokio::time::timeout(Duration::from_secs(10), tasks.wait())
        .await
        .expect("bots and exchange stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_traders_and_a_mid_stream_attach_still_line_up() {
    // A durable store, so batch writes take real time and the pipeline overlaps them.
    let dir = tempfile::tempdir().expect("tempdir");
    let history = Arc::new(MemoryHistory::new(Retention::all(
        100_000,
        Duration::from_secs(600),
    )));
    let hub = Hub::new(
        HubConfig {
            outbox_capacity: 1_000_000,
            ..HubConfig::default()
        },
        history,
    );
    let (arena, cancel, tasks) = start(ArenaConfig::default(), hub.clone(), Some(dir.path())).await;
    let names: Vec<String> = (0..8).map(|i| format!("trader-{i}")).collect();
    for n in &names {
        arena
            .open_account(cid(n), funding(5_000_000, 200_000))
            .await
            .expect("open");
    }
    let mut traders = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let arena = arena.clone();
        let who = cid(n);
        traders.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(i as u64);
            for _ in 0..150 {
                if rng.random_bool(0.15) {
                    let open = arena.orders(&who, true).await.expect("orders");
                    if let Some(o) = open.first() {
                        // It may fill between the read and the cancel: NotOpen is fine.
                        let _ = arena.cancel_order(&who, o.order_id).await;
                    }
                    continue;
                }
                let _ = arena
                    .place_order(&who, random_limit(&mut rng, 98..102))
                    .await;
            }
        }));
    }
    let watched = cid("trader-3");
    let watcher = session(&hub, "watcher");
    tokio::task::yield_now().await;
    for r in ["market:BTC-USD", "portfolio:trader-3", "orders:trader-3"] {
        arena
            .attach(watcher.clone(), &room(r), Some(&watched), None)
            .await
            .expect("attach");
    }
    for t in traders {
        t.await.expect("trader");
    }
    let mut rebuilt = Rebuilt::default();
    for f in frames(&watcher).await {
        rebuilt.apply(&f);
    }
    let book = rebuilt.assert_is(&arena, &watched).await;
    assert!(arena.stats().trades > 0);
    cancel.cancel();
    tasks.close();
    tasks.wait().await;
    // And the durable state after a clean stop passes the start-up check.
    let (again, cancel, tasks) = start(ArenaConfig::default(), hub.clone(), Some(dir.path())).await;
    assert!(
        !again.recovered_after_crash(),
        "a clean stop clears the running flag"
    );
    assert_eq!(
        again.book("BTC-USD", usize::MAX).await.expect("book"),
        Some(book)
    );
    cancel.cancel();
    tasks.close();
    tasks.wait().await;
}

#[tokio::test]
async fn fsync_never_keeps_everything_across_a_clean_stop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = ArenaConfig {
        fsync: roomcast_arena::FsyncPolicy::Never,
        ..ArenaConfig::default()
    };
    let (arena, cancel, tasks) = start(config.clone(), hub(), Some(dir.path())).await;
    script(&arena).await;
    let before = observe(&arena).await;
    cancel.cancel();
    tasks.close();
    tasks.wait().await;
    let (arena, cancel, tasks) = start(config, hub(), Some(dir.path())).await;
    assert!(!arena.recovered_after_crash());
    assert_eq!(observe(&arena).await, before);
    cancel.cancel();
    tasks.close();
    tasks.wait().await;
}

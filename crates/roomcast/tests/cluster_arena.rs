//! The trading arena on a Redis cluster (issue 13): one node runs the exchange
//! (`--arena-node`), every node serves its streams and its REST API. One real
//! `redis-server`, real `roomcast serve` processes, real signed HTTP and WebSocket clients.
//! Needs `redis-server` on the PATH (scripts/test installs it).

mod util;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use util::arena::*;
use util::cluster::{wait_ready, RedisServer};
use util::{recv_event, request, WAIT};

/// The arena node (`--arena-node`) and `others` more nodes, all with the same
/// collectives (acme and globex) and secrets.
async fn arena_cluster(redis: &RedisServer, others: usize) -> Vec<ArenaServer> {
    let url = redis.url();
    let mut nodes =
        vec![ArenaServer::start(&two(), None, &["--broker", &url, "--arena-node"]).await];
    for _ in 0..others {
        nodes.push(ArenaServer::start(&two(), None, &["--broker", &url]).await);
    }
    for node in &nodes {
        wait_ready(&node.server, 200).await;
    }
    nodes
}

/// Reads `c` until `done` holds for the events read so far (arena events only; acks,
/// pings and replay markers are skipped). Panics after [`WAIT`].
async fn read_until(
    c: &mut roomcast_client::Connection,
    mut done: impl FnMut(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    while !done(&seen) {
        assert!(Instant::now() < deadline, "events did not arrive: {seen:?}");
        let e = recv_event(c).await;
        if e["type"] != "ack" && e["type"] != "pong" && e["type"] != "replay_complete" {
            seen.push(e);
        }
    }
    seen
}

/// Whether `events` hold an order event of `type` for order `id`.
fn has_order_event(events: &[Value], ty: &str, id: u64) -> bool {
    events
        .iter()
        .any(|e| e["type"] == ty && e["data"]["order_id"] == id)
}

/// Checks that `events` continue `snap` with no gap, and returns the ids of the orders
/// they report created, in order.
fn created_after(events: &[Value], snap: &Value) -> Vec<u64> {
    assert_contiguous(
        events,
        snap["sequence"].as_u64().expect("seq"),
        &snap["epoch"],
    );
    events
        .iter()
        .filter(|e| e["type"] == "order_created")
        .map(|e| e["data"]["order_id"].as_u64().expect("id"))
        .collect()
}

/// Sequences of one room's events strictly increase by one, in one epoch.
fn assert_contiguous(events: &[Value], after: u64, epoch: &Value) {
    for (expected, e) in (after + 1..).zip(events) {
        assert_eq!(e["epoch"], *epoch, "{e}");
        assert_eq!(e["sequence"].as_u64(), Some(expected), "{e}");
    }
}

#[tokio::test]
async fn an_order_on_the_arena_node_reaches_streams_on_another_node_in_sequence_and_rest_agrees() {
    let redis = RedisServer::start().await;
    let nodes = arena_cluster(&redis, 1).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let acme_b = a.trader("acme").on(b.server.addr);
    let globex_a = a.trader("globex");

    // All three streams on the node without the exchange.
    let (mut orders_ws, orders_snap) = acme_b.stream("orders").await;
    assert_eq!(orders_snap["data"]["orders"], json!([]), "{orders_snap}");
    let mut orders = OrdersMirror::new(&orders_snap);
    let (mut portfolio_ws, portfolio_snap) = acme_b.stream("portfolio").await;
    let mut portfolio = PortfolioMirror::new(&portfolio_snap);
    let mut market_ws = acme_b.open_stream("market", "").await;
    let market_snap = attach(&mut market_ws, "market:BTC-USD").await;
    let mut market = BookMirror::new(&market_snap);

    // A resting sell placed on the arena node, a crossing buy placed through node B
    // (forwarded), and a resting buy through B.
    let resting = globex_a.place_ok(&limit("sell", "1", "100.00")).await;
    let taker = acme_b.place_ok(&limit("buy", "0.4", "101.00")).await;
    assert_eq!(taker["status"], "filled", "{taker}");
    let maker = acme_b.place_ok(&limit("buy", "1", "99.00")).await;
    let (t, m) = (
        taker["order_id"].as_u64().expect("id"),
        maker["order_id"].as_u64().expect("id"),
    );

    let order_events = read_until(&mut orders_ws, |s| has_order_event(s, "order_created", m)).await;
    assert_contiguous(
        &order_events,
        orders_snap["sequence"].as_u64().expect("seq"),
        &orders_snap["epoch"],
    );
    order_events.iter().for_each(|e| orders.apply(e));
    assert_taker_filled_then_maker(&order_events, t, m);
    // The market: the trade, then the book as both nodes' REST shows it.
    let market_events = read_until(&mut market_ws, |s| {
        s.iter().any(|e| e["type"] == "trade")
            && s.iter().any(|e| {
                e["type"] == "book_update"
                    && e["data"]["bids"].as_array().is_some_and(|l| {
                        l.iter()
                            .any(|lv| units(&lv["price"]) == units(&json!("99")))
                    })
            })
    })
    .await;
    assert_contiguous(
        &market_events,
        market_snap["sequence"].as_u64().expect("seq"),
        &market_snap["epoch"],
    );
    market_events.iter().for_each(|e| market.apply(e));
    for node in [a, b] {
        let book = node
            .get_public("/api/v1/markets/BTC-USD/book?depth=1000")
            .await;
        market.assert_matches(&book);
    }
    assert_eq!(market.trades.len(), 1, "{:?}", market.trades);

    // The portfolio: wait for the balance after the last order, then REST on both nodes.
    let rest_a = a.trader("acme").get("/api/v1/portfolio").await;
    let rest_b = acme_b.get("/api/v1/portfolio").await;
    assert_eq!(rest_a, rest_b);
    read_until(&mut portfolio_ws, |s| {
        let mut p = PortfolioMirror::new(&portfolio_snap);
        s.iter().for_each(|e| p.apply(e));
        p.balances
            .get("USD")
            .is_some_and(|usd| units(&usd["reserved"]) == units(&json!("99")))
    })
    .await
    .iter()
    .for_each(|e| portfolio.apply(e));
    portfolio.assert_matches(&rest_a);

    // The orders REST agrees with the stream on both nodes.
    let open: Vec<Value> = orders.open().into_values().collect();
    assert_eq!(
        Value::Array(open.clone()),
        acme_b.get("/api/v1/orders").await
    );
    assert_eq!(
        Value::Array(open),
        a.trader("acme").get("/api/v1/orders").await
    );
    assert_eq!(resting["status"], "open", "{resting}");
}

#[tokio::test]
async fn a_stream_reconnecting_to_another_node_replays_exactly_what_it_missed() {
    let redis = RedisServer::start().await;
    let nodes = arena_cluster(&redis, 1).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let (acme_a, globex_a) = (a.trader("acme").clone(), a.trader("globex").clone());
    let acme_b = acme_a.on(b.server.addr);
    // The reference stays up on the arena node (on acme's market connection: a second
    // orders stream of acme would supersede the first, cluster-wide).
    let mut steady = acme_a.open_stream("market", "").await;
    let steady_snap = attach(&mut steady, "orders:acme").await;
    // The stream under test starts on node B.
    let (mut ws, snap) = acme_b.stream("orders").await;
    assert_eq!(snap["sequence"], steady_snap["sequence"]);
    assert_eq!(snap["epoch"], steady_snap["epoch"]);

    let traders = [acme_a.clone(), globex_a.clone()];
    let trading = tokio::spawn(async move { random_orders(&traders, "BTC-USD", 60, 1, 11).await });
    let mut seen = read_until(&mut ws, |s| s.len() >= 5).await;
    drop(ws);
    let last = seen.last().expect("an event").clone();
    let (n, epoch) = (
        last["sequence"].as_u64().expect("seq"),
        last["epoch"].as_str().expect("epoch").to_owned(),
    );
    // Reconnect to the OTHER node (the arena node) while trading goes on.
    let mut reference = read_until(&mut steady, |s| {
        s.last()
            .is_some_and(|e| e["sequence"].as_u64() >= Some(n + 5))
    })
    .await;
    let mut ws = acme_a
        .open_stream("orders", &format!("?last_sequence={n}&epoch={epoch}"))
        .await;
    let tally = trading.await.expect("trading");
    assert!(tally.accepted > 10, "{tally:?}");
    // A marker order ends the run: both connections read up to its creation.
    let marker = acme_a.place_ok(&limit("buy", "0.0001", "1.00")).await;
    let marker = marker["order_id"].as_u64().expect("id");
    let after = read_until(&mut ws, |s| has_order_event(s, "order_created", marker)).await;
    reference
        .extend(read_until(&mut steady, |s| has_order_event(s, "order_created", marker)).await);
    let mut replayed = 0;
    for e in &after {
        assert_ne!(e["type"], "recovery_failed", "expected a replay: {e}");
        assert_ne!(e["type"], "orders_snapshot", "expected a replay: {e}");
        if e["replayed"] == true {
            replayed += 1;
        }
    }
    assert!(replayed >= 5, "{replayed} replayed");
    seen.extend(after.into_iter().map(|mut e| {
        if let Some(m) = e.as_object_mut() {
            m.remove("replayed");
        }
        e
    }));
    assert_eq!(seen.len(), reference.len());
    assert_eq!(
        seen, reference,
        "reconnected stream != a stream that stayed up"
    );
    assert_contiguous(
        &seen,
        snap["sequence"].as_u64().expect("seq"),
        &snap["epoch"],
    );
}

#[tokio::test]
async fn another_collective_cannot_see_private_events_on_any_node() {
    let redis = RedisServer::start().await;
    let nodes = arena_cluster(&redis, 1).await;
    for node in &nodes {
        let globex = node.trader("globex");
        let mut ws = globex.open_stream("market", "").await;
        for (i, req) in [
            json!({"type":"subscribe","room":"orders:acme"}),
            json!({"type":"subscribe","room":"portfolio:acme"}),
            json!({"type":"subscribe","room":"orders:acme","since":{"sequence":0}}),
        ]
        .into_iter()
        .enumerate()
        {
            let reply = request(&mut ws, req.clone(), json!(i)).await;
            assert_forbidden(&reply, &req.to_string());
        }
        // A plain client connection cannot read them either.
        let mut watcher = node.watcher("watcher").await;
        let reply = request(
            &mut watcher,
            json!({"type":"subscribe","room":"portfolio:acme"}),
            json!("w"),
        )
        .await;
        assert_eq!(reply["code"], "FORBIDDEN", "{reply}");
        // Nor publish into a market room.
        let reply = request(
            &mut watcher,
            json!({"type":"message","room":"market:BTC-USD","content":"x"}),
            json!("p"),
        )
        .await;
        assert_eq!(reply["type"], "error", "{reply}");
    }
    // acme's order is not in globex's REST view on either node.
    let order = nodes[0]
        .trader("acme")
        .place_ok(&limit("buy", "1", "90.00"))
        .await;
    let id = order["order_id"].as_u64().expect("id");
    for node in &nodes {
        let globex = nodes[0].trader("globex").on(node.server.addr);
        let (status, _) = globex
            .signed("GET", &format!("/api/v1/orders/{id}"), "")
            .await;
        assert_eq!(status, 404);
        let (status, _) = globex.cancel(id).await;
        assert_eq!(status, 404);
    }
}

#[tokio::test]
async fn kill9_of_a_node_without_the_exchange_does_not_disturb_trading() {
    let redis = RedisServer::start().await;
    let mut nodes = arena_cluster(&redis, 2).await;
    let victim = nodes.remove(1);
    let (a, c) = (&nodes[0], &nodes[1]);
    let acme_c = a.trader("acme").on(c.server.addr);
    let (mut orders_c, snap) = acme_c.stream("orders").await;
    let mut orders_victim = a
        .trader("acme")
        .on(victim.server.addr)
        .open_stream("market", "")
        .await;
    attach(&mut orders_victim, "orders:acme").await;
    let first = a.trader("acme").place_ok(&limit("buy", "1", "90.00")).await;
    let first = first["order_id"].as_u64().expect("id");
    read_until(&mut orders_victim, |s| {
        has_order_event(s, "order_created", first)
    })
    .await;
    victim.server.kill9().await;
    let started = Instant::now();
    let mut ids = vec![first];
    for i in 0..20 {
        let trader = if i % 2 == 0 {
            a.trader("acme").clone()
        } else {
            acme_c.clone()
        };
        let order = trader.place_ok(&limit("buy", "0.1", "91.00")).await;
        ids.push(order["order_id"].as_u64().expect("id"));
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "20 orders took {:?} after a node died",
        started.elapsed()
    );
    let last = *ids.last().expect("an id");
    let events = read_until(&mut orders_c, |s| has_order_event(s, "order_created", last)).await;
    let created = created_after(&events, &snap);
    assert_eq!(created, ids);
}

#[tokio::test]
async fn a_second_arena_claimant_does_not_run_an_exchange() {
    let redis = RedisServer::start().await;
    let url = redis.url();
    let first = ArenaServer::start(&two(), None, &["--broker", &url, "--arena-node"]).await;
    let second = ArenaServer::start(&two(), None, &["--broker", &url, "--arena-node"]).await;
    wait_ready(&second.server, 200).await;
    // The second claimant opened no exchange state of its own...
    assert!(first.server.data.path().join("arena.redb").exists());
    assert!(
        !second.server.data.path().join("arena.redb").exists(),
        "the second claimant runs an exchange"
    );
    // ...and serves the one exchange: an order placed through it is the first node's.
    let order = second
        .trader("acme")
        .place_ok(&limit("buy", "1", "95.00"))
        .await;
    let id = order["order_id"].as_u64().expect("id");
    let on_first = first
        .trader("acme")
        .get(&format!("/api/v1/orders/{id}"))
        .await;
    assert_eq!(on_first, order);
    let mut conn = redis.connection().await.expect("redis");
    let holders: Vec<String> = redis::cmd("KEYS")
        .arg("roomcast:arena:lease")
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    assert_eq!(holders.len(), 1);
}

/// Sends `signal` (`STOP`, `CONT`) to a node's process.
fn signal(node: &ArenaServer, signal: &str) {
    let pid = node.server.child.id().expect("a running node");
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid}");
}

/// Places `n` small resting orders one after another; returns their ids and the slowest
/// reply.
async fn place_resting(trader: &Trader, n: usize) -> (Vec<u64>, Duration) {
    let mut ids = Vec::with_capacity(n);
    let mut slowest = Duration::ZERO;
    for _ in 0..n {
        let started = Instant::now();
        let order = trader.place_ok(&limit("buy", "0.0001", "50.00")).await;
        slowest = slowest.max(started.elapsed());
        ids.push(order["order_id"].as_u64().expect("id"));
    }
    (ids, slowest)
}

#[tokio::test]
async fn a_stopped_node_does_not_slow_trading_or_delivery_on_the_others() {
    let redis = RedisServer::start().await;
    let nodes = arena_cluster(&redis, 2).await;
    let (a, stopped, c) = (&nodes[0], &nodes[1], &nodes[2]);
    // Followers of the same rooms on the node that will stop and on a healthy one.
    let mut on_stopped = a
        .trader("acme")
        .on(stopped.server.addr)
        .open_stream("market", "")
        .await;
    attach(&mut on_stopped, "orders:acme").await;
    attach(&mut on_stopped, "market:BTC-USD").await;
    let (mut on_c, snap) = a.trader("acme").on(c.server.addr).stream("orders").await;
    let acme = a.trader("acme").clone();
    let (before, slowest_before) = place_resting(&acme, 20).await;

    signal(stopped, "STOP");
    let started = Instant::now();
    let (during, slowest_during) = place_resting(&acme, 50).await;
    let last = *during.last().expect("an id");
    let events = read_until(&mut on_c, |s| has_order_event(s, "order_created", last)).await;
    let elapsed = started.elapsed();
    signal(stopped, "CONT");

    let created = created_after(&events, &snap);
    assert_eq!(created, [before, during].concat());
    // A stalled node costs the others nothing: no reply waits on it (a wait would be a
    // Redis command timeout, 2 s).
    assert!(
        slowest_during < Duration::from_secs(1),
        "slowest order {slowest_during:?} with a node stopped ({slowest_before:?} before)"
    );
    assert!(
        elapsed < Duration::from_secs(5),
        "50 orders and their delivery took {elapsed:?}"
    );
}

#[tokio::test]
async fn with_redis_down_orders_fail_fast_and_trading_resumes_with_fresh_streams() {
    let mut redis = RedisServer::start().await;
    let nodes = arena_cluster(&redis, 1).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let acme_b = a.trader("acme").on(b.server.addr);
    let (mut stream, snap) = acme_b.stream("orders").await;
    let first = a.trader("acme").place_ok(&limit("buy", "1", "90.00")).await;
    let first = first["order_id"].as_u64().expect("id");
    read_until(&mut stream, |s| has_order_event(s, "order_created", first)).await;

    redis.kill9().await;
    // Orders fail fast with 503 (never hang, never 500) once the node sees Redis gone.
    let deadline = Instant::now() + WAIT;
    loop {
        let started = Instant::now();
        let (status, body) = a.trader("acme").place(&limit("buy", "0.1", "80.00")).await;
        assert!(started.elapsed() < Duration::from_secs(3), "an order hung");
        assert!(status == 201 || status == 503, "{status} {body}");
        if status == 503 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "orders kept succeeding without Redis"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    redis.restart().await;
    for node in &nodes {
        wait_ready(&node.server, 200).await;
    }
    let deadline = Instant::now() + WAIT;
    let after = loop {
        let (status, body) = a.trader("acme").place(&limit("buy", "0.2", "85.00")).await;
        if status == 201 {
            break body["order_id"].as_u64().expect("id");
        }
        assert_eq!(status, 503, "{body}");
        assert!(Instant::now() < deadline, "trading did not resume: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The stream was told it cannot resume across the loss, before the new order's event,
    // which belongs to a new epoch: never a silent skip.
    let events = read_until(&mut stream, |s| has_order_event(s, "order_created", after)).await;
    let failed = events
        .iter()
        .position(|e| e["type"] == "recovery_failed")
        .unwrap_or_else(|| panic!("no recovery_failed: {events:?}"));
    let created = events
        .iter()
        .position(|e| has_order_event(std::slice::from_ref(e), "order_created", after))
        .expect("the new order");
    assert!(failed < created, "{events:?}");
    assert_ne!(events[created]["epoch"], snap["epoch"]);
    // A fresh snapshot on the other node shows exactly what REST shows.
    drop(stream);
    let (_fresh, snap) = acme_b.stream("orders").await;
    let open: Vec<Value> = OrdersMirror::new(&snap).open().into_values().collect();
    assert_eq!(Value::Array(open), acme_b.get("/api/v1/orders").await);
}

//! The trading arena end to end (issue 10, "Tests"), against the real binary over real
//! HTTP and WebSocket connections: signed orders reaching the owner's streams and the
//! public market, privacy between collectives, signed-request failures, every reject
//! reason, `client_order_id` idempotency, IOC remainders, stream reconnects with
//! `last_sequence`, snapshot + events == REST after random trading, `kill -9` recovery
//! and conservation of cash and quantities.

mod util;

use std::collections::BTreeMap;

use serde_json::{json, Value};
use util::arena::*;
use util::*;

fn id_of(order: &Value) -> u64 {
    order["order_id"]
        .as_u64()
        .unwrap_or_else(|| panic!("an order id: {order}"))
}

/// Reads `c` up to a barrier and applies everything to `apply`.
async fn settle(c: &mut roomcast_client::Connection, mut apply: impl FnMut(&Value)) {
    for event in barrier(c).await {
        apply(&event);
    }
}

#[tokio::test]
async fn a_signed_order_reaches_the_owners_streams_and_the_market_and_rest_agrees() {
    let arena = ArenaServer::start(&two(), None, &[]).await;
    let (acme, globex) = (arena.trader("acme"), arena.trader("globex"));

    let (mut orders_ws, snap) = acme.stream("orders").await;
    assert_eq!(snap["room"], "orders:acme");
    assert_eq!(snap["data"]["orders"], json!([]), "{snap}");
    let mut orders = OrdersMirror::new(&snap);
    let (mut portfolio_ws, snap) = acme.stream("portfolio").await;
    let mut portfolio = PortfolioMirror::new(&snap);
    portfolio.assert_matches(&acme.get("/api/v1/portfolio").await);
    // The public market from a plain client connection and from a collective's stream.
    let mut watcher = arena.watcher("watcher").await;
    let mut market = BookMirror::new(&attach(&mut watcher, "market:BTC-USD").await);
    let mut globex_market_ws = globex.open_stream("market", "").await;
    let mut globex_market = BookMirror::new(&attach(&mut globex_market_ws, "market:BTC-USD").await);

    let resting = globex.place_ok(&limit("sell", "1", "100.00")).await;
    let taker = acme.place_ok(&limit("buy", "0.4", "101.00")).await;
    assert_eq!(taker["status"], "filled", "{taker}");
    assert_eq!(
        units(&taker["average_fill_price"]),
        units(&json!("100")),
        "{taker}"
    );
    let maker = acme.place_ok(&limit("buy", "1", "99.00")).await;
    assert_eq!(maker["status"], "open", "{maker}");

    // Events are published before the HTTP reply is sent: a barrier sees them all.
    settle(&mut orders_ws, |e| orders.apply(e)).await;
    settle(&mut portfolio_ws, |e| portfolio.apply(e)).await;
    settle(&mut watcher, |e| market.apply(e)).await;
    settle(&mut globex_market_ws, |e| globex_market.apply(e)).await;

    // The orders stream: created then filled for the taker, created for the maker.
    let (t, m) = (id_of(&taker), id_of(&maker));
    assert_taker_filled_then_maker(&orders.events, t, m);
    let fill = &orders.events[1]["data"]["fill"];
    assert_eq!(units(&fill["price"]), units(&json!("100")), "{fill}");
    assert_eq!(fill["liquidity"], "taker", "{fill}");
    assert_eq!(units(&fill["quantity"]), units(&json!("0.4")));
    // REST agrees exactly with the last event of each order.
    for (id, last) in &orders.orders {
        let rest = acme.get(&format!("/api/v1/orders/{id}")).await;
        assert_eq!(&rest, last, "order {id}");
    }
    assert_eq!(orders.orders[&t], order_of(&taker));
    assert_eq!(orders.orders[&m], maker);
    let open: Vec<Value> = orders.open().into_values().collect();
    assert_eq!(Value::Array(open), acme.get("/api/v1/orders").await);

    // The portfolio: absolute values; the buy at a better price released its excess.
    let rest = acme.get("/api/v1/portfolio").await;
    portfolio.assert_matches(&rest);
    let usd = &portfolio.balances["USD"];
    assert_eq!(units(&usd["total"]), units(&json!("99960")), "{usd}");
    assert_eq!(units(&usd["reserved"]), units(&json!("99")), "{usd}");
    assert_eq!(units(&usd["available"]), units(&json!("99861")), "{usd}");
    let btc = &portfolio.positions["BTC-USD"];
    assert_eq!(units(&btc["quantity"]), units(&json!("10.4")), "{btc}");

    // The market: one trade, the book as REST shows it, the same on both connections.
    let book = arena
        .get_public("/api/v1/markets/BTC-USD/book?depth=1000")
        .await;
    market.assert_matches(&book);
    globex_market.assert_matches(&book);
    assert_eq!(market.events, globex_market.events);
    assert_eq!(market.trades.len(), 1, "{:?}", market.trades);
    let trades = arena
        .get_public("/api/v1/markets/BTC-USD/trades?limit=10")
        .await;
    assert_eq!(trades, json!([market.trades[0].clone()]));
    assert_eq!(market.trades[0]["taker_side"], "buy");
    let ticker = market.tickers.last().expect("a ticker");
    let summary = arena.get_public("/api/v1/markets").await;
    let btc_market = summary
        .as_array()
        .and_then(|l| l.iter().find(|m| m["symbol"] == "BTC-USD"))
        .expect("BTC-USD listed")
        .clone();
    for field in ["last_price", "best_bid", "best_ask", "volume"] {
        assert_eq!(
            ticker[field], btc_market[field],
            "{field}: {ticker} {btc_market}"
        );
    }
    assert_eq!(units(&ticker["best_bid"]), units(&json!("99")), "{ticker}");
    assert_eq!(units(&ticker["best_ask"]), units(&json!("100")), "{ticker}");
    // The resting sell's owner sees its partial fill over REST.
    let resting = globex
        .get(&format!("/api/v1/orders/{}", id_of(&resting)))
        .await;
    assert_eq!(resting["status"], "partially_filled", "{resting}");

    // subscribe_order follows one order: its snapshot, then its events.
    let mut follow = acme.open_stream("market", "").await;
    follow
        .send_json(&json!({"type":"subscribe_order","order_id":m,"id":"follow"}))
        .await
        .expect("send");
    let snap = recv_event(&mut follow).await;
    assert_eq!(snap["type"], "order_snapshot", "{snap}");
    assert_eq!(snap["room"], format!("order:acme/{m}"), "{snap}");
    assert_eq!(snap["data"], maker, "{snap}");
    let ack = recv_event(&mut follow).await;
    assert_eq!(
        (ack["type"].clone(), ack["id"].clone()),
        (json!("ack"), json!("follow"))
    );
    assert_eq!(ack["sequence"], snap["sequence"], "{ack}");
    globex.place_ok(&limit("sell", "1", "99.00")).await;
    let filled = recv_event(&mut follow).await;
    assert_eq!(filled["type"], "order_filled", "{filled}");
    assert_eq!(filled["room"], snap["room"], "{filled}");
    assert_eq!(
        filled["sequence"].as_u64(),
        snap["sequence"].as_u64().map(|s| s + 1),
        "{filled}"
    );
    assert_eq!(
        order_of(&filled["data"]),
        acme.get(&format!("/api/v1/orders/{m}")).await
    );
    assert!(barrier(&mut follow).await.is_empty());
}

#[tokio::test]
async fn another_collective_can_neither_see_nor_cancel_an_order() {
    let arena = ArenaServer::start(&two(), None, &[]).await;
    let (acme, globex) = (arena.trader("acme"), arena.trader("globex"));
    let (mut acme_orders, _) = acme.stream("orders").await;
    let order = acme.place_ok(&limit("buy", "1", "90.00")).await;
    let id = id_of(&order);
    let seen = barrier(&mut acme_orders).await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    let epoch = seen[0]["epoch"].as_str().expect("epoch").to_owned();

    // Subscribing, replaying and presence from globex's own stream are refused (a fresh
    // connection each time: repeated refusals close a connection with 4031).
    let mut reads = acme_private_reads(id, &epoch);
    reads.push((
        json!({"type":"subscribe","room":format!("order:acme/{id}")}),
        "subscribe order",
    ));
    reads.push((json!({"type":"presence","room":"orders:acme"}), "presence"));
    for (req, what) in reads {
        let mut g = globex.open_stream("market", "").await;
        let reply = request(&mut g, req, json!(what)).await;
        assert_forbidden(&reply, what);
    }
    // The same from a plain client connection.
    let mut w = arena.watcher("globex-watcher").await;
    let reply = request(
        &mut w,
        json!({"type":"subscribe","room":"orders:acme"}),
        json!(1),
    )
    .await;
    assert_eq!(reply["code"], "FORBIDDEN", "{reply}");
    // acme itself may follow the order (sanity check that the refusals mean something).
    let reply = request(
        &mut acme_orders,
        json!({"type":"subscribe_order","order_id":id}),
        json!("own"),
    )
    .await;
    assert_eq!(reply["type"], "ack", "{reply}");

    // acme's stream with globex's key: closed 4001 before anything is delivered.
    let url = arena.server.url("/ws/acme/orders");
    let mut c = roomcast_client::Connection::connect(&url)
        .await
        .expect("connect");
    let challenge = recv_json(&mut c).await;
    assert_eq!(challenge["type"], "auth_challenge", "{challenge}");
    let text = challenge["challenge"].as_str().expect("challenge");
    let forged = globex.sign(text, "", "", "");
    c.send_json(&json!({"type":"auth_response","signature":forged}))
        .await
        .expect("send");
    match c.recv_timeout(WAIT).await.expect("a reply") {
        roomcast_client::Incoming::Closed { code, .. } => assert_eq!(code, Some(4001)),
        other => panic!("expected the close, got {other:?}"),
    }

    // A JWT opens a collective's stream only when it names that collective.
    for token in [
        arena.token("globex", None),
        arena.token("someone", Some("globex")),
    ] {
        let url = arena.server.url(&format!("/ws/acme/orders?token={token}"));
        let mut c = roomcast_client::Connection::connect(&url)
            .await
            .expect("connect");
        match c.recv_timeout(WAIT).await.expect("a reply") {
            roomcast_client::Incoming::Closed { code, .. } => assert_eq!(code, Some(4001)),
            other => panic!("expected the close, got {other:?}"),
        }
    }
    // (The portfolio stream: a second orders stream would supersede acme's.)
    let url = arena.server.url(&format!(
        "/ws/acme/portfolio?token={}",
        arena.token("trader-1", Some("acme"))
    ));
    let mut c = roomcast_client::Connection::connect(&url)
        .await
        .expect("connect");
    assert_eq!(recv_json(&mut c).await["type"], "welcome");
    let snap = recv_event(&mut c).await;
    assert_eq!(snap["type"], "portfolio_snapshot", "{snap}");
    assert_eq!(snap["data"], acme.get("/api/v1/portfolio").await);

    // History of the private room: admin only.
    let path = "/api/history/orders:acme";
    let (status, body) = arena.server.http_request("GET", path, None, None).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = arena
        .server
        .http_request("GET", path, Some(ADMIN), None)
        .await;
    assert_eq!(status, 200, "{body}");

    // Cancel and read: 404 as if the order did not exist (same as a made-up id).
    let (status, v) = globex.cancel(id).await;
    assert_eq!(status, 404, "{v}");
    assert_eq!(v["error"]["code"], "unknown_order", "{v}");
    let (status, missing) = globex.cancel(id + 1000).await;
    assert_eq!(status, 404);
    assert_eq!(v["error"], missing["error"]);
    let (status, v) = globex
        .signed("GET", &format!("/api/v1/orders/{id}"), "")
        .await;
    assert_eq!(status, 404, "{v}");
    assert_eq!(globex.get("/api/v1/orders?status=all").await, json!([]));
    // The order is untouched, and globex's attempts left no event on acme's stream.
    let still = acme.get(&format!("/api/v1/orders/{id}")).await;
    assert_eq!(still, order);
    let after = barrier(&mut acme_orders).await;
    assert!(after.is_empty(), "{after:?}");
}

#[tokio::test]
async fn every_signed_request_failure_is_401_with_a_json_code() {
    let arena = ArenaServer::start(&two(), None, &[]).await;
    let (acme, globex) = (arena.trader("acme"), arena.trader("globex"));
    let body = limit("buy", "1", "90.00").to_string();
    let path = "/api/v1/orders";
    let good = |ts: i64| acme.headers(ts, "POST", path, &body);
    let without = |name: &str| {
        let mut h = good(acme.timestamp());
        h.retain(|(n, _)| n != name);
        h
    };
    let with = |name: &str, value: &str, ts: i64| {
        let mut h = good(ts);
        for (n, v) in &mut h {
            if n == name {
                *v = value.to_owned();
            }
        }
        h
    };
    let now = acme.timestamp();
    let mut wrong_key = good(now);
    wrong_key[2].1 = globex.sign(&now.to_string(), "POST", path, &body);
    let stale_past = acme.headers(now_ms() - 31_000, "POST", path, &body);
    let stale_future = acme.headers(now_ms() + 31_000, "POST", path, &body);
    let ts = acme.timestamp();
    let unknown = vec![
        ("X-Collective-Id".to_owned(), "initech".to_owned()),
        ("X-Timestamp".to_owned(), ts.to_string()),
        (
            "X-Signature".to_owned(),
            acme.sign(&ts.to_string(), "POST", path, &body),
        ),
    ];
    let cases: Vec<(&str, Headers, String, &str)> = vec![
        ("no headers", Vec::new(), body.clone(), "missing_signature"),
        (
            "no id",
            without("X-Collective-Id"),
            body.clone(),
            "missing_signature",
        ),
        (
            "no timestamp",
            without("X-Timestamp"),
            body.clone(),
            "missing_signature",
        ),
        (
            "no signature",
            without("X-Signature"),
            body.clone(),
            "missing_signature",
        ),
        (
            "bad base64",
            with("X-Signature", "not base64!", acme.timestamp()),
            body.clone(),
            "invalid_signature",
        ),
        (
            "short signature",
            with("X-Signature", "AAAA", acme.timestamp()),
            body.clone(),
            "invalid_signature",
        ),
        (
            "bad timestamp",
            with("X-Timestamp", "yesterday", acme.timestamp()),
            body.clone(),
            "invalid_timestamp",
        ),
        ("wrong key", wrong_key, body.clone(), "invalid_signature"),
        (
            "body changed",
            good(acme.timestamp()),
            body.replace("90.00", "10.00"),
            "invalid_signature",
        ),
        ("stale -31 s", stale_past, body.clone(), "stale_timestamp"),
        ("stale +31 s", stale_future, body.clone(), "stale_timestamp"),
        (
            "unknown collective",
            unknown,
            body.clone(),
            "unknown_collective",
        ),
    ];
    for (what, headers, body, code) in cases {
        let (status, v) = acme.raw("POST", path, &headers, &body).await;
        assert_eq!(status, 401, "{what}: {v}");
        assert_eq!(v["error"]["code"], code, "{what}: {v}");
        assert!(v["error"]["message"].is_string(), "{what}: {v}");
    }
    // A replayed signature: the first use works, the second is refused.
    let headers = acme.headers(acme.timestamp(), "GET", "/api/v1/portfolio", "");
    let (status, _) = acme.raw("GET", "/api/v1/portfolio", &headers, "").await;
    assert_eq!(status, 200);
    let (status, v) = acme.raw("GET", "/api/v1/portfolio", &headers, "").await;
    assert_eq!(status, 401, "{v}");
    assert_eq!(v["error"]["code"], "replayed_signature", "{v}");
    // The same for an order: one order placed, the replay refused.
    let headers = good(acme.timestamp());
    let (status, v) = acme.raw("POST", path, &headers, &body).await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = acme.raw("POST", path, &headers, &body).await;
    assert_eq!(
        (status, v["error"]["code"].clone()),
        (401, json!("replayed_signature"))
    );
    // A signature for another path does not authorise this one.
    let ts = acme.timestamp();
    let headers = acme.headers(ts, "GET", "/api/v1/orders", "");
    let (status, v) = acme
        .raw("GET", "/api/v1/orders?status=all", &headers, "")
        .await;
    assert_eq!(
        (status, v["error"]["code"].clone()),
        (401, json!("invalid_signature"))
    );
    // A JWT bearer token instead of a signature: its collective_id claim, else its sub,
    // must name a registered collective.
    let mine = acme.get("/api/v1/portfolio").await;
    for token in [arena.token("acme", None), arena.token("bot", Some("acme"))] {
        let (status, body) = arena
            .server
            .http_request("GET", "/api/v1/portfolio", Some(&token), None)
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            serde_json::from_str::<Value>(&body).ok(),
            Some(mine.clone())
        );
    }
    let forged = {
        let other = "not-the-server-secret-0123456789abcdef";
        let request = roomcast_engine::auth::jwt::MintRequest::new(
            "acme",
            std::time::Duration::from_secs(3600),
        );
        roomcast_engine::auth::jwt::mint_hs256(other, &request, time::OffsetDateTime::now_utc())
            .expect("mint")
    };
    for (token, code) in [
        (arena.token("initech", None), "unknown_collective"),
        (forged, "invalid_token"),
    ] {
        let (status, body) = arena
            .server
            .http_request("GET", "/api/v1/portfolio", Some(&token), None)
            .await;
        assert_eq!(status, 401, "{body}");
        let v: Value = serde_json::from_str(&body).expect("JSON error");
        assert_eq!(v["error"]["code"], code, "{v}");
    }
    // Nothing but the one good order was placed.
    let all = acme.get("/api/v1/orders?status=all").await;
    assert_eq!(all.as_array().map(Vec::len), Some(1), "{all}");
}

#[tokio::test]
async fn every_reject_reason_is_a_422_and_an_order_rejected_event() {
    let config = r#"
[arena]
[[arena.instruments]]
symbol = "BTC-USD"
tick_size = "0.01"
lot_size = "0.0001"

[[arena.instruments]]
symbol = "HALT-USD"
tick_size = "0.01"
lot_size = "1"
open = false
"#;
    let funding = [Funding::new("acme", 100_000, &[("BTC-USD", "1")])];
    let arena = ArenaServer::start(&funding, Some(config), &[]).await;
    let markets = arena.get_public("/api/v1/markets").await;
    let halt = markets
        .as_array()
        .and_then(|l| l.iter().find(|m| m["symbol"] == "HALT-USD"))
        .unwrap_or_else(|| panic!("HALT-USD listed: {markets}"));
    assert_eq!(halt["status"], "closed", "{halt}");
    let acme = arena.trader("acme");
    let (mut ws, _) = acme.stream("orders").await;
    let cases = [
        ("insufficient_funds", limit("buy", "1", "1000.01")),
        ("insufficient_position", limit("sell", "1.0001", "100.00")),
        ("invalid_tick", limit("buy", "1", "100.001")),
        ("invalid_lot", limit("buy", "0.00001", "100.00")),
        (
            "unknown_symbol",
            json!({"symbol":"NOPE-USD","side":"buy","type":"limit","quantity":"1","price":"1.00"}),
        ),
        (
            "market_closed",
            json!({"symbol":"HALT-USD","side":"buy","type":"limit","quantity":"1","price":"1.00"}),
        ),
        ("invalid_quantity", limit("buy", "0", "100.00")),
        ("invalid_quantity", limit("buy", "-1", "100.00")),
        ("invalid_quantity", limit("buy", "1e3", "100.00")),
        ("invalid_price", limit("buy", "1", "0")),
        ("invalid_price", limit("buy", "1", "-5.00")),
        (
            "invalid_price",
            json!({"symbol":"BTC-USD","side":"buy","type":"limit","quantity":"1"}),
        ),
        (
            "invalid_price",
            json!({"symbol":"BTC-USD","side":"buy","type":"market","quantity":"1","price":"100.00"}),
        ),
    ];
    for (reason, order) in &cases {
        let (status, v) = acme.place(order).await;
        assert_eq!(status, 422, "{reason} {order}: {v}");
        assert_eq!(v["error"]["reason"], *reason, "{order}: {v}");
        assert!(v["error"]["code"].is_string(), "{v}");
        let event = recv_event(&mut ws).await;
        assert_eq!(event["type"], "order_rejected", "{reason}: {event}");
        assert_eq!(event["data"]["reason"], *reason, "{event}");
        assert_eq!(event["data"]["symbol"], order["symbol"], "{event}");
        assert_eq!(event["data"]["quantity"], order["quantity"], "{event}");
    }
    // The exact limits pass: all the cash, all the position.
    acme.place_ok(&limit("buy", "1", "1000.00")).await;
    acme.place_ok(&limit("sell", "1", "1000.01")).await;
    // Nothing was placed by the rejected ones, and no balance moved for them.
    let open = acme.get("/api/v1/orders").await;
    assert_eq!(open.as_array().map(Vec::len), Some(2), "{open}");
    let p = acme.get("/api/v1/portfolio").await;
    assert_eq!(units(&p["balances"][0]["available"]), 0, "{p}");
    assert_eq!(units(&p["positions"][0]["available"]), 0, "{p}");
}

#[tokio::test]
async fn a_client_order_id_places_one_order() {
    let arena = ArenaServer::start(&two(), None, &[]).await;
    let (acme, globex) = (arena.trader("acme"), arena.trader("globex"));
    let (mut ws, _) = acme.stream("orders").await;
    let mut order = limit("buy", "1", "95.00");
    order["client_order_id"] = json!("strategy-7:0001");
    let first = acme.place_ok(&order).await;
    assert_eq!(first["client_order_id"], "strategy-7:0001");
    let again = acme.place_ok(&order).await;
    assert_eq!(again, first);
    // Even with different fields, the id names the first order.
    let mut changed = limit("buy", "2", "96.00");
    changed["client_order_id"] = json!("strategy-7:0001");
    assert_eq!(acme.place_ok(&changed).await, first);
    let events = barrier(&mut ws).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["type"], "order_created");
    let open = acme.get("/api/v1/orders?status=all").await;
    assert_eq!(open, json!([first.clone()]));
    let p = acme.get("/api/v1/portfolio").await;
    assert_eq!(
        units(&p["balances"][0]["reserved"]),
        units(&json!("95")),
        "{p}"
    );
    // Another collective's identical id is its own order.
    let theirs = globex.place_ok(&order).await;
    assert_ne!(id_of(&theirs), id_of(&first));
    // After the order is done, the id still returns it (no second order).
    let (status, _) = acme.cancel(id_of(&first)).await;
    assert_eq!(status, 200);
    let after = acme.place_ok(&order).await;
    assert_eq!(id_of(&after), id_of(&first));
    assert_eq!(after["status"], "cancelled", "{after}");
}

#[tokio::test]
async fn an_ioc_remainder_is_cancelled() {
    let arena = ArenaServer::start(&two(), None, &[]).await;
    let (acme, globex) = (arena.trader("acme"), arena.trader("globex"));
    let (mut ws, _) = acme.stream("orders").await;
    let (mut pws, snap) = acme.stream("portfolio").await;
    let mut portfolio = PortfolioMirror::new(&snap);
    globex.place_ok(&limit("sell", "0.3", "100.00")).await;
    let mut ioc = limit("buy", "1", "100.50");
    ioc["time_in_force"] = json!("ioc");
    let placed = acme.place_ok(&ioc).await;
    assert_eq!(placed["status"], "cancelled", "{placed}");
    assert_eq!(placed["cancel_reason"], "unfilled", "{placed}");
    assert_eq!(units(&placed["filled_quantity"]), units(&json!("0.3")));
    assert_eq!(units(&placed["remaining_quantity"]), 0, "{placed}");
    assert_eq!(units(&placed["reserved_cash"]), 0, "{placed}");
    let events = barrier(&mut ws).await;
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(
        kinds,
        ["order_created", "order_partial", "order_cancelled"],
        "{events:?}"
    );
    let last = order_of(&events[2]["data"]);
    assert_eq!(
        last,
        acme.get(&format!("/api/v1/orders/{}", id_of(&placed)))
            .await
    );
    assert_eq!(last, placed);
    // The unused reservation is released: nothing reserved, 30.00 spent.
    settle(&mut pws, |e| portfolio.apply(e)).await;
    let rest = acme.get("/api/v1/portfolio").await;
    portfolio.assert_matches(&rest);
    let usd = &portfolio.balances["USD"];
    assert_eq!(units(&usd["reserved"]), 0, "{usd}");
    assert_eq!(units(&usd["total"]), units(&json!("99970")), "{usd}");
    assert_eq!(acme.get("/api/v1/orders").await, json!([]));
    // A market order with nothing to trade against is cancelled whole.
    let market = json!({"symbol":"BTC-USD","side":"buy","type":"market","quantity":"1"});
    let placed = acme.place_ok(&market).await;
    assert_eq!(placed["status"], "cancelled", "{placed}");
    assert_eq!(units(&placed["filled_quantity"]), 0, "{placed}");
}

#[tokio::test]
async fn an_orders_stream_reconnecting_with_last_sequence_gets_exactly_what_it_missed() {
    let arena = ArenaServer::start(&two(), None, &[]).await;
    let (acme, globex) = (arena.trader("acme").clone(), arena.trader("globex").clone());
    // The reference: acme's market connection follows its orders room and stays up.
    let mut steady = acme.open_stream("market", "").await;
    let steady_snap = attach(&mut steady, "orders:acme").await;
    let (mut ws, snap) = acme.stream("orders").await;
    assert_eq!(snap["sequence"], steady_snap["sequence"]);

    let traders = [acme.clone(), globex.clone()];
    let trading = tokio::spawn(async move { random_orders(&traders, "BTC-USD", 100, 1, 7).await });
    // Read a few events, then drop the connection mid-trading.
    let mut seen = Vec::new();
    while seen.len() < 5 {
        let e = recv_event(&mut ws).await;
        seen.push(e);
    }
    ws.close().await.expect("close");
    drop(ws);
    let last = seen.last().expect("an event");
    let (n, epoch) = (
        last["sequence"].as_u64().expect("seq"),
        last["epoch"].as_str().expect("epoch").to_owned(),
    );
    // Let the steady connection see at least 5 events the dropped one missed, then
    // reconnect while the trading goes on.
    let mut reference = Vec::new();
    while reference
        .last()
        .is_none_or(|e: &Value| e["sequence"].as_u64() < Some(n + 5))
    {
        reference.push(recv_event(&mut steady).await);
    }
    let mut ws = acme
        .open_stream("orders", &format!("?last_sequence={n}&epoch={epoch}"))
        .await;
    let tally = trading.await.expect("trading");
    assert!(tally.accepted > 20, "{tally:?}");
    let mut replayed = 0;
    let mut after = Vec::new();
    let mut complete = None;
    for e in barrier(&mut ws).await {
        match e["type"].as_str() {
            Some("replay_complete") => complete = Some(e),
            Some("recovery_failed") | Some("orders_snapshot") => panic!("expected a replay: {e}"),
            _ => {
                if e["replayed"] == true {
                    assert!(complete.is_none(), "replayed after replay_complete: {e}");
                    replayed += 1;
                } else {
                    assert!(complete.is_some(), "live event before replay_complete: {e}");
                }
                let mut e = e;
                if let Some(m) = e.as_object_mut() {
                    m.remove("replayed");
                }
                after.push(e);
            }
        }
    }
    let complete = complete.expect("replay_complete");
    assert_eq!(complete["replayed_count"], replayed, "{complete}");
    assert!(replayed >= 5, "{replayed} replayed");
    assert!(
        after.len() > replayed,
        "no live events after the replay: not mid-trading"
    );
    seen.extend(after);
    reference.extend(barrier(&mut steady).await);
    assert_eq!(seen.len(), reference.len());
    assert_eq!(
        seen, reference,
        "reconnected stream != a stream that stayed up"
    );
    let mut mirror = OrdersMirror::new(&steady_snap);
    reference.iter().for_each(|e| mirror.apply(e));
    let open: Vec<Value> = mirror.open().into_values().collect();
    assert_eq!(Value::Array(open), acme.get("/api/v1/orders").await);
}

#[tokio::test]
async fn snapshots_plus_events_equal_rest_after_1000_random_orders_from_10_collectives() {
    let funding: Vec<Funding> = (0..10)
        .map(|i| Funding::new(&format!("c{i}"), 100_000_000, &[("BTC-USD", "100")]))
        .collect();
    let arena = ArenaServer::start(&funding, None, &[]).await;
    let mut orders = Vec::new();
    let mut portfolios = Vec::new();
    for t in &arena.traders {
        let (ws, snap) = t.stream("orders").await;
        orders.push((ws, OrdersMirror::new(&snap)));
        let (ws, snap) = t.stream("portfolio").await;
        portfolios.push((ws, PortfolioMirror::new(&snap)));
    }
    let mut watcher = arena.watcher("watcher").await;
    let mut book = BookMirror::new(&attach(&mut watcher, "market:BTC-USD").await);

    // Some random orders first, so snapshots taken mid-way are not empty.
    random_orders(&arena.traders, "BTC-USD", 20, 2, 1).await;
    settle(&mut watcher, |e| book.apply(e)).await;
    let started = std::time::Instant::now();
    let traders = arena.traders.clone();
    let trading = tokio::spawn(async move { random_orders(&traders, "BTC-USD", 80, 2, 2).await });
    // Joining mid-trading (once the market has moved): each snapshot is taken atomically
    // with its room's sequence.
    let moved = book.sequence + 20;
    while book.sequence < moved {
        book.apply(&recv_event(&mut watcher).await);
    }
    let mut late = arena.watcher("late").await;
    let (snap, after) = attach_busy(&mut late, "market:BTC-USD").await;
    let mut late_book = BookMirror::new(&snap);
    after.iter().for_each(|e| late_book.apply(e));
    let mut late_private = Vec::new();
    for t in &arena.traders[..4] {
        // One connection following both private rooms (the collective's market stream).
        let mut c = t.open_stream("market", "").await;
        let (snap, after) = attach_busy(&mut c, &format!("orders:{}", t.id)).await;
        let mut o = OrdersMirror::new(&snap);
        after.iter().for_each(|e| o.apply(e));
        let (snap, after) = attach_busy(&mut c, &format!("portfolio:{}", t.id)).await;
        let mut p = PortfolioMirror::new(&snap);
        for e in &after {
            if e["room"] == o.room.as_str() {
                o.apply(e);
            } else {
                p.apply(e);
            }
        }
        late_private.push((c, o, p, t.clone()));
    }
    let tally = trading.await.expect("trading");
    eprintln!("1000 random orders: {tally:?} in {:?}", started.elapsed());
    assert!(
        late_book.sequence > book.sequence,
        "the late snapshot was not taken mid-trading"
    );
    assert_eq!(tally.accepted + tally.rejected, 800, "{tally:?}");
    assert!(tally.accepted > 500, "{tally:?}");

    for ((ws, mirror), t) in orders.iter_mut().zip(&arena.traders) {
        settle(ws, |e| mirror.apply(e)).await;
        let all = t.get("/api/v1/orders?status=all").await;
        let rest: BTreeMap<u64, Value> = all
            .as_array()
            .expect("orders")
            .iter()
            .map(|o| (id_of(o), o.clone()))
            .collect();
        assert_eq!(mirror.orders, rest, "{} orders", t.id);
        let open: Vec<Value> = mirror.open().into_values().collect();
        assert_eq!(
            Value::Array(open),
            t.get("/api/v1/orders").await,
            "{}",
            t.id
        );
    }
    for ((ws, mirror), t) in portfolios.iter_mut().zip(&arena.traders) {
        settle(ws, |e| mirror.apply(e)).await;
        mirror.assert_matches(&t.get("/api/v1/portfolio").await);
    }
    let mut late_events = 0;
    for (c, o, p, t) in &mut late_private {
        settle(c, |e| {
            if e["room"] == o.room.as_str() {
                o.apply(e);
            } else {
                p.apply(e);
            }
        })
        .await;
        let open: Vec<Value> = o.open().into_values().collect();
        assert_eq!(
            Value::Array(open),
            t.get("/api/v1/orders").await,
            "{}",
            t.id
        );
        p.assert_matches(&t.get("/api/v1/portfolio").await);
        late_events += o.events.len();
    }
    assert!(late_events > 0, "no order events after the late snapshots");
    settle(&mut watcher, |e| book.apply(e)).await;
    settle(&mut late, |e| late_book.apply(e)).await;
    assert!(
        !late_book.events.is_empty(),
        "no events after the late snapshot: not taken mid-trading"
    );
    let rest = arena
        .get_public("/api/v1/markets/BTC-USD/book?depth=1000")
        .await;
    book.assert_matches(&rest);
    late_book.assert_matches(&rest);
    // Every trade reached the market stream; REST lists the newest first.
    let trades = arena
        .get_public("/api/v1/markets/BTC-USD/trades?limit=1000")
        .await;
    let mut streamed = book.trades.clone();
    streamed.reverse();
    assert_eq!(Value::Array(streamed), trades);
    arena.assert_conserved().await;
    arena.assert_books_are_open_orders().await;
    arena.assert_reservations_are_open_orders().await;
}

#[tokio::test]
async fn kill9_and_restart_keep_balances_positions_reservations_and_open_orders() {
    let funding: Vec<Funding> = (0..4)
        .map(|i| {
            Funding::new(
                &format!("k{i}"),
                50_000_000,
                &[("BTC-USD", "50"), ("ETH-USD", "100")],
            )
        })
        .collect();
    // A checkpoint every 7 commands: the kill lands between, and during, checkpoint
    // writes and log trims, and recovery starts from a checkpoint plus a log tail.
    let arena = ArenaServer::start(&funding, Some("[arena]\nsnapshot_every = 7\n"), &[]).await;
    random_orders(&arena.traders, "BTC-USD", 60, 2, 11).await;
    random_orders(&arena.traders, "ETH-USD", 20, 1, 12).await;
    let (_ws, snap) = arena.traders[0].stream("orders").await;
    let before = arena.rest_state().await;
    // Sanity: the state has reservations and open orders to lose.
    let open: usize = before["collectives"]
        .as_object()
        .expect("collectives")
        .values()
        .map(|c| c["open"].as_array().map_or(0, Vec::len))
        .sum();
    assert!(open > 0, "no open orders: {before}");
    arena.assert_books_are_open_orders().await;
    arena.assert_reservations_are_open_orders().await;

    let arena = arena.kill9_and_restart().await;
    let after = arena.rest_state().await;
    assert_eq!(after, before, "REST state changed across kill -9");
    arena.assert_conserved().await;
    arena.assert_books_are_open_orders().await;
    arena.assert_reservations_are_open_orders().await;

    // A stream resuming from before the crash cannot be replayed (new epoch): it gets
    // recovery_failed and a fresh snapshot, never a silent skip.
    let t = &arena.traders[0];
    let query = format!(
        "?last_sequence={}&epoch={}",
        snap["sequence"],
        snap["epoch"].as_str().expect("epoch")
    );
    let mut ws = t.open_stream("orders", &query).await;
    let failed = recv_event(&mut ws).await;
    assert_eq!(failed["type"], "recovery_failed", "{failed}");
    let fresh = recv_event(&mut ws).await;
    assert_eq!(fresh["type"], "orders_snapshot", "{fresh}");
    assert_eq!(fresh["data"]["orders"], t.get("/api/v1/orders").await);

    // The recovered exchange keeps trading from where it was.
    let placed = t.place_ok(&limit("buy", "0.001", "1.00")).await;
    let highest = before["collectives"]
        .as_object()
        .expect("collectives")
        .values()
        .flat_map(|c| c["all"].as_array().cloned().unwrap_or_default())
        .map(|o| id_of(&o))
        .max()
        .expect("orders");
    assert!(id_of(&placed) > highest, "order ids restart: {placed}");

    // kill -9 with orders in flight: every order whose 201 arrived survives.
    let (tx, mut acked) = tokio::sync::mpsc::unbounded_channel::<(usize, Value)>();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for (i, t) in arena.traders.iter().enumerate() {
        let (t, tx, stop) = (t.clone(), tx.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            for n in 0u32.. {
                if stop.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                let side = if (n + i as u32).is_multiple_of(2) {
                    "buy"
                } else {
                    "sell"
                };
                let price = format!("{}.{:02}", 99 + n % 2, (n * 25) % 100);
                match t.try_place(&limit(side, "0.01", &price)).await {
                    Ok((201, order)) => drop(tx.send((i, order))),
                    Ok((status, v)) => panic!("{status} {v}"),
                    Err(_) => return,
                }
            }
        }));
    }
    drop(tx);
    let mut survivors = Vec::new();
    while survivors.len() < 40 {
        survivors.push(acked.recv().await.expect("an acknowledged order"));
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let arena = arena.kill9_and_restart().await;
    for task in tasks {
        task.await.expect("trading task");
    }
    while let Ok(more) = acked.try_recv() {
        survivors.push(more);
    }
    for (i, order) in &survivors {
        let id = id_of(order);
        let t = &arena.traders[*i];
        let now = t.get(&format!("/api/v1/orders/{id}")).await;
        for field in ["symbol", "side", "price", "quantity", "created_at_ms"] {
            assert_eq!(
                now[field], order[field],
                "order {id} {field}: {now} vs {order}"
            );
        }
        assert!(
            units(&now["filled_quantity"]) >= units(&order["filled_quantity"]),
            "order {id} lost fills: {now} vs {order}"
        );
    }
    arena.assert_conserved().await;
    arena.assert_books_are_open_orders().await;
    arena.assert_reservations_are_open_orders().await;
}

#[tokio::test]
async fn random_trading_conserves_cash_and_quantities() {
    let funding: Vec<Funding> = (0..5)
        .map(|i| {
            Funding::new(
                &format!("s{i}"),
                30_000_000 + i * 1_234,
                &[("BTC-USD", "0.2")],
            )
        })
        .collect();
    // With short selling allowed positions go negative, and the sums still hold.
    let arena = ArenaServer::start(&funding, None, &["--allow-shorts"]).await;
    arena.assert_conserved().await;
    let tally = random_orders(&arena.traders, "BTC-USD", 80, 2, 3).await;
    assert!(tally.accepted > 200, "{tally:?}");
    arena.assert_conserved().await;
    let shorts = {
        let mut n = 0;
        for t in &arena.traders {
            let p = t.get("/api/v1/portfolio").await;
            n += p["positions"]
                .as_array()
                .expect("positions")
                .iter()
                .filter(|p| units(&p["quantity"]) < 0)
                .count();
        }
        n
    };
    eprintln!("{tally:?}, {shorts} short positions");
    assert!(
        shorts > 0,
        "no collective went short: the test proves less than it says"
    );
}

#[tokio::test]
async fn bad_input_is_a_400_or_422_never_a_500() {
    let arena = ArenaServer::start(&two(), None, &[]).await;
    let acme = arena.trader("acme");
    arena
        .trader("globex")
        .place_ok(&limit("sell", "1", "100.00"))
        .await;
    let base = limit("buy", "1", "100.00");
    let with = |field: &str, value: Value| {
        let mut o = base.clone();
        o[field] = value;
        o.to_string()
    };
    let long = "x".repeat(10_000);
    let bodies: Vec<(String, &[u16])> = vec![
        (String::new(), &[400]),
        ("not json".to_owned(), &[400]),
        ("[]".to_owned(), &[400]),
        (with("quantity", json!(1)), &[400]),
        (with("price", json!(100.0)), &[400]),
        (with("side", json!("hold")), &[400]),
        (with("type", json!("stop")), &[400]),
        (with("time_in_force", json!("day")), &[400]),
        (with("extra", json!(true)), &[400]),
        (with("symbol", json!(long)), &[422]),
        (with("symbol", json!("")), &[422]),
        (with("client_order_id", json!("x".repeat(65))), &[422]),
        (with("client_order_id", json!("ü")), &[422]),
        (with("quantity", json!("99999999999999999999999999999999")), &[422]),
        (with("quantity", json!("1.00000000000000000000001")), &[422]),
        (with("price", json!("99999999999999999999999999999999.99")), &[422]),
        (with("price", json!("0.000000000000000000001")), &[422]),
        (with("quantity", json!("NaN")), &[422]),
        (with("quantity", json!("Infinity")), &[422]),
        (with("quantity", json!("1e2")), &[422]),
        (with("quantity", json!("0x10")), &[422]),
        (with("quantity", json!("1_000")), &[422]),
        (with("quantity", json!(" 1")), &[422]),
        (with("quantity", json!("+1")), &[201, 422]),
        (with("quantity", json!(".5")), &[201, 422]),
        (with("quantity", json!("5.")), &[201, 422]),
        (with("quantity", json!("")), &[422]),
        (with("price", json!("")), &[422]),
        (
            json!({"symbol":"BTC-USD","side":"buy","type":"market","quantity":"1000000"})
                .to_string(),
            &[201, 422],
        ),
        (
            json!({"symbol":"BTC-USD","side":"sell","type":"market","quantity":"1000000"})
                .to_string(),
            &[201, 422],
        ),
        (
            json!({"symbol":"BTC-USD","side":"buy","type":"limit","quantity":"5","price":"100.00","time_in_force":"fok"})
                .to_string(),
            &[201],
        ),
    ];
    for (body, allowed) in &bodies {
        let (status, v) = acme.signed("POST", "/api/v1/orders", body).await;
        assert!(allowed.contains(&status), "{body}: {status} {v}");
        if status != 201 {
            assert!(v["error"]["code"].is_string(), "{body}: {v}");
            assert!(v["error"]["message"].is_string(), "{body}: {v}");
        }
    }
    let paths: [(&str, &str, u16); 13] = [
        ("GET", "/api/v1/orders/abc", 404),
        ("GET", "/api/v1/orders/0", 404),
        ("GET", "/api/v1/orders/-1", 404),
        ("GET", "/api/v1/orders/99999999999999999999999", 404),
        ("DELETE", "/api/v1/orders/abc", 404),
        ("DELETE", "/api/v1/orders/18446744073709551615", 404),
        ("GET", "/api/v1/orders?status=closed", 400),
        ("GET", "/api/v1/orders?colour=red", 400),
        ("GET", "/api/v1/markets/NOPE-USD/book", 404),
        ("GET", "/api/v1/markets/BTC-USD/book?depth=abc", 400),
        (
            "GET",
            "/api/v1/markets/BTC-USD/book?depth=99999999999999999999999",
            400,
        ),
        ("GET", "/api/v1/markets/BTC-USD/trades?limit=-1", 400),
        ("GET", "/api/v1/markets/BTC-USD/book?depth=0", 200),
    ];
    for (method, path, want) in paths {
        let (status, v) = acme.signed(method, path, "").await;
        assert_eq!(status, want, "{method} {path}: {v}");
        if want != 200 {
            assert!(v["error"]["code"].is_string(), "{method} {path}: {v}");
        }
    }
    // The exchange is still consistent and serving.
    arena.assert_conserved().await;
    arena.assert_books_are_open_orders().await;
    arena.assert_reservations_are_open_orders().await;
}

#[tokio::test]
async fn the_three_streams_share_the_collectives_connection_limit() {
    let arena = ArenaServer::start(&two(), None, &["--max-connections-per-client", "2"]).await;
    let acme = arena.trader("acme");
    let (_orders, _) = acme.stream("orders").await;
    let (_portfolio, _) = acme.stream("portfolio").await;
    let url = arena.server.url("/ws/acme/market");
    let mut c = roomcast_client::Connection::connect(&url)
        .await
        .expect("connect");
    let challenge = recv_json(&mut c).await;
    let text = challenge["challenge"].as_str().expect("challenge");
    c.send_json(&json!({"type":"auth_response","signature":acme.sign(text, "", "", "")}))
        .await
        .expect("send");
    let (code, reason) = recv_close(&mut c).await;
    assert_eq!(code, Some(4022), "{reason}");
    // Another collective is not affected.
    let (_g, snap) = arena.trader("globex").stream("orders").await;
    assert_eq!(snap["room"], "orders:globex");
}

/// A signed request captured before a `kill -9` cannot be replayed on the restarted server,
/// although its timestamp is still inside the 30 s window and the new process never saw
/// the signature.
#[tokio::test]
async fn a_signed_order_cannot_be_replayed_across_a_restart() {
    let arena = ArenaServer::start(&[Funding::new("acme", 10_000_000, &[])], None, &[]).await;
    let body =
        json!({"symbol":"BTC-USD","side":"buy","type":"limit","quantity":"0.01","price":"100.00"})
            .to_string();
    let acme = arena.trader("acme");
    let captured = acme.headers(acme.timestamp(), "POST", "/api/v1/orders", &body);
    let (status, placed) = acme.raw("POST", "/api/v1/orders", &captured, &body).await;
    assert_eq!(status, 201, "{placed}");
    let (status, again) = acme.raw("POST", "/api/v1/orders", &captured, &body).await;
    assert_eq!(
        (status, again["error"]["code"].as_str()),
        (401, Some("replayed_signature"))
    );

    let arena = arena.kill9_and_restart().await;
    let acme = arena.trader("acme");
    let (status, replay) = acme.raw("POST", "/api/v1/orders", &captured, &body).await;
    assert_eq!(
        (status, replay["error"]["code"].as_str()),
        (401, Some("stale_timestamp")),
        "{replay}"
    );
    let open = acme.get("/api/v1/orders?status=all").await;
    assert_eq!(open.as_array().map(Vec::len), Some(1), "{open}");
    // A request signed now is accepted.
    let (status, fresh) = acme.place(&json!({"symbol":"BTC-USD","side":"buy","type":"limit","quantity":"0.01","price":"99.00"})).await;
    assert_eq!(status, 201, "{fresh}");
}

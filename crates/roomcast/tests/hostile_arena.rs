//! The bad-input catalogue's rows for authenticated collectives and the trading arena
//! (docs/SECURITY.md): replayed Ed25519 signatures and signed REST requests, reaching into
//! another collective's rooms, history and orders, and hostile order fields. Each attack
//! runs while a bystander pair keeps receiving every tick in order.

mod util;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::Signer;
use roomcast_client::Connection;
use serde_json::{json, Value};
use util::arena::*;
use util::hostile::*;
use util::*;

fn two() -> Vec<Funding> {
    vec![
        Funding::new("acme", 10_000_000, &[("BTC-USD", "10")]),
        Funding::new("globex", 10_000_000, &[("BTC-USD", "10")]),
    ]
}

fn limit(side: &str, qty: &str, price: &str) -> Value {
    json!({"symbol":"BTC-USD","side":side,"type":"limit","quantity":qty,"price":price})
}

#[tokio::test]
async fn replayed_ed25519_signatures_and_signed_requests_are_refused() {
    let arena = ArenaServer::start(&two(), None, &[]).await;
    let bystander = Bystander::start_with(&arena.server, Some(SECRET)).await;
    let acme = arena.trader("acme");

    // A challenge answered once opens a session; the same answer on another connection
    // (which got its own challenge) is refused: 4001 "Invalid signature".
    let url = arena.server.url("/ws/acme?auth=ed25519");
    let mut first = Connection::connect(&url).await.expect("connect");
    let challenge = recv_json(&mut first).await;
    let text = challenge["challenge"].as_str().expect("challenge");
    let signature = STANDARD.encode(key_for(0).sign(text.as_bytes()).to_bytes());
    let answer = json!({"type":"auth_response","signature":signature});
    first.send_json(&answer).await.expect("send");
    assert_eq!(recv_json(&mut first).await["type"], "auth_ok");
    let mut second = Connection::connect(&url).await.expect("connect");
    assert_eq!(recv_json(&mut second).await["type"], "auth_challenge");
    second.send_json(&answer).await.expect("send");
    let (code, reason) = bystander.during(recv_close(&mut second)).await;
    assert_eq!((code, reason.as_str()), (Some(4001), "Invalid signature"));

    // A signed order sent twice: one order, the replay is 401 replayed_signature.
    let path = "/api/v1/orders";
    let body = limit("buy", "1", "90.00").to_string();
    let headers = acme.headers(acme.timestamp(), "POST", path, &body);
    let (status, v) = acme.raw("POST", path, &headers, &body).await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = bystander
        .during(acme.raw("POST", path, &headers, &body))
        .await;
    assert_eq!(
        (status, v["error"]["code"].clone()),
        (401, json!("replayed_signature"))
    );
    let open = acme.get("/api/v1/orders").await;
    assert_eq!(open.as_array().map(Vec::len), Some(1), "{open}");
    bystander.finish().await;
}

#[tokio::test]
async fn another_collective_cannot_subscribe_replay_read_history_or_cancel() {
    let arena = ArenaServer::start(&two(), None, &[]).await;
    let bystander = Bystander::start_with(&arena.server, Some(SECRET)).await;
    let (acme, globex) = (arena.trader("acme"), arena.trader("globex"));
    let (mut acme_orders, _) = acme.stream("orders").await;
    let order = acme.place_ok(&limit("buy", "1", "90.00")).await;
    let id = order["order_id"].as_u64().expect("order id");
    let seen = barrier(&mut acme_orders).await;
    let epoch = seen[0]["epoch"].as_str().expect("epoch").to_owned();

    for (req, what) in acme_private_reads(id, &epoch) {
        let mut g = globex.open_stream("orders", "").await;
        let reply = bystander.during(request(&mut g, req, json!(what))).await;
        assert_forbidden(&reply, what);
    }
    // History of another collective's room: a private room's history needs the admin key;
    // a collective's token or signature is not it.
    let token = arena.token("globex", Some("globex"));
    let (status, body) = bystander
        .during(
            arena
                .server
                .http_request("GET", "/api/history/orders:acme", Some(&token), None),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("FORBIDDEN"), "{body}");
    let headers = globex.headers(globex.timestamp(), "GET", "/api/history/orders:acme", "");
    let (status, v) = globex
        .raw("GET", "/api/history/orders:acme", &headers, "")
        .await;
    assert_eq!(
        (status, v["error"]["code"].clone()),
        (403, json!("FORBIDDEN")),
        "{v}"
    );
    // Cancelling another collective's order: 404, as if it did not exist; it stays open.
    let (status, v) = bystander.during(globex.cancel(id)).await;
    assert_eq!(status, 404, "{v}");
    let open = acme.get("/api/v1/orders").await;
    assert_eq!(open.as_array().map(Vec::len), Some(1), "{open}");
    bystander.finish().await;
}

#[tokio::test]
async fn hostile_quantities_prices_and_duplicate_client_order_ids() {
    let arena = ArenaServer::start(&two(), None, &[]).await;
    let bystander = Bystander::start_with(&arena.server, Some(SECRET)).await;
    let acme = arena.trader("acme");
    let huge = "99999999999999999999999999999999";
    let cases: Vec<(Value, u16, &str)> = vec![
        (limit("buy", "0", "100.00"), 422, "invalid_quantity"),
        (limit("buy", "-1", "100.00"), 422, "invalid_quantity"),
        (limit("buy", huge, "100.00"), 422, "invalid_quantity"),
        (limit("buy", "1", "0"), 422, "invalid_price"),
        (limit("buy", "1", "-5.00"), 422, "invalid_price"),
        (
            limit("buy", "1", &format!("{huge}.99")),
            422,
            "invalid_price",
        ),
        (limit("buy", "1", "1e400"), 422, "invalid_price"),
        (
            json!({"symbol":"BTC-USD","side":"buy","type":"limit","quantity":1,"price":"1"}),
            400,
            "",
        ),
    ];
    for (order, want, reason) in &cases {
        let (status, v) = bystander.during(acme.place(order)).await;
        assert_eq!(status, *want, "{order}: {v}");
        if !reason.is_empty() {
            assert_eq!(v["error"]["reason"], *reason, "{order}: {v}");
        }
    }
    // A repeated client_order_id names the first order, whatever the other fields say.
    let mut order = limit("buy", "1", "95.00");
    order["client_order_id"] = json!("dup-1");
    let first = acme.place_ok(&order).await;
    let mut changed = limit("buy", "2", "96.00");
    changed["client_order_id"] = json!("dup-1");
    for o in [&order, &changed] {
        let again = bystander.during(acme.place_ok(o)).await;
        assert_eq!(again, first);
    }
    let open = acme.get("/api/v1/orders").await;
    assert_eq!(open, json!([first]));
    arena.assert_conserved().await;
    bystander.finish().await;
}

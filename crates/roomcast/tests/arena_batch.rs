//! `POST /api/v1/orders/batch` against the real binary: several orders under one
//! signature, each answered as the single-order route would have answered it, in order,
//! inside one durable commit; and every malformed batch refused whole before anything
//! is placed.

mod util;

use serde_json::{json, Value};
use util::arena::*;
use util::*;

const BATCH: &str = "/api/v1/orders/batch";

/// Signs and posts `body` to the batch route.
async fn batch(trader: &Trader, body: &Value) -> (u16, Value) {
    trader.signed("POST", BATCH, &body.to_string()).await
}

#[tokio::test]
async fn a_batch_answers_each_order_as_the_single_route_would_in_order() {
    let arena = ArenaServer::start(&two(), None, &[]).await;
    let (acme, globex) = (arena.trader("acme"), arena.trader("globex"));
    let (mut ws, _) = acme.stream("orders").await;

    let mut tagged = limit("sell", "1", "101.00");
    tagged["client_order_id"] = json!("batch-1");
    let body = json!([
        limit("sell", "1", "100.00"),
        tagged,
        limit("sell", "1", "100.001"),
        limit("sell", "50", "102.00"),
    ]);
    let (status, reply) = batch(acme, &body).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["accepted"], 2, "{reply}");
    let results = reply["results"].as_array().expect("results");
    assert_eq!(results.len(), 4, "{reply}");
    let statuses: Vec<u64> = results
        .iter()
        .filter_map(|r| r["status"].as_u64())
        .collect();
    assert_eq!(statuses, [201, 201, 422, 422], "{reply}");
    assert_eq!(results[2]["error"]["reason"], "invalid_tick", "{reply}");
    assert_eq!(
        results[3]["error"]["reason"], "insufficient_position",
        "{reply}"
    );
    assert!(results[2].get("order").is_none(), "{reply}");
    let first = &results[0]["order"];
    let second = &results[1]["order"];
    assert!(
        first["order_id"].as_u64() < second["order_id"].as_u64(),
        "placed in the request's order: {reply}"
    );

    // The orders stream saw the two placements then the two rejections, in order.
    let events = barrier(&mut ws).await;
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "order_created",
            "order_created",
            "order_rejected",
            "order_rejected"
        ],
        "{events:?}"
    );
    // REST agrees with the batch's replies.
    assert_eq!(
        acme.get("/api/v1/orders").await,
        json!([first.clone(), second.clone()])
    );

    // A second batch repeating the client_order_id gets the first order back, and a
    // crossing batch from globex trades against both resting orders.
    let mut again = limit("sell", "5", "100.00");
    again["client_order_id"] = json!("batch-1");
    let (status, reply) = batch(acme, &json!({ "orders": [again] })).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["results"][0]["order"], *second, "{reply}");
    let (status, reply) = batch(
        globex,
        &json!([limit("buy", "1", "100.00"), limit("buy", "1", "101.00")]),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["accepted"], 2, "{reply}");
    for r in reply["results"].as_array().expect("results") {
        assert_eq!(r["status"], 201, "{reply}");
        assert_eq!(r["order"]["status"], "filled", "{reply}");
    }
    assert_eq!(acme.get("/api/v1/orders").await, json!([]));
    arena.assert_conserved().await;
}

#[tokio::test]
async fn a_bad_batch_is_refused_whole_and_places_nothing() {
    let arena = ArenaServer::start(&two(), None, &[]).await;
    let acme = arena.trader("acme");
    let one = limit("buy", "1", "90.00");

    let cases: Vec<(Value, &str)> = vec![
        (json!([]), "1-20 orders"),
        (json!(vec![one.clone(); 21]), "1-20 orders"),
        (
            json!([one.clone(), {"symbol":"BTC-USD","side":"up"}]),
            "order 1",
        ),
        (json!({"orders": "none"}), "invalid batch"),
        (json!({"items": [one.clone()]}), "invalid batch"),
    ];
    for (body, says) in cases {
        let (status, reply) = batch(acme, &body).await;
        assert_eq!(status, 400, "{body}: {reply}");
        assert_eq!(reply["error"]["code"], "BAD_REQUEST", "{reply}");
        let message = reply["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{body}: {message}");
    }
    // Not JSON at all.
    let (status, reply) = acme.signed("POST", BATCH, "[{").await;
    assert_eq!(status, 400, "{reply}");

    // Unsigned, and a signature replayed: 401 with the signed-request codes.
    let body = json!([one.clone()]).to_string();
    let (status, reply) = acme.raw("POST", BATCH, &[], &body).await;
    assert_eq!(status, 401, "{reply}");
    let headers = acme.headers(acme.timestamp(), "POST", BATCH, &body);
    let (status, _) = acme.raw("POST", BATCH, &headers, &body).await;
    assert_eq!(status, 200);
    let (status, reply) = acme.raw("POST", BATCH, &headers, &body).await;
    assert_eq!(status, 401, "{reply}");
    assert_eq!(reply["error"]["code"], "replayed_signature", "{reply}");

    // Only the one signed, well-formed batch placed anything.
    let open = acme.get("/api/v1/orders").await;
    assert_eq!(open.as_array().map(Vec::len), Some(1), "{open}");
}

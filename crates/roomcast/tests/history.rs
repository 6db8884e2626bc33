//! Event history and reconnect recovery (issue 4), against the real binary.

mod util;

use roomcast_client::{Connection, Incoming};
use serde_json::{json, Value};
use util::*;

const KEY: &str = "test-api-key-1";

async fn publish(server: &TestServer, room: &str, n: u64) -> Value {
    let (status, body) = post_json(
        server,
        "/api/publish",
        Some(KEY),
        &json!({"room":room,"type":"tick","data":{"n":n}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn publish_batch(server: &TestServer, room: &str, from: u64, count: u64, pad: &str) -> Value {
    publish_ticks(server, KEY, room, from, count, pad).await
}

/// Reads until `replay_complete` / `recovery_failed` for `room`; returns the replayed
/// events and the terminating message.
async fn read_replay(c: &mut Connection, room: &str) -> (Vec<Value>, Value) {
    let mut events = Vec::new();
    loop {
        let v = recv_event(c).await;
        match v["type"].as_str() {
            Some("replay_complete" | "recovery_failed") if v["room"] == room => return (events, v),
            Some("ack" | "welcome" | "user_left") => continue,
            _ => {
                assert_eq!(
                    v["replayed"], true,
                    "only replayed events before the end marker: {v}"
                );
                events.push(v);
            }
        }
    }
}

#[tokio::test]
async fn reconnect_with_last_sequence_gets_exactly_what_was_missed() {
    let server = TestServer::start(&["--api-key", KEY]).await;
    let mut c = server.connect("alice").await;
    let first = publish(&server, "general", 0).await;
    let seen = recv_event(&mut c).await;
    assert_eq!(seen["sequence"], first["sequence"]);
    assert_eq!(seen["type"], "tick");
    assert_eq!(seen["data"], json!({"n":0}));
    let last = seen["sequence"].as_u64().expect("sequence");
    let epoch = seen["epoch"].clone();
    c.close().await.expect("close");

    for n in 1..=50 {
        publish(&server, "general", n).await;
    }
    let mut c = server
        .connect_raw(&format!("alice?last_sequence={last}"))
        .await;
    assert_eq!(recv_json(&mut c).await["type"], "welcome");
    let (events, end) = read_replay(&mut c, "general").await;
    assert_eq!(
        end,
        json!({"type":"replay_complete","room":"general","replayed_count":50})
    );
    let seqs: Vec<u64> = events
        .iter()
        .filter_map(|e| e["sequence"].as_u64())
        .collect();
    assert_eq!(seqs, (last + 1..=last + 50).collect::<Vec<_>>());
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["data"]["n"], i as u64 + 1);
        assert_eq!(e["epoch"], epoch);
    }
    // Then live.
    publish(&server, "general", 51).await;
    let live = recv_event(&mut c).await;
    assert_eq!(live["sequence"], last + 51);
    assert!(live.get("replayed").is_none(), "{live}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_gap_or_duplicate_across_replay_to_live_under_concurrent_publishing() {
    let server = TestServer::start(&["--api-key", KEY, "--rate-limit", "0"]).await;
    let url = server.url("/ws/publisher");
    let (acked_tx, mut acked) = tokio::sync::watch::channel(0u64);
    let (stop_tx, mut stop) = tokio::sync::watch::channel(false);
    let publisher = tokio::spawn(async move {
        let mut p = Connection::connect(&url).await.expect("connect");
        assert_eq!(recv_json(&mut p).await["type"], "welcome");
        let mut n = 0u64;
        while !*stop.borrow_and_update() {
            let ack = request(
                &mut p,
                json!({"type":"message","room":"general","content":n}),
                json!(n),
            )
            .await;
            let _ = acked_tx.send(ack["sequence"].as_u64().expect("sequence"));
            n += 1;
        }
        n
    });
    let mut c = server.connect("watcher").await;
    // Everything the watcher ever sees, in arrival order, across reconnects.
    let mut seen: Vec<u64> = Vec::new();
    for round in 0..10 {
        // Read a little live traffic.
        let target = *acked.borrow() + 5;
        while seen.last().copied().unwrap_or(0) < target {
            let v = recv_event(&mut c).await;
            if v["type"] == "message" {
                seen.push(v["sequence"].as_u64().expect("sequence"));
            }
        }
        let last = *seen.last().expect("some events");
        drop(c);
        // Miss some events while disconnected.
        acked
            .wait_for(|s| *s >= last + 20)
            .await
            .expect("publisher alive");
        c = server
            .connect_raw(&format!("watcher?last_sequence={last}"))
            .await;
        assert_eq!(recv_json(&mut c).await["type"], "welcome");
        let (events, end) = read_replay(&mut c, "general").await;
        assert_eq!(end["type"], "replay_complete", "round {round}: {end}");
        assert!(
            events.len() >= 20,
            "round {round}: replayed {}",
            events.len()
        );
        seen.extend(events.iter().filter_map(|e| e["sequence"].as_u64()));
    }
    let _ = stop_tx.send(true);
    let target = *acked.borrow();
    while seen.last().copied().unwrap_or(0) < target {
        let v = recv_event(&mut c).await;
        if v["type"] == "message" {
            seen.push(v["sequence"].as_u64().expect("sequence"));
        }
    }
    publisher.await.expect("publisher");
    let first = seen[0];
    let expected: Vec<u64> = (first..first + seen.len() as u64).collect();
    assert_eq!(seen, expected, "every sequence exactly once, in order");
}

#[tokio::test]
async fn since_subscribe_recovers_several_rooms() {
    let server = TestServer::start(&["--api-key", KEY]).await;
    for room in ["a", "b", "c"] {
        for n in 0..10 {
            publish(&server, room, n).await;
        }
    }
    let mut c = server.connect("multi").await;
    let ack = request(&mut c, json!({"type":"subscribe","room":"a"}), json!("a0")).await;
    let epoch_a = ack["epoch"].as_str().expect("epoch").to_string();
    assert_eq!(ack["sequence"], 10);
    request(&mut c, json!({"type":"unsubscribe","room":"a"}), json!("u")).await;
    for (room, since) in [("a", 3u64), ("b", 0), ("c", 9)] {
        let epoch = if room == "a" {
            json!(epoch_a)
        } else {
            Value::Null
        };
        let mut since_v = json!({"sequence": since});
        if !epoch.is_null() {
            since_v["epoch"] = epoch;
        }
        let ack = request(
            &mut c,
            json!({"type":"subscribe","room":room,"since":since_v}),
            json!(room),
        )
        .await;
        assert_eq!(ack["type"], "ack", "{ack}");
        assert_eq!(ack["sequence"], 10);
        assert!(ack["epoch"].is_string());
        let (events, end) = read_replay(&mut c, room).await;
        assert_eq!(end["type"], "replay_complete");
        assert_eq!(end["replayed_count"], 10 - since);
        let seqs: Vec<u64> = events
            .iter()
            .filter_map(|e| e["sequence"].as_u64())
            .collect();
        assert_eq!(seqs, (since + 1..=10).collect::<Vec<_>>(), "{room}");
        assert!(events.iter().all(|e| e["room"] == room));
    }
    // Live after replay in each room.
    publish(&server, "b", 10).await;
    let live = recv_event(&mut c).await;
    assert_eq!(
        (live["room"].as_str(), live["sequence"].as_u64()),
        (Some("b"), Some(11))
    );
}

#[tokio::test]
async fn trimmed_history_reports_a_gap_then_goes_live() {
    let server = TestServer::start(&["--api-key", KEY, "--history-max-events", "10"]).await;
    for n in 0..30 {
        publish(&server, "trim", n).await;
    }
    let mut c = server.connect("late").await;
    c.send_json(&json!({"type":"subscribe","room":"trim","since":{"sequence":5}}))
        .await
        .expect("send");
    let (events, end) = read_replay(&mut c, "trim").await;
    assert!(events.is_empty());
    assert_eq!(end["type"], "recovery_failed");
    assert_eq!(end["reason"], "gap");
    assert_eq!(end["sequence"], 30);
    assert!(end["epoch"].is_string());
    publish(&server, "trim", 30).await;
    assert_eq!(recv_event(&mut c).await["sequence"], 31);
    // Within the retained window recovery still works.
    c.send_json(&json!({"type":"subscribe","room":"trim2","since":{"sequence":0}}))
        .await
        .expect("send");
    let (_, end) = read_replay(&mut c, "trim2").await;
    assert_eq!(end["replayed_count"], 0);
}

#[tokio::test]
async fn durable_history_survives_kill_9() {
    let server = TestServer::start(&["--api-key", KEY]).await;
    let mut acked = Vec::new();
    for n in 0..20 {
        acked.push(publish(&server, "durable", n).await);
    }
    let batch = publish_batch(&server, "durable", 20, 30, "x").await;
    acked.extend(
        batch["results"]
            .as_array()
            .expect("results")
            .iter()
            .cloned(),
    );
    let epoch = acked[0]["epoch"].clone();
    let data = server.kill9().await;

    let server = TestServer::start_in(data, &["--api-key", KEY]).await;
    let (status, body) = server
        .http_request(
            "GET",
            "/api/history/durable?since=0&limit=1000",
            Some(KEY),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let page: Value = serde_json::from_str(&body).expect("json");
    // A crash may have lost events handed out after the last commit, so the room goes on
    // under a new epoch; its retained events (and their numbering) survive.
    let renewed = page["epoch"].clone();
    assert!(renewed.is_string());
    assert_ne!(renewed, epoch);
    assert_eq!(page["sequence"], 50);
    let events = page["events"].as_array().expect("events");
    assert_eq!(events.len(), 50);
    for (i, (e, a)) in events.iter().zip(&acked).enumerate() {
        assert_eq!(e["sequence"], a["sequence"], "event {i}");
        assert_eq!(
            e["epoch"], epoch,
            "frames keep the epoch they were published under"
        );
        assert_eq!(e["data"]["n"], i as u64);
    }
    // Resuming from the old epoch is refused: those positions may name lost events.
    let mut c = server.connect("back").await;
    let since = json!({"sequence":45,"epoch":epoch});
    c.send_json(&json!({"type":"subscribe","room":"durable","since":since}))
        .await
        .expect("send");
    let (events, end) = read_replay(&mut c, "durable").await;
    assert!(events.is_empty());
    assert_eq!(end["type"], "recovery_failed", "{end}");
    assert_eq!(end["reason"], "epoch_changed");
    assert_eq!(end["epoch"], renewed);
    // Within the new epoch, recovery works and the numbering continues.
    let mut c = server.connect("again").await;
    let since = json!({"sequence":45,"epoch":renewed});
    c.send_json(&json!({"type":"subscribe","room":"durable","since":since}))
        .await
        .expect("send");
    let (events, end) = read_replay(&mut c, "durable").await;
    assert_eq!(end["replayed_count"], 5, "{end}");
    assert_eq!(events[0]["sequence"], 46);
    let next = publish(&server, "durable", 50).await;
    assert_eq!(next["sequence"], 51);
    assert_eq!(next["epoch"], renewed);
}

#[tokio::test]
async fn durable_history_keeps_its_epoch_across_a_clean_restart() {
    let server = TestServer::start(&["--api-key", KEY]).await;
    let mut last = Value::Null;
    for n in 0..10 {
        last = publish(&server, "clean", n).await;
    }
    server.terminate();
    let mut server = server;
    let status = tokio::time::timeout(WAIT, server.child.wait())
        .await
        .expect("exits in time")
        .expect("wait");
    assert!(status.success(), "{status}");
    let server = TestServer::start_in(server.data.clone(), &["--api-key", KEY]).await;
    let mut c = server.connect("back").await;
    let since = json!({"sequence":7,"epoch":last["epoch"]});
    c.send_json(&json!({"type":"subscribe","room":"clean","since":since}))
        .await
        .expect("send");
    let (events, end) = read_replay(&mut c, "clean").await;
    assert_eq!(end["type"], "replay_complete", "{end}");
    let seqs: Vec<_> = events.iter().map(|e| e["sequence"].clone()).collect();
    assert_eq!(seqs, [json!(8), json!(9), json!(10)]);
    let next = publish(&server, "clean", 10).await;
    assert_eq!(
        (&next["sequence"], &next["epoch"]),
        (&json!(11), &last["epoch"])
    );
}

#[tokio::test]
async fn memory_history_reports_epoch_changed_after_restart() {
    let server = TestServer::start(&["--api-key", KEY, "--history", "memory"]).await;
    let first = publish(&server, "mem", 0).await;
    let data = server.kill9().await;
    let server = TestServer::start_in(data, &["--api-key", KEY, "--history", "memory"]).await;
    let mut c = server.connect("m").await;
    let since = json!({"sequence":1,"epoch":first["epoch"]});
    c.send_json(&json!({"type":"subscribe","room":"mem","since":since}))
        .await
        .expect("send");
    let (_, end) = read_replay(&mut c, "mem").await;
    assert_eq!(end["type"], "recovery_failed");
    assert_eq!(end["reason"], "epoch_changed");
    assert_ne!(end["epoch"], first["epoch"]);
    // The seed's form without an epoch: a position past the room's head means a reset.
    let mut c2 = server.connect_raw("m2?last_sequence=7").await;
    assert_eq!(recv_json(&mut c2).await["type"], "welcome");
    let (_, end) = read_replay(&mut c2, "general").await;
    assert_eq!(end["reason"], "epoch_changed");
}

#[tokio::test]
async fn publish_api_statuses() {
    let server = TestServer::start(&["--api-key", KEY]).await;
    let mut sub = server.connect("sub").await;
    subscribe(&mut sub, "news").await;
    let (status, body) = post_json(
        &server,
        "/api/publish",
        Some(KEY),
        &json!({"room":"news","type":"headline","data":{"t":"hi"}}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["room"], "news");
    assert_eq!(body["sequence"], 1);
    let epoch = body["epoch"].clone();
    assert!(epoch.is_string());
    let ev = recv_event(&mut sub).await;
    assert_eq!(ev["type"], "headline");
    assert_eq!(ev["room"], "news");
    assert_eq!(ev["sequence"], 1);
    assert_eq!(ev["epoch"], epoch);
    assert_eq!(ev["data"], json!({"t":"hi"}));
    assert!(ev["timestamp"].is_string());

    let good = json!({"room":"news","type":"t","data":1}).to_string();
    for (key, body, want) in [
        (None, good.as_str(), 401),
        (Some("wrong-key-123"), good.as_str(), 401),
        (Some(KEY), "{not json", 400),
        (Some(KEY), r#"{"type":"t","data":1}"#, 400),
        (Some(KEY), r#"{"room":"news","data":1}"#, 400),
        (Some(KEY), r#"{"room":"news","type":"t"}"#, 400),
        (Some(KEY), r#"{"room":"bad room","type":"t","data":1}"#, 400),
        (
            Some(KEY),
            r#"{"room":"news","type":"bad type","data":1}"#,
            400,
        ),
        (
            Some(KEY),
            r#"{"room":"news","type":"welcome","data":1}"#,
            400,
        ),
    ] {
        let (status, text) = server
            .http_request("POST", "/api/publish", key, Some(body))
            .await;
        assert_eq!(status, want, "{body}: {text}");
        let err: Value = serde_json::from_str(&text).expect("JSON error body");
        assert!(err["error"]["message"].is_string(), "{text}");
    }
    // Batch: all or nothing on validation, results in order.
    let (status, _) = post_json(&server, "/api/publish/batch", Some(KEY), &json!([])).await;
    assert_eq!(status, 400);
    let too_many: Vec<Value> = (0..1001)
        .map(|n| json!({"room":"news","type":"t","data":n}))
        .collect();
    let (status, _) = post_json(
        &server,
        "/api/publish/batch",
        Some(KEY),
        &Value::Array(too_many),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = post_json(
        &server,
        "/api/publish/batch",
        Some(KEY),
        &json!([{"room":"news","type":"t","data":1},{"room":"bad room","type":"t","data":2}]),
    )
    .await;
    assert_eq!(status, 400);
    let (status, body) = post_json(
        &server,
        "/api/publish/batch",
        Some(KEY),
        &json!({"items":[{"room":"news","type":"t","data":1},{"room":"other","type":"t","data":2}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["sequence"], 2);
    assert_eq!(body["results"][1]["room"], "other");
    assert_eq!(body["results"][1]["sequence"], 1);
    // History API.
    let (status, text) = server
        .http_request("GET", "/api/history/news?since=1&limit=10", Some(KEY), None)
        .await;
    assert_eq!(status, 200, "{text}");
    let page: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(page["events"].as_array().map(Vec::len), Some(1));
    assert_eq!(page["events"][0]["sequence"], 2);
    let (status, _) = server
        .http_request("GET", "/api/history/news", None, None)
        .await;
    assert_eq!(status, 401);
    let (status, _) = server
        .http_request("GET", "/api/history/bad%20room", Some(KEY), None)
        .await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_of_50k_events_to_a_slow_reader_keeps_memory_bounded() {
    let server = TestServer::start(&[
        "--api-key",
        KEY,
        "--history-max-events",
        "50000",
        "--fsync",
        "never",
    ])
    .await;
    let pad = "p".repeat(1000);
    for batch in 0..50 {
        publish_batch(&server, "bulk", batch * 1000, 1000, &pad).await;
    }
    let before = server.rss_kib();
    let mut c = server.connect("reader").await;
    c.send_json(&json!({"type":"subscribe","room":"bulk","since":{"sequence":0}}))
        .await
        .expect("send");
    let mut next = 1u64;
    let mut peak = before;
    loop {
        let v = match c.recv_timeout(WAIT).await.expect("event in time") {
            Incoming::Json(v) => v,
            other => panic!("closed during replay: {other:?}"),
        };
        match v["type"].as_str() {
            Some("tick") => {
                assert_eq!(v["sequence"], next);
                next += 1;
                if next.is_multiple_of(2000) {
                    // Read slowly: let the server's queue fill and its writer block.
                    peak = peak.max(server.rss_kib());
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            }
            Some("replay_complete") => {
                assert_eq!(v["replayed_count"], 50_000);
                break;
            }
            _ => {}
        }
    }
    assert_eq!(next, 50_001);
    let growth_mib = (peak.saturating_sub(before)) / 1024;
    eprintln!("replay RSS: before {before} KiB, peak {peak} KiB");
    // 50,000 replayed events of ~1.1 KB are ~55 MB; a bounded replay holds at most one
    // outbox (1024 events) and one read batch at a time.
    assert!(
        growth_mib < 24,
        "server RSS grew {growth_mib} MiB during the replay (before {before} KiB, peak {peak} KiB)"
    );
}

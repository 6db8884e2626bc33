//! Scale-out on Redis, end to end: one real `redis-server` and three real `roomcast serve`
//! nodes (`--broker redis://...`), real WebSocket and HTTP clients over loopback TCP.
//! Needs `redis-server` on the PATH (scripts/test installs it); fails when it is missing.

mod util;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use roomcast_engine::auth::jwt::{mint_hs256, MintRequest};
use serde_json::{json, Value};
use util::cluster::{start_nodes, start_secure_nodes, wait_ready, RedisServer};
use util::{
    barrier, post_json, recv_close, recv_event, request, send_message, subscribe, TestServer, WAIT,
};

/// Publishes through the HTTP API of `node` (dev mode: no key) and returns the reply.
async fn publish(node: &TestServer, room: &str, data: Value) -> (u16, Value) {
    post_json(
        node,
        "/api/publish",
        None,
        &json!({"room":room,"type":"tick","data":data}),
    )
    .await
}

/// The next `n` room events (`message` or `tick`; skipping everything else).
async fn events(c: &mut roomcast_client::Connection, n: usize) -> Vec<Value> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let v = recv_event(c).await;
        // Room events only (acks and `recovery_failed` carry a sequence too).
        if v["type"] == "message" || v["type"] == "tick" {
            out.push(v);
        }
    }
    out
}

#[tokio::test]
async fn a_client_on_one_node_receives_publishes_from_the_others_in_sequence_order() {
    let redis = RedisServer::start().await;
    let nodes = start_nodes(&redis, 3, &[]).await;
    let mut a = nodes[0].connect("a").await;
    let mut b = nodes[1].connect("b").await;
    let mut c = nodes[2].connect("c").await;
    for conn in [&mut a, &mut b, &mut c] {
        subscribe(conn, "chat").await;
    }
    let mut acked = Vec::new();
    for i in 0..5 {
        let ack = send_message(&mut b, "chat", json!({"n": i * 2}), &format!("b{i}")).await;
        acked.push(ack["sequence"].as_u64().expect("sequence"));
        let ack = send_message(&mut c, "chat", json!({"n": i * 2 + 1}), &format!("c{i}")).await;
        acked.push(ack["sequence"].as_u64().expect("sequence"));
    }
    assert_eq!(
        acked,
        (1..=10).collect::<Vec<u64>>(),
        "Redis sequences in order"
    );
    let got = events(&mut a, 10).await;
    let sequences: Vec<u64> = got.iter().filter_map(|v| v["sequence"].as_u64()).collect();
    assert_eq!(sequences, (1..=10).collect::<Vec<u64>>());
    let contents: Vec<u64> = got
        .iter()
        .filter_map(|v| v["content"]["n"].as_u64())
        .collect();
    assert_eq!(contents, (0..10).collect::<Vec<u64>>());
    let epochs: Vec<&Value> = got.iter().map(|v| &v["epoch"]).collect();
    assert!(epochs.iter().all(|e| *e == epochs[0] && e.is_string()));
    // A sender does not get its own message back; it gets the other node's.
    let seen_by_b: Vec<u64> = barrier(&mut b)
        .await
        .iter()
        .filter(|v| v["type"] == "message")
        .filter_map(|v| v["content"]["n"].as_u64())
        .collect();
    assert!(seen_by_b.iter().all(|n| n % 2 == 1), "{seen_by_b:?}");
}

#[tokio::test]
async fn a_thousand_subscribers_over_three_nodes_get_every_message_exactly_once_in_order() {
    const SUBSCRIBERS: usize = 1000;
    const MESSAGES: u64 = 200;
    let redis = RedisServer::start().await;
    // Publishers send as fast as acks come back (no per-connection rate limit here); the
    // subscribers only listen, and on a loaded box their setup may outlast the default
    // heartbeat deadline (40 s of silence): neither is what this test is about.
    let nodes = start_nodes(
        &redis,
        3,
        &["--rate-limit", "0", "--heartbeat-interval", "300"],
    )
    .await;
    // Connect and subscribe everyone first (50 at a time), then start listening.
    let mut conns = Vec::with_capacity(SUBSCRIBERS);
    for chunk in (0..SUBSCRIBERS).collect::<Vec<_>>().chunks(50) {
        let joining = chunk.iter().map(|&i| {
            let node = &nodes[i % 3];
            async move {
                let mut conn = node.connect(&format!("s{i}")).await;
                subscribe(&mut conn, "fan").await;
                conn
            }
        });
        conns.extend(futures_util::future::join_all(joining).await);
    }
    let receivers: Vec<_> = conns
        .into_iter()
        .map(|mut conn| {
            tokio::spawn(async move {
                let mut got = Vec::with_capacity(MESSAGES as usize);
                while got.len() < MESSAGES as usize {
                    match conn.recv_timeout(WAIT).await {
                        Ok(roomcast_client::Incoming::Json(v)) => {
                            if v["type"] == "message" {
                                got.push(v);
                            }
                        }
                        other => panic!(
                            "after {} messages (last {:?}): {other:?}",
                            got.len(),
                            got.last().map(|v: &Value| v["sequence"].clone())
                        ),
                    }
                }
                let extra = barrier(&mut conn).await;
                (got, extra)
            })
        })
        .collect();
    let mut publishers = Vec::new();
    for (p, node) in nodes.iter().enumerate() {
        let mut conn = node.connect(&format!("pub{p}")).await;
        subscribe(&mut conn, "fan").await;
        let mine: Vec<u64> = (0..MESSAGES).filter(|m| m % 3 == p as u64).collect();
        publishers.push(tokio::spawn(async move {
            for m in mine {
                send_message(&mut conn, "fan", json!({"m": m}), &format!("m{m}")).await;
            }
        }));
    }
    for p in publishers {
        p.await.expect("publisher");
    }
    let mut all_messages: Option<Vec<u64>> = None;
    for r in receivers {
        let (got, extra) = tokio::time::timeout(WAIT * 3, r)
            .await
            .expect("every subscriber got every message in time")
            .expect("receiver");
        let sequences: Vec<u64> = got.iter().filter_map(|v| v["sequence"].as_u64()).collect();
        assert_eq!(sequences, (1..=MESSAGES).collect::<Vec<u64>>());
        assert!(
            extra.iter().all(|v| v.get("sequence").is_none()),
            "nothing after the 200th: {extra:?}"
        );
        let mut ms: Vec<u64> = got
            .iter()
            .filter_map(|v| v["content"]["m"].as_u64())
            .collect();
        match &all_messages {
            // Every subscriber saw the same order.
            Some(first) => assert_eq!(&ms, first),
            None => {
                let order = ms.clone();
                ms.sort_unstable();
                assert_eq!(ms, (0..MESSAGES).collect::<Vec<u64>>());
                all_messages = Some(order);
            }
        }
    }
}

#[tokio::test]
async fn a_client_reconnecting_to_another_node_replays_what_it_missed() {
    let redis = RedisServer::start().await;
    let nodes = start_nodes(&redis, 3, &[]).await;
    let mut a = nodes[0].connect("roamer").await;
    let ack = subscribe(&mut a, "resume").await;
    let epoch = ack["epoch"].clone();
    let (status, first) = publish(&nodes[1], "resume", json!({"n": 0})).await;
    assert_eq!(status, 200, "{first}");
    let seen = events(&mut a, 1).await;
    let last = seen[0]["sequence"].as_u64().expect("sequence");
    a.close().await.expect("close");
    for n in 1..=5 {
        let (status, body) = publish(&nodes[1], "resume", json!({"n": n})).await;
        assert_eq!(status, 200, "{body}");
    }
    let mut c = nodes[2].connect("roamer").await;
    let ack = request(
        &mut c,
        json!({"type":"subscribe","room":"resume","since":{"sequence":last,"epoch":epoch}}),
        json!("resume"),
    )
    .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let replayed = events(&mut c, 5).await;
    assert!(
        replayed.iter().all(|v| v["replayed"] == true),
        "{replayed:?}"
    );
    let ns: Vec<u64> = replayed
        .iter()
        .filter_map(|v| v["data"]["n"].as_u64())
        .collect();
    assert_eq!(ns, vec![1, 2, 3, 4, 5]);
    let done = recv_event(&mut c).await;
    assert_eq!(done["type"], "replay_complete", "{done}");
    assert_eq!(done["replayed_count"], 5);
    // The history API of a node that never had the room serves it from Redis too.
    let (status, body) = nodes[1]
        .http_request(
            "GET",
            &format!("/api/history/resume?since={last}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let history: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(history["complete"], true, "{history}");
    assert_eq!(history["epoch"], epoch, "{history}");
    let ns: Vec<u64> = history["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|v| v["data"]["n"].as_u64())
        .collect();
    assert_eq!(ns, vec![1, 2, 3, 4, 5]);
    // Live from there on.
    publish(&nodes[0], "resume", json!({"n": 6})).await;
    let live = events(&mut c, 1).await;
    assert_eq!(live[0]["data"]["n"], 6);
    assert!(live[0].get("replayed").is_none());
}

#[tokio::test]
async fn the_same_client_id_on_another_node_supersedes_the_first_session_with_4011() {
    let redis = RedisServer::start().await;
    let nodes = start_nodes(&redis, 2, &[]).await;
    let mut first = nodes[0].connect("twin").await;
    subscribe(&mut first, "room").await;
    let mut second = nodes[1].connect("twin").await;
    let (code, _) = recv_close(&mut first).await;
    assert_eq!(code, Some(4011));
    // The second session is unaffected and works.
    subscribe(&mut second, "room").await;
    assert!(barrier(&mut second).await.is_empty());
}

#[tokio::test]
async fn the_per_principal_connection_limit_counts_every_node() {
    const SECRET: &str = "cluster-tests-shared-secret-0123456789";
    let redis = RedisServer::start().await;
    let nodes = start_secure_nodes(
        &redis,
        2,
        &["--jwt-secret", SECRET, "--max-connections-per-client", "2"],
    )
    .await;
    let token = |sub: &str| {
        let mut claims = MintRequest::new(sub, Duration::from_secs(3600));
        claims.collective_id = Some("acme".into());
        mint_hs256(SECRET, &claims, time::OffsetDateTime::now_utc()).expect("mint")
    };
    let connect = |node: usize, id: &'static str| {
        let path = format!("{id}?token={}", token(id));
        let node = &nodes[node];
        async move { node.connect_raw(&path).await }
    };
    let mut t1 = connect(0, "t1").await;
    assert_eq!(recv_event(&mut t1).await["type"], "welcome");
    let mut t2 = connect(1, "t2").await;
    assert_eq!(recv_event(&mut t2).await["type"], "welcome");
    // The third connection of the collective, on the first node, is one too many.
    let mut t3 = connect(0, "t3").await;
    let (code, reason) = recv_close(&mut t3).await;
    assert_eq!(code, Some(4022), "{reason}");
    assert!(reason.contains("this client"), "{reason}");
    // Once one leaves (on any node), a new one fits.
    t2.close().await.expect("close");
    let deadline = Instant::now() + WAIT;
    loop {
        let mut t4 = connect(0, "t4").await;
        let first = recv_json_or_close(&mut t4).await;
        if first == "welcome" {
            break;
        }
        assert!(Instant::now() < deadline, "no slot came free: {first}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(barrier(&mut t1).await.iter().all(|v| v["type"] != "error"));
}

/// The type of the first message, or `closed CODE`.
async fn recv_json_or_close(c: &mut roomcast_client::Connection) -> String {
    match c.recv_timeout(WAIT).await.expect("a frame in time") {
        roomcast_client::Incoming::Json(v) => v["type"].as_str().unwrap_or_default().to_owned(),
        roomcast_client::Incoming::Closed { code, .. } => format!("closed {code:?}"),
    }
}

#[tokio::test]
async fn the_admin_stats_show_this_node_and_the_cluster_totals() {
    let redis = RedisServer::start().await;
    let nodes = start_nodes(&redis, 3, &[]).await;
    let mut conns = Vec::new();
    for (i, n) in [1, 2, 3].into_iter().enumerate() {
        for j in 0..n {
            conns.push(nodes[i].connect(&format!("n{i}c{j}")).await);
        }
    }
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = nodes[0]
            .http_request("GET", "/api/admin/stats", None, None)
            .await;
        assert_eq!(status, 200, "{body}");
        let stats: Value = serde_json::from_str(&body).expect("json");
        let cluster = &stats["cluster"];
        let per_node: Vec<u64> = cluster["nodes"]
            .as_array()
            .map(|a| a.iter().filter_map(|n| n["connections"].as_u64()).collect())
            .unwrap_or_default();
        if cluster["connections"] == 6 && per_node.len() == 3 {
            let mut sorted = per_node.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, vec![1, 2, 3], "{cluster}");
            assert!(cluster["node"].is_string(), "{cluster}");
            break;
        }
        assert!(Instant::now() < deadline, "cluster stats stayed {cluster}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn presence_lists_the_members_of_every_node() {
    let redis = RedisServer::start().await;
    // Presence is polled until it converges; unlimited, so a slow convergence never turns
    // into a rate-limited (dropped, never acked) request.
    let nodes = start_nodes(&redis, 3, &["--rate-limit", "0"]).await;
    let mut conns = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let mut c = node.connect(&format!("p{i}")).await;
        subscribe(&mut c, "lobby").await;
        conns.push(c);
    }
    let expected = json!(["p0", "p1", "p2"]);
    let deadline = Instant::now() + WAIT;
    loop {
        let ack = request(
            &mut conns[0],
            json!({"type":"presence","room":"lobby"}),
            json!("who"),
        )
        .await;
        if ack["members"] == expected {
            break;
        }
        assert!(Instant::now() < deadline, "presence stayed {ack}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A member that leaves (its node's connection closes) drops out everywhere, and the
    // `general` members of the other nodes hear `user_left`.
    conns.pop().expect("p2").close().await.expect("close");
    loop {
        let v = recv_event(&mut conns[0]).await;
        if v["type"] == "user_left" {
            assert_eq!(v["client_id"], "p2", "{v}");
            break;
        }
    }
    let deadline = Instant::now() + WAIT;
    loop {
        let ack = request(
            &mut conns[1],
            json!({"type":"presence","room":"lobby"}),
            json!("who2"),
        )
        .await;
        if ack["members"] == json!(["p0", "p1"]) {
            break;
        }
        assert!(Instant::now() < deadline, "presence stayed {ack}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn kill_9_of_a_node_loses_no_acknowledged_event_for_clients_that_reconnect_elsewhere() {
    let redis = RedisServer::start().await;
    let mut nodes = start_nodes(&redis, 3, &[]).await;
    let mut victim_client = nodes[0].connect("survivor").await;
    let ack = subscribe(&mut victim_client, "durable").await;
    let epoch = ack["epoch"].clone();
    // Acknowledged by node B while the client's node A is alive, then A dies.
    let mut acked = Vec::new();
    for n in 0..20 {
        let (status, body) = publish(&nodes[1], "durable", json!({"n": n})).await;
        assert_eq!(status, 200, "{body}");
        acked.push(body["sequence"].as_u64().expect("sequence"));
    }
    let got_before = events(&mut victim_client, 3).await;
    let last = got_before[2]["sequence"].as_u64().expect("sequence");
    let a = nodes.remove(0);
    a.kill9().await;
    for n in 20..25 {
        let (status, body) = publish(&nodes[1], "durable", json!({"n": n})).await;
        assert_eq!(status, 200, "{body}");
        acked.push(body["sequence"].as_u64().expect("sequence"));
    }
    let mut c = nodes[1].connect("survivor").await;
    let ack = request(
        &mut c,
        json!({"type":"subscribe","room":"durable","since":{"sequence":last,"epoch":epoch}}),
        json!("again"),
    )
    .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let missed = acked.iter().filter(|s| **s > last).count();
    let replayed = events(&mut c, missed).await;
    let sequences: Vec<u64> = replayed
        .iter()
        .filter_map(|v| v["sequence"].as_u64())
        .collect();
    assert_eq!(sequences, ((last + 1)..=25).collect::<Vec<u64>>());
    assert_eq!(recv_event(&mut c).await["type"], "replay_complete");
}

#[tokio::test]
async fn redis_killed_and_restarted_nodes_recover_and_no_position_names_two_events() {
    let mut redis = RedisServer::start().await;
    let nodes = start_nodes(&redis, 3, &[]).await;
    let mut live = nodes[0].connect("watcher").await;
    let ack = subscribe(&mut live, "news").await;
    let old_epoch = ack["epoch"].as_str().expect("epoch").to_owned();
    // (epoch, sequence) -> data, for every event any client saw.
    let mut named: HashMap<(String, u64), Value> = HashMap::new();
    let record = |named: &mut HashMap<(String, u64), Value>, v: &Value| {
        let key = (
            v["epoch"].as_str().unwrap_or_default().to_owned(),
            v["sequence"].as_u64().unwrap_or_default(),
        );
        if let Some(before) = named.insert(key.clone(), v["data"].clone()) {
            assert_eq!(before, v["data"], "{key:?} names two events");
        }
    };
    for n in 0..5 {
        let (status, body) = publish(&nodes[1], "news", json!({"n": n})).await;
        assert_eq!(status, 200, "{body}");
    }
    for v in events(&mut live, 5).await {
        record(&mut named, &v);
    }

    let mut sender = nodes[2].connect("sender").await;
    subscribe(&mut sender, "other").await;
    redis.kill9().await;
    for node in &nodes {
        let reason = wait_ready(node, 503).await;
        assert!(reason.contains("redis"), "{reason}");
    }
    // Publishing fails fast, with the documented error, and publishes nothing.
    let started = Instant::now();
    let (status, body) = publish(&nodes[1], "news", json!({"n": "lost"})).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "UNAVAILABLE", "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let reply = request(
        &mut sender,
        json!({"type":"message","room":"other","content":1}),
        json!("m"),
    )
    .await;
    assert_eq!(reply["type"], "error", "{reply}");
    assert_eq!(reply["code"], "UNAVAILABLE", "{reply}");

    redis.restart().await;
    for node in &nodes {
        wait_ready(node, 200).await;
    }
    // The live client stayed connected and is told that Redis lost the room's history.
    let notice = loop {
        let v = recv_event(&mut live).await;
        if v["type"] == "recovery_failed" && v["room"] == "news" {
            break v;
        }
    };
    assert_eq!(notice["reason"], "epoch_changed", "{notice}");
    let new_epoch = notice["epoch"].as_str().expect("epoch").to_owned();
    assert_ne!(new_epoch, old_epoch);
    for n in 5..8 {
        let (status, body) = publish(&nodes[1], "news", json!({"n": n})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["epoch"], new_epoch.as_str(), "{body}");
    }
    for v in events(&mut live, 3).await {
        assert_eq!(v["epoch"], new_epoch.as_str());
        record(&mut named, &v);
    }
    // A client resuming from the old epoch elsewhere is told so, then gets live events.
    let mut late = nodes[2].connect("late").await;
    let ack = request(
        &mut late,
        json!({"type":"subscribe","room":"news","since":{"sequence":5,"epoch":old_epoch}}),
        json!("late"),
    )
    .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let failed = recv_event(&mut late).await;
    assert_eq!(failed["type"], "recovery_failed", "{failed}");
    assert_eq!(failed["reason"], "epoch_changed", "{failed}");
    let (status, body) = publish(&nodes[0], "news", json!({"n": 8})).await;
    assert_eq!(status, 200, "{body}");
    let v = events(&mut late, 1).await.remove(0);
    record(&mut named, &v);
    let v = events(&mut live, 1).await.remove(0);
    record(&mut named, &v);
    assert_eq!(v["data"]["n"], 8);
    // Nothing was delivered twice to the client that stayed.
    let rest: Vec<Value> = barrier(&mut live)
        .await
        .into_iter()
        .filter(|v| v.get("sequence").is_some())
        .collect();
    assert!(rest.is_empty(), "{rest:?}");
    let by_epoch: BTreeMap<String, usize> = named.keys().fold(BTreeMap::new(), |mut m, (e, _)| {
        *m.entry(e.clone()).or_default() += 1;
        m
    });
    assert_eq!(by_epoch.len(), 2, "{by_epoch:?}");
}

#[tokio::test]
async fn pubsub_channels_return_to_zero_after_every_client_leaves() {
    let redis = RedisServer::start().await;
    let nodes = start_nodes(&redis, 3, &[]).await;
    let mut conns = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let mut c = node.connect(&format!("z{i}")).await;
        subscribe(&mut c, "ephemeral").await;
        conns.push(c);
    }
    assert_eq!(redis.numsub("roomcast:{ephemeral}:c").await, 3);
    for mut c in conns {
        c.close().await.expect("close");
    }
    let deadline = Instant::now() + WAIT;
    loop {
        let channels = redis.room_channels().await;
        if channels.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "still subscribed: {channels:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(redis.numsub("roomcast:{ephemeral}:c").await, 0);
    // Each node keeps only its control subscription.
    assert_eq!(redis.numsub("roomcast:control").await, 3);
}

/// A client that sends many messages without waiting for their acks: the node sends the
/// ones queued behind the first to Redis in one pipeline. Every message still gets its own
/// ack, in the order sent, with consecutive sequences; members on another node receive
/// them all once, in order; the sender gets none of its own back.
#[tokio::test]
async fn back_to_back_messages_are_pipelined_in_order_with_one_ack_each() {
    let redis = RedisServer::start().await;
    let nodes = start_nodes(&redis, 2, &["--rate-limit", "0"]).await;
    let mut sender = nodes[0].connect("sender").await;
    let mut reader = nodes[1].connect("reader").await;
    subscribe(&mut sender, "burst").await;
    subscribe(&mut reader, "burst").await;
    const N: u64 = 300;
    for i in 0..N {
        sender
            .send_json(
                &json!({"type":"message","room":"burst","content":{"n":i},"id":format!("m{i}")}),
            )
            .await
            .expect("send");
    }
    let mut acks = Vec::new();
    while acks.len() < N as usize {
        let v = recv_event(&mut sender).await;
        assert_ne!(
            v["type"], "message",
            "the sender got its own message back: {v}"
        );
        assert_ne!(v["type"], "error", "{v}");
        if v["type"] == "ack" {
            acks.push((
                v["id"].as_str().expect("id").to_owned(),
                v["sequence"].as_u64().expect("sequence"),
            ));
        }
    }
    let expected: Vec<(String, u64)> = (0..N).map(|i| (format!("m{i}"), i + 1)).collect();
    assert_eq!(
        acks, expected,
        "one ack per message, in order, consecutive sequences"
    );
    let got = events(&mut reader, N as usize).await;
    let seen: Vec<(u64, u64)> = got
        .iter()
        .map(|v| {
            (
                v["sequence"].as_u64().expect("sequence"),
                v["content"]["n"].as_u64().expect("n"),
            )
        })
        .collect();
    let want: Vec<(u64, u64)> = (0..N).map(|i| (i + 1, i)).collect();
    assert_eq!(seen, want);
    // Fewer publish calls than messages reached Redis: they went in pipelines (each one
    // `SCRIPT LOAD` and its `EVALSHA`s).
    let mut conn = redis.connection().await.expect("redis");
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .expect("info");
    let calls = |name: &str| -> u64 {
        stats
            .lines()
            .find_map(|l| l.strip_prefix(&format!("cmdstat_{name}:calls=")))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let (pipelines, evalsha) = (calls("script|load"), calls("evalsha"));
    assert!(
        pipelines > 0 && pipelines < N,
        "{pipelines} pipelines for {N} messages ({evalsha} EVALSHA)\n{stats}"
    );
}

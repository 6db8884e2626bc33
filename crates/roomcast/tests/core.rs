//! The core protocol of issue 2, over real sockets against the real binary.

mod util;

use futures_util::SinkExt;
use roomcast_client::Incoming;
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;
use util::*;

#[tokio::test]
async fn welcome_has_the_documented_fields() {
    let server = TestServer::start(&["--heartbeat-interval", "7"]).await;
    let mut c = server.connect_raw("alice").await;
    let w = recv_json(&mut c).await;
    assert_eq!(w["type"], "welcome");
    assert_eq!(w["client_id"], "alice");
    assert_eq!(w["heartbeat_interval"], 7);
    let ts = w["server_time"].as_str().expect("server_time string");
    assert!(roomcast_protocol::time::parse_rfc3339(ts).is_some(), "{ts}");
    // Joined general on accept.
    let p = request(
        &mut c,
        json!({"type":"presence","room":"general"}),
        json!(1),
    )
    .await;
    assert_eq!(p["members"], json!(["alice"]));
}

#[tokio::test]
async fn bad_client_ids_are_refused_before_upgrade() {
    let server = TestServer::start(&[]).await;
    let long = "a".repeat(129);
    for bad in ["a%20b", "a%2Fb", long.as_str(), "%C3%A9"] {
        let err = roomcast_client::Connection::connect(&server.url(&format!("/ws/{bad}")))
            .await
            .expect_err("must be refused");
        match err {
            roomcast_client::ClientError::Ws(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status(), 400, "{bad}")
            }
            other => panic!("{bad}: expected HTTP 400, got {other:?}"),
        }
    }
    let ok = "a".repeat(128);
    server.connect(&ok).await;
    server.connect("x_y.z:1-2").await;
}

#[tokio::test]
async fn healthz_is_ok() {
    let server = TestServer::start(&[]).await;
    let mut stream = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("tcp");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut body = String::new();
    stream.read_to_string(&mut body).await.expect("read");
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.ends_with("ok"), "{body}");
}

#[tokio::test]
async fn broadcast_reaches_others_but_not_the_sender() {
    let server = TestServer::start(&[]).await;
    let mut alice = server.connect("alice").await;
    let mut bob = server.connect("bob").await;
    let mut carol = server.connect("carol").await;
    for c in [&mut alice, &mut bob, &mut carol] {
        let ack = subscribe(c, "chat").await;
        assert_eq!(ack["room"], "chat");
    }
    let ack = request(
        &mut alice,
        json!({"type":"message","room":"chat","content":{"text":"hi","n":[1,2]}}),
        json!(42),
    )
    .await;
    assert_eq!(ack["type"], "ack");
    for c in [&mut bob, &mut carol] {
        let m = recv_event(c).await;
        assert_eq!(m["type"], "message");
        assert_eq!(m["room"], "chat");
        assert_eq!(m["from"], "alice");
        assert_eq!(m["content"], json!({"text":"hi","n":[1,2]}));
        let ts = m["timestamp"].as_str().expect("timestamp");
        assert!(roomcast_protocol::time::parse_rfc3339(ts).is_some(), "{ts}");
    }
    assert!(
        barrier(&mut alice).await.is_empty(),
        "the sender got its own message back"
    );
}

#[tokio::test]
async fn rooms_are_isolated() {
    let server = TestServer::start(&[]).await;
    let mut members = Vec::new();
    for room in ["r1", "r2", "r3"] {
        for i in 0..2 {
            let mut c = server.connect(&format!("{room}-{i}")).await;
            subscribe(&mut c, room).await;
            members.push((room, i, c));
        }
    }
    // Member 0 of each room publishes once and waits for the ack (fan-out done).
    for (room, i, c) in members.iter_mut() {
        if *i == 0 {
            let ack = request(
                c,
                json!({"type":"message","room":*room,"content":*room}),
                json!("p"),
            )
            .await;
            assert_eq!(ack["type"], "ack");
        }
    }
    for (room, i, c) in members.iter_mut() {
        let got = barrier(c).await;
        let messages: Vec<_> = got.iter().filter(|m| m["type"] == "message").collect();
        if *i == 0 {
            assert!(messages.is_empty(), "{room} publisher got {messages:?}");
        } else {
            assert_eq!(messages.len(), 1, "{room}: {got:?}");
            assert_eq!(messages[0]["room"], *room);
            assert_eq!(messages[0]["content"], *room);
        }
    }
}

#[tokio::test]
async fn same_client_id_supersedes_the_old_connection() {
    let server = TestServer::start(&[]).await;
    let mut old = server.connect("dup").await;
    subscribe(&mut old, "chat").await;
    let mut new = server.connect("dup").await;
    let (code, reason) = recv_close(&mut old).await;
    assert_eq!(code, Some(4011));
    assert_eq!(reason, "Superseded");
    // The new connection works and is the only "dup" anywhere.
    let mut other = server.connect("other").await;
    subscribe(&mut other, "chat").await;
    subscribe(&mut new, "chat").await;
    let p = request(
        &mut other,
        json!({"type":"presence","room":"chat"}),
        json!("p"),
    )
    .await;
    assert_eq!(p["members"], json!(["dup", "other"]));
    request(
        &mut other,
        json!({"type":"message","room":"chat","content":1}),
        json!("m"),
    )
    .await;
    let m = recv_event(&mut new).await;
    assert_eq!(m["from"], "other");
    // The old connection received nothing after its close.
    assert!(matches!(
        old.recv().await.expect("closed state"),
        Incoming::Closed { .. }
    ));
}

#[tokio::test]
async fn remaining_members_of_general_see_user_left() {
    let server = TestServer::start(&[]).await;
    let mut bob = server.connect("bob").await;
    let mut alice = server.connect("alice").await;
    alice.close().await.expect("close");
    let left = recv_event(&mut bob).await;
    assert_eq!(left, json!({"type":"user_left","client_id":"alice"}));
    // Dropping the TCP connection without a close handshake counts too.
    let carol = server.connect("carol").await;
    drop(carol);
    let left = recv_event(&mut bob).await;
    assert_eq!(left, json!({"type":"user_left","client_id":"carol"}));
}

#[tokio::test]
async fn every_error_code_keeps_the_connection_usable() {
    let server = TestServer::start(&["--rate-limit", "0"]).await;
    let mut c = server.connect("errs").await;
    let long_room = "r".repeat(201);
    let cases: Vec<(&str, String, &str)> = vec![
        ("INVALID_JSON", "{nope".into(), ""),
        ("INVALID_JSON", r#"{"type":"ping"} trailing"#.into(), ""),
        ("INVALID_MESSAGE", "[1,2,3]".into(), ""),
        ("INVALID_MESSAGE", r#"{"id":"a1"}"#.into(), "\"a1\""),
        ("INVALID_MESSAGE", r#"{"type":5,"id":7}"#.into(), "7"),
        (
            "INVALID_MESSAGE",
            r#"{"type":"subscribe","id":8}"#.into(),
            "8",
        ),
        (
            "INVALID_MESSAGE",
            r#"{"type":"message","room":"general","id":"c"}"#.into(),
            "\"c\"",
        ),
        (
            "UNKNOWN_TYPE",
            r#"{"type":"dance","id":"u1"}"#.into(),
            "\"u1\"",
        ),
        ("UNKNOWN_TYPE", r#"{"type":"dance"}"#.into(), ""),
        (
            "NOT_SUBSCRIBED",
            r#"{"type":"message","room":"elsewhere","content":1,"id":9.5}"#.into(),
            "9.5",
        ),
        (
            "INVALID_ROOM",
            r#"{"type":"subscribe","room":"bad room","id":"r"}"#.into(),
            "\"r\"",
        ),
        (
            "INVALID_ROOM",
            format!(r#"{{"type":"subscribe","room":"{long_room}","id":10}}"#),
            "10",
        ),
        (
            "INVALID_ROOM",
            r#"{"type":"subscribe","room":""}"#.into(),
            "",
        ),
    ];
    for (i, (code, text, id)) in cases.iter().enumerate() {
        c.send_text(text).await.expect("send");
        let e = recv_event(&mut c).await;
        assert_eq!(e["type"], "error", "case {text}: {e}");
        assert_eq!(e["code"], *code, "case {text}: {e}");
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{e}");
        if id.is_empty() {
            assert!(e.get("id").is_none(), "case {text}: {e}");
        } else {
            let expected: serde_json::Value = serde_json::from_str(id).expect("id json");
            assert_eq!(e["id"], expected, "id keeps its JSON type: {text}: {e}");
        }
        // The connection still works.
        let ack = request(
            &mut c,
            json!({"type":"subscribe","room":format!("ok{i}")}),
            json!(i),
        )
        .await;
        assert_eq!(ack["type"], "ack", "after {text}");
    }
}

#[tokio::test]
async fn ping_gets_pong_and_requests_without_id_are_silent() {
    let server = TestServer::start(&[]).await;
    let mut c = server.connect("p").await;
    c.send_json(&json!({"type":"ping"})).await.expect("send");
    assert_eq!(recv_event(&mut c).await, json!({"type":"pong"}));
    c.send_json(&json!({"type":"subscribe","room":"quiet"}))
        .await
        .expect("send");
    c.send_json(&json!({"type":"pong"})).await.expect("send");
    c.send_json(&json!({"type":"unsubscribe","room":"quiet"}))
        .await
        .expect("send");
    assert!(barrier(&mut c).await.is_empty(), "no replies without an id");
}

#[tokio::test]
async fn binary_frames_close_with_1003() {
    let server = TestServer::start(&[]).await;
    let mut c = server.connect("bin").await;
    let mut watcher = server.connect("watcher").await;
    c.stream_mut()
        .send(Message::binary(vec![1u8, 2, 3]))
        .await
        .expect("send");
    let (code, _) = recv_close(&mut c).await;
    assert_eq!(code, Some(1003));
    // Nobody else is disturbed.
    assert_eq!(recv_event(&mut watcher).await["type"], "user_left");
    let pong = request(&mut watcher, json!({"type":"ping"}), json!(1)).await;
    assert_eq!(pong["type"], "pong");
}

fn message_of_size(size: usize) -> String {
    let head = r#"{"type":"ping","pad":""#;
    let tail = r#""}"#;
    let pad = size - head.len() - tail.len();
    format!("{head}{}{tail}", "x".repeat(pad))
}

#[tokio::test]
async fn max_message_size_is_inclusive_and_oversize_closes_1009() {
    let server = TestServer::start(&[]).await;
    let mut c = server.connect("big").await;
    let exact = message_of_size(64 * 1024);
    assert_eq!(exact.len(), 65536);
    c.send_text(&exact).await.expect("send");
    assert_eq!(
        recv_event(&mut c).await["type"],
        "pong",
        "a message of exactly max_message_bytes is accepted"
    );
    c.send_text(&message_of_size(64 * 1024 + 1))
        .await
        .expect("send");
    let (code, _) = recv_close(&mut c).await;
    assert_eq!(code, Some(1009));
}

#[tokio::test]
async fn fragmented_oversize_message_closes_1009() {
    let server = TestServer::start(&["--max-message-bytes", "1000"]).await;
    let mut c = server.connect("frag").await;
    let chunk = vec![b'x'; 400];
    let s = c.stream_mut();
    s.feed(Message::Frame(Frame::message(
        chunk.clone(),
        OpCode::Data(Data::Text),
        false,
    )))
    .await
    .expect("f1");
    s.feed(Message::Frame(Frame::message(
        chunk.clone(),
        OpCode::Data(Data::Continue),
        false,
    )))
    .await
    .expect("f2");
    s.feed(Message::Frame(Frame::message(
        chunk,
        OpCode::Data(Data::Continue),
        true,
    )))
    .await
    .expect("f3");
    s.flush().await.expect("flush");
    let (code, _) = recv_close(&mut c).await;
    assert_eq!(code, Some(1009));
}

#[tokio::test]
async fn silent_connections_are_evicted_with_1001() {
    let server =
        TestServer::start(&["--heartbeat-interval", "1", "--heartbeat-timeout", "1"]).await;
    let mut silent = server.connect("silent").await;
    let mut alive = server.connect("alive").await;
    subscribe(&mut alive, "room").await;
    // The silent client reads (and sees the heartbeat pings) but never answers.
    let started = std::time::Instant::now();
    let mut pings = 0;
    let code = loop {
        match silent.recv_timeout(WAIT).await.expect("event in time") {
            Incoming::Json(v) => {
                assert_eq!(v["type"], "ping", "{v}");
                assert!(v["timestamp"].as_str().is_some());
                pings += 1;
                // Keep the live client alive by answering its heartbeats.
                alive
                    .send_json(&json!({"type":"pong"}))
                    .await
                    .expect("pong");
            }
            Incoming::Closed { code, .. } => break code,
        }
    };
    assert_eq!(code, Some(1001));
    assert!(pings >= 1, "heartbeats were sent");
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    // It is gone from every room; the live client is still served.
    let p = request(
        &mut alive,
        json!({"type":"presence","room":"general"}),
        json!("p"),
    )
    .await;
    assert_eq!(p["members"], json!(["alive"]));
}

#[tokio::test]
async fn slow_consumer_is_cut_off_while_fast_one_gets_everything_in_order() {
    let server = TestServer::start(&["--outbox-capacity", "32", "--rate-limit", "0"]).await;
    let mut publisher = server.connect("pub").await;
    let mut fast = server.connect("fast").await;
    let mut slow = server.connect("slow").await;
    for c in [&mut publisher, &mut fast, &mut slow] {
        subscribe(c, "firehose").await;
    }
    // ~16 KiB per message so the slow reader's socket buffers fill quickly. The publisher
    // stays at most WINDOW messages ahead of the fast reader (which is therefore never
    // more than WINDOW behind, well inside its queue of 32); the slow one never reads.
    const WINDOW: u64 = 8;
    let pad = "y".repeat(16 * 1024);
    let total = 1000u64;
    let (progress_tx, mut progress) = tokio::sync::watch::channel(0u64);
    let fast_reader = tokio::spawn(async move {
        let mut next = 0u64;
        while next < total {
            let m = recv_event(&mut fast).await;
            if m["type"] != "message" {
                continue;
            }
            assert_eq!(m["content"]["n"], next, "in order, none missing");
            next += 1;
            let _ = progress_tx.send(next);
        }
        next
    });
    for n in 0..total {
        progress
            .wait_for(|done| done + WINDOW >= n)
            .await
            .expect("fast reader alive");
        publisher
            .send_json(&json!({"type":"message","room":"firehose","content":{"n":n,"pad":pad}}))
            .await
            .expect("publish");
    }
    assert_eq!(fast_reader.await.expect("fast reader"), total);
    // The slow client now reads what it has: some messages, then close 1008.
    let (code, reason) = recv_close(&mut slow).await;
    assert_eq!(code, Some(1008));
    assert_eq!(reason, "slow consumer");
}

#[tokio::test]
async fn graceful_shutdown_closes_everyone_with_4091_and_exits_0() {
    let mut server = TestServer::start(&[]).await;
    let mut clients = Vec::new();
    for i in 0..5 {
        clients.push(server.connect(&format!("c{i}")).await);
    }
    server.terminate();
    for c in clients.iter_mut() {
        let (code, reason) = recv_close(c).await;
        assert_eq!(code, Some(4091));
        assert_eq!(reason, "Server shutting down");
    }
    let status = tokio::time::timeout(WAIT, server.child.wait())
        .await
        .expect("exit in time")
        .expect("wait");
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_clients_each_get_every_broadcast_once_in_order() {
    let server = TestServer::start(&["--rate-limit", "0"]).await;
    const CLIENTS: usize = 1000;
    const MESSAGES: u64 = 100;
    let mut handles = Vec::new();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(CLIENTS);
    for i in 0..CLIENTS {
        let url = server.url(&format!("/ws/fan{i}"));
        let ready = ready_tx.clone();
        handles.push(tokio::spawn(async move {
            let mut c = roomcast_client::Connection::connect(&url)
                .await
                .expect("connect");
            assert_eq!(recv_json(&mut c).await["type"], "welcome");
            subscribe(&mut c, "big").await;
            ready.send(()).await.expect("ready");
            let mut next = 0u64;
            while next < MESSAGES {
                let m = recv_event(&mut c).await;
                if m["type"] != "message" {
                    continue;
                }
                assert_eq!(m["content"], next, "client {i}");
                next += 1;
            }
            // Exactly once: nothing further arrives before the barrier.
            let extra: Vec<_> = barrier(&mut c)
                .await
                .into_iter()
                .filter(|m| m["type"] == "message")
                .collect();
            assert!(extra.is_empty(), "client {i} got duplicates {extra:?}");
            c
        }));
    }
    for _ in 0..CLIENTS {
        ready_rx.recv().await.expect("all ready");
    }
    let mut publisher = server.connect("publisher").await;
    subscribe(&mut publisher, "big").await;
    for n in 0..MESSAGES {
        publisher
            .send_json(&json!({"type":"message","room":"big","content":n}))
            .await
            .expect("publish");
    }
    let mut done = Vec::new();
    for h in handles {
        done.push(h.await.expect("client task"));
    }
    assert_eq!(done.len(), CLIENTS);
}

#[tokio::test]
async fn user_left_stops_above_the_configured_room_size() {
    // The loop below polls presence until dave is gone, which under a loaded machine can
    // take longer than the default rate limit's burst allows: a dropped request would
    // never be acked.
    let server = TestServer::start(&["--user-left-max-members", "1", "--rate-limit", "0"]).await;
    let mut bob = server.connect("bob").await;
    let alice = server.connect("alice").await;
    drop(alice);
    // One member left in general: the notice is sent.
    assert_eq!(
        recv_event(&mut bob).await,
        json!({"type":"user_left","client_id":"alice"})
    );
    let _carol = server.connect("carol").await;
    let dave = server.connect("dave").await;
    drop(dave);
    // Wait until the server has processed dave's departure, keeping every other message
    // bob receives meanwhile, then check none of them is a user_left.
    let deadline = std::time::Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        bob.send_json(&json!({"type":"presence","room":"general","id":"p"}))
            .await
            .expect("send");
        let members = loop {
            let m = recv_event(&mut bob).await;
            if m["type"] == "ack" && m["id"] == "p" {
                break m["members"].clone();
            }
            seen.push(m);
        };
        if members == json!(["bob", "carol"]) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "dave never left: {members}"
        );
        // No event tells bob that dave's departure was processed (that is the point):
        // poll, at a pace that leaves the server's cores to that work.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    seen.extend(barrier(&mut bob).await);
    let notices: Vec<_> = seen
        .into_iter()
        .filter(|m| m["type"] == "user_left")
        .collect();
    assert!(
        notices.is_empty(),
        "general had 2 members, above the limit of 1: {notices:?}"
    );
}

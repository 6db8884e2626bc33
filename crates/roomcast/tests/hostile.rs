//! The bad-input catalogue of docs/SECURITY.md, over real sockets against the real binary:
//! each hostile input gets its documented error, close code or HTTP status, the server
//! stays up, and a bystander pair in another room keeps receiving every tick in order
//! during and after each attack (util::hostile::Bystander).

mod util;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use roomcast_client::Connection;
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;
use util::hostile::*;
use util::*;

const SECRET: &str = "hostile-secret-0123456789";

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// The request's error reply (requests carry `"id":"h"`).
async fn reply_to(c: &mut roomcast_client::Connection, text: &str) -> serde_json::Value {
    c.send_text(text).await.expect("send");
    loop {
        let v = recv_json(c).await;
        if v["type"] == "error" || v["id"] == "h" {
            return v;
        }
    }
}

#[tokio::test]
async fn malformed_truncated_and_mistyped_requests_get_error_codes_on_a_live_connection() {
    let server = TestServer::start(&[]).await;
    let bystander = Bystander::start(&server).await;
    let mut c = server.connect("mallory").await;
    let long_room = "r".repeat(201);
    let cases: Vec<(String, &str)> = vec![
        (r#"{"type":"subscribe","room":"#.into(), "INVALID_JSON"),
        (r#"{"type":"ping"} trailing"#.into(), "INVALID_JSON"),
        ("\u{1}\u{2}not json".into(), "INVALID_JSON"),
        (r#"[1,2,3]"#.into(), "INVALID_MESSAGE"),
        (r#"{"id":"h"}"#.into(), "INVALID_MESSAGE"),
        (r#"{"type":7,"id":"h"}"#.into(), "INVALID_MESSAGE"),
        (r#"{"type":"ping","id":{"x":1}}"#.into(), "INVALID_MESSAGE"),
        (r#"{"type":"teleport","id":"h"}"#.into(), "UNKNOWN_TYPE"),
        (
            r#"{"type":"subscribe","room":5,"id":"h"}"#.into(),
            "INVALID_MESSAGE",
        ),
        (r#"{"type":"subscribe","id":"h"}"#.into(), "INVALID_MESSAGE"),
        (
            r#"{"type":"message","room":"general","id":"h"}"#.into(),
            "INVALID_MESSAGE",
        ),
        (
            r#"{"type":"subscribe","room":"a","since":"x","id":"h"}"#.into(),
            "INVALID_MESSAGE",
        ),
        (
            json!({"type":"subscribe","room":long_room,"id":"h"}).to_string(),
            "INVALID_ROOM",
        ),
        (
            json!({"type":"subscribe","room":"a\u{0}b","id":"h"}).to_string(),
            "INVALID_ROOM",
        ),
        (
            json!({"type":"subscribe","room":"a\nb","id":"h"}).to_string(),
            "INVALID_ROOM",
        ),
        (
            json!({"type":"subscribe","room":"","id":"h"}).to_string(),
            "INVALID_ROOM",
        ),
        (
            json!({"type":"message","room":"elsewhere","content":1,"id":"h"}).to_string(),
            "NOT_SUBSCRIBED",
        ),
    ];
    for (text, code) in &cases {
        let v = bystander.during(reply_to(&mut c, text)).await;
        assert_error(&v, code);
    }
    // The connection is still usable after every one of them.
    let pong = request(&mut c, json!({"type":"ping"}), json!("after")).await;
    assert_eq!(pong["type"], "pong");
    bystander.finish().await;
}

#[tokio::test]
async fn ten_thousand_nested_arrays_overflow_no_stack() {
    let server = TestServer::start(&[]).await;
    let bystander = Bystander::start(&server).await;
    let mut c = server.connect("nester").await;
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    // As the whole request: valid JSON, not an object.
    let v = bystander.during(reply_to(&mut c, &deep)).await;
    assert_error(&v, "INVALID_MESSAGE");
    // Unclosed: invalid JSON.
    let v = bystander
        .during(reply_to(&mut c, &"[".repeat(10_000)))
        .await;
    assert_error(&v, "INVALID_JSON");
    // Where a typed field is expected.
    let text = format!(r#"{{"type":"subscribe","room":"a","since":{deep},"id":"h"}}"#);
    let v = bystander.during(reply_to(&mut c, &text)).await;
    assert_error(&v, "INVALID_MESSAGE");
    // In an ignored field and as opaque content: skipped without recursion, accepted, and
    // forwarded verbatim (content is the publisher's business).
    let text = format!(r#"{{"type":"subscribe","room":"deep","junk":{deep},"id":"h"}}"#);
    assert_eq!(
        bystander.during(reply_to(&mut c, &text)).await["type"],
        "ack"
    );
    let mut reader = server.connect("deep-reader").await;
    subscribe(&mut reader, "deep").await;
    let text = format!(r#"{{"type":"message","room":"deep","content":{deep},"id":"h"}}"#);
    assert_eq!(
        bystander.during(reply_to(&mut c, &text)).await["type"],
        "ack"
    );
    let forwarded = loop {
        match tokio::time::timeout(WAIT, reader.stream_mut().next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.as_str().contains(r#""room":"deep""#) => break t,
            Ok(Some(Ok(_))) => continue,
            other => panic!("the deep message was not forwarded: {other:?}"),
        }
    };
    assert!(
        forwarded.as_str().contains(&deep),
        "content forwarded byte for byte"
    );
    let pong = request(&mut c, json!({"type":"ping"}), json!("after")).await;
    assert_eq!(pong["type"], "pong");
    bystander.finish().await;
}

#[tokio::test]
async fn binary_invalid_utf8_and_oversized_frames_close_with_their_codes() {
    let server = TestServer::start(&["--max-message-bytes", "1000"]).await;
    let bystander = Bystander::start(&server).await;

    let mut c = server.connect("binary").await;
    c.stream_mut()
        .send(Message::binary(vec![0u8, 1, 2]))
        .await
        .expect("send");
    assert_eq!(bystander.during(recv_close(&mut c)).await.0, Some(1003));

    let mut c = server.connect("utf8").await;
    let bad = Frame::message(vec![b'"', 0xff, 0xfe, b'"'], OpCode::Data(Data::Text), true);
    c.stream_mut()
        .send(Message::Frame(bad))
        .await
        .expect("send");
    assert_eq!(bystander.during(recv_close(&mut c)).await.0, Some(1007));

    let mut c = server.connect("huge").await;
    let huge = json!({"type":"ping","pad":"x".repeat(5000)}).to_string();
    c.send_text(&huge).await.expect("send");
    assert_eq!(bystander.during(recv_close(&mut c)).await.0, Some(1009));

    // Fragments each under the limit whose message is over it.
    let mut c = server.connect("frag").await;
    let s = c.stream_mut();
    let chunk = vec![b' '; 400];
    for (i, op) in [Data::Text, Data::Continue, Data::Continue]
        .into_iter()
        .enumerate()
    {
        let frame = Frame::message(chunk.clone(), OpCode::Data(op), i == 2);
        s.feed(Message::Frame(frame)).await.expect("fragment");
    }
    s.flush().await.expect("flush");
    assert_eq!(bystander.during(recv_close(&mut c)).await.0, Some(1009));
    bystander.finish().await;
}

#[tokio::test]
async fn bad_client_ids_are_400_and_room_names_are_opaque_keys() {
    let server = TestServer::start(&[]).await;
    let bystander = Bystander::start(&server).await;
    let long = "a".repeat(129);
    for bad in [
        "a%00b",
        "a%0Ab",
        "a%1Bb",
        "..%2F..%2Fetc%2Fpasswd",
        "a%2Fb",
        "a%20b",
        long.as_str(),
    ] {
        let mut tcp = tcp_from(ip(1), server.addr).await.expect("tcp");
        let req = upgrade_request(&format!("/ws/{bad}"), "Sec-WebSocket-Version: 13\r\n");
        let (resp, _) = bystander.during(raw_exchange(&mut tcp, &req, WAIT)).await;
        assert_eq!(status_of(&resp), Some(400), "{bad}: {resp}");
    }
    // `..` is a valid client id and `../../etc/passwd` a valid room name: ids and rooms are
    // keys, never paths.
    server.connect("..").await;
    let mut c = server.connect("traveller").await;
    let ack = subscribe(&mut c, "../../etc/passwd").await;
    assert_eq!(ack["room"], "../../etc/passwd");
    bystander.finish().await;
}

#[tokio::test]
async fn slowloris_upgrades_are_closed_by_the_header_read_timeout() {
    let server = TestServer::start(&["--header-read-timeout", "1"]).await;
    let bystander = Bystander::start(&server).await;
    let started = Instant::now();
    let attack = async {
        let mut slow = Vec::new();
        for i in 0..200u32 {
            let mut tcp = tcp_from(ip(2), server.addr).await.expect("tcp");
            // Half of them send a partial request line, half send nothing at all.
            if i % 2 == 0 {
                use tokio::io::AsyncWriteExt;
                tcp.write_all(b"GET /ws/slow HTTP/1.1\r\nHost: x\r\n")
                    .await
                    .expect("write");
            }
            slow.push(tcp);
        }
        let mut closed = 0;
        for tcp in &mut slow {
            let (resp, was_closed) = read_until_closed(tcp, Duration::from_secs(5)).await;
            assert!(!resp.starts_with("HTTP/1.1 101"), "{resp}");
            closed += usize::from(was_closed);
        }
        closed
    };
    let closed = bystander.during(attack).await;
    assert_eq!(closed, 200, "every slow connection is closed");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    // A client that keeps trickling header lines is closed too (the timeout is for the
    // whole header block, not per read).
    let mut tcp = tcp_from(ip(2), server.addr).await.expect("tcp");
    let trickle = async {
        use tokio::io::AsyncWriteExt;
        tcp.write_all(b"GET /ws/trickle HTTP/1.1\r\n")
            .await
            .expect("write");
        for i in 0..30 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if tcp
                .write_all(format!("X-Slow-{i}: 1\r\n").as_bytes())
                .await
                .is_err()
            {
                return true;
            }
        }
        false
    };
    let cut = bystander.during(trickle).await;
    let (_, closed) = read_until_closed(&mut tcp, Duration::from_secs(3)).await;
    assert!(cut || closed, "the trickling client was not cut off");
    bystander.finish().await;
}

#[tokio::test]
async fn upgrades_without_the_right_headers_are_refused_before_upgrade() {
    let server = TestServer::start(&[]).await;
    let bystander = Bystander::start(&server).await;
    let plain_get =
        b"GET /ws/nohdr HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".to_vec();
    let no_key = b"GET /ws/nokey HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n"
        .to_vec();
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("no Upgrade headers", plain_get, 400),
        ("no Sec-WebSocket-Key", no_key, 400),
        ("no version", upgrade_request("/ws/nover", ""), 400),
        ("version 8", upgrade_request("/ws/v8", "Sec-WebSocket-Version: 8\r\n"), 400),
        ("version 99", upgrade_request("/ws/v99", "Sec-WebSocket-Version: 99\r\n"), 400),
        (
            "POST upgrade",
            b"POST /ws/post HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nContent-Length: 0\r\n\r\n"
                .to_vec(),
            405,
        ),
    ];
    for (what, req, want) in cases {
        let mut tcp = tcp_from(ip(1), server.addr).await.expect("tcp");
        let (resp, _) = bystander.during(raw_exchange(&mut tcp, &req, WAIT)).await;
        assert_eq!(status_of(&resp), Some(want), "{what}: {resp}");
    }
    bystander.finish().await;
}

#[tokio::test]
async fn connection_flood_from_one_ip_gets_429_beyond_its_budget() {
    let server = TestServer::start(&["--max-connections-per-ip", "20"]).await;
    // The bystander pair uses 2 of 127.0.0.1's places; the flood comes from 127.0.0.3.
    let bystander = Bystander::start(&server).await;
    let attack = async {
        let mut open = Vec::new();
        let mut refused = 0;
        for _ in 0..300 {
            let mut tcp = tcp_from(ip(3), server.addr).await.expect("tcp");
            // A refused connection is answered at once, before it sends anything.
            let (resp, closed) = read_until_closed(&mut tcp, Duration::from_millis(300)).await;
            if closed {
                assert_eq!(status_of(&resp), Some(429), "{resp}");
                assert!(resp.contains("Retry-After: 1"), "{resp}");
                refused += 1;
            } else {
                open.push(tcp);
            }
        }
        (open, refused)
    };
    let (open, refused) = bystander.during(attack).await;
    assert_eq!(open.len(), 20);
    assert_eq!(refused, 280);
    // Another address is unaffected, and the places come back when the flood leaves.
    let mut other = Connection::connect(&server.url("/ws/other"))
        .await
        .expect("other ip");
    assert_eq!(recv_json(&mut other).await["type"], "welcome");
    drop(open);
    let deadline = Instant::now() + WAIT;
    loop {
        let mut tcp = tcp_from(ip(3), server.addr).await.expect("tcp");
        let req = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        let (resp, _) = raw_exchange(&mut tcp, req, WAIT).await;
        if status_of(&resp) == Some(200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the places never came back: {resp}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bystander.finish().await;
}

#[tokio::test]
async fn ten_thousand_slow_authenticators_are_bounded_and_timed_out() {
    // Ed25519 challenge connections that never answer: at most 32 per address and 1024 in
    // all sit in the challenge; the rest get 429/503 before the upgrade; all time out 4004.
    let server = TestServer::start(&["--auth-timeout", "4"]).await;
    let bystander = Bystander::start(&server).await;
    let addr = server.addr;
    let attack = async move {
        let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(256));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..10_000u32 {
            let permit = sem.clone().acquire_owned().await.expect("semaphore");
            // 2,000 from 127.0.0.9 (over its per-address budget of 32), then 8,000 spread
            // over 127.0.0.10 ..= 127.0.0.49 (over the total budget of 1,024).
            let source = if i < 2000 {
                ip(9)
            } else {
                ip(10 + (i % 40) as u8)
            };
            tasks.spawn(async move {
                let _permit = permit;
                let tcp = tcp_from(source, addr).await.expect("tcp");
                let url = format!("ws://{addr}/ws/slow{i}?auth=ed25519");
                match tokio_tungstenite::client_async(url, tcp).await {
                    Ok((ws, _)) => Ok(ws),
                    Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
                    Err(e) => panic!("{e}"),
                }
            });
        }
        let (mut pending, mut per_ip, mut total) = (Vec::new(), 0, 0);
        while let Some(r) = tasks.join_next().await {
            match r.expect("task") {
                Ok(ws) => pending.push(ws),
                Err(429) => per_ip += 1,
                Err(503) => total += 1,
                Err(other) => panic!("unexpected status {other}"),
            }
        }
        (pending, per_ip, total)
    };
    let (mut pending, per_ip, total) = bystander.during(attack).await;
    assert!(pending.len() <= 1024, "{} pending", pending.len());
    assert!(pending.len() >= 1000, "{} pending", pending.len());
    assert!(per_ip > 0 && total > 0, "429: {per_ip}, 503: {total}");
    assert_eq!(pending.len() + per_ip + total, 10_000);
    // Every one of them is closed 4004 after the authentication timeout.
    let closes = async {
        let mut codes = std::collections::BTreeMap::new();
        for ws in &mut pending {
            loop {
                match tokio::time::timeout(WAIT, ws.next())
                    .await
                    .expect("closed in time")
                {
                    Some(Ok(Message::Close(c))) => {
                        *codes.entry(c.map(|c| u16::from(c.code))).or_insert(0) += 1;
                        break;
                    }
                    Some(Ok(_)) => continue,
                    _ => {
                        *codes.entry(None).or_insert(0) += 1;
                        break;
                    }
                }
            }
        }
        codes
    };
    let codes = bystander.during(closes).await;
    assert_eq!(
        codes.keys().collect::<Vec<_>>(),
        vec![&Some(4004)],
        "{codes:?}"
    );
    drop(pending);
    // The budget is free again.
    let url = format!("ws://{addr}/ws/late?auth=ed25519");
    let tcp = tcp_from(ip(10), addr).await.expect("tcp");
    let (_late, _) = tokio_tungstenite::client_async(url, tcp)
        .await
        .expect("a place again");
    bystander.finish().await;
}

#[tokio::test]
async fn publish_flood_is_rate_limited_then_closed_4021() {
    let server = TestServer::start(&[]).await;
    let bystander = Bystander::start(&server).await;
    let mut c = server.connect("flooder").await;
    subscribe(&mut c, "flood").await;
    let mut reader = server.connect("flood-reader").await;
    subscribe(&mut reader, "flood").await;
    let attack = async {
        let s = c.stream_mut();
        for n in 0..500 {
            let msg = json!({"type":"message","room":"flood","content":{"n":n}});
            if s.feed(Message::text(msg.to_string())).await.is_err() {
                break;
            }
        }
        let _ = s.flush().await;
        let mut rate_limited = 0;
        let code = loop {
            match c.recv_timeout(WAIT).await.expect("an answer") {
                roomcast_client::Incoming::Json(v) if v["code"] == "RATE_LIMITED" => {
                    rate_limited += 1
                }
                roomcast_client::Incoming::Json(_) => {}
                roomcast_client::Incoming::Closed { code, .. } => break code,
            }
        };
        (rate_limited, code)
    };
    let (rate_limited, code) = bystander.during(attack).await;
    assert_eq!(code, Some(4021));
    assert!(rate_limited >= 1, "{rate_limited}");
    // What got through is the burst (20), delivered in order.
    let got = barrier(&mut reader).await;
    let ns: Vec<u64> = got
        .iter()
        .filter(|v| v["type"] == "message")
        .filter_map(|v| v["content"]["n"].as_u64())
        .collect();
    assert_eq!(ns, (0..ns.len() as u64).collect::<Vec<_>>());
    assert!((15..=25).contains(&ns.len()), "{}", ns.len());
    bystander.finish().await;
}

#[tokio::test]
async fn forbidden_origin_and_misplaced_tokens_are_refused() {
    let server = TestServer::start_secure(&[
        "--jwt-secret",
        SECRET,
        "--allowed-origins",
        "http://good.example",
    ])
    .await;
    let bystander = Bystander::start_with(&server, Some(SECRET)).await;
    let token = mint(SECRET, "eve");
    // A forbidden Origin: 403 before upgrading, even with a valid token.
    let mut tcp = tcp_from(ip(1), server.addr).await.expect("tcp");
    let req = upgrade_request(
        &format!("/ws/eve?token={token}"),
        "Sec-WebSocket-Version: 13\r\nOrigin: http://evil.example\r\n",
    );
    let (resp, _) = bystander.during(raw_exchange(&mut tcp, &req, WAIT)).await;
    assert_eq!(status_of(&resp), Some(403), "{resp}");
    // A token where the server does not read one is no token: accept, then 4001.
    let wrong_places = [
        format!("Cookie: token={token}\r\n"),
        format!("Authorization: Token {token}\r\n"),
        format!("X-Token: {token}\r\n"),
    ];
    for header in &wrong_places {
        let url = format!("ws://{}/ws/eve", server.addr);
        let mut request =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
                .expect("request");
        let (name, value) = header.trim_end().split_once(": ").expect("header");
        request.headers_mut().insert(
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())
                .expect("name"),
            value.parse().expect("value"),
        );
        let attempt = async {
            match tokio_tungstenite::connect_async(request).await {
                Ok((ws, _)) => {
                    let mut c = Connection::from_stream(ws);
                    recv_close(&mut c).await.0
                }
                Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Some(r.status().as_u16()),
                Err(e) => panic!("{header}: {e}"),
            }
        };
        let code = bystander.during(attempt).await;
        assert_eq!(code, Some(4001), "{header}");
    }
    // The token in the query, but for another subject: 4001.
    let mut c = Connection::connect(&server.url(&format!("/ws/mallory?token={token}")))
        .await
        .expect("upgrade");
    assert_eq!(bystander.during(recv_close(&mut c)).await.0, Some(4001));
    bystander.finish().await;
}

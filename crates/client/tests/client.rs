//! `RoomcastClient` against the real `roomcast` binary: publish/subscribe, exact replay
//! after a SIGTERM restart, `recovery_failed` after kill -9, fatal close codes, backoff
//! bounds and heartbeat. Needs `cargo build -p roomcast` (see tests/util).

mod util;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use roomcast_client::{ClientEvent, ClientOptions, Error, RoomcastClient, State, Subscription};
use serde_json::{json, Value};
use tokio::sync::broadcast;
use util::{client, fast, until_state, TestServer, WAIT};

async fn next(sub: &mut Subscription) -> Value {
    tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("an event in time")
        .expect("subscription open")
}

/// bob in `chat`: his client, its events (subscribed first) and his subscription; then
/// alice in `chat` to publish, with her subscription (dropping a Subscription leaves the
/// room, so she keeps hers).
async fn chat_pair(
    server: &TestServer,
) -> (
    RoomcastClient,
    broadcast::Receiver<ClientEvent>,
    Subscription,
    RoomcastClient,
    Subscription,
) {
    let bob = client(server, "bob").await;
    let events = bob.events();
    let chat = bob.subscribe("chat").await.expect("subscribe");
    let alice = client(server, "alice").await;
    let alice_chat = alice.subscribe("chat").await.expect("subscribe");
    (bob, events, chat, alice, alice_chat)
}

/// The next `message` event's `content.n`, skipping control events (replay_complete).
async fn next_n(sub: &mut Subscription) -> u64 {
    loop {
        let ev = next(sub).await;
        if ev["type"] == "message" {
            return ev["content"]["n"].as_u64().expect("numbered content");
        }
    }
}

#[tokio::test]
async fn publish_and_subscribe_deliver_in_order_with_acks() {
    let server = TestServer::start(&[]).await;
    let alice = client(&server, "alice").await;
    let bob = client(&server, "bob").await;
    let mut chat = bob.subscribe("chat").await.expect("subscribe");
    alice.subscribe("chat").await.expect("subscribe");
    let mut last = 0;
    for n in 1..=5 {
        let ack = alice.publish("chat", json!({"n": n})).await.expect("ack");
        let seq = ack["sequence"].as_u64().expect("sequence");
        assert!(seq > last, "acks are sequenced: {ack}");
        last = seq;
    }
    for n in 1..=5 {
        let ev = next(&mut chat).await;
        assert_eq!(
            (ev["from"].clone(), ev["content"]["n"].clone()),
            (json!("alice"), json!(n))
        );
    }
    assert_eq!(
        alice.presence("chat").await.expect("presence"),
        ["alice", "bob"]
    );
    match alice.publish("elsewhere", json!(1)).await {
        Err(Error::Server { code, .. }) => assert_eq!(code, "NOT_SUBSCRIBED"),
        other => panic!("publish outside a room: {other:?}"),
    }
    assert!(matches!(
        bob.subscribe("chat").await,
        Err(Error::AlreadySubscribed(_))
    ));
    alice.close().await;
    assert_eq!(alice.state(), State::Closed);
    assert!(matches!(
        alice.publish("chat", json!(1)).await,
        Err(Error::Closed { .. })
    ));
}

#[tokio::test]
async fn a_sigterm_restart_replays_exactly_what_was_missed() {
    let server = TestServer::start(&[]).await;
    let (_bob, mut events, mut chat, alice, _alice_chat) = chat_pair(&server).await;
    let mut fifth = Value::Null;
    for n in 1..=5 {
        fifth = alice.publish("chat", json!({"n": n})).await.expect("ack");
    }
    let mut alice_events = alice.events();
    for n in 1..=5 {
        assert_eq!(next_n(&mut chat).await, n);
    }
    let server = TestServer::restart(server.terminate().await).await;
    // A raw publisher gets in right after the restart; bob is still backing off, so
    // these events reach him by replay (or live, if he was quicker: exactly once either way).
    let mut carol = roomcast_client::Connection::connect(&format!("{}/ws/carol", server.ws()))
        .await
        .expect("carol");
    let hello = carol.recv_type("welcome", WAIT).await.expect("welcome");
    assert_eq!(hello.kind(), Some("welcome"));
    carol
        .send_json(&json!({"type": "subscribe", "room": "chat", "id": 1}))
        .await
        .expect("send");
    for n in 6..=10 {
        carol
            .send_json(&json!({"type": "message", "room": "chat", "content": {"n": n}}))
            .await
            .expect("send");
    }
    for n in 6..=10 {
        assert_eq!(
            next_n(&mut chat).await,
            n,
            "in order, none missed or doubled"
        );
    }
    util::until_welcome(&mut alice_events).await;
    alice
        .publish("chat", json!({"n": 11}))
        .await
        .expect("ack after reconnect");
    assert_eq!(next_n(&mut chat).await, 11);
    // Deterministically through the replay path: a new client resuming from the fifth
    // event gets exactly 6..=11, replayed, under the same epoch.
    let dave = client(&server, "dave").await;
    let since = roomcast_client::Position {
        sequence: fifth["sequence"].as_u64().expect("sequence"),
        epoch: fifth["epoch"].as_str().expect("epoch").to_owned(),
    };
    let mut resumed = dave
        .subscribe_since("chat", Some(since))
        .await
        .expect("since");
    for n in 6..=11 {
        let ev = loop {
            let ev = next(&mut resumed).await;
            assert_ne!(ev["type"], "recovery_failed", "{ev}");
            if ev["type"] == "message" {
                break ev;
            }
        };
        assert_eq!(
            (ev["content"]["n"].as_u64(), ev["replayed"].as_bool()),
            (Some(n), Some(true))
        );
    }
    // No recovery_failed: a clean restart keeps the epoch.
    while let Ok(ev) = events.try_recv() {
        assert!(!matches!(ev, ClientEvent::RecoveryFailed(_)), "{ev:?}");
    }
}

#[tokio::test]
async fn kill_9_surfaces_recovery_failed_and_the_room_continues() {
    let server = TestServer::start(&[]).await;
    let (_bob, mut events, mut chat, alice, _alice_chat) = chat_pair(&server).await;
    let mut alice_events = alice.events();
    alice.publish("chat", json!({"n": 1})).await.expect("ack");
    assert_eq!(next_n(&mut chat).await, 1);
    let _server = TestServer::restart(server.kill9().await).await;
    let failed = loop {
        let ev = next(&mut chat).await;
        if ev["type"] == "recovery_failed" {
            break ev;
        }
    };
    assert_eq!(failed["room"], "chat");
    assert_eq!(failed["reason"], "epoch_changed", "{failed}");
    let surfaced = tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(ClientEvent::RecoveryFailed(ev)) = events.recv().await {
                return ev;
            }
        }
    })
    .await
    .expect("client event");
    assert_eq!(surfaced, failed);
    util::until_welcome(&mut alice_events).await;
    alice.publish("chat", json!({"n": 2})).await.expect("ack");
    assert_eq!(next_n(&mut chat).await, 2, "the room continues live");
}

#[tokio::test]
async fn a_superseded_session_stops_instead_of_fighting() {
    let server = TestServer::start(&[]).await;
    let first = client(&server, "dup").await;
    let _second = client(&server, "dup").await;
    match tokio::time::timeout(WAIT, first.wait_closed())
        .await
        .expect("stops")
    {
        Error::Closed { code, .. } => assert_eq!(code, Some(4011)),
        other => panic!("{other:?}"),
    }
    assert_eq!(first.state(), State::Closed);
}

#[tokio::test]
async fn backoff_stays_within_its_windows_and_max_attempts_ends_it() {
    // A port with nothing listening: every attempt fails at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port");
    let options = ClientOptions {
        backoff_base: Duration::from_millis(100),
        backoff_cap: Duration::from_millis(250),
        max_attempts: Some(4),
        ..ClientOptions::default()
    };
    let started = Instant::now();
    let result = RoomcastClient::builder(format!("ws://{port}"))
        .client_id("nobody")
        .options(options)
        .connect()
        .await;
    let took = started.elapsed();
    match result {
        Err(Error::Closed { reason, .. }) => assert!(reason.contains("attempts"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // Windows 100 + 200 + 250 + 250 ms: the four delays sum to less than 800 ms.
    assert!(
        took < Duration::from_millis(800) + Duration::from_millis(500),
        "{took:?}"
    );
}

#[tokio::test]
async fn a_silent_server_is_detected_by_the_heartbeat_and_reconnected() {
    let server = TestServer::start(&["--heartbeat-interval", "1"]).await;
    let options = ClientOptions {
        heartbeat_timeout: Duration::from_millis(500),
        ..fast()
    };
    let c = RoomcastClient::builder(server.ws())
        .client_id("hb")
        .options(options)
        .connect()
        .await
        .expect("connect");
    // Answering pings keeps the session alive past several intervals.
    let mut states = c.state_watch();
    states.borrow_and_update();
    let quiet = tokio::time::timeout(Duration::from_millis(3500), states.changed()).await;
    assert!(
        quiet.is_err(),
        "state changed while pings were answered: {:?}",
        c.state()
    );
    let pid = server.child.id().expect("running").to_string();
    let stop = |sig: &str| {
        std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .expect("kill")
    };
    stop("-STOP");
    until_state(&c, State::Disconnected).await;
    stop("-CONT");
    until_state(&c, State::Connected).await;
}

#[tokio::test]
async fn requests_made_while_reconnecting_wait_or_fail_by_policy() {
    let server = TestServer::start(&[]).await;
    let queued = client(&server, "queued").await;
    let _room = queued.subscribe("chat").await.expect("subscribe");
    let failing = RoomcastClient::builder(server.ws())
        .client_id("failing")
        .options(ClientOptions {
            offline_policy: roomcast_client::OfflinePolicy::Fail,
            ..fast()
        })
        .connect()
        .await
        .expect("connect");
    let parts = server.terminate().await;
    until_state(&queued, State::Disconnected).await;
    until_state(&failing, State::Disconnected).await;
    let waiting = tokio::spawn({
        let queued = queued.clone();
        async move { queued.publish("chat", json!({"n": 1})).await }
    });
    assert!(matches!(
        failing.presence("chat").await,
        Err(Error::NotConnected(_))
    ));
    let _server = TestServer::restart(parts).await;
    let ack = tokio::time::timeout(WAIT, waiting)
        .await
        .expect("in time")
        .expect("task")
        .expect("the queued publish went out after the resubscribe");
    assert_eq!(ack["type"], "ack");
}

fn mint(secret: &str, sub: &str, ttl: Duration) -> String {
    let request = roomcast_engine::auth::jwt::MintRequest::new(sub, ttl);
    roomcast_engine::auth::jwt::mint_hs256(secret, &request, time::OffsetDateTime::now_utc())
        .expect("mint")
}

#[tokio::test]
async fn an_expired_token_without_a_source_stops_with_4003() {
    const SECRET: &str = "client-tests-shared-secret-0123456789";
    let server = TestServer::start_secure(&["--jwt-secret", SECRET, "--jwt-leeway", "0"]).await;
    let c = RoomcastClient::builder(server.ws())
        .client_id("short")
        .token(mint(SECRET, "short", Duration::from_secs(2)))
        .options(fast())
        .connect()
        .await
        .expect("connect");
    match tokio::time::timeout(WAIT, c.wait_closed())
        .await
        .expect("stops")
    {
        Error::Closed { code, .. } => assert_eq!(code, Some(4003)),
        other => panic!("{other:?}"),
    }
    // A refused token on connect stops too (no retry loop against a 401).
    let refused = RoomcastClient::builder(server.ws())
        .client_id("short")
        .token(mint(
            "a-secret-the-server-does-not-know-at-all",
            "short",
            Duration::from_secs(60),
        ))
        .options(fast())
        .connect()
        .await;
    assert!(matches!(refused, Err(Error::Closed { .. })), "{refused:?}");
}

#[tokio::test]
async fn a_token_source_refreshes_the_session_before_its_token_expires() {
    use roomcast_engine::auth::jwt::{mint_hs256, MintRequest};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    const SECRET: &str = "client-tests-shared-secret-0123456789";
    let server = TestServer::start_secure(&["--jwt-secret", SECRET, "--jwt-leeway", "0"]).await;
    let calls = Arc::new(AtomicU32::new(0));
    let source: roomcast_client::TokenSource = Arc::new({
        let calls = calls.clone();
        move || {
            // The first token lives 4 s (warned at ~2 s), the refreshed ones a minute.
            let first = calls.fetch_add(1, Ordering::SeqCst) == 0;
            let ttl = Duration::from_secs(if first { 4 } else { 60 });
            let request = MintRequest::new("tok", ttl);
            let token = mint_hs256(SECRET, &request, time::OffsetDateTime::now_utc()).ok();
            Box::pin(async move { token })
        }
    });
    let c = RoomcastClient::builder(server.ws())
        .client_id("tok")
        .token_source(source)
        .options(fast())
        .connect()
        .await
        .expect("connect with the source's token");
    let mut events = c.events();
    let mut states = c.state_watch();
    states.borrow_and_update();
    let refreshed = tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(ClientEvent::TokenRefreshed(ack)) = events.recv().await {
                return ack;
            }
        }
    })
    .await
    .expect("token_expiring answered with refresh");
    assert_eq!(refreshed["type"], "ack");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // Past the first token's expiry the session is still the same connection.
    let quiet = tokio::time::timeout(Duration::from_secs(3), states.changed()).await;
    assert!(quiet.is_err(), "the session changed state: {:?}", c.state());
    c.subscribe("chat").await.expect("still authenticated");
}

//! Sessions do not outlive their credentials (issue 11, point 6), black-box against the
//! real binary over real sockets and the real clock: a JWT session is warned with
//! `token_expiring` and closed with 4003 at its token's expiry unless it sends `refresh`;
//! a refresh for another subject is refused and changes nothing; a narrower refreshed
//! token leaves the rooms it no longer allows with an `unsubscribed` event; and
//! connections still in the Ed25519 challenge are bounded per IP and in total.

mod util;

use std::time::Duration;

use roomcast_client::{Connection, Incoming};
use roomcast_engine::auth::jwt::{mint_hs256, MintRequest};
use serde_json::{json, Value};
use time::OffsetDateTime;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite;
use util::*;

const SECRET: &str = "refresh-tests-shared-secret-0123456789";
const OTHER_SECRET: &str = "a-secret-the-server-does-not-know-at-all";

/// A token request for `sub` living `ttl`, with no optional claims.
fn claims(sub: &str, ttl: Duration) -> MintRequest {
    MintRequest::new(sub, ttl)
}

fn mint_with(secret: &str, request: &MintRequest) -> String {
    mint_hs256(secret, request, OffsetDateTime::now_utc()).expect("mint a token")
}

fn mint(request: &MintRequest) -> String {
    mint_with(SECRET, request)
}

/// The `exp` of a token minted now with `ttl`, in Unix milliseconds.
fn exp_ms_of(ttl: Duration) -> i128 {
    (i128::from(OffsetDateTime::now_utc().unix_timestamp()) + i128::from(ttl.as_secs() as i64))
        * 1000
}

fn now_ms() -> i128 {
    OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000
}

/// A server requiring JWTs, with no clock leeway so a session ends exactly at `exp`.
async fn secure(extra: &[&str]) -> TestServer {
    let mut args = vec!["--jwt-secret", SECRET, "--jwt-leeway", "0"];
    args.extend_from_slice(extra);
    TestServer::start_secure(&args).await
}

/// Connects with `token` and consumes the welcome.
async fn login(server: &TestServer, client_id: &str, token: &str) -> Connection {
    login_welcome(server, client_id, token).await.0
}

/// Connects with `token`; returns the connection and its welcome.
async fn login_welcome(server: &TestServer, client_id: &str, token: &str) -> (Connection, Value) {
    let mut c = server
        .connect_raw(&format!("{client_id}?token={token}"))
        .await;
    let welcome = recv_json(&mut c).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    (c, welcome)
}

/// The next message of type `kind`, skipping heartbeats; panics on anything else.
async fn expect_type(c: &mut Connection, kind: &str) -> Value {
    let v = recv_event(c).await;
    assert_eq!(v["type"], kind, "{v}");
    v
}

/// Asserts the connection stays open (no close frame) until `until`, and returns the
/// non-heartbeat messages that arrived meanwhile.
async fn stays_open_until(c: &mut Connection, until: Instant) -> Vec<Value> {
    let mut got = Vec::new();
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return got;
        }
        match tokio::time::timeout(left, c.recv()).await {
            Err(_) => return got,
            Ok(Ok(Incoming::Json(v))) if v["type"] == "ping" => {}
            Ok(Ok(Incoming::Json(v))) => got.push(v),
            Ok(other) => panic!("the session ended early: {other:?}"),
        }
    }
}

/// The HTTP status of a WebSocket handshake to `path` refused before the upgrade.
async fn refused_status(server: &TestServer, path: &str) -> u16 {
    match tokio_tungstenite::connect_async(server.url(path)).await {
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("{path}: expected an HTTP refusal, got {other:?}"),
        Ok(_) => panic!("{path}: expected an HTTP refusal, the upgrade succeeded"),
    }
}

/// Opens a connection that will sit in the Ed25519 challenge, and waits for the challenge.
async fn slow_authenticator(server: &TestServer, path: &str) -> Connection {
    let mut c = Connection::connect(&server.url(path))
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let m = recv_json(&mut c).await;
    assert_eq!(m["type"], "auth_challenge", "{path}: {m}");
    c
}

#[tokio::test]
async fn session_without_refresh_is_warned_then_closed_4003_at_exp() {
    let server = secure(&[]).await;
    let ttl = Duration::from_secs(3);
    let exp_ms = exp_ms_of(ttl);
    let mut c = login(&server, "alice", &mint(&claims("alice", ttl))).await;
    let warning = expect_type(&mut c, "token_expiring").await;
    let expires_in = warning["expires_in"].as_u64().expect("expires_in");
    assert!((1..=2).contains(&expires_in), "{warning}");
    let warned_at = now_ms();
    assert!(warned_at < exp_ms, "warned only after exp: {warning}");
    let (code, reason) = recv_close(&mut c).await;
    assert_eq!(code, Some(4003), "{reason}");
    assert_eq!(reason, "Token expired");
    let closed_at = now_ms();
    // Closed at exp (the maintenance tick is at most 1 s), never before it.
    assert!(
        closed_at + 50 >= exp_ms,
        "closed {} ms early",
        exp_ms - closed_at
    );
    assert!(
        closed_at <= exp_ms + 2_000,
        "closed {} ms late",
        closed_at - exp_ms
    );
    // The session is gone: another client no longer sees it in general.
    let mut bob = login(
        &server,
        "bob",
        &mint(&claims("bob", Duration::from_secs(3600))),
    )
    .await;
    let members = request(
        &mut bob,
        json!({"type":"presence","room":"general"}),
        json!("p"),
    )
    .await;
    assert_eq!(members["members"], json!(["bob"]), "{members}");
}

#[tokio::test]
async fn refresh_extends_the_session_past_the_first_exp() {
    let server = secure(&[]).await;
    let ttl = Duration::from_secs(3);
    let exp_ms = exp_ms_of(ttl);
    let (mut alice, welcome) = login_welcome(&server, "alice", &mint(&claims("alice", ttl))).await;
    let mut bob = login(
        &server,
        "bob",
        &mint(&claims("bob", Duration::from_secs(3600))),
    )
    .await;
    subscribe(&mut alice, "chat").await;
    subscribe(&mut bob, "chat").await;
    expect_type(&mut alice, "token_expiring").await;
    let fresh = mint(&claims("alice", Duration::from_secs(3600)));
    let ack = request(
        &mut alice,
        json!({"type":"refresh","token":fresh}),
        json!("r1"),
    )
    .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let expires_in = ack["expires_in"].as_u64().expect("expires_in in the ack");
    assert!((3590..=3600).contains(&expires_in), "{ack}");
    // Well past the first token's exp, the session is still open and still delivers.
    let past = Instant::now() + Duration::from_millis((exp_ms - now_ms()).max(0) as u64 + 2_000);
    let meanwhile = stays_open_until(&mut alice, past).await;
    assert!(
        meanwhile.iter().all(|m| m["type"] != "token_expiring"),
        "a second warning for the refreshed token: {meanwhile:?}"
    );
    assert!(now_ms() > exp_ms + 1_000);
    let sent = request(
        &mut bob,
        json!({"type":"message","room":"chat","content":{"n":1}}),
        json!("m1"),
    )
    .await;
    assert_eq!(sent["type"], "ack", "{sent}");
    let event = expect_type(&mut alice, "message").await;
    assert_eq!(event["content"]["n"], 1, "{event}");
    assert!(barrier(&mut alice).await.is_empty());
    // Clients feature-detect refresh from the welcome.
    let features = welcome["features"].as_array().expect("features in welcome");
    assert!(features.contains(&json!("refresh")), "{welcome}");
}

#[tokio::test]
async fn refresh_for_another_subject_is_refused_and_keeps_the_old_expiry() {
    let server = secure(&[]).await;
    let ttl = Duration::from_secs(4);
    let exp_ms = exp_ms_of(ttl);
    let mut c = login(&server, "alice", &mint(&claims("alice", ttl))).await;
    let hour = Duration::from_secs(3600);
    let mut with_collective = claims("alice", hour);
    with_collective.collective_id = Some("acme".into());
    let refused = [
        ("bob", mint(&claims("bob", hour))),
        ("collective", mint(&with_collective)),
        (
            "foreign key",
            mint_with(OTHER_SECRET, &claims("alice", hour)),
        ),
        ("garbage", "not.a.token".to_owned()),
    ];
    for (what, token) in refused {
        let reply = request(&mut c, json!({"type":"refresh","token":token}), json!(what)).await;
        assert_eq!(reply["type"], "error", "{what}: {reply}");
        assert_eq!(reply["code"], "INVALID_TOKEN", "{what}: {reply}");
    }
    // Nothing changed: the session still ends at the first token's exp.
    let (code, reason) = recv_close(&mut c).await;
    assert_eq!(code, Some(4003), "{reason}");
    let closed_at = now_ms();
    assert!(closed_at + 50 >= exp_ms && closed_at <= exp_ms + 2_000);
}

#[tokio::test]
async fn refresh_without_a_token_session_is_refused() {
    let server = TestServer::start(&[]).await;
    let mut c = server.connect("anon").await;
    let reply = request(&mut c, json!({"type":"refresh","token":"a.b.c"}), json!(1)).await;
    assert_eq!(reply["code"], "INVALID_TOKEN", "{reply}");
    // A session without a token never expires: no warning, no close.
    assert!(barrier(&mut c).await.is_empty());
}

#[tokio::test]
async fn narrower_refresh_leaves_forbidden_rooms_with_an_event() {
    let server = secure(&[]).await;
    let hour = Duration::from_secs(3600);
    let mut wide = claims("alice", hour);
    wide.rooms = Some(vec!["general".into(), "chat:*".into()]);
    let mut alice = login(&server, "alice", &mint(&wide)).await;
    let mut bob = login(&server, "bob", &mint(&claims("bob", hour))).await;
    for room in ["chat:a", "chat:b"] {
        subscribe(&mut alice, room).await;
        subscribe(&mut bob, room).await;
    }
    let mut narrow = claims("alice", hour);
    narrow.rooms = Some(vec!["general".into(), "chat:a".into()]);
    alice
        .send_json(&json!({"type":"refresh","token":mint(&narrow),"id":"r"}))
        .await
        .expect("send refresh");
    let left = expect_type(&mut alice, "unsubscribed").await;
    assert_eq!(
        left,
        json!({"type":"unsubscribed","room":"chat:b","reason":"forbidden"})
    );
    let ack = expect_type(&mut alice, "ack").await;
    assert_eq!(ack["id"], "r", "{ack}");
    // chat:b no longer reaches alice; chat:a and general still do.
    for room in ["chat:b", "chat:a"] {
        let sent = request(
            &mut bob,
            json!({"type":"message","room":room,"content":room}),
            json!(room),
        )
        .await;
        assert_eq!(sent["type"], "ack", "{sent}");
    }
    let got = barrier(&mut alice).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["room"], "chat:a", "{got:?}");
    let members = request(
        &mut bob,
        json!({"type":"presence","room":"chat:b"}),
        json!("p"),
    )
    .await;
    assert_eq!(members["members"], json!(["bob"]), "{members}");
    let again = request(
        &mut alice,
        json!({"type":"subscribe","room":"chat:b"}),
        json!("s"),
    )
    .await;
    assert_eq!(again["code"], "FORBIDDEN", "{again}");
}

#[tokio::test]
async fn pending_auth_budget_refuses_slow_authenticators_beyond_it() {
    let server = secure(&["--max-pending-auth-per-ip", "3"]).await;
    // Three connections sit in the challenge: two on /ws/{id}, one on a trading stream.
    let mut slow = vec![
        slow_authenticator(&server, "/ws/acme?auth=ed25519").await,
        slow_authenticator(&server, "/ws/beta?auth=ed25519").await,
        slow_authenticator(&server, "/ws/gamma/portfolio").await,
    ];
    assert_eq!(refused_status(&server, "/ws/delta?auth=ed25519").await, 429);
    assert_eq!(refused_status(&server, "/ws/delta/orders").await, 429);
    // A client that authenticates at once is not affected.
    let mut carol = login(
        &server,
        "carol",
        &mint(&claims("carol", Duration::from_secs(3600))),
    )
    .await;
    assert!(barrier(&mut carol).await.is_empty());
    // One slow authenticator leaves: its place is given back.
    let mut gone = slow.remove(0);
    gone.close().await.expect("close");
    let deadline = Instant::now() + WAIT;
    loop {
        match tokio_tungstenite::connect_async(server.url("/ws/delta?auth=ed25519")).await {
            Ok(_) => break,
            Err(tungstenite::Error::Http(r)) if r.status().as_u16() == 429 => {
                assert!(Instant::now() < deadline, "the place was never given back");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }

    let server = secure(&["--max-pending-auth", "2", "--max-pending-auth-per-ip", "0"]).await;
    let _a = slow_authenticator(&server, "/ws/acme?auth=ed25519").await;
    let _b = slow_authenticator(&server, "/ws/beta?auth=ed25519").await;
    assert_eq!(refused_status(&server, "/ws/gamma?auth=ed25519").await, 503);
    let mut dave = login(
        &server,
        "dave",
        &mint(&claims("dave", Duration::from_secs(3600))),
    )
    .await;
    assert!(barrier(&mut dave).await.is_empty());
}

#[tokio::test]
async fn refresh_during_a_snapshot_subscribe_still_leaves_the_forbidden_room() {
    let server = secure(&[]).await;
    let hour = Duration::from_secs(3600);
    let mut wide = claims("alice", hour);
    wide.rooms = Some(vec!["general".into(), "market:*".into()]);
    let mut alice = login(&server, "alice", &mint(&wide)).await;
    let mut narrow = claims("alice", hour);
    narrow.rooms = Some(vec!["general".into()]);
    // The subscribe (a snapshot attach, run after the frame) and the refresh arrive
    // together: whichever finishes first, the room must end up left.
    let burst = [
        json!({"type":"subscribe","room":"market:BTC-USD","id":"s"}),
        json!({"type":"refresh","token":mint(&narrow),"id":"r"}),
    ];
    for frame in &burst {
        alice.send_json(frame).await.expect("send");
    }
    let mut unsubscribed = Vec::new();
    let mut acks = Vec::new();
    let deadline = Instant::now() + WAIT;
    while unsubscribed.is_empty() || acks.len() < 2 {
        assert!(Instant::now() < deadline, "got {acks:?} {unsubscribed:?}");
        let v = recv_event(&mut alice).await;
        match v["type"].as_str() {
            Some("unsubscribed") => unsubscribed.push(v),
            Some("ack") => acks.push(v),
            _ => {}
        }
    }
    assert_eq!(
        unsubscribed,
        [json!({"type":"unsubscribed","room":"market:BTC-USD","reason":"forbidden"})]
    );
    let mut bob = login(&server, "bob", &mint(&claims("bob", hour))).await;
    let members = request(
        &mut bob,
        json!({"type":"presence","room":"market:BTC-USD"}),
        json!("p"),
    )
    .await;
    assert_eq!(members["members"], json!([]), "{members}");
}

//! The web dashboard over HTTP against the real binary: who may load the page, that the
//! embedded assets are served, and that the stats stream pushes figures that follow a real
//! client. (The page itself is tested in headless Chromium by scripts/e2e.)

mod util;

use futures_util::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite;
use util::{TestServer, WAIT};

const ADMIN: &str = "dashboard-admin-key";
const SECRET: &str = "dashboard-test-secret-0123456789abcdef";

#[tokio::test]
async fn the_page_needs_the_admin_key() {
    let server = TestServer::start(&["--admin-key", ADMIN]).await;

    let (status, body) = server.http_request("GET", "/dashboard", None, None).await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = server
        .http_request("GET", "/dashboard?key=wrong-key-123", None, None)
        .await;
    assert_eq!(status, 401);
    let (status, _) = server
        .http_request("GET", "/dashboard", Some("wrong-key-123"), None)
        .await;
    assert_eq!(status, 401);

    let (status, page) = server
        .http_request("GET", &format!("/dashboard?key={ADMIN}"), None, None)
        .await;
    assert_eq!(status, 200);
    assert!(page.contains("<title>roomcast dashboard</title>"), "{page}");
    assert!(page.contains("id=\"connections\""), "{page}");
    assert!(page.contains("trading arena not running"), "{page}");
    assert!(!page.contains(ADMIN), "the page never echoes the key");
    // A bearer header works as well (for tools that can set one).
    let (status, _) = server
        .http_request("GET", "/dashboard", Some(ADMIN), None)
        .await;
    assert_eq!(status, 200);

    // The assets hold no data and need no key.
    let (status, js) = server
        .http_request("GET", "/dashboard/app.js", None, None)
        .await;
    assert_eq!(status, 200);
    assert!(js.contains("api/admin/stream"));
    let (status, _) = server
        .http_request("GET", "/dashboard/app.css", None, None)
        .await;
    assert_eq!(status, 200);

    // The stream checks the key before anything else.
    let (status, _) = server
        .http_request("GET", "/api/admin/stream", None, None)
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn open_in_dev_without_a_key_disabled_outside_dev() {
    let dev = TestServer::start(&[]).await;
    let (status, _) = dev.http_request("GET", "/dashboard", None, None).await;
    assert_eq!(status, 200, "no admin key and --dev: open");

    let secure = TestServer::start_secure(&["--jwt-secret", SECRET]).await;
    for path in ["/dashboard", "/dashboard/app.js", "/api/admin/stream"] {
        let (status, body) = secure.http_request("GET", path, None, None).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(body.contains("dashboard disabled"), "{path}: {body}");
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next stats message of the stream.
async fn next_stats(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a stats message in time")
            .expect("the stream is open")
            .expect("a frame");
        if let tungstenite::Message::Text(text) = msg {
            let v: Value = serde_json::from_str(&text).expect("JSON");
            assert_eq!(v["type"], "stats", "{v}");
            return v;
        }
    }
}

/// Reads stats messages until one satisfies `pred` (within [`WAIT`] overall).
async fn stats_until(ws: &mut Ws, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let v = next_stats(ws).await;
        if pred(&v) {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no stats with {what}; last {v}"
        );
    }
}

#[tokio::test]
async fn the_stream_follows_a_connected_client() {
    let server = TestServer::start(&["--admin-key", ADMIN]).await;

    // Wrong key: refused before the upgrade.
    match tokio_tungstenite::connect_async(server.url("/api/admin/stream?key=nope-nope-nope")).await
    {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!("expected a 401, got {other:?}"),
    }

    let (mut ws, _) =
        tokio_tungstenite::connect_async(server.url(&format!("/api/admin/stream?key={ADMIN}")))
            .await
            .expect("stream upgrade");
    // Pushed immediately on connect; the stream itself is not a hub connection.
    let first = next_stats(&mut ws).await;
    assert_eq!(first["stats"]["connections"], 0, "{first}");
    assert!(first["time_ms"].is_u64(), "{first}");
    assert!(first["rooms"].is_array(), "{first}");

    let mut client = server.connect("dash-watcher").await;
    let seen = stats_until(&mut ws, "connections = 1", |v| {
        v["stats"]["connections"] == 1
    })
    .await;
    let rooms = seen["rooms"].as_array().expect("rooms");
    assert!(
        rooms
            .iter()
            .any(|r| r["room"] == "general" && r["members"] == 1),
        "{seen}"
    );

    client.close().await.expect("close");
    stats_until(&mut ws, "connections = 0", |v| {
        v["stats"]["connections"] == 0
    })
    .await;

    // Shutdown closes the stream with 1001.
    server.terminate();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(tungstenite::Message::Close(frame)))) => {
                let code = frame.map(|f| u16::from(f.code));
                assert_eq!(code, Some(1001));
                break;
            }
            Ok(Some(Ok(_))) => continue,
            Ok(None) | Ok(Some(Err(_))) => panic!("stream ended without a close frame"),
            Err(_) => panic!("no close frame at shutdown"),
        }
    }
}

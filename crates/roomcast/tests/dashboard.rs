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
    assert!(page.contains("id=\"arena-markets\""), "{page}");
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
    assert!(js.contains("trading arena not running"));
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

/// Whether every market of the panel has bid and ask levels and at least one has trades.
fn panel_is_trading(v: &Value) -> bool {
    let Some(markets) = v["arena"]["markets"].as_array() else {
        return false;
    };
    !markets.is_empty()
        && markets.iter().all(|m| {
            m["bids"].as_array().is_some_and(|b| !b.is_empty())
                && m["asks"].as_array().is_some_and(|a| !a.is_empty())
        })
        && markets
            .iter()
            .any(|m| m["trades"].as_array().is_some_and(|t| !t.is_empty()))
}

#[tokio::test]
async fn with_demo_the_stream_carries_the_arena_panel() {
    let server = TestServer::start(&["--admin-key", ADMIN, "--demo", "--demo-rate", "50"]).await;
    let (mut ws, _) =
        tokio_tungstenite::connect_async(server.url(&format!("/api/admin/stream?key={ADMIN}")))
            .await
            .expect("stream upgrade");
    let first = next_stats(&mut ws).await;
    assert_eq!(first["arena"]["running"], true, "{first}");

    let v = stats_until(
        &mut ws,
        "books and trades in the arena panel",
        panel_is_trading,
    )
    .await;
    let arena = &v["arena"];
    let btc = arena["markets"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["symbol"] == "BTC-USD"))
        .unwrap_or_else(|| panic!("BTC-USD in {arena}"));
    // Prices and quantities are decimal strings; bids best first, below the best ask.
    let price = |l: &Value| -> f64 {
        l["price"]
            .as_str()
            .unwrap_or_else(|| panic!("price string in {l}"))
            .parse()
            .expect("decimal price")
    };
    let (bids, asks) = (
        btc["bids"].as_array().expect("bids"),
        btc["asks"].as_array().expect("asks"),
    );
    assert!(bids.len() <= 8 && asks.len() <= 8, "bounded depth: {btc}");
    assert!(price(&bids[0]) < price(&asks[0]), "book not crossed: {btc}");
    assert!(
        bids.windows(2).all(|w| price(&w[0]) > price(&w[1])),
        "{btc}"
    );
    assert!(
        asks.windows(2).all(|w| price(&w[0]) < price(&w[1])),
        "{btc}"
    );
    assert!(bids[0]["quantity"].is_string(), "{btc}");
    let trades = arena["markets"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|m| m["trades"].as_array().cloned().unwrap_or_default())
        .collect::<Vec<_>>();
    assert!(trades
        .iter()
        .all(|t| t["price"].is_string() && t["trade_id"].is_u64()));
    assert!(arena["trades"].as_u64().is_some_and(|n| n > 0), "{arena}");
    // The three demo bots' equity, in the quote currency.
    let equity = arena["equity"].as_array().expect("equity");
    assert_eq!(equity.len(), 3, "{arena}");
    assert_eq!(equity[0]["collective_id"], "bot-1");
    assert_eq!(equity[0]["equity"][0]["currency"], "USD", "{arena}");
    // The admin stats carry the arena's counters and per-symbol line (the monitor's source).
    let symbols = v["stats"]["arena"]["symbols"]
        .as_array()
        .expect("stats.arena.symbols");
    assert_eq!(symbols.len(), 2, "{v}");
    assert!(v["stats"]["arena"]["orders_accepted"]
        .as_u64()
        .is_some_and(|n| n > 0));
}

#[tokio::test]
async fn without_the_arena_the_panel_says_so() {
    let server = TestServer::start(&["--admin-key", ADMIN, "--no-arena"]).await;
    let (mut ws, _) =
        tokio_tungstenite::connect_async(server.url(&format!("/api/admin/stream?key={ADMIN}")))
            .await
            .expect("stream upgrade");
    let first = next_stats(&mut ws).await;
    assert_eq!(
        first["arena"],
        serde_json::json!({"running": false}),
        "{first}"
    );
    assert!(first["stats"]["arena"].is_null(), "{first}");
}

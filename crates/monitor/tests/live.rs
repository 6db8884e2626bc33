//! The `--once --json` snapshot against a real server started in-process on a loopback
//! port: figures reflect a connected client, a wrong key is reported as a 401 on that node,
//! and a node that is down is reported, not a panic; a node running the trading arena with
//! its demo bots gets a market line per symbol, in the JSON and on the screen.

use std::time::Duration;

use roomcast_monitor::args::NodeUrl;
use roomcast_monitor::http::Client;
use roomcast_monitor::poll::snapshot;
use serde_json::Value;

const ADMIN_KEY: &str = "adminkey123";

struct Server {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start_server() -> anyhow::Result<Server> {
    start_server_with("", false).await
}

/// A server with `extra` TOML appended to the base config; `with_arena` starts it the way
/// `roomcast serve` does (arena included), else without the arena.
async fn start_server_with(extra: &str, with_arena: bool) -> anyhow::Result<Server> {
    let raw: roomcast_server::config::RawConfig = toml::from_str(&format!(
        "[server]\ndev = true\n[history]\nstore = \"memory\"\n[auth]\nadmin_key = \"{ADMIN_KEY}\"\n{extra}"
    ))?;
    let cfg = raw.validate()?;
    let hub = roomcast_server::serve::build_hub(&cfg)?;
    let state = if with_arena {
        roomcast_server::AppState::start(hub, cfg).await?
    } else {
        roomcast_server::AppState::new(hub, cfg)?
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(roomcast_server::serve::serve_on(
        listener,
        state,
        async move {
            let _ = stopped.await;
        },
    ));
    Ok(Server {
        addr,
        stop: Some(stop),
        task,
    })
}

impl Server {
    fn node(&self) -> anyhow::Result<NodeUrl> {
        Ok(NodeUrl::parse(&format!("http://{}", self.addr))?)
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), self.task).await???;
        Ok(())
    }
}

/// A loopback port with nothing listening (bound, then released).
async fn dead_node() -> anyhow::Result<NodeUrl> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    drop(l);
    Ok(NodeUrl::parse(&format!("http://{addr}"))?)
}

#[tokio::test]
async fn once_json_reports_connections_auth_failures_and_down_nodes() -> anyhow::Result<()> {
    let server = start_server().await?;
    let node = server.node()?;
    let client = Client::new(Some(ADMIN_KEY.to_owned()), Duration::from_secs(5));

    let before = snapshot(&client, std::slice::from_ref(&node)).await;
    assert_eq!(before["nodes"][0]["stats"]["connections"], 0, "{before:#}");
    assert!(before["nodes"][0].get("error").is_none(), "{before:#}");
    assert!(
        before["nodes"][0].get("markets").is_none(),
        "no arena, no market lines: {before:#}"
    );

    // A real client connects and joins a room.
    let mut conn =
        roomcast_client::Connection::connect(&format!("ws://{}/ws/monitor-test", server.addr))
            .await?;
    let welcome = conn.recv_timeout(Duration::from_secs(5)).await?;
    assert!(matches!(welcome, roomcast_client::Incoming::Json(ref v) if v["type"] == "welcome"));
    conn.send_json(&serde_json::json!({"type":"subscribe","room":"monitor-room","id":1}))
        .await?;
    let ack = conn.recv_timeout(Duration::from_secs(5)).await?;
    assert!(
        matches!(ack, roomcast_client::Incoming::Json(ref v) if v["type"] == "ack"),
        "{ack:?}"
    );

    let dead = dead_node().await?;
    let after = snapshot(&client, &[node.clone(), dead.clone()]).await;
    let up = &after["nodes"][0];
    assert_eq!(up["url"], node.to_string());
    assert_eq!(up["stats"]["connections"], 1, "{after:#}");
    // Every client is in `general` too.
    assert_eq!(up["stats"]["subscriptions"], 2, "{after:#}");
    let rooms = up["rooms"].as_array().cloned().unwrap_or_default();
    assert!(
        rooms
            .iter()
            .any(|r| r["room"] == "monitor-room" && r["members"] == 1),
        "{after:#}"
    );
    let down = &after["nodes"][1];
    assert_eq!(down["url"], dead.to_string());
    let error = down["error"].as_str().unwrap_or_default();
    assert!(error.contains("connect to"), "{after:#}");
    assert!(down.get("stats").is_none());

    // The wrong key: that node is reported with a 401, nothing else.
    let wrong = Client::new(Some("not-the-key".to_owned()), Duration::from_secs(5));
    let denied: Value = snapshot(&wrong, std::slice::from_ref(&node)).await;
    let error = denied["nodes"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("401"), "{denied:#}");
    assert_eq!(denied["nodes"][0]["status"], 401, "{denied:#}");
    // No key at all is the same.
    let none = Client::new(None, Duration::from_secs(5));
    let denied = snapshot(&none, std::slice::from_ref(&node)).await;
    assert_eq!(denied["nodes"][0]["status"], 401, "{denied:#}");

    conn.close().await?;
    server.stop().await
}

#[tokio::test]
async fn run_once_json_fails_when_a_node_is_down() -> anyhow::Result<()> {
    let dead = dead_node().await?;
    let args = roomcast_monitor::MonitorArgs {
        urls: vec![dead.to_string()],
        admin_key: Some(ADMIN_KEY.to_owned()),
        once: true,
        json: true,
        ..Default::default()
    };
    let result = roomcast_monitor::run(args).await;
    let err = result.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("1 of 1 nodes could not be read"), "{err}");
    Ok(())
}

#[tokio::test]
async fn a_node_with_the_arena_gets_market_lines() -> anyhow::Result<()> {
    let server = start_server_with("[arena]\ndemo = true\ndemo_rate = 50\n", true).await?;
    let node = server.node()?;
    let client = Client::new(Some(ADMIN_KEY.to_owned()), Duration::from_secs(5));

    // The demo bots trade: wait (bounded) until both markets have a last price.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let traded = loop {
        let v = snapshot(&client, std::slice::from_ref(&node)).await;
        let markets = v["nodes"][0]["markets"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if markets.len() == 2 && markets.iter().all(|m| m["last_price"].is_string()) {
            break v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no trades on both markets in time: {v:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let markets = traded["nodes"][0]["markets"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(markets[0]["symbol"], "BTC-USD", "{traded:#}");
    assert_eq!(markets[1]["symbol"], "ETH-USD", "{traded:#}");
    for m in &markets {
        // Decimal strings as the node sent them.
        let last = m["last_price"].as_str().unwrap_or_default();
        assert!(last.parse::<f64>().is_ok_and(|p| p > 0.0), "{m}");
        assert!(m["volume"].is_string(), "{m}");
    }
    let raw_arena = &traded["nodes"][0]["stats"]["arena"];
    assert!(
        raw_arena["trades"].as_u64().is_some_and(|n| n > 0),
        "{traded:#}"
    );

    // The screen: two polls, then a line per market with its last price.
    let mut model =
        roomcast_monitor::model::Model::new(vec![node.to_string()], Duration::from_secs(1));
    for _ in 0..2 {
        let reading = roomcast_monitor::poll::poll_node(&client, &node).await;
        model.record(0, std::time::Instant::now(), reading);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let screen = roomcast_monitor::ui::render_text(&model, 160, 24)?;
    let btc = screen
        .lines()
        .find(|l| l.contains("BTC-USD") && l.contains("last"))
        .unwrap_or_else(|| panic!("no BTC-USD market line in:\n{screen}"));
    assert!(
        btc.contains("bid") && btc.contains("ask") && btc.contains("volume"),
        "{screen}"
    );
    assert!(
        screen
            .lines()
            .any(|l| l.contains("arena") && l.contains("orders") && l.contains("trades")),
        "{screen}"
    );
    server.stop().await
}

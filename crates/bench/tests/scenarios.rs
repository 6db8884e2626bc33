//! Every scenario, run briefly against the real roomcast server (in-process, on an
//! ephemeral loopback port): the reports must hold sane, non-zero figures and no loss.

use std::net::SocketAddr;
use std::time::Duration;

use roomcast_bench::args::{
    ChurnArgs, CommonArgs, ConnectArgs, EchoArgs, FanoutArgs, OrdersArgs, Rate, ReplayArgs, Seconds,
};
use roomcast_bench::{run, BenchArgs, Report, Scenario};
use roomcast_server::config::RawConfig;

/// Longest any one scenario may take here.
const LIMIT: Duration = Duration::from_secs(20);

struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Server {
    /// Starts a development server (memory history, no rate limits) adjusted by `tune`.
    async fn start(tune: impl FnOnce(&mut RawConfig)) -> Server {
        Server::start_as(tune, false).await
    }

    /// Starts a server the way `roomcast serve` does: with the trading arena.
    async fn start_with_arena(tune: impl FnOnce(&mut RawConfig)) -> Server {
        Server::start_as(tune, true).await
    }

    async fn start_as(tune: impl FnOnce(&mut RawConfig), arena: bool) -> Server {
        let mut raw = RawConfig::defaults();
        raw.server.dev = Some(true);
        raw.auth.required = Some(false);
        raw.history.store = Some("memory".into());
        raw.limits.rate_limit = Some(0);
        raw.limits.handshake_rate = Some(0);
        tune(&mut raw);
        let cfg = raw.validate().expect("valid config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let hub = roomcast_server::serve::build_hub(&cfg).expect("hub");
        let state = if arena {
            roomcast_server::AppState::start(hub, cfg)
                .await
                .expect("state with the arena")
        } else {
            roomcast_server::AppState::new(hub, cfg).expect("state")
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(roomcast_server::serve::serve_on(
            listener,
            state,
            async move {
                let _ = rx.await;
            },
        ));
        Server {
            addr,
            stop: Some(tx),
        }
    }

    fn common(&self, duration: f64, warmup: f64) -> CommonArgs {
        let mut c = CommonArgs::new(format!("ws://{}", self.addr));
        c.duration = Seconds::from_secs_f64(duration);
        c.warmup = Seconds::from_secs_f64(warmup);
        c.drain = Seconds::from_secs_f64(3.0);
        c.connect_timeout = Seconds::from_secs_f64(5.0);
        c
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

async fn bench(scenario: Scenario) -> anyhow::Result<Report> {
    tokio::time::timeout(LIMIT, run(BenchArgs { scenario }))
        .await
        .map_err(|_| anyhow::anyhow!("the scenario did not stop within {LIMIT:?}"))?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_delivers_every_message_once_and_in_order() {
    let server = Server::start(|_| {}).await;
    let dir = std::env::temp_dir().join(format!("roomcast-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let json = dir.join("fanout.json");
    let mut common = server.common(1.5, 0.5);
    common.json = Some(json.clone());
    common.server_pid = vec![std::process::id()];
    let mut args = FanoutArgs::new(common);
    args.subscribers = 200;
    args.rooms = 2;
    args.publishers = 3;
    args.rate = Rate::PerSec(600.0);
    let report = bench(Scenario::Fanout(args)).await.expect("fanout ran");
    let r = report.fanout().expect("fanout figures");
    assert_eq!((r.subscribers, r.publishers, r.rooms), (200, 3, 2));
    assert_eq!(r.subscribers_failed, 0);
    assert!(r.published >= 450, "published {}", r.published);
    assert!(
        r.published < r.published_total,
        "warmup publishes must be excluded"
    );
    assert_eq!(
        r.expected,
        r.published * 100,
        "each publish owes its room's 100"
    );
    assert_eq!(r.received, r.expected);
    assert_eq!((r.lost, r.duplicated, r.reordered), (0, 0, 0));
    assert!(r.drain_complete);
    assert!(r.deliveries_per_sec > 10_000.0, "{}", r.deliveries_per_sec);
    let l = &r.latency_us;
    assert_eq!(l.count, r.received);
    assert!(l.p50 > 0.0 && l.p50 <= l.p99 && l.p99 <= l.max, "{l:?}");
    assert!(report.generator_cpu_seconds > 0.0);
    assert!(report.server_cpu_seconds.is_some());

    let text = std::fs::read_to_string(&json).expect("json written");
    let v: serde_json::Value = serde_json::from_str(&text).expect("valid json");
    assert_eq!(v["scenario"], "fanout");
    for key in [
        "deliveries_per_sec",
        "expected",
        "received",
        "lost",
        "duplicated",
        "reordered",
        "generator_cpu_seconds",
    ] {
        assert!(v[key].is_number(), "{key} missing in {text}");
    }
    for p in ["p50", "p90", "p99", "p99.9", "max"] {
        assert!(v["latency_us"][p].is_number(), "latency_us.{p} missing");
    }
    assert_eq!(v["parameters"]["subscribers"], 200);
    assert_eq!(v["parameters"]["rate"], 600.0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_at_max_rate_stays_bounded_and_lossless() {
    let server = Server::start(|_| {}).await;
    let mut args = FanoutArgs::new(server.common(1.5, 0.5));
    args.subscribers = 100;
    args.rate = Rate::Max;
    args.max_in_flight = 32;
    args.payload_bytes = 200;
    let report = bench(Scenario::Fanout(args)).await.expect("fanout ran");
    let r = report.fanout().expect("fanout figures");
    assert!(r.published > 100, "published {}", r.published);
    assert_eq!(r.received, r.expected);
    assert_eq!((r.lost, r.duplicated), (0, 0));
    assert_eq!(r.subscribers_disconnected, 0, "{:?}", r.disconnect_codes);
    assert!(r.latency_us.p99 > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_opens_holds_and_measures_server_memory() {
    let server = Server::start(|_| {}).await;
    let mut common = server.common(1.0, 0.0);
    common.server_pid = vec![std::process::id()];
    let mut args = ConnectArgs::new(common);
    args.connections = 300;
    args.rate = Rate::PerSec(1000.0);
    let report = bench(Scenario::Connect(args)).await.expect("connect ran");
    let r = report.connect().expect("connect figures");
    assert_eq!(
        (r.connected, r.failed, r.dropped),
        (300, 0, 0),
        "{:?}",
        r.failures
    );
    assert!(r.handshakes_per_sec > 50.0, "{}", r.handshakes_per_sec);
    assert!(
        r.open_seconds >= 0.25,
        "300 at 1000/s take about 0.3 s: {}",
        r.open_seconds
    );
    assert_eq!(r.handshake_latency_us.count, 300);
    assert!(r.upgrade_latency_us.p50 > 0.0);
    assert!(r.upgrade_latency_us.p50 <= r.handshake_latency_us.p50);
    assert!(r.held_seconds >= 1.0);
    assert!(r.server_rss_before_bytes.is_some() && r.server_rss_after_bytes.is_some());
    assert!(r.rss_per_connection_bytes.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_round_trips() {
    let server = Server::start(|_| {}).await;
    let mut args = EchoArgs::new(server.common(1.5, 0.3));
    args.connections = 20;
    let report = bench(Scenario::Echo(args)).await.expect("echo ran");
    let r = report.echo().expect("echo figures");
    assert_eq!(r.connected, 20);
    assert!(r.sent > 100, "sent {}", r.sent);
    assert_eq!(r.received, r.sent);
    assert_eq!((r.lost, r.duplicated), (0, 0));
    assert!(r.round_trips_per_sec > 100.0);
    assert!(r.latency_us.p50 > 0.0 && r.latency_us.p50 <= r.latency_us.p99);

    // At a fixed total rate.
    let mut args = EchoArgs::new(server.common(1.0, 0.2));
    args.connections = 5;
    args.rate = Rate::PerSec(500.0);
    let report = bench(Scenario::Echo(args))
        .await
        .expect("echo at a rate ran");
    let r = report.echo().expect("echo figures");
    assert!(
        (400.0..=600.0).contains(&r.round_trips_per_sec),
        "{}",
        r.round_trips_per_sec
    );
    assert_eq!(r.lost, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_cycles() {
    let server = Server::start(|_| {}).await;
    let mut args = ChurnArgs::new(server.common(1.5, 0.3));
    args.concurrency = 4;
    let report = bench(Scenario::Churn(args)).await.expect("churn ran");
    let r = report.churn().expect("churn figures");
    assert!(r.cycles > 20, "cycles {}", r.cycles);
    assert_eq!(r.failed, 0, "{:?}", r.failures);
    assert!(r.cycles_per_sec > 10.0);
    assert_eq!(r.cycle_latency_us.count, r.cycles);
    assert!(r.connect_latency_us.p50 <= r.cycle_latency_us.p50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_catches_up_every_client_without_loss() {
    let key = "bench-replay-key-123";
    let server = Server::start(|raw| raw.server.api_keys = Some(vec![key.into()])).await;
    let mut args = ReplayArgs::new(server.common(1.0, 0.0));
    args.clients = 5;
    args.events = 500;
    args.api_key = Some(key.into());
    let report = bench(Scenario::Replay(args)).await.expect("replay ran");
    let r = report.replay().expect("replay figures");
    assert_eq!(r.seeded_via, "http");
    assert_eq!((r.connected, r.completed, r.incomplete), (5, 5, 0));
    assert_eq!((r.since_sequence, r.head_sequence), (0, 500));
    assert_eq!(r.expected, 2500);
    assert_eq!(r.events_replayed, 2500);
    assert_eq!((r.lost, r.duplicated, r.count_mismatches), (0, 0, 0));
    assert!(r.events_per_sec > 0.0 && r.replay_seconds > 0.0, "{r:?}");
    let d = &r.client_done_ms;
    assert_eq!(d.count, 5);
    assert!(d.p50 > 0.0 && d.p50 <= d.p99 && d.p99 <= d.max, "{d:?}");

    // Without an API key the events go in as `message` requests; each client misses 100.
    let mut args = ReplayArgs::new(server.common(1.0, 0.0));
    args.clients = 3;
    args.events = 200;
    args.missed = Some(100);
    let report = bench(Scenario::Replay(args))
        .await
        .expect("replay over websocket ran");
    let r = report.replay().expect("replay figures");
    assert_eq!(r.seeded_via, "websocket");
    assert_eq!(r.head_sequence - r.since_sequence, 100);
    assert_eq!((r.events_replayed, r.lost, r.duplicated), (300, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_secret_mints_tokens_the_server_accepts() {
    let secret = "bench-test-secret-0123456789";
    let server = Server::start(|raw| {
        raw.server.dev = Some(false);
        raw.auth.required = Some(true);
        raw.auth.jwt_secret = Some(secret.into());
        raw.limits.handshake_rate = Some(0);
    })
    .await;
    let mut common = server.common(0.5, 0.0);
    common.jwt_secret = Some(secret.into());
    let mut args = ConnectArgs::new(common);
    args.connections = 20;
    let report = bench(Scenario::Connect(args))
        .await
        .expect("connect with jwt");
    let r = report.connect().expect("connect figures");
    assert_eq!(r.connected, 20, "{:?}", r.failures);

    // Without a token every attempt is refused, and the run says why.
    let mut args = ConnectArgs::new(server.common(0.5, 0.0));
    args.connections = 3;
    let err = bench(Scenario::Connect(args))
        .await
        .expect_err("anonymous connections are refused");
    assert!(err.to_string().contains("no connection"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_fails_fast_with_a_reason() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let mut common = CommonArgs::new(format!("ws://{addr}"));
    common.duration = Seconds::from_secs_f64(0.5);
    let mut args = EchoArgs::new(common);
    args.connections = 2;
    let err = bench(Scenario::Echo(args))
        .await
        .expect_err("nothing listens");
    assert!(err.to_string().contains("no connection"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_are_accepted_filled_and_streamed() {
    let server = Server::start_with_arena(|raw| {
        raw.auth.admin_key = Some("bench-orders-admin-key".into());
    })
    .await;
    let dir = std::env::temp_dir().join(format!("roomcast-bench-orders-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let json = dir.join("orders.json");
    let mut common = server.common(1.5, 0.5);
    common.json = Some(json.clone());
    let mut args = OrdersArgs::new(common);
    args.collectives = 4;
    args.connections = 4;
    args.market_subscribers = 3;
    args.rate = Rate::PerSec(400.0);
    args.admin_key = Some("bench-orders-admin-key".into());
    let report = bench(Scenario::Orders(args)).await.expect("orders ran");
    let r = report.orders().expect("orders figures");
    assert_eq!(
        (r.collectives, r.order_streams, r.market_connected),
        (4, 4, 3)
    );
    assert!(r.connect_failures.is_empty(), "{:?}", r.connect_failures);
    assert!(r.sent >= 450, "sent {}", r.sent);
    assert_eq!(
        r.accepted, r.sent,
        "rejected {:?} failed {:?}",
        r.rejected, r.failed
    );
    // Sells and buys alternate at one price: about every other order fills on arrival,
    // and each of those owes one taker order_filled, all of which arrived.
    assert!(
        r.taker_fills_expected * 3 >= r.accepted,
        "{} of {}",
        r.taker_fills_expected,
        r.accepted
    );
    assert_eq!(r.taker_fills_received, r.taker_fills_expected);
    assert_eq!(r.lost, 0);
    let l = &r.order_to_fill_latency_us;
    assert_eq!(l.count, r.taker_fills_received);
    assert!(l.p50 > 0.0 && l.p50 <= l.p99 && l.p99 <= l.max, "{l:?}");
    assert_eq!(r.request_latency_us.count, r.accepted);
    // Every trade reaches every market subscriber (trade, book_update, ticker at least).
    assert!(
        r.market_deliveries >= r.taker_fills_received * 3,
        "{} deliveries for {} trades",
        r.market_deliveries,
        r.taker_fills_received
    );
    assert!(r.order_events >= r.accepted, "created events at least");
    assert!(r.accepted_per_sec > 200.0, "{}", r.accepted_per_sec);
    assert_eq!(r.dropped, 0);

    let text = std::fs::read_to_string(&json).expect("json written");
    let v: serde_json::Value = serde_json::from_str(&text).expect("valid json");
    assert_eq!(v["scenario"], "orders");
    for key in ["accepted_per_sec", "market_deliveries_per_sec", "lost"] {
        assert!(v[key].is_number(), "{key} missing in {text}");
    }
    assert!(v["order_to_fill_latency_us"]["p99"].is_number());
    assert_eq!(v["parameters"]["collectives"], 4);
    assert!(
        v["parameters"].get("admin_key").is_none(),
        "no secret in the report"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_without_the_admin_key_fail_with_a_reason() {
    let server = Server::start_with_arena(|raw| {
        raw.auth.admin_key = Some("bench-orders-admin-key".into());
    })
    .await;
    let mut args = OrdersArgs::new(server.common(0.5, 0.0));
    args.collectives = 2;
    args.admin_key = Some("wrong-admin-key-123".into());
    let err = bench(Scenario::Orders(args)).await.expect_err("refused");
    assert!(err.to_string().contains("HTTP 401"), "{err:#}");
    let mut odd = OrdersArgs::new(server.common(0.5, 0.0));
    odd.collectives = 3;
    let err = bench(Scenario::Orders(odd)).await.expect_err("odd count");
    assert!(err.to_string().contains("even number"), "{err:#}");
}

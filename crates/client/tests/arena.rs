//! The arena helpers against the real binary: Ed25519 stream authentication, signed
//! orders reflected in the orders and portfolio feeds (equal to REST), a wrong key
//! refused, the market book passing through the REST book under `--demo` traffic, and the
//! `rust_bot` example run for a few seconds.

mod util;

use std::collections::HashSet;
use std::time::Duration;

use ed25519_dalek::pkcs8::{spki::der::pem::LineEnding, EncodePrivateKey};
use ed25519_dalek::SigningKey;
use roomcast_client::arena::{
    follow_market, follow_stream, ArenaRest, ArenaState, BookState, Feed, OrdersState,
    PortfolioState,
};
use roomcast_client::{Ed25519Credentials, Error};
use serde_json::json;
use util::{client, fast, TestServer, WAIT};

fn new_key(id: &str) -> (Ed25519Credentials, SigningKey) {
    let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    (Ed25519Credentials::new(id, key.clone()), key)
}

async fn arena_server(
    extra: &[&str],
) -> (
    TestServer,
    Ed25519Credentials,
    SigningKey,
    tempfile::TempDir,
) {
    let (acme, key) = new_key("acme");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("collectives.toml");
    let toml = format!(
        "[[collective]]\nid = \"acme\"\npublic_key = \"{}\"\nstarting_cash = 10000000\n",
        acme.public_key_b64()
    );
    std::fs::write(&path, toml).expect("write collectives");
    let path = path.to_str().expect("utf-8 path").to_owned();
    let mut args = vec!["--collectives", path.as_str()];
    args.extend_from_slice(extra);
    let server = TestServer::start(&args).await;
    (server, acme, key, dir)
}

/// Applies events until `done(state)` holds.
async fn until<S: ArenaState>(feed: &mut Feed<S>, done: impl Fn(&S) -> bool) {
    tokio::time::timeout(WAIT, async {
        while !(feed.ready() && done(feed.state())) {
            feed.next().await.expect("feed open");
        }
    })
    .await
    .expect("the feed reached the expected state in time");
}

#[tokio::test]
async fn ed25519_streams_follow_signed_orders_and_equal_rest() {
    let (server, acme, _, _dir) = arena_server(&[]).await;
    let (_oc, mut orders) =
        follow_stream::<OrdersState>(&server.ws(), acme.clone(), "orders", fast())
            .await
            .expect("orders stream: Ed25519 challenge");
    let (_pc, mut portfolio) =
        follow_stream::<PortfolioState>(&server.ws(), acme.clone(), "portfolio", fast())
            .await
            .expect("portfolio stream");
    orders.until_ready().await.expect("orders snapshot");
    portfolio.until_ready().await.expect("portfolio snapshot");
    assert_eq!(orders.state().open().count(), 0);
    let cash_before = portfolio.state().balances.get("USD").cloned();
    assert!(cash_before.is_some(), "{:?}", portfolio.state());

    let rest = ArenaRest::new(&server.http(), acme);
    let order = rest
        .place_order(&json!({"symbol": "BTC-USD", "side": "buy", "type": "limit",
                             "quantity": "0.1", "price": "50000"}))
        .await
        .expect("signed order accepted");
    let id = order["order_id"].as_u64().expect("order id");
    until(&mut orders, |s| {
        s.orders.get(&id).is_some_and(|o| o["status"] == "open")
    })
    .await;
    until(&mut portfolio, |s| {
        s.balances.get("USD") != cash_before.as_ref()
    })
    .await;
    let rest_portfolio = rest.portfolio().await.expect("portfolio");
    let mut from_rest = PortfolioState::default();
    from_rest.replace(&rest_portfolio);
    assert_eq!(
        portfolio.state().balances,
        from_rest.balances,
        "stream == REST"
    );

    rest.cancel_order(id).await.expect("cancel");
    until(&mut orders, |s| {
        s.orders
            .get(&id)
            .is_some_and(|o| o["status"] == "cancelled")
    })
    .await;
    until(&mut portfolio, |s| {
        s.balances.get("USD") == cash_before.as_ref()
    })
    .await;

    // A key the server does not know is refused by REST and by the stream.
    let (mallory, _) = new_key("acme");
    match ArenaRest::new(&server.http(), mallory.clone())
        .portfolio()
        .await
    {
        Err(Error::Http { status, .. }) => assert_eq!(status, 401),
        other => panic!("wrong key accepted: {other:?}"),
    }
    let refused = follow_stream::<OrdersState>(&server.ws(), mallory, "orders", fast()).await;
    assert!(matches!(refused, Err(Error::Closed { .. })), "{refused:?}");
}

#[tokio::test]
async fn the_market_book_passes_through_the_rest_book_under_demo_traffic() {
    let (server, acme, _, _dir) = arena_server(&["--demo", "--demo-rate", "40"]).await;
    let watcher = client(&server, "watcher").await;
    let mut book = follow_market(&watcher, "BTC-USD").await.expect("market");
    book.until_ready().await.expect("book snapshot");
    let rest = ArenaRest::new(&server.http(), acme);
    let mut seen: HashSet<String> = HashSet::new();
    seen.insert(book.state().to_json().to_string());
    for _round in 0..3 {
        // Let some updates through, then take the REST book: one state of the exchange
        // that the stream must pass through.
        let mut updates = 0;
        while updates < 5 {
            let ev = tokio::time::timeout(WAIT, book.next())
                .await
                .expect("event")
                .expect("open");
            updates += usize::from(ev["type"] == "book_update");
            seen.insert(book.state().to_json().to_string());
        }
        let mut from_rest = BookState::default();
        from_rest.replace(&rest.book("BTC-USD", 1000).await.expect("REST book"));
        let want = from_rest.to_json().to_string();
        tokio::time::timeout(WAIT, async {
            while !seen.contains(&want) {
                book.next().await.expect("open");
                seen.insert(book.state().to_json().to_string());
            }
        })
        .await
        .unwrap_or_else(|_| panic!("the stream never showed the REST book {want}"));
    }
    assert!(!book.stale());
}

#[tokio::test]
async fn the_rust_bot_example_trades_and_follows_its_streams() {
    let (server, _, key, dir) = arena_server(&[]).await;
    let pem = key.to_pkcs8_pem(LineEnding::LF).expect("pem");
    let pem_path = dir.path().join("acme.pem");
    std::fs::write(&pem_path, pem.as_bytes()).expect("write pem");
    // `cargo test` builds examples, `cargo test --test arena` does not: make sure (a no-op
    // when fresh) in the same target dir.
    let debug = util::roomcast_bin().with_file_name("");
    let target = debug.parent().expect("target dir").to_owned();
    let built = std::process::Command::new(env!("CARGO"))
        .args([
            "build",
            "-q",
            "-p",
            "roomcast-client",
            "--example",
            "rust_bot",
        ])
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .expect("run cargo");
    assert!(built.success(), "building the example failed");
    let exe = debug.join("examples").join("rust_bot");
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::process::Command::new(exe)
            .args([
                server.ws().as_str(),
                "acme",
                pem_path.to_str().expect("path"),
                "3",
            ])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("bot ends")
    .expect("run bot");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("ready open_orders=0"), "{stdout}");
    assert!(stdout.contains("orders \"order_created\""), "{stdout}");
    assert!(stdout.contains("orders \"order_cancelled\""), "{stdout}");
    assert!(stdout.contains("portfolio \"balance_updated\""), "{stdout}");
    let last = stdout.lines().last().unwrap_or_default();
    let placed: u32 = last
        .strip_prefix("done placed=")
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("summary line: {last}"));
    assert!(placed >= 4, "{stdout}");
}

#[tokio::test]
async fn after_kill_9_the_orders_feed_is_stale_until_a_fresh_snapshot() {
    let (server, acme, _, _dir) = arena_server(&[]).await;
    let (_oc, mut orders) =
        follow_stream::<OrdersState>(&server.ws(), acme.clone(), "orders", fast())
            .await
            .expect("orders stream");
    orders.until_ready().await.expect("snapshot");
    let rest = ArenaRest::new(&server.http(), acme.clone());
    let order = rest
        .place_order(&json!({"symbol": "BTC-USD", "side": "buy", "type": "limit",
                             "quantity": "0.1", "price": "40000"}))
        .await
        .expect("order");
    let id = order["order_id"].as_u64().expect("id");
    until(&mut orders, |s| s.orders.contains_key(&id)).await;
    let server = TestServer::restart(server.kill9().await).await;
    // The stream resumes with `?last_sequence=&epoch=`; the crash started a new epoch.
    let mut saw_failed = false;
    tokio::time::timeout(WAIT, async {
        loop {
            let ev = orders.next().await.expect("feed open");
            if ev["type"] == "recovery_failed" {
                saw_failed = true;
                assert!(orders.stale());
            }
            if ev["type"] == "orders_snapshot" && saw_failed {
                return;
            }
        }
    })
    .await
    .expect("recovery_failed, then a fresh snapshot");
    assert!(!orders.stale());
    let listing = ArenaRest::new(&server.http(), acme)
        .orders("all")
        .await
        .expect("REST orders");
    let rest_ids: Vec<u64> = listing["orders"]
        .as_array()
        .or(listing.as_array())
        .into_iter()
        .flatten()
        .filter_map(|o| o["order_id"].as_u64())
        .collect();
    let feed_ids: Vec<u64> = orders.state().orders.keys().copied().collect();
    assert_eq!(
        feed_ids, rest_ids,
        "the feed was rebuilt from the fresh snapshot"
    );
}

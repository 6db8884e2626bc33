//! Helpers for the trading arena's end-to-end tests: a server with funded collectives
//! ([`ArenaServer`]) and checks over its whole REST state; [`trader`]: a collective that
//! signs REST calls with its Ed25519 key, opens its `/ws/{collective}/{stream}` streams
//! through the challenge and trades randomly; [`mirrors`]: orders, portfolio and book
//! rebuilt from a stream's snapshot plus its events, with no gap and no double.

pub mod mirrors;
pub mod trader;

pub use mirrors::*;
pub use trader::*;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::SigningKey;
use roomcast_client::Connection;
use roomcast_engine::auth::jwt::{mint_hs256, MintRequest};
use serde_json::{json, Value};

use crate::util::{http_with_headers, recv_json, TestServer};

/// The JWT secret of arena test servers.
pub const SECRET: &str = "arena-tests-shared-secret-0123456789";
/// Their admin key.
pub const ADMIN: &str = "arena-tests-admin-key";

/// Current unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The deterministic key of the collective at `index` (registered keys are 1..).
pub fn key_for(index: usize) -> SigningKey {
    SigningKey::from_bytes(&[(index as u8).wrapping_add(1); 32])
}

/// One collective's funding in the collectives file.
#[derive(Debug, Clone)]
pub struct Funding {
    pub id: String,
    /// Integer cents.
    pub cash_cents: i64,
    /// Symbol → decimal string.
    pub positions: Vec<(String, String)>,
}

impl Funding {
    pub fn new(id: &str, cash_cents: i64, positions: &[(&str, &str)]) -> Funding {
        Funding {
            id: id.to_owned(),
            cash_cents,
            positions: positions
                .iter()
                .map(|(s, q)| ((*s).to_owned(), (*q).to_owned()))
                .collect(),
        }
    }
}

/// A running server with registered, funded collectives.
pub struct ArenaServer {
    pub server: TestServer,
    pub traders: Vec<Trader>,
    pub funding: Vec<Funding>,
    args: Vec<String>,
    _files: Arc<tempfile::TempDir>,
}

impl ArenaServer {
    /// Starts a server that requires authentication (JWT secret, admin key) with the given
    /// collectives (keys from [`key_for`] by position), an optional `--config` TOML and
    /// extra flags.
    pub async fn start(funding: &[Funding], config: Option<&str>, extra: &[&str]) -> ArenaServer {
        let files = Arc::new(tempfile::tempdir().expect("temp dir"));
        let mut text = String::new();
        for (i, f) in funding.iter().enumerate() {
            let public = STANDARD.encode(key_for(i).verifying_key().to_bytes());
            text.push_str(&format!(
                "[[collective]]\nid = \"{}\"\npublic_key = \"{public}\"\nstarting_cash = {}\n",
                f.id, f.cash_cents
            ));
            if !f.positions.is_empty() {
                let list: Vec<String> = f
                    .positions
                    .iter()
                    .map(|(s, q)| format!("\"{s}\" = \"{q}\""))
                    .collect();
                text.push_str(&format!("starting_positions = {{ {} }}\n", list.join(", ")));
            }
            text.push('\n');
        }
        let path = files.path().join("collectives.toml");
        std::fs::write(&path, text).expect("write collectives file");
        let mut args: Vec<String> = [
            "--jwt-secret",
            SECRET,
            "--admin-key",
            ADMIN,
            "--handshake-rate",
            "0",
            "--collectives",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        args.push(path.to_str().expect("utf-8 path").to_owned());
        if let Some(config) = config {
            let path = files.path().join("config.toml");
            std::fs::write(&path, config).expect("write config");
            args.push("--config".to_owned());
            args.push(path.to_str().expect("utf-8 path").to_owned());
        }
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let server = TestServer::start_secure(&refs).await;
        let traders = Self::traders_for(funding, server.addr);
        ArenaServer {
            server,
            traders,
            funding: funding.to_vec(),
            args,
            _files: files,
        }
    }

    fn traders_for(funding: &[Funding], addr: SocketAddr) -> Vec<Trader> {
        funding
            .iter()
            .enumerate()
            .map(|(i, f)| Trader::new(&f.id, key_for(i), addr))
            .collect()
    }

    /// `kill -9`, then a new process on the same data directory and files.
    pub async fn kill9_and_restart(self) -> ArenaServer {
        let ArenaServer {
            server,
            funding,
            args,
            _files,
            ..
        } = self;
        let data = server.kill9().await;
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let server = TestServer::start_secure_in(data, &refs).await;
        let traders = Self::traders_for(&funding, server.addr);
        ArenaServer {
            server,
            traders,
            funding,
            args,
            _files,
        }
    }

    /// The trader of collective `id`.
    pub fn trader(&self, id: &str) -> &Trader {
        self.traders
            .iter()
            .find(|t| t.id == id)
            .unwrap_or_else(|| panic!("no trader {id}"))
    }

    /// A one-hour JWT signed with the server's secret for `sub`, optionally naming a
    /// collective in its `collective_id` claim.
    pub fn token(&self, sub: &str, collective_id: Option<&str>) -> String {
        let request = MintRequest {
            collective_id: collective_id.map(str::to_owned),
            ..MintRequest::new(sub, Duration::from_secs(3600))
        };
        mint_hs256(SECRET, &request, time::OffsetDateTime::now_utc()).expect("mint")
    }

    /// A plain `/ws/{client_id}` connection with a JWT for `client_id` (welcome consumed).
    pub async fn watcher(&self, client_id: &str) -> Connection {
        let token = self.token(client_id, None);
        let mut c =
            Connection::connect(&self.server.url(&format!("/ws/{client_id}?token={token}")))
                .await
                .expect("connect");
        let welcome = recv_json(&mut c).await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        c
    }

    /// Public GET returning JSON (asserts 200).
    pub async fn get_public(&self, path: &str) -> Value {
        let (status, body) = http_with_headers(self.server.addr, "GET", path, &[], None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).expect("JSON body")
    }

    /// Everything the REST API says about the exchange: per collective its portfolio and
    /// orders (open and all), and per market its book, trades and summary.
    pub async fn rest_state(&self) -> Value {
        let mut collectives = serde_json::Map::new();
        for t in &self.traders {
            collectives.insert(
                t.id.clone(),
                json!({
                    "portfolio": t.get("/api/v1/portfolio").await,
                    "open": t.get("/api/v1/orders?status=open").await,
                    "all": t.get("/api/v1/orders?status=all").await,
                }),
            );
        }
        let markets = self.get_public("/api/v1/markets").await;
        let mut books = serde_json::Map::new();
        for m in markets.as_array().expect("markets array") {
            let symbol = m["symbol"].as_str().expect("symbol");
            books.insert(
                symbol.to_owned(),
                json!({
                    "book": self.get_public(&format!("/api/v1/markets/{symbol}/book?depth=1000")).await,
                    "trades": self.get_public(&format!("/api/v1/markets/{symbol}/trades?limit=1000")).await,
                }),
            );
        }
        json!({"collectives": collectives, "markets": markets, "books": books})
    }

    /// Asserts conservation over the REST state: per currency the sum of every
    /// collective's cash total (free + reserved), and per symbol the sum of quantities,
    /// equal the funding (fees are 0), and free + reserved = total everywhere.
    pub async fn assert_conserved(&self) {
        let mut cash: i128 = 0;
        let mut qty: BTreeMap<String, i128> = BTreeMap::new();
        for t in &self.traders {
            let p = t.get("/api/v1/portfolio").await;
            for b in p["balances"].as_array().expect("balances") {
                assert_eq!(b["currency"], "USD", "{b}");
                let total = units(&b["total"]);
                assert_eq!(total, units(&b["available"]) + units(&b["reserved"]), "{b}");
                cash += total;
            }
            for pos in p["positions"].as_array().expect("positions") {
                let q = units(&pos["quantity"]);
                assert_eq!(
                    q,
                    units(&pos["available"]) + units(&pos["reserved"]),
                    "{pos}"
                );
                *qty.entry(pos["symbol"].as_str().expect("symbol").to_owned())
                    .or_default() += q;
            }
        }
        let funded_cash: i128 = self
            .funding
            .iter()
            .map(|f| i128::from(f.cash_cents) * 1_000_000)
            .sum();
        assert_eq!(cash, funded_cash, "total cash (1e-8 units)");
        let mut funded_qty: BTreeMap<String, i128> = BTreeMap::new();
        for f in &self.funding {
            for (s, q) in &f.positions {
                *funded_qty.entry(s.clone()).or_default() += units(&json!(q));
            }
        }
        qty.retain(|_, q| *q != 0);
        funded_qty.retain(|_, q| *q != 0);
        assert_eq!(qty, funded_qty, "total quantity per symbol (1e-8 units)");
    }
}

impl ArenaServer {
    /// Asserts every market's REST book is exactly the aggregate of every collective's
    /// open orders (remaining quantity per side and price), and is not crossed.
    pub async fn assert_books_are_open_orders(&self) {
        let mut from_orders: BTreeMap<(String, String, i128), i128> = BTreeMap::new();
        for t in &self.traders {
            for o in t.get("/api/v1/orders").await.as_array().expect("orders") {
                let key = (
                    o["symbol"].as_str().expect("symbol").to_owned(),
                    o["side"].as_str().expect("side").to_owned(),
                    units(&o["price"]),
                );
                *from_orders.entry(key).or_default() += units(&o["remaining_quantity"]);
            }
        }
        let mut from_books = BTreeMap::new();
        let markets = self.get_public("/api/v1/markets").await;
        for m in markets.as_array().expect("markets") {
            let symbol = m["symbol"].as_str().expect("symbol");
            let book = self
                .get_public(&format!("/api/v1/markets/{symbol}/book?depth=1000"))
                .await;
            let (bids, asks) = levels(&book);
            if let (Some(bid), Some(ask)) = (bids.keys().next_back(), asks.keys().next()) {
                assert!(bid < ask, "{symbol}: crossed book {bid} >= {ask}");
            }
            for (side, levels) in [("buy", bids), ("sell", asks)] {
                for (price, qty) in levels {
                    let key = (symbol.to_owned(), side.to_owned(), price);
                    from_books.insert(key, units(&json!(qty)));
                }
            }
        }
        assert_eq!(from_books, from_orders, "book levels != open orders");
    }

    /// Asserts each collective's reserved cash is the sum of its open orders'
    /// `reserved_cash`, and each reserved position the remaining quantity of its open
    /// sells (without short selling).
    pub async fn assert_reservations_are_open_orders(&self) {
        for t in &self.traders {
            let p = t.get("/api/v1/portfolio").await;
            let mut cash: i128 = 0;
            let mut selling: BTreeMap<String, i128> = BTreeMap::new();
            for o in t.get("/api/v1/orders").await.as_array().expect("orders") {
                cash += units(&o["reserved_cash"]);
                if o["side"] == "sell" {
                    *selling
                        .entry(o["symbol"].as_str().expect("symbol").to_owned())
                        .or_default() += units(&o["remaining_quantity"]);
                }
            }
            let reserved: i128 = p["balances"]
                .as_array()
                .expect("balances")
                .iter()
                .map(|b| units(&b["reserved"]))
                .sum();
            assert_eq!(
                reserved, cash,
                "{}: reserved cash vs open orders: {p}",
                t.id
            );
            let mut positions: BTreeMap<String, i128> = p["positions"]
                .as_array()
                .expect("positions")
                .iter()
                .map(|x| {
                    (
                        x["symbol"].as_str().expect("symbol").to_owned(),
                        units(&x["reserved"]),
                    )
                })
                .collect();
            positions.retain(|_, q| *q != 0);
            selling.retain(|_, q| *q != 0);
            assert_eq!(
                positions, selling,
                "{}: reserved positions vs open sells",
                t.id
            );
        }
    }
}

/// A decimal string as an integer of 1e-8 units (exact; panics on anything else).
pub fn units(v: &Value) -> i128 {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("a decimal string, got {v}"));
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    assert!(frac.len() <= 8, "too precise: {s}");
    let digits = format!("{int}{frac:0<8}");
    let n: i128 = digits.parse().unwrap_or_else(|_| panic!("a decimal: {s}"));
    if neg {
        -n
    } else {
        n
    }
}

/// acme and globex, each with $100,000.00 and 10 BTC.
pub fn two() -> Vec<Funding> {
    vec![
        Funding::new("acme", 10_000_000, &[("BTC-USD", "10")]),
        Funding::new("globex", 10_000_000, &[("BTC-USD", "10")]),
    ]
}

/// A BTC-USD limit order.
pub fn limit(side: &str, qty: &str, price: &str) -> Value {
    json!({"symbol":"BTC-USD","side":side,"type":"limit","quantity":qty,"price":price})
}

/// The stream requests by which another collective would read acme's orders: subscribing
/// to `orders:acme` and `portfolio:acme`, replaying `orders:acme` from `epoch`, following
/// order `id`; each with what it tries.
pub fn acme_private_reads(id: u64, epoch: &str) -> Vec<(Value, &'static str)> {
    vec![
        (
            json!({"type":"subscribe","room":"orders:acme"}),
            "subscribe",
        ),
        (
            json!({"type":"subscribe","room":"portfolio:acme"}),
            "subscribe portfolio",
        ),
        (
            json!({"type":"subscribe","room":"orders:acme","since":{"sequence":0,"epoch":epoch}}),
            "replay",
        ),
        (
            json!({"type":"subscribe_order","order_id":id}),
            "subscribe_order",
        ),
    ]
}

/// A reply that must be an error with code FORBIDDEN.
pub fn assert_forbidden(reply: &Value, what: &str) {
    assert_eq!(reply["type"], "error", "{what}: {reply}");
    assert_eq!(reply["code"], "FORBIDDEN", "{what}: {reply}");
}

/// The orders stream of a cross: `order_created` then `order_filled` for the `taker`, then
/// `order_created` for the resting `maker` it filled against.
pub fn assert_taker_filled_then_maker(events: &[Value], taker: u64, maker: u64) {
    let kinds: Vec<(&str, u64)> = events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap_or(""),
                e["data"]["order_id"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("order_created", taker),
            ("order_filled", taker),
            ("order_created", maker)
        ]
    );
}

//! Helpers for the trading arena's end-to-end tests: a server with funded collectives
//! ([`ArenaServer`]), a [`Trader`] that signs REST calls with its Ed25519 key and opens its
//! `/ws/{collective}/{stream}` streams through the challenge, and mirrors that rebuild
//! orders, portfolio and book from a stream's snapshot plus its events, checking that the
//! sequences follow each other with no gap and no double.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use roomcast_client::Connection;
use roomcast_engine::auth::jwt::{mint_hs256, MintRequest};
use serde_json::{json, Value};

use super::{http_with_headers, recv_event, recv_json, TestServer};

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
            sub: sub.to_owned(),
            rooms: None,
            publish: None,
            roles: Vec::new(),
            collective_id: collective_id.map(str::to_owned),
            issuer: None,
            audience: None,
            ttl: Duration::from_secs(3600),
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

/// HTTP headers as (name, value) pairs.
pub type Headers = Vec<(String, String)>;

/// A collective that signs its requests and opens its streams.
#[derive(Clone)]
pub struct Trader {
    pub id: String,
    pub key: SigningKey,
    pub addr: SocketAddr,
    last_ts: Arc<AtomicI64>,
}

impl Trader {
    pub fn new(id: &str, key: SigningKey, addr: SocketAddr) -> Trader {
        Trader {
            id: id.to_owned(),
            key,
            addr,
            last_ts: Arc::new(AtomicI64::new(0)),
        }
    }

    /// A timestamp for a new request: now, but always later than the previous one, so
    /// two identical requests never carry the same (single-use) signature.
    pub fn timestamp(&self) -> i64 {
        let now = now_ms();
        let prev = self
            .last_ts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
                Some(now.max(last + 1))
            })
            .unwrap_or(now);
        now.max(prev + 1)
    }

    /// Base64 signature of `timestamp + method + path_with_query + body`.
    pub fn sign(&self, ts: &str, method: &str, path: &str, body: &str) -> String {
        let text = format!("{ts}{method}{path}{body}");
        STANDARD.encode(self.key.sign(text.as_bytes()).to_bytes())
    }

    /// The three signature headers for a request at `ts`.
    pub fn headers(&self, ts: i64, method: &str, path: &str, body: &str) -> Headers {
        let ts = ts.to_string();
        let sig = self.sign(&ts, method, path, body);
        vec![
            ("X-Collective-Id".to_owned(), self.id.clone()),
            ("X-Timestamp".to_owned(), ts),
            ("X-Signature".to_owned(), sig),
        ]
    }

    /// Sends a request with exactly these headers; returns (status, JSON body or Null).
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(String, String)],
        body: &str,
    ) -> (u16, Value) {
        let h: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let body = (!body.is_empty() || method == "POST").then_some(body);
        let (status, text) = http_with_headers(self.addr, method, path, &h, body).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A signed order that may race a dying server: `Err` when the connection fails.
    pub async fn try_place(&self, order: &Value) -> Result<(u16, Value), String> {
        let body = order.to_string();
        let path = "/api/v1/orders";
        let headers = self.headers(self.timestamp(), "POST", path, &body);
        let h: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let (status, text) =
            super::try_http_with_headers(self.addr, "POST", path, &h, Some(&body)).await?;
        let v = serde_json::from_str(&text).map_err(|e| format!("{status}: {e}: {text:?}"))?;
        Ok((status, v))
    }

    /// A signed request, timestamped now.
    pub async fn signed(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        let headers = self.headers(self.timestamp(), method, path, body);
        self.raw(method, path, &headers, body).await
    }

    /// Signed GET, asserting 200.
    pub async fn get(&self, path: &str) -> Value {
        let (status, v) = self.signed("GET", path, "").await;
        assert_eq!(status, 200, "{} GET {path}: {v}", self.id);
        v
    }

    /// `POST /api/v1/orders`.
    pub async fn place(&self, order: &Value) -> (u16, Value) {
        self.signed("POST", "/api/v1/orders", &order.to_string())
            .await
    }

    /// Places an order that must be accepted (201); returns the order.
    pub async fn place_ok(&self, order: &Value) -> Value {
        let (status, v) = self.place(order).await;
        assert_eq!(status, 201, "{} placing {order}: {v}", self.id);
        v
    }

    /// `DELETE /api/v1/orders/{id}`.
    pub async fn cancel(&self, order_id: u64) -> (u16, Value) {
        self.signed("DELETE", &format!("/api/v1/orders/{order_id}"), "")
            .await
    }

    /// Opens `/ws/{id}/{stream}{query}`, answers the Ed25519 challenge and consumes
    /// `auth_ok` and the welcome.
    pub async fn open_stream(&self, stream: &str, query: &str) -> Connection {
        let url = format!("ws://{}/ws/{}/{stream}{query}", self.addr, self.id);
        let mut c = Connection::connect(&url).await.expect("connect stream");
        let challenge = recv_json(&mut c).await;
        assert_eq!(challenge["type"], "auth_challenge", "{challenge}");
        let text = challenge["challenge"].as_str().expect("challenge text");
        let signature = STANDARD.encode(self.key.sign(text.as_bytes()).to_bytes());
        c.send_json(&json!({"type":"auth_response","signature":signature}))
            .await
            .expect("send auth_response");
        let ok = recv_json(&mut c).await;
        assert_eq!(ok["type"], "auth_ok", "{ok}");
        assert_eq!(ok["collective_id"], self.id.as_str(), "{ok}");
        let welcome = recv_json(&mut c).await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        c
    }

    /// Opens the `orders` or `portfolio` stream and returns it with its snapshot.
    pub async fn stream(&self, stream: &str) -> (Connection, Value) {
        let mut c = self.open_stream(stream, "").await;
        let snapshot = recv_event(&mut c).await;
        assert_eq!(snapshot["type"], format!("{stream}_snapshot"), "{snapshot}");
        (c, snapshot)
    }
}

/// Subscribes `c` to an arena room on a quiet connection and returns the snapshot; the
/// ack must follow it directly and carry its position.
pub async fn attach(c: &mut Connection, room: &str) -> Value {
    let (snapshot, others) = attach_busy(c, room).await;
    assert!(others.is_empty(), "unexpected frames: {others:?}");
    snapshot
}

/// Subscribes `c` to an arena room while events flow: returns the room's snapshot and,
/// in arrival order, every other frame read up to the ack (events of rooms `c` already
/// follows, and events of this room published after the snapshot).
pub async fn attach_busy(c: &mut Connection, room: &str) -> (Value, Vec<Value>) {
    let id = json!(format!("attach-{room}"));
    c.send_json(&json!({"type":"subscribe","room":room,"id":id}))
        .await
        .expect("send subscribe");
    let mut snapshot: Option<Value> = None;
    let mut others = Vec::new();
    loop {
        let m = recv_event(c).await;
        let is_snapshot =
            m["room"] == room && m["type"].as_str().is_some_and(|t| t.ends_with("_snapshot"));
        if is_snapshot {
            assert!(snapshot.is_none(), "two snapshots: {m}");
            snapshot = Some(m);
        } else if m["type"] == "ack" && m["id"] == id {
            let snapshot = snapshot.unwrap_or_else(|| panic!("an ack before the snapshot: {m}"));
            assert_eq!(m["sequence"], snapshot["sequence"], "{m} {snapshot}");
            assert_eq!(m["epoch"], snapshot["epoch"], "{m} {snapshot}");
            return (snapshot, others);
        } else {
            assert!(
                m["room"] != room || snapshot.is_some(),
                "an event of {room} before its snapshot: {m}"
            );
            others.push(m);
        }
    }
}

/// Checks that `event` is the next one of its room after `last` and advances `last`.
fn next_in_room(last: &mut u64, event: &Value) {
    let seq = event["sequence"]
        .as_u64()
        .unwrap_or_else(|| panic!("an event with a sequence: {event}"));
    assert_eq!(seq, *last + 1, "gap or double before {event}");
    *last = seq;
}

/// An order view as events carry it, without the event's `fill`.
pub fn order_of(data: &Value) -> Value {
    let mut o = data.clone();
    if let Some(map) = o.as_object_mut() {
        map.remove("fill");
    }
    o
}

/// A collective's orders rebuilt from `orders_snapshot` + order events.
#[derive(Debug, Default)]
pub struct OrdersMirror {
    pub room: String,
    pub sequence: u64,
    /// Order id → latest view.
    pub orders: BTreeMap<u64, Value>,
    /// Every event applied, in order.
    pub events: Vec<Value>,
}

impl OrdersMirror {
    pub fn new(snapshot: &Value) -> OrdersMirror {
        assert_eq!(snapshot["type"], "orders_snapshot", "{snapshot}");
        let mut m = OrdersMirror {
            room: snapshot["room"].as_str().expect("room").to_owned(),
            sequence: snapshot["sequence"].as_u64().expect("sequence"),
            ..OrdersMirror::default()
        };
        for o in snapshot["data"]["orders"].as_array().expect("orders") {
            m.orders
                .insert(o["order_id"].as_u64().expect("id"), o.clone());
        }
        m
    }

    pub fn apply(&mut self, event: &Value) {
        assert_eq!(event["room"], self.room.as_str(), "{event}");
        next_in_room(&mut self.sequence, event);
        self.events.push(event.clone());
        let ty = event["type"].as_str().expect("type");
        match ty {
            "order_rejected" => {}
            "order_created" | "order_partial" | "order_filled" | "order_cancelled" => {
                let o = order_of(&event["data"]);
                self.orders.insert(o["order_id"].as_u64().expect("id"), o);
            }
            other => panic!("unexpected event {other} on the orders stream: {event}"),
        }
    }

    /// The orders still open, by id.
    pub fn open(&self) -> BTreeMap<u64, Value> {
        self.orders
            .iter()
            .filter(|(_, o)| o["status"] == "open" || o["status"] == "partially_filled")
            .map(|(id, o)| (*id, o.clone()))
            .collect()
    }
}

/// A collective's balances and positions rebuilt from `portfolio_snapshot` + updates.
#[derive(Debug, Default)]
pub struct PortfolioMirror {
    pub room: String,
    pub sequence: u64,
    pub balances: BTreeMap<String, Value>,
    pub positions: BTreeMap<String, Value>,
}

impl PortfolioMirror {
    pub fn new(snapshot: &Value) -> PortfolioMirror {
        assert_eq!(snapshot["type"], "portfolio_snapshot", "{snapshot}");
        let mut m = PortfolioMirror {
            room: snapshot["room"].as_str().expect("room").to_owned(),
            sequence: snapshot["sequence"].as_u64().expect("sequence"),
            ..PortfolioMirror::default()
        };
        m.set_from(&snapshot["data"]);
        m
    }

    fn set_from(&mut self, portfolio: &Value) {
        self.balances = keyed(&portfolio["balances"], "currency");
        self.positions = keyed(&portfolio["positions"], "symbol");
    }

    pub fn apply(&mut self, event: &Value) {
        assert_eq!(event["room"], self.room.as_str(), "{event}");
        next_in_room(&mut self.sequence, event);
        let data = &event["data"];
        match event["type"].as_str().expect("type") {
            "balance_updated" => {
                let k = data["currency"].as_str().expect("currency").to_owned();
                self.balances.insert(k, data.clone());
            }
            "position_updated" => {
                let k = data["symbol"].as_str().expect("symbol").to_owned();
                self.positions.insert(k, data.clone());
            }
            other => panic!("unexpected event {other} on the portfolio stream: {event}"),
        }
    }

    /// Asserts the mirror equals a REST portfolio (equity is not streamed).
    pub fn assert_matches(&self, rest: &Value) {
        assert_eq!(
            self.balances,
            keyed(&rest["balances"], "currency"),
            "balances"
        );
        assert_eq!(
            self.positions,
            keyed(&rest["positions"], "symbol"),
            "positions"
        );
    }
}

fn keyed(list: &Value, key: &str) -> BTreeMap<String, Value> {
    list.as_array()
        .unwrap_or_else(|| panic!("an array: {list}"))
        .iter()
        .map(|v| (v[key].as_str().expect("key").to_owned(), v.clone()))
        .collect()
}

/// One market's book rebuilt from `book_snapshot` + `book_update`s; trades and tickers
/// are kept as they come.
#[derive(Debug, Default)]
pub struct BookMirror {
    pub room: String,
    pub sequence: u64,
    /// Price (1e-8 units) → quantity string.
    pub bids: BTreeMap<i128, String>,
    pub asks: BTreeMap<i128, String>,
    pub trades: Vec<Value>,
    pub tickers: Vec<Value>,
    pub events: Vec<Value>,
}

impl BookMirror {
    pub fn new(snapshot: &Value) -> BookMirror {
        assert_eq!(snapshot["type"], "book_snapshot", "{snapshot}");
        let (bids, asks) = levels(&snapshot["data"]);
        BookMirror {
            room: snapshot["room"].as_str().expect("room").to_owned(),
            sequence: snapshot["sequence"].as_u64().expect("sequence"),
            bids,
            asks,
            ..BookMirror::default()
        }
    }

    pub fn apply(&mut self, event: &Value) {
        assert_eq!(event["room"], self.room.as_str(), "{event}");
        next_in_room(&mut self.sequence, event);
        self.events.push(event.clone());
        let data = &event["data"];
        match event["type"].as_str().expect("type") {
            "book_update" => {
                for (side, book) in [("bids", &mut self.bids), ("asks", &mut self.asks)] {
                    for l in data[side].as_array().expect("levels") {
                        let price = units(&l["price"]);
                        if units(&l["quantity"]) == 0 {
                            assert!(
                                book.remove(&price).is_some(),
                                "removed a missing level: {event}"
                            );
                        } else {
                            book.insert(price, l["quantity"].as_str().expect("qty").to_owned());
                        }
                    }
                }
            }
            "trade" => self.trades.push(data.clone()),
            "ticker" => self.tickers.push(data.clone()),
            other => panic!("unexpected event {other} on a market room: {event}"),
        }
    }

    /// Asserts the mirror equals a REST book (full depth) and that neither is crossed.
    pub fn assert_matches(&self, rest: &Value) {
        let (bids, asks) = levels(rest);
        assert_eq!(self.bids, bids, "bids");
        assert_eq!(self.asks, asks, "asks");
        if let (Some(bid), Some(ask)) = (bids.keys().next_back(), asks.keys().next()) {
            assert!(bid < ask, "crossed book {bid} >= {ask}");
        }
    }
}

fn levels(book: &Value) -> (BTreeMap<i128, String>, BTreeMap<i128, String>) {
    let side = |name: &str| {
        book[name]
            .as_array()
            .unwrap_or_else(|| panic!("levels in {book}"))
            .iter()
            .map(|l| {
                (
                    units(&l["price"]),
                    l["quantity"].as_str().expect("qty").to_owned(),
                )
            })
            .collect::<BTreeMap<_, _>>()
    };
    (side("bids"), side("asks"))
}

/// Reads what arrived up to a ping round trip (see [`super::barrier`]).
pub async fn drain(c: &mut Connection) -> Vec<Value> {
    super::barrier(c).await
}

/// What a run of [`random_orders`] did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub accepted: u64,
    pub rejected: u64,
    pub cancelled: u64,
}

/// `per_trader` random orders from each trader, all traders concurrently (each with
/// `in_flight` requests at a time): limit GTC around 100.00 mostly, some IOC and market
/// orders; besides, about one request in six cancels one of its own open orders. Every response must be 201, 422
/// (insufficient funds or position), or for a cancel 200/409.
pub async fn random_orders(
    traders: &[Trader],
    symbol: &str,
    per_trader: usize,
    in_flight: usize,
    seed: u64,
) -> Tally {
    let mut tasks = Vec::new();
    for (i, t) in traders.iter().enumerate() {
        for lane in 0..in_flight {
            let t = t.clone();
            let symbol = symbol.to_owned();
            let n = per_trader / in_flight + usize::from(lane < per_trader % in_flight);
            let seed = seed ^ ((i as u64) << 32) ^ lane as u64;
            tasks.push(tokio::spawn(async move {
                trade_randomly(&t, &symbol, n, seed).await
            }));
        }
    }
    let mut tally = Tally::default();
    for task in tasks {
        let t = task.await.expect("trading task");
        tally.accepted += t.accepted;
        tally.rejected += t.rejected;
        tally.cancelled += t.cancelled;
    }
    tally
}

async fn trade_randomly(t: &Trader, symbol: &str, n: usize, seed: u64) -> Tally {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut mine: Vec<u64> = Vec::new();
    let mut tally = Tally::default();
    while tally.accepted + tally.rejected < n as u64 {
        if !mine.is_empty() && rng.random_ratio(1, 6) {
            let id = mine.swap_remove(rng.random_range(0..mine.len()));
            let (status, v) = t.cancel(id).await;
            match status {
                200 => tally.cancelled += 1,
                409 => {}
                _ => panic!("cancel {id}: {status} {v}"),
            }
            continue;
        }
        let side = if rng.random_bool(0.5) { "buy" } else { "sell" };
        // Multiples of 0.001, valid on every default instrument.
        let qty = format!("0.{:03}", rng.random_range(1..=500u32));
        let order = match rng.random_range(0..10u32) {
            0 => {
                json!({"symbol":symbol,"side":side,"type":"market","quantity":qty,"time_in_force":"ioc"})
            }
            1 => {
                let price = format!(
                    "{}.{:02}",
                    rng.random_range(97..=102u32),
                    rng.random_range(0..100u32)
                );
                json!({"symbol":symbol,"side":side,"type":"limit","quantity":qty,"price":price,"time_in_force":"ioc"})
            }
            _ => {
                // Buyers bid a bit lower than sellers ask, so books build up and cross
                // only sometimes.
                let base = if side == "buy" { 97 } else { 99 };
                let price = format!(
                    "{}.{:02}",
                    rng.random_range(base..=base + 3u32),
                    rng.random_range(0..100u32)
                );
                json!({"symbol":symbol,"side":side,"type":"limit","quantity":qty,"price":price})
            }
        };
        let (status, v) = t.place(&order).await;
        match status {
            201 => {
                tally.accepted += 1;
                if v["status"] == "open" || v["status"] == "partially_filled" {
                    mine.push(v["order_id"].as_u64().expect("order id"));
                }
            }
            422 => {
                let reason = v["error"]["reason"].as_str().unwrap_or_default();
                assert!(
                    reason == "insufficient_funds" || reason == "insufficient_position",
                    "{order}: {v}"
                );
                tally.rejected += 1;
            }
            _ => panic!("{} placing {order}: {status} {v}", t.id),
        }
    }
    tally
}

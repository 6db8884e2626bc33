//! A collective as a trading program sees itself: it signs its REST calls
//! (`X-Collective-Id`, `X-Timestamp`, `X-Signature`), opens its streams through the Ed25519
//! challenge, joins arena rooms (snapshot, then ack) and places random orders.

use std::net::SocketAddr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use roomcast_client::arena::SignatureClock;
use roomcast_client::Connection;
use serde_json::{json, Value};

use crate::util::{http_with_headers, recv_event, recv_json, try_http_with_headers};

/// HTTP headers as (name, value) pairs.
pub type Headers = Vec<(String, String)>;

/// A collective that signs its requests and opens its streams.
#[derive(Clone)]
pub struct Trader {
    pub id: String,
    pub key: SigningKey,
    pub addr: SocketAddr,
    clock: SignatureClock,
}

impl Trader {
    pub fn new(id: &str, key: SigningKey, addr: SocketAddr) -> Trader {
        Trader {
            id: id.to_owned(),
            key,
            addr,
            clock: SignatureClock::new(),
        }
    }

    /// The same collective talking to the server at `addr` (another node of a cluster);
    /// both share the timestamp clock, so their signatures never repeat.
    pub fn on(&self, addr: SocketAddr) -> Trader {
        Trader {
            addr,
            ..self.clone()
        }
    }

    /// A timestamp for a new request: now, but always later than the previous one, so
    /// two identical requests never carry the same (single-use) signature.
    pub fn timestamp(&self) -> i64 {
        self.clock.next()
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
            try_http_with_headers(self.addr, "POST", path, &h, Some(&body)).await?;
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

/// What a run of [`random_orders`] did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub accepted: u64,
    pub rejected: u64,
    pub cancelled: u64,
}

/// `per_trader` random orders from each trader, all traders concurrently (each with
/// `in_flight` requests at a time): limit GTC around 100.00 mostly, some IOC and market
/// orders; besides, about one request in six cancels one of its own open orders. Every
/// response must be 201, 422 (insufficient funds or position), or for a cancel 200/409.
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

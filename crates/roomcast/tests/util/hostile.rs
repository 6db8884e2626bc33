//! Helpers of the bad-input catalogue (tests/hostile.rs): the bystander that proves an
//! attack disturbs nobody else, raw TCP and HTTP from a chosen source address, and tokens.
//!
//! A [`Bystander`] is a subscriber and a publisher in their own room, connected before the
//! attack: the publisher sends a numbered tick every 100 ms and records each acknowledged
//! sequence; [`Bystander::during`] runs an attack and then waits for more ticks to arrive
//! (the server still serves others afterwards); [`Bystander::finish`] stops the publisher
//! and asserts the subscriber received every acknowledged tick exactly once, in order.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use roomcast_client::{Connection, Incoming};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;

use super::{recv_json, subscribe, TestServer, WAIT};

/// The room of the bystander pair.
const ROOM: &str = "bystander";
/// Tick period: at the default per-connection rate limit (10/s, burst 20).
const TICK: Duration = Duration::from_millis(100);

/// A subscriber that must keep receiving, and the publisher that feeds it.
pub struct Bystander {
    acked: Arc<Mutex<Vec<u64>>>,
    received: Arc<Mutex<Vec<(u64, u64)>>>,
    stop: CancellationToken,
    publisher: tokio::task::JoinHandle<()>,
    reader: tokio::task::JoinHandle<()>,
}

impl Bystander {
    /// Connects the pair (anonymous: a `--dev` server).
    pub async fn start(server: &TestServer) -> Bystander {
        Self::start_with(server, None).await
    }

    /// Connects the pair with tokens minted from `jwt_secret` when given.
    pub async fn start_with(server: &TestServer, jwt_secret: Option<&str>) -> Bystander {
        let url = |id: &str| match jwt_secret {
            Some(secret) => server.url(&format!("/ws/{id}?token={}", mint(secret, id))),
            None => server.url(&format!("/ws/{id}")),
        };
        let mut sub = Connection::connect(&url("bystander"))
            .await
            .expect("bystander");
        assert_eq!(recv_json(&mut sub).await["type"], "welcome");
        subscribe(&mut sub, ROOM).await;
        let mut publ = Connection::connect(&url("ticker")).await.expect("ticker");
        assert_eq!(recv_json(&mut publ).await["type"], "welcome");
        subscribe(&mut publ, ROOM).await;

        let stop = CancellationToken::new();
        let acked = Arc::new(Mutex::new(Vec::new()));
        let received = Arc::new(Mutex::new(Vec::new()));
        let publisher = {
            let (stop, acked) = (stop.clone(), acked.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                let mut tick = tokio::time::interval(TICK);
                while !stop.is_cancelled() {
                    tick.tick().await;
                    n += 1;
                    let req = json!({"type":"message","room":ROOM,"content":{"n":n},"id":n});
                    publ.send_json(&req).await.expect("ticker sends");
                    loop {
                        let v = recv_json(&mut publ).await;
                        if v["id"] == json!(n) {
                            assert_eq!(v["type"], "ack", "tick {n}: {v}");
                            let seq = v["sequence"].as_u64().expect("ack sequence");
                            acked.lock().expect("lock").push(seq);
                            break;
                        }
                    }
                }
            })
        };
        let reader = {
            let received = received.clone();
            tokio::spawn(async move {
                loop {
                    match sub.recv().await {
                        Ok(Incoming::Json(v)) if v["type"] == "message" && v["room"] == ROOM => {
                            let seq = v["sequence"].as_u64().expect("sequence");
                            let n = v["content"]["n"].as_u64().expect("tick number");
                            received.lock().expect("lock").push((seq, n));
                        }
                        Ok(Incoming::Json(v)) if v["type"] == "ping" => {
                            let _ = sub.send_json(&json!({"type":"pong"})).await;
                        }
                        Ok(Incoming::Json(_)) => {}
                        Ok(Incoming::Closed { code, reason }) => {
                            panic!("the bystander was closed: {code:?} {reason}")
                        }
                        Err(_) => return,
                    }
                }
            })
        };
        let b = Bystander {
            acked,
            received,
            stop,
            publisher,
            reader,
        };
        b.await_ticks(2).await;
        b
    }

    fn received_len(&self) -> usize {
        self.received.lock().expect("lock").len()
    }

    /// Waits until `more` further ticks have arrived.
    async fn await_ticks(&self, more: usize) {
        let target = self.received_len() + more;
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.received_len() < target {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the bystander stopped receiving ticks"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs `attack`, then proves ticks still flow (three more arrive).
    pub async fn during<F: Future>(&self, attack: F) -> F::Output {
        let out = attack.await;
        self.await_ticks(3).await;
        out
    }

    /// Stops the publisher and asserts every acknowledged tick arrived once, in order.
    pub async fn finish(self) {
        let Bystander {
            acked,
            received,
            stop,
            publisher,
            reader,
        } = self;
        stop.cancel();
        tokio::time::timeout(WAIT, publisher)
            .await
            .expect("publisher stops")
            .expect("publisher task");
        let acked = acked.lock().expect("lock").clone();
        let len = || received.lock().expect("lock").len();
        let deadline = tokio::time::Instant::now() + WAIT;
        while len() < acked.len() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        reader.abort();
        let received = received.lock().expect("lock").clone();
        let seqs: Vec<u64> = received.iter().map(|(s, _)| *s).collect();
        assert_eq!(
            seqs, acked,
            "the bystander got every acknowledged tick, in order"
        );
        let ns: Vec<u64> = received.iter().map(|(_, n)| *n).collect();
        let expected: Vec<u64> = (1..=ns.len() as u64).collect();
        assert_eq!(ns, expected, "ticks arrive once each, in publish order");
        assert!(acked.len() >= 5, "the attack ran while ticks flowed");
    }
}

/// An HS256 token for `sub`, valid for an hour.
pub fn mint(secret: &str, sub: &str) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = json!({"sub": sub, "exp": now + 3600});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("mint")
}

/// A TCP connection to `server` from the local address `source` (127.0.0.x).
pub async fn tcp_from(source: IpAddr, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(server).await
}

/// Sends raw bytes and reads the answer until its header block is complete or the server
/// closes (or `limit`): returns the bytes and whether the server closed.
pub async fn raw_exchange(
    stream: &mut TcpStream,
    request: &[u8],
    limit: Duration,
) -> (String, bool) {
    stream.write_all(request).await.expect("write");
    read_until(stream, limit, |got| {
        got.windows(4).any(|w| w == b"\r\n\r\n")
    })
    .await
}

/// Reads until EOF (or a reset) within `limit`; (what arrived, whether it was closed).
pub async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, bool) {
    read_until(stream, limit, |_| false).await
}

/// Reads until what arrived is `complete`, the peer closes (or resets), or `limit` passes;
/// (what arrived, whether it was closed).
async fn read_until(
    stream: &mut TcpStream,
    limit: Duration,
    complete: impl Fn(&[u8]) -> bool,
) -> (String, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), false),
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(Ok(n)) => {
                got.extend_from_slice(&buf[..n]);
                if complete(&got) {
                    return (String::from_utf8_lossy(&got).into_owned(), false);
                }
            }
        }
    }
}

/// The status code of a raw HTTP response, if it has one.
pub fn status_of(response: &str) -> Option<u16> {
    response.split(' ').nth(1).and_then(|s| s.parse().ok())
}

/// An upgrade request for `path` with the given extra header lines (each ending `\r\n`).
pub fn upgrade_request(path: &str, extra: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    )
    .into_bytes()
}

/// The JSON of an error reply, asserting its code.
pub fn assert_error(v: &Value, code: &str) {
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["code"], code, "{v}");
}

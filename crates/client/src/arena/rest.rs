//! [`ArenaRest`]: the arena's REST API with Ed25519-signed requests (docs/ARENA.md
//! "Signing requests"): `X-Collective-Id`, `X-Timestamp` (ms) and `X-Signature` over
//! `timestamp + METHOD + path_with_query + body`. Each call is signed afresh with a
//! strictly increasing timestamp, so a retry is never a `replayed_signature`. Plain
//! HTTP/1.1 over hyper (already in the tree for the server); one connection per call.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{CONNECTION, CONTENT_TYPE, HOST};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

use super::SignatureClock;
use crate::auth::Ed25519Credentials;
use crate::error::Error;

/// Largest response body read (a full-depth book).
const MAX_BODY: usize = 8 * 1024 * 1024;
/// Per-request deadline.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A collective's signed REST client (cheap to clone).
#[derive(Debug, Clone)]
pub struct ArenaRest {
    host: String,
    credentials: Ed25519Credentials,
    clock: SignatureClock,
}

fn http_error(status: u16, body: impl ToString) -> Error {
    Error::Http {
        status,
        body: body.to_string(),
    }
}

impl ArenaRest {
    /// A client for `http://host:port` (a `ws://` URL is accepted too).
    pub fn new(base: &str, credentials: Ed25519Credentials) -> ArenaRest {
        let host = base
            .trim_start_matches("http://")
            .trim_start_matches("ws://")
            .trim_end_matches('/')
            .to_owned();
        ArenaRest {
            host,
            credentials,
            clock: SignatureClock::new(),
        }
    }

    /// Places an order. `order` is the body of `POST /api/v1/orders`, e.g.
    /// `{"symbol":"BTC-USD","side":"buy","type":"limit","quantity":"0.1","price":"50000"}`
    /// (amounts as decimal strings); returns the order (201).
    pub async fn place_order(&self, order: &Value) -> Result<Value, Error> {
        self.signed("POST", "/api/v1/orders", Some(order)).await
    }

    /// Cancels one of the collective's orders.
    pub async fn cancel_order(&self, order_id: u64) -> Result<Value, Error> {
        self.signed("DELETE", &format!("/api/v1/orders/{order_id}"), None)
            .await
    }

    /// One of the collective's orders.
    pub async fn order(&self, order_id: u64) -> Result<Value, Error> {
        self.signed("GET", &format!("/api/v1/orders/{order_id}"), None)
            .await
    }

    /// The collective's orders (`status`: `open` or `all`).
    pub async fn orders(&self, status: &str) -> Result<Value, Error> {
        self.signed("GET", &format!("/api/v1/orders?status={status}"), None)
            .await
    }

    /// Balances, positions and equity.
    pub async fn portfolio(&self) -> Result<Value, Error> {
        self.signed("GET", "/api/v1/portfolio", None).await
    }

    /// The public book of `symbol`, `depth` levels per side.
    pub async fn book(&self, symbol: &str, depth: u32) -> Result<Value, Error> {
        let path = format!("/api/v1/markets/{symbol}/book?depth={depth}");
        self.send("GET", &path, None, &[]).await
    }

    /// Any signed route: signs `timestamp + method + path_with_query + body`.
    pub async fn signed(
        &self,
        method: &str,
        path_with_query: &str,
        body: Option<&Value>,
    ) -> Result<Value, Error> {
        let body = body.map(Value::to_string);
        let ts = self.clock.next().to_string();
        let text = format!(
            "{ts}{method}{path_with_query}{}",
            body.as_deref().unwrap_or("")
        );
        let headers = [
            (
                "x-collective-id",
                self.credentials.collective_id().to_owned(),
            ),
            ("x-timestamp", ts),
            ("x-signature", self.credentials.sign(&text)),
        ];
        self.send(method, path_with_query, body, &headers).await
    }

    /// One request on a fresh connection, within [`TIMEOUT`].
    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
        headers: &[(&str, String)],
    ) -> Result<Value, Error> {
        tokio::time::timeout(TIMEOUT, async {
            let stream = tokio::net::TcpStream::connect(&self.host)
                .await
                .map_err(|e| http_error(0, e))?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| http_error(0, e))?;
            let driver = tokio::spawn(async move {
                let _ = conn.await;
            });
            let mut req = Request::builder()
                .method(method)
                .uri(path)
                .header(HOST, &self.host)
                .header(CONNECTION, "close");
            if body.is_some() {
                req = req.header(CONTENT_TYPE, "application/json");
            }
            for (name, value) in headers {
                req = req.header(*name, value);
            }
            let req = req
                .body(Full::new(Bytes::from(body.unwrap_or_default())))
                .map_err(|e| http_error(0, e))?;
            let result = async {
                let resp = sender
                    .send_request(req)
                    .await
                    .map_err(|e| http_error(0, e))?;
                let status = resp.status().as_u16();
                let bytes = Limited::new(resp.into_body(), MAX_BODY)
                    .collect()
                    .await
                    .map_err(|e| http_error(status, e))?
                    .to_bytes();
                let text = String::from_utf8_lossy(&bytes);
                if !(200..300).contains(&status) {
                    return Err(http_error(status, text));
                }
                if text.trim().is_empty() {
                    return Ok(json!({}));
                }
                serde_json::from_str(&text).map_err(|e| http_error(status, e))
            }
            .await;
            driver.abort();
            result
        })
        .await
        .map_err(|_| http_error(0, format!("no answer within {TIMEOUT:?}")))?
    }
}

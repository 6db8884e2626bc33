//! [`Connection`]: one raw WebSocket connection with typed helpers.
//!
//! It sends requests, returns server messages as JSON values, answers server heartbeats on
//! demand, and reports how the server closed the connection ([`Incoming::Closed`]). The
//! integration tests, the load generator and the monitor drive the protocol through it
//! step by step; applications want [`crate::RoomcastClient`], which adds reconnect and
//! recovery on top of the same wire.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The underlying WebSocket stream.
pub type Stream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Client errors.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The WebSocket layer failed (connect, handshake, I/O).
    #[error("websocket: {0}")]
    Ws(#[from] tungstenite::Error),
    /// The server sent a text frame that is not JSON.
    #[error("server sent invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Nothing arrived in time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

/// Something received from the server.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A JSON text message.
    Json(Value),
    /// The server closed the connection (or the TCP stream ended: code `None`).
    Closed {
        /// The close code, if a close frame arrived.
        code: Option<u16>,
        /// The close reason.
        reason: String,
    },
}

impl Incoming {
    /// The message's `type`, if it is a JSON message with one.
    pub fn kind(&self) -> Option<&str> {
        match self {
            Incoming::Json(v) => v.get("type").and_then(Value::as_str),
            Incoming::Closed { .. } => None,
        }
    }
}

/// One connection to a roomcast server.
#[derive(Debug)]
pub struct Connection {
    ws: Stream,
    closed: Option<Incoming>,
}

impl Connection {
    /// Connects to a full URL, e.g. `ws://127.0.0.1:8080/ws/alice`.
    pub async fn connect(url: &str) -> Result<Connection, ClientError> {
        let (ws, _resp) = tokio_tungstenite::connect_async(url).await?;
        Ok(Connection { ws, closed: None })
    }

    /// Wraps an established stream (custom handshake requests, headers, sockets).
    pub fn from_stream(ws: Stream) -> Connection {
        Connection { ws, closed: None }
    }

    /// The underlying stream, for raw frames.
    pub fn stream_mut(&mut self) -> &mut Stream {
        &mut self.ws
    }

    /// Sends a JSON value as a text frame.
    pub async fn send_json(&mut self, value: &Value) -> Result<(), ClientError> {
        self.send_text(&value.to_string()).await
    }

    /// Sends raw text.
    pub async fn send_text(&mut self, text: &str) -> Result<(), ClientError> {
        self.ws.send(Message::text(text)).await?;
        Ok(())
    }

    /// Receives the next server message. Protocol-level pings are answered by the codec;
    /// JSON heartbeats are returned like any other message.
    pub async fn recv(&mut self) -> Result<Incoming, ClientError> {
        if let Some(closed) = &self.closed {
            return Ok(closed.clone());
        }
        loop {
            match self.ws.next().await {
                None => return Ok(self.finish(None, String::new())),
                Some(Err(
                    tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed,
                )) => return Ok(self.finish(None, String::new())),
                Some(Err(tungstenite::Error::Protocol(
                    tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
                ))) => return Ok(self.finish(None, String::new())),
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(Message::Text(t))) => {
                    return Ok(Incoming::Json(serde_json::from_str(t.as_str())?))
                }
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = match frame {
                        Some(f) => (Some(u16::from(f.code)), f.reason.to_string()),
                        None => (None, String::new()),
                    };
                    return Ok(self.finish(code, reason));
                }
                Some(Ok(_)) => continue,
            }
        }
    }

    fn finish(&mut self, code: Option<u16>, reason: String) -> Incoming {
        let closed = Incoming::Closed { code, reason };
        self.closed = Some(closed.clone());
        closed
    }

    /// [`recv`](Self::recv) with a deadline.
    pub async fn recv_timeout(&mut self, limit: Duration) -> Result<Incoming, ClientError> {
        tokio::time::timeout(limit, self.recv())
            .await
            .map_err(|_| ClientError::Timeout(limit))?
    }

    /// Receives until a message of type `kind` arrives, returning it; other messages
    /// (heartbeats, unrelated events) are skipped. A close is returned as is.
    pub async fn recv_type(
        &mut self,
        kind: &str,
        limit: Duration,
    ) -> Result<Incoming, ClientError> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let msg = self.recv_timeout(left).await?;
            if msg.kind() == Some(kind) || matches!(msg, Incoming::Closed { .. }) {
                return Ok(msg);
            }
        }
    }

    /// Starts a normal close (1000) and waits for the server's answer.
    pub async fn close(&mut self) -> Result<(), ClientError> {
        let frame = tungstenite::protocol::CloseFrame {
            code: WsCloseCode::Normal,
            reason: "bye".into(),
        };
        match self.ws.close(Some(frame)).await {
            Ok(())
            | Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {}
            Err(e) => return Err(e.into()),
        }
        while let Some(Ok(_)) = self.ws.next().await {}
        Ok(())
    }
}

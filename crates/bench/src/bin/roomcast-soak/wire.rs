//! Connecting to the server as the soak's clients do: an HS256 token per connection
//! (`sub` = client id, short or normal lifetime), optionally a small receive buffer (so a
//! reader that stops reading fills the server's queue instead of the kernel's), and the
//! JSON frame helpers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A client WebSocket.
pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// An HS256 token for `sub` valid for `ttl`.
pub(crate) fn token(secret: &str, sub: &str, ttl: Duration) -> anyhow::Result<String> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = serde_json::json!({"sub": sub, "exp": now + ttl.as_secs(), "iat": now});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .context("minting a token")
}

/// Opens `/ws/{client_id}?token=..` (with `SO_RCVBUF` = `rcvbuf` when given).
pub(crate) async fn connect(
    addr: &str,
    client_id: &str,
    token: &str,
    rcvbuf: Option<u32>,
) -> anyhow::Result<Ws> {
    let sock_addr: std::net::SocketAddr = addr.parse().context("--addr must be IP:PORT")?;
    let socket = TcpSocket::new_v4()?;
    if let Some(size) = rcvbuf {
        socket.set_recv_buffer_size(size)?;
    }
    let tcp = tokio::time::timeout(Duration::from_secs(5), socket.connect(sock_addr))
        .await
        .context("TCP connect timed out")??;
    tcp.set_nodelay(true)?;
    let url = format!("ws://{addr}/ws/{client_id}?token={token}");
    let (ws, _) = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(tcp)),
    )
    .await
    .context("upgrade timed out")??;
    Ok(ws)
}

/// What arrived.
#[derive(Debug)]
pub(crate) enum Frame {
    /// A JSON text message.
    Json(Value),
    /// The connection ended.
    Closed(Option<u16>),
}

/// The next frame within `wait`; `None` on timeout. Transport Ping/Pong and non-JSON
/// frames are skipped.
pub(crate) async fn next(ws: &mut Ws, wait: Duration) -> Option<Frame> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let msg = match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return None,
            Ok(None) | Ok(Some(Err(_))) => return Some(Frame::Closed(None)),
            Ok(Some(Ok(m))) => m,
        };
        match msg {
            Message::Text(t) => match serde_json::from_str(t.as_str()) {
                Ok(v) => return Some(Frame::Json(v)),
                Err(_) => continue,
            },
            Message::Close(c) => return Some(Frame::Closed(c.map(|c| u16::from(c.code)))),
            _ => continue,
        }
    }
}

/// Sends a JSON message.
pub(crate) async fn send(ws: &mut Ws, v: &Value) -> anyhow::Result<()> {
    ws.send(Message::text(v.to_string()))
        .await
        .context("sending a frame")
}

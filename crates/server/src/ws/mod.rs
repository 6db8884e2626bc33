//! The `/ws/{client_id}` endpoint and the arena's `/ws/{collective_id}/{stream}` streams:
//! validation before upgrade, then one task per connection ([`connection`]) that reads
//! requests, dispatches them ([`dispatch`]) and drains the session's outbox to the socket.
//! A stream connection is an ordinary session (client id `{collective_id}:{stream}`)
//! authenticated as its collective, that starts on its stream's room instead of `general`.
//! With `--conformance-echo`, `/conformance/echo` ([`echo`]) runs the same upgrade and
//! socket loop ([`socket`]) with an echo in place of the protocol, for Autobahn|Testsuite.

pub(crate) mod auth;
mod cluster;
mod connection;
mod dispatch;
mod echo;
mod socket;

pub use echo::upgrade as upgrade_echo;

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use roomcast_engine::auth::CollectiveId;
use roomcast_engine::limits::{HandshakeDecision, PendingLimit};
use roomcast_protocol::{ClientId, RoomName};
use serde::Deserialize;

use crate::app::AppState;
use crate::config::ServerConfig;
use crate::wire::DirectSocket;
use auth::Credentials;

/// Initial read buffer per connection, bytes. It is also the most the codec reads per
/// syscall, so it trades idle memory (it is held by every connection) against syscalls per
/// message for clients that send a lot: 128 saved 111 B per idle connection but doubles
/// the reads of a 200-byte message stream, so 256.
const READ_BUFFER: usize = 256;

/// The subprotocol prefix that carries a bearer token from browsers.
pub const BEARER_PROTOCOL_PREFIX: &str = "roomcast.bearer.";

/// Query parameters of the WebSocket endpoint.
#[derive(Debug, Deserialize)]
pub struct WsQuery {
    /// Replay `general` after this sequence (reconnect recovery).
    pub last_sequence: Option<u64>,
    /// The epoch `last_sequence` belongs to, if the client knows it.
    pub epoch: Option<String>,
    /// A bearer token.
    pub token: Option<String>,
    /// `ed25519` to authenticate with the challenge-response step.
    pub auth: Option<String>,
}

/// Which arena stream a connection follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamKind {
    /// `portfolio:{collective}`, from a `portfolio_snapshot`.
    Portfolio,
    /// `orders:{collective}`, from an `orders_snapshot`; `subscribe_order` follows one order.
    Orders,
    /// Nothing until the client subscribes to `market:{SYMBOL}` rooms.
    Market,
}

/// The stream of a `/ws/{collective_id}/{stream}` connection.
#[derive(Debug, Clone)]
pub(crate) struct Stream {
    pub(crate) kind: StreamKind,
    pub(crate) collective: CollectiveId,
}

impl Stream {
    /// The room the stream starts on (none for `market`).
    pub(crate) fn room(&self) -> Option<RoomName> {
        match self.kind {
            StreamKind::Portfolio => roomcast_arena::rooms::portfolio(&self.collective),
            StreamKind::Orders => roomcast_arena::rooms::orders(&self.collective),
            StreamKind::Market => None,
        }
    }
}

/// `GET /ws/{collective_id}/{stream}` with `stream` = `portfolio`, `orders` or `market`:
/// 404 for another stream or when the arena is not running, 400 for a bad id; then as
/// `/ws/{client_id}`, except that the connection authenticates as the collective (a
/// bearer token for it, or the Ed25519 challenge without asking for it).
pub async fn upgrade_stream(
    State(state): State<AppState>,
    Path((collective_id, stream)): Path<(String, String)>,
    query: Result<Query<WsQuery>, axum::extract::rejection::QueryRejection>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    direct: Option<Extension<DirectSocket>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let kind = match stream.as_str() {
        "portfolio" => StreamKind::Portfolio,
        "orders" => StreamKind::Orders,
        "market" => StreamKind::Market,
        _ => {
            return (
                StatusCode::NOT_FOUND,
                "streams are portfolio, orders and market",
            )
                .into_response()
        }
    };
    if !state.arena_present() {
        return (StatusCode::NOT_FOUND, "the trading arena is not running").into_response();
    }
    // The session's client id is `{collective}:{stream}`, so both must parse.
    let ids = CollectiveId::parse(&collective_id).and_then(|collective| {
        ClientId::parse(&format!("{collective}:{stream}")).map(|client| (collective, client))
    });
    let (collective, client_id) = match ids {
        Ok(ids) => ids,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("invalid collective_id: {e}"),
            )
                .into_response()
        }
    };
    let Query(query) = match query {
        Ok(q) => q,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("invalid query: {e}")).into_response(),
    };
    let conn = Conn {
        remote,
        direct: direct.map(|Extension(d)| d),
    };
    accept(
        state,
        client_id,
        query,
        conn,
        headers,
        ws,
        Some(Stream { kind, collective }),
    )
}

/// `GET /ws/{client_id}`. Before upgrading: 400 for a bad id or query, 403 for a forbidden
/// `Origin`, 429 past the per-IP handshake rate or the per-IP pending-auth budget, 503
/// while shutting down or past the total pending-auth budget. Authentication
/// happens after the upgrade so the client can read the close code.
pub async fn upgrade(
    State(state): State<AppState>,
    Path(client_id): Path<String>,
    query: Result<Query<WsQuery>, axum::extract::rejection::QueryRejection>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    direct: Option<Extension<DirectSocket>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let client_id = match ClientId::parse(&client_id) {
        Ok(id) => id,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("invalid client_id: {e}")).into_response()
        }
    };
    let Query(query) = match query {
        Ok(q) => q,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("invalid query: {e}")).into_response(),
    };
    let conn = Conn {
        remote,
        direct: direct.map(|Extension(d)| d),
    };
    accept(state, client_id, query, conn, headers, ws, None)
}

/// Where a connection comes from and how publishers may write to it.
struct Conn {
    remote: SocketAddr,
    direct: Option<DirectSocket>,
}

/// The checks every WebSocket endpoint makes before upgrading: the refusal to answer
/// with, if any (403 for a forbidden `Origin`, 429 past the per-IP handshake rate, 503
/// while shutting down).
fn refusal(state: &AppState, remote: SocketAddr, headers: &HeaderMap) -> Option<Response> {
    let security = &state.security;
    if !security.origin_allowed(headers) {
        return Some((StatusCode::FORBIDDEN, "origin not allowed").into_response());
    }
    if security.handshakes.check(remote.ip(), Instant::now()) == HandshakeDecision::Limited {
        return Some(
            (
                StatusCode::TOO_MANY_REQUESTS,
                "too many handshakes from this address",
            )
                .into_response(),
        );
    }
    if state.shutdown.is_cancelled() {
        return Some((StatusCode::SERVICE_UNAVAILABLE, "server shutting down").into_response());
    }
    None
}

/// The codec configuration of every WebSocket endpoint: `max_message_bytes` bounds a
/// message (fragmented or not) and a frame; larger closes with 1009.
fn configure(ws: WebSocketUpgrade, config: &ServerConfig) -> WebSocketUpgrade {
    let max = config.max_message_bytes;
    ws.max_message_size(max)
        .max_frame_size(max)
        // Small per-connection read buffer: most connections are idle; the codec grows it
        // for larger frames.
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(16 * 1024)
}

/// The checks and upgrade shared by both endpoints.
fn accept(
    state: AppState,
    client_id: ClientId,
    query: WsQuery,
    conn: Conn,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
    stream: Option<Stream>,
) -> Response {
    let Conn { remote, direct } = conn;
    if let Some(refused) = refusal(&state, remote, &headers) {
        return refused;
    }
    let security = &state.security;
    let mut ws = ws;
    let from_protocol = ws
        .requested_protocols()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find(|p| p.starts_with(BEARER_PROTOCOL_PREFIX))
        .map(str::to_owned);
    let credentials = if let Some(token) = query.token.clone().filter(|t| !t.is_empty()) {
        Credentials::Token(token)
    } else if let Some(token) = crate::api::bearer(&headers) {
        Credentials::Token(token.to_owned())
    } else if let Some(protocol) = from_protocol {
        let token = protocol[BEARER_PROTOCOL_PREFIX.len()..].to_owned();
        ws = ws.protocols([protocol]);
        Credentials::Token(token)
    } else if query.auth.as_deref() == Some("ed25519") {
        Credentials::Ed25519
    } else {
        Credentials::None
    };
    // Connections that will sit in the challenge step hold a place in the pending-auth
    // budget until they finish; beyond it they are refused before the upgrade.
    let challenged = matches!(
        (&credentials, &stream),
        (Credentials::Ed25519, _) | (Credentials::None, Some(_))
    );
    let pending = if challenged {
        match security.pending_auth.try_acquire(remote.ip()) {
            Ok(permit) => Some(permit),
            Err(limit) => {
                metrics::counter!("roomcast_pending_auth_refused_total").increment(1);
                let status = match limit {
                    PendingLimit::PerIp { .. } => StatusCode::TOO_MANY_REQUESTS,
                    PendingLimit::Total { .. } => StatusCode::SERVICE_UNAVAILABLE,
                };
                return (status, [(RETRY_AFTER, "1")], limit.to_string()).into_response();
            }
        }
    } else {
        None
    };
    let ws = configure(ws, &state.config);
    let handshake = Box::new(connection::Handshake {
        state,
        client_id,
        remote,
        query,
        credentials,
        stream,
        pending,
        direct,
    });
    ws.on_upgrade(move |socket| {
        let tasks = handshake.state.tasks.clone();
        tasks.track_future(connection::run(socket, handshake))
    })
}

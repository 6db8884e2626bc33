//! The `/ws/{client_id}` endpoint: validation before upgrade, then one task per
//! connection ([`connection`]) that reads requests, dispatches them ([`dispatch`]) and
//! drains the session's outbox to the socket.

mod connection;
mod dispatch;

use std::net::SocketAddr;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use roomcast_protocol::ClientId;
use serde::Deserialize;

use crate::app::AppState;

/// Query parameters of the WebSocket endpoint.
#[derive(Debug, Deserialize)]
pub struct WsQuery {
    /// Replay `general` after this sequence (reconnect recovery).
    pub last_sequence: Option<u64>,
    /// The epoch `last_sequence` belongs to, if the client knows it.
    pub epoch: Option<String>,
}

/// `GET /ws/{client_id}`: refuses bad ids with 400 before upgrading.
pub async fn upgrade(
    State(state): State<AppState>,
    Path(client_id): Path<String>,
    query: Result<Query<WsQuery>, axum::extract::rejection::QueryRejection>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
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
    if state.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "server shutting down").into_response();
    }
    let max = state.config.max_message_bytes;
    let remote = Some(remote);
    ws.max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(4 * 1024)
        .write_buffer_size(16 * 1024)
        .on_upgrade(move |socket| {
            let tasks = state.tasks.clone();
            tasks.track_future(connection::run(socket, state, client_id, remote, query))
        })
}

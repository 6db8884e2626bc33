//! `GET /api/admin/stream[?key=]`: a WebSocket that pushes the server's statistics to the
//! dashboard, immediately on connect and then every second:
//!
//! ```json
//! {"type":"stats","time_ms":12345,"stats":{..same as /api/admin/stats..},
//!  "rooms":[{"room":"chat","members":3,"sequence":41,"epoch":".."}, ..top 20..],
//!  "arena":{..the arena panel, see super::arena..}}
//! ```
//!
//! One task per stream, tracked by `state.tasks`; it ends when the client closes, when a
//! send does not complete within [`SEND_TIMEOUT`] (a stuck reader never holds a task), or at
//! shutdown (close 1001). At most [`MAX_STREAMS`] streams are open at once in the process.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use roomcast_protocol::RoomName;
use serde_json::{json, Value};

use super::{admit, KeyQuery};
use crate::api::admin::stats_json;
use crate::app::AppState;

/// Time between two pushes.
pub(crate) const PERIOD: Duration = Duration::from_secs(1);
/// Rooms listed per push (the largest).
pub(crate) const TOP_ROOMS: usize = 20;
/// Open streams allowed at once (each costs one snapshot per second).
pub(crate) const MAX_STREAMS: usize = 64;
/// Longest a push may wait for the socket before the stream is dropped.
pub(crate) const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest frame accepted from the dashboard (it sends nothing but control frames).
const MAX_INBOUND: usize = 4 * 1024;

/// Streams open in this process.
static OPEN: AtomicUsize = AtomicUsize::new(0);

/// A slot among [`MAX_STREAMS`], given back on drop.
struct Slot;

impl Slot {
    fn take() -> Option<Slot> {
        OPEN.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < MAX_STREAMS).then_some(n + 1)
        })
        .ok()
        .map(|_| Slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        OPEN.fetch_sub(1, Ordering::AcqRel);
    }
}

/// `GET /api/admin/stream`. 401/404 as the dashboard page, 403 for a forbidden `Origin`,
/// 503 while shutting down or when [`MAX_STREAMS`] are open; then the upgrade.
pub(crate) async fn stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<KeyQuery>, QueryRejection>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if let Err(e) = admit(&state, &headers, query) {
        return e.into_response();
    }
    if !state.security.origin_allowed(&headers) {
        return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    if state.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "server shutting down").into_response();
    }
    let Some(slot) = Slot::take() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many dashboard streams open",
        )
            .into_response();
    };
    ws.max_message_size(MAX_INBOUND)
        .max_frame_size(MAX_INBOUND)
        .on_upgrade(move |socket| {
            let tasks = state.tasks.clone();
            tasks.track_future(run(socket, state, slot))
        })
}

/// The stream's task.
async fn run(socket: WebSocket, state: AppState, _slot: Slot) {
    let (mut tx, mut rx) = socket.split();
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => {
                let close = Message::Close(Some(CloseFrame {
                    code: 1001,
                    reason: "server shutting down".into(),
                }));
                let _ = tokio::time::timeout(SEND_TIMEOUT, tx.send(close)).await;
                return;
            }
            _ = tick.tick() => {
                let text = snapshot(&state).await.to_string();
                match tokio::time::timeout(SEND_TIMEOUT, tx.send(Message::Text(text.into()))).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) | Err(_) => return,
                }
            }
            incoming = rx.next() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// Largest first, then by name.
fn by_size(a: &(RoomName, usize), b: &(RoomName, usize)) -> std::cmp::Ordering {
    b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0))
}

/// One push: the admin stats, the [`TOP_ROOMS`] largest rooms and the arena panel (shared
/// by every viewer, see [`super::arena`]).
pub(crate) async fn snapshot(state: &AppState) -> Value {
    let mut rooms = state.hub.rooms();
    if rooms.len() > TOP_ROOMS {
        rooms.select_nth_unstable_by(TOP_ROOMS - 1, by_size);
        rooms.truncate(TOP_ROOMS);
    }
    rooms.sort_unstable_by(by_size);
    let rooms = crate::api::admin::rooms_json(&state.hub, &rooms);
    json!({
        "type": "stats",
        "time_ms": u64::try_from(state.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "stats": stats_json(state),
        "rooms": rooms,
        "arena": state.arena_panel.get(state).await,
    })
}

//! `POST /api/publish`, `POST /api/publish/batch` and `GET /api/history/{room}`.
//!
//! A publish goes through the same `Hub::publish` path as a client message (same sequence,
//! same fan-out, same history) and is acknowledged only once its history append is durable
//! under the configured fsync policy. While the history disk is failing, a publish to a room
//! with history answers 503 `UNAVAILABLE` before anything is sequenced or fanned out.

use std::borrow::Cow;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::Json;
use roomcast_engine::hub::{PublishError, Published};
use roomcast_protocol::server::{check_event_type, EventBody, EventTypeError};
use roomcast_protocol::{RoomName, Sequence};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::ApiError;
use crate::app::AppState;

/// Most items in one batch.
pub(crate) const MAX_BATCH: usize = 1000;
/// Most events one history read returns.
pub(crate) const MAX_HISTORY_LIMIT: usize = 1000;

/// One event to publish. The fields are optional in the type only so that a missing one
/// gets an error naming it; all three are required.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = PublishRequest)]
pub(crate) struct PublishItem<'a> {
    /// The room: 1-128 characters of `[A-Za-z0-9_.:/-]`.
    #[serde(borrow)]
    #[schema(value_type = String, required = true, example = "chat:lobby")]
    room: Option<Cow<'a, str>>,
    /// The event type: 1-64 characters of `[A-Za-z0-9_.:-]`, not one of the server's own.
    #[serde(rename = "type", borrow)]
    #[schema(value_type = String, required = true, example = "news")]
    ty: Option<Cow<'a, str>>,
    /// Any JSON value, delivered verbatim as the event's `data`.
    #[serde(borrow)]
    #[schema(value_type = Object, required = true)]
    data: Option<&'a RawValue>,
}

/// The reply to one published event.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct PublishReply {
    /// The room.
    #[schema(value_type = String)]
    room: RoomName,
    /// The event's sequence in the room.
    #[schema(value_type = u64)]
    sequence: Sequence,
    /// The room's epoch.
    #[schema(value_type = String)]
    epoch: roomcast_protocol::Epoch,
}

struct Checked<'a> {
    room: RoomName,
    ty: Cow<'a, str>,
    body: EventBody,
}

fn check_item<'a>(
    item: PublishItem<'a>,
    max_bytes: usize,
    at: &str,
) -> Result<Checked<'a>, ApiError> {
    let room = item
        .room
        .ok_or_else(|| ApiError::BadRequest(format!("{at}missing \"room\"")))?;
    let room = RoomName::parse(&room).map_err(|e| ApiError::BadRequest(format!("{at}{e}")))?;
    let ty = item
        .ty
        .ok_or_else(|| ApiError::BadRequest(format!("{at}missing \"type\"")))?;
    match check_event_type(&ty) {
        Ok(()) => {}
        Err(EventTypeError::Invalid) => {
            return Err(ApiError::BadRequest(format!(
                "{at}\"type\" must be 1-64 characters of [A-Za-z0-9_.:-]"
            )))
        }
        Err(EventTypeError::Reserved) => {
            return Err(ApiError::BadRequest(format!(
                "{at}\"type\" {ty:?} is reserved for the server"
            )))
        }
    }
    let data = item
        .data
        .ok_or_else(|| ApiError::BadRequest(format!("{at}missing \"data\"")))?;
    if data.get().len() > max_bytes {
        return Err(ApiError::BadRequest(format!(
            "{at}\"data\" is larger than {max_bytes} bytes"
        )));
    }
    Ok(Checked {
        room,
        ty,
        body: EventBody::data(data),
    })
}

fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if state.api_keys.is_empty() && state.config.dev {
        return Ok(());
    }
    state.api_keys.check(headers)
}

/// Rooms a domain registered as its own (private streams, server-only market rooms) are
/// written only by that domain: an API key may not forge events there.
fn writable(state: &AppState, room: &RoomName) -> Result<(), ApiError> {
    let policy = &state.security.policy;
    if policy.is_reserved(room.as_str()) || policy.is_server_only(room.as_str()) {
        return Err(ApiError::Coded {
            status: axum::http::StatusCode::FORBIDDEN,
            code: "FORBIDDEN",
            message: format!("room {room} is written only by the server"),
        });
    }
    Ok(())
}

/// Private rooms (a collective's streams) are readable through the history API with the
/// admin key only, and never without a configured one (not even in `--dev`): an API key
/// is a backend's, not the collective's.
fn authorize_read(state: &AppState, room: &RoomName, headers: &HeaderMap) -> Result<(), ApiError> {
    if !state.security.policy.is_reserved(room.as_str()) {
        return authorize(state, headers);
    }
    let admin = &state.security.admin;
    if admin.is_empty() || admin.check(headers).is_err() {
        return Err(ApiError::Coded {
            status: axum::http::StatusCode::FORBIDDEN,
            code: "FORBIDDEN",
            message: format!("room {room} is private; its history needs the admin key"),
        });
    }
    Ok(())
}

/// On a cluster node Redis sequences and stores the event: the reply comes once the
/// script has run (the event is in Redis's stream and on its way to every node).
async fn publish_clustered(
    cluster: &roomcast_redis::Cluster,
    c: &Checked<'_>,
) -> Result<PublishReply, ApiError> {
    let (epoch, sequence) = cluster
        .publish(&c.room, &c.ty, &c.body, None)
        .await
        .map_err(|e| match e {
            roomcast_redis::ClusterError::InvalidType(e) => ApiError::BadRequest(e.to_string()),
            roomcast_redis::ClusterError::Unavailable(e) => ApiError::Unavailable(e),
        })?;
    Ok(PublishReply {
        room: c.room.clone(),
        sequence,
        epoch,
    })
}

fn publish_one(state: &AppState, c: &Checked<'_>) -> Result<Published, ApiError> {
    writable(state, &c.room)?;
    state
        .hub
        .publish(&c.room, &c.ty, &c.body, None)
        .map_err(|e| match e {
            PublishError::InvalidType(e) => ApiError::BadRequest(e.to_string()),
            PublishError::History(e) => ApiError::Unavailable(e.to_string()),
        })
}

async fn durable(published: Published) -> Result<PublishReply, ApiError> {
    if let Some(receipt) = published.receipt {
        receipt
            .durable
            .await
            .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    }
    Ok(PublishReply {
        room: RoomName::general(),
        sequence: published.sequence,
        epoch: published.epoch,
    })
}

/// `POST /api/publish` with `{"room":R,"type":T,"data":<JSON>}`.
#[utoipa::path(post, path = "/api/publish", tag = "publish",
    request_body = PublishItem,
    security(("api_key" = [])),
    responses(
        (status = 200, description = "published and durable", body = PublishReply),
        (status = 400, description = "bad body, room or type"),
        (status = 401, description = "missing or wrong API key"),
        (status = 403, description = "a room only the server writes"),
        (status = 503, description = "the history store is failing; nothing was published"),
    ))]
pub(crate) async fn publish(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<PublishReply>, ApiError> {
    authorize(&state, &headers)?;
    let item: PublishItem<'_> = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
    let checked = check_item(item, state.config.max_message_bytes, "")?;
    if let Some(cluster) = &state.cluster {
        writable(&state, &checked.room)?;
        return Ok(Json(publish_clustered(cluster, &checked).await?));
    }
    let published = publish_one(&state, &checked)?;
    let mut reply = durable(published).await?;
    reply.room = checked.room;
    Ok(Json(reply))
}

#[derive(Deserialize)]
struct Wrapped<'a> {
    #[serde(borrow)]
    items: Vec<PublishItem<'a>>,
}

fn parse_batch(body: &[u8]) -> Result<Vec<PublishItem<'_>>, serde_json::Error> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        serde_json::from_slice(body)
    } else {
        serde_json::from_slice::<Wrapped<'_>>(body).map(|w| w.items)
    }
}

/// The reply to a batch: one result per item, in order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct BatchReply {
    /// How many were published.
    published: usize,
    /// One result per item, in order.
    results: Vec<PublishReply>,
}

/// `POST /api/publish/batch` with a JSON array of items (or `{"items":[...]}`), at most
/// 1000. All items are validated before any is published.
#[utoipa::path(post, path = "/api/publish/batch", tag = "publish",
    request_body(content = Vec<PublishItem>, description = "1-1000 items (or `{\"items\":[...]}`)"),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "all published and durable", body = BatchReply),
        (status = 400, description = "a bad item (none was published)"),
        (status = 401, description = "missing or wrong API key"),
        (status = 503, description = "the history store is failing"),
    ))]
pub(crate) async fn publish_batch(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<BatchReply>, ApiError> {
    authorize(&state, &headers)?;
    let items = parse_batch(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "body must be a JSON array of {{\"room\",\"type\",\"data\"}} items (or {{\"items\":[...]}}): {e}"
        ))
    })?;
    if items.is_empty() || items.len() > MAX_BATCH {
        return Err(ApiError::BadRequest(format!(
            "a batch holds 1-{MAX_BATCH} items"
        )));
    }
    let max = state.config.max_message_bytes;
    let checked = items
        .into_iter()
        .enumerate()
        .map(|(i, item)| check_item(item, max, &format!("item {i}: ")))
        .collect::<Result<Vec<_>, _>>()?;
    for c in &checked {
        writable(&state, &c.room)?;
    }
    if let Some(cluster) = &state.cluster {
        let mut results = Vec::with_capacity(checked.len());
        for (i, c) in checked.iter().enumerate() {
            match publish_clustered(cluster, c).await {
                Ok(reply) => results.push(reply),
                Err(ApiError::Unavailable(e)) if i > 0 => {
                    return Err(ApiError::Unavailable(format!(
                        "items 0..{i} were published, item {i} and later were not: {e}"
                    )))
                }
                Err(e) => return Err(e),
            }
        }
        return Ok(Json(BatchReply {
            published: results.len(),
            results,
        }));
    }
    // A store that is known to be failing refuses the whole batch before anything is
    // published, so a retry cannot duplicate a prefix of it.
    let history = state.hub.history();
    if checked.iter().any(|c| history.keeps(&c.room)) {
        history
            .writable()
            .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    }
    let mut pending = Vec::with_capacity(checked.len());
    for (i, c) in checked.iter().enumerate() {
        match publish_one(&state, c) {
            Ok(published) => pending.push((c.room.clone(), published)),
            // The store failed during the batch: say how much of it went out.
            Err(ApiError::Unavailable(e)) if i > 0 => {
                return Err(ApiError::Unavailable(format!(
                    "items 0..{i} were published, item {i} and later were not: {e}"
                )))
            }
            Err(e) => return Err(e),
        }
    }
    let mut results = Vec::with_capacity(pending.len());
    for (room, published) in pending {
        let mut reply = durable(published).await?;
        reply.room = room;
        results.push(reply);
    }
    Ok(Json(BatchReply {
        published: results.len(),
        results,
    }))
}

/// Query of `GET /api/history/{room}`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(crate) struct HistoryQuery {
    /// Events after this sequence (default 0).
    since: Option<u64>,
    /// Most events (default 100, at most 1000).
    limit: Option<usize>,
}

/// A history page.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct HistoryReply {
    /// The room.
    #[schema(value_type = String)]
    room: RoomName,
    /// The room's epoch.
    #[schema(value_type = String)]
    epoch: roomcast_protocol::Epoch,
    /// The room's current sequence.
    #[schema(value_type = u64)]
    sequence: Sequence,
    /// False when events after `since` were trimmed.
    complete: bool,
    /// The stored events, as delivered.
    #[schema(value_type = Vec<Object>)]
    events: Vec<Box<RawValue>>,
}

/// `GET /api/history/{room}?since=N&limit=M`: stored events with sequence > N (default 0),
/// at most M (default 100, at most 1000). `complete` is false when events after N were
/// trimmed.
#[utoipa::path(get, path = "/api/history/{room}", tag = "publish",
    params(("room" = String, Path, description = "the room"), HistoryQuery),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "a page of history", body = HistoryReply),
        (status = 400, description = "bad room or query"),
        (status = 401, description = "missing or wrong API key"),
        (status = 403, description = "a private room without the admin key"),
    ))]
pub(crate) async fn history(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(room): Path<String>,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<HistoryReply>, ApiError> {
    let room = RoomName::parse(&room).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    authorize_read(&state, &room, &headers)?;
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_HISTORY_LIMIT);
    if let Some(cluster) = &state.cluster {
        // On a cluster node the history is Redis's, whichever node mirrors the room.
        let snapshot = cluster
            .snapshot(&room)
            .await
            .map_err(|e| ApiError::Unavailable(e.to_string()))?;
        let after = Sequence(q.since.unwrap_or(0));
        let mut missed = snapshot
            .events
            .iter()
            .filter(|e| e.sequence > after)
            .peekable();
        let complete = snapshot.head.sequence <= after
            || missed.peek().is_some_and(|e| e.sequence == after.next());
        let events = missed
            .take(limit)
            .filter_map(|e| serde_json::from_slice::<Box<RawValue>>(&e.frame).ok())
            .collect();
        return Ok(Json(HistoryReply {
            room,
            epoch: snapshot.head.epoch,
            sequence: snapshot.head.sequence,
            complete,
            events,
        }));
    }
    let history = state.hub.history();
    if !history.keeps(&room) {
        let head = state
            .hub
            .room_head(&room)
            .map_err(|e| ApiError::Unavailable(e.to_string()))?;
        return Ok(Json(HistoryReply {
            room,
            epoch: head.epoch,
            sequence: head.sequence,
            complete: q.since.unwrap_or(0) >= head.sequence.0,
            events: Vec::new(),
        }));
    }
    let read = history
        .read_since(&room, Sequence(q.since.unwrap_or(0)), limit)
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let events = read
        .events
        .iter()
        .filter_map(|e| serde_json::from_slice::<Box<RawValue>>(&e.frame).ok())
        .collect();
    Ok(Json(HistoryReply {
        room,
        epoch: read.head.epoch,
        sequence: read.head.sequence,
        complete: read.complete,
        events,
    }))
}

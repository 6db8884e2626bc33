//! The admin API (`Authorization: Bearer <admin key>`): server statistics, connections and
//! rooms, disconnecting a client, broadcasting, and the collectives registry.

use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use roomcast_engine::auth::{Collective, RegistryError};
use roomcast_engine::hub::HubStats;
use roomcast_protocol::{ClientId, CloseCode, RoomName};
use serde::Deserialize;
use serde_json::{json, Value};

use super::ApiError;
use crate::app::AppState;

pub(crate) fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if state.security.admin.is_empty() && state.config.dev {
        return Ok(());
    }
    state.security.admin.check(headers)
}

/// A snapshot of the server's figures (also streamed to the dashboard).
pub(crate) fn stats_json(state: &AppState) -> Value {
    let hub = &state.hub;
    let s = hub.stats();
    let get = HubStats::get;
    let rooms = hub.rooms();
    let subscriptions: usize = rooms.iter().map(|(_, n)| n).sum();
    json!({
        "connections": hub.connection_count(),
        "rooms": rooms.len(),
        "subscriptions": subscriptions,
        "connections_total": get(&s.connections_total),
        "messages_in": get(&s.messages_in),
        "bytes_in": get(&s.bytes_in),
        "publishes": get(&s.publishes),
        "deliveries": get(&s.deliveries),
        "messages_out": hub.outbound_totals().0,
        "slow_consumers": get(&s.slow_consumers),
        "dropped_oldest": get(&s.dropped_oldest),
        "evicted": get(&s.evicted),
        "superseded": get(&s.superseded),
        "replayed": get(&s.replayed),
        "history_rooms": hub.history().room_count(),
        "limits": {
            "connections_counted": state.security.connections.total(),
            "tracked_principals": state.security.connections.tracked_principals(),
            "tracked_ips": state.security.handshakes.tracked_ips(),
        },
        "collectives": state.security.collectives.len(),
        "rate_limited": state.security.rate_limited.load(Ordering::Relaxed),
        "auth_failures": state.security.auth_failures.load(Ordering::Relaxed),
        "uptime_secs": state.started.elapsed().as_secs(),
        // Counters and per-symbol last/bid/ask/volume as of the exchange's last batch
        // (a copy under a short lock: cheap enough for every poll).
        "arena": state.arena.as_ref().map(|a| a.stats()),
    })
}

/// `GET /api/admin/stats`.
#[utoipa::path(get, path = "/api/admin/stats", tag = "admin", security(("admin_key" = [])),
    responses((status = 200, description = "the server's figures", body = Object),
        (status = 401, description = "missing or wrong admin key")))]
pub(crate) async fn stats(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let mut stats = stats_json(&state);
    if let Some(cluster) = &state.cluster {
        stats["cluster"] = cluster_json(cluster).await;
    }
    Ok(Json(stats))
}

/// A cluster node's view of the cluster: this node's id, every live node with its
/// connections, and the cluster's total; or the reason Redis could not be asked.
async fn cluster_json(cluster: &roomcast_redis::Cluster) -> Value {
    match cluster.nodes().await {
        Ok(nodes) => json!({
            "node": cluster.node_id(),
            "connections": nodes.iter().map(|(_, n)| n).sum::<u64>(),
            "nodes": nodes
                .iter()
                .map(|(id, n)| json!({"node": id, "connections": n}))
                .collect::<Vec<_>>(),
        }),
        Err(e) => json!({"node": cluster.node_id(), "error": e.to_string()}),
    }
}

/// Query of `GET /api/admin/connections`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(crate) struct ConnectionsQuery {
    /// Only members of this room.
    room: Option<String>,
    /// Most connections listed (default 100, at most 10,000).
    limit: Option<usize>,
}

/// `GET /api/admin/connections?room=&limit=` (default limit 100, at most 10,000).
#[utoipa::path(get, path = "/api/admin/connections", tag = "admin", security(("admin_key" = [])),
    params(ConnectionsQuery),
    responses((status = 200, description = "connections", body = Object),
        (status = 400, description = "bad room or limit"),
        (status = 401, description = "missing or wrong admin key")))]
pub(crate) async fn connections(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ConnectionsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let room = q
        .room
        .filter(|r| !r.is_empty())
        .map(|r| RoomName::parse(&r).map_err(|e| ApiError::BadRequest(e.to_string())))
        .transpose()?;
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    let mut sessions = state.hub.sessions();
    if let Some(room) = &room {
        sessions.retain(|s| s.is_member(room));
    }
    sessions.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    let total = sessions.len();
    let list: Vec<Value> = sessions
        .iter()
        .take(limit)
        .map(|s| {
            json!({
                "client_id": s.client_id,
                "remote_addr": s.remote.map(|a| a.to_string()),
                "connected_at": roomcast_protocol::time::format_rfc3339(s.connected_at.into()),
                "rooms": s.rooms(),
                "queue_depth": s.outbox.len(),
                "messages_in": s.messages_in.load(Ordering::Relaxed),
                "messages_out": s.outbox.delivered(),
                "collective_id": s.collective.as_deref(),
            })
        })
        .collect();
    Ok(Json(json!({"total": total, "connections": list})))
}

/// `GET /api/admin/rooms`: rooms with member counts, largest first.
#[utoipa::path(get, path = "/api/admin/rooms", tag = "admin", security(("admin_key" = [])),
    responses((status = 200, description = "rooms", body = Object),
        (status = 401, description = "missing or wrong admin key")))]
pub(crate) async fn rooms(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let mut rooms = state.hub.rooms();
    rooms.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(Json(json!({"rooms": rooms_json(&state.hub, &rooms)})))
}

/// Rooms as the admin API and the dashboard show them: name, members, head.
pub(crate) fn rooms_json(hub: &roomcast_engine::Hub, rooms: &[(RoomName, usize)]) -> Vec<Value> {
    rooms
        .iter()
        .map(|(name, members)| {
            let head = hub.room_head(name).ok();
            json!({
                "room": name,
                "members": members,
                "sequence": head.as_ref().map(|h| h.sequence),
                "epoch": head.as_ref().map(|h| h.epoch.clone()),
            })
        })
        .collect()
}

/// Body of a disconnect.
#[derive(Debug, Deserialize, Default, utoipa::ToSchema)]
pub(crate) struct DisconnectBody {
    /// A roomcast close code (default 1008).
    code: Option<u16>,
    /// The close reason (default "Disconnected by admin"), cut to 123 bytes.
    reason: Option<String>,
}

/// `POST /api/admin/connections/{client_id}/disconnect` with optional
/// `{"code":4xxx|1000|1001|1008,"reason":".."}` (default 1008 "Disconnected by admin").
#[utoipa::path(post, path = "/api/admin/connections/{client_id}/disconnect", tag = "admin",
    security(("admin_key" = [])),
    params(("client_id" = String, Path, description = "the client")),
    request_body(content = Option<DisconnectBody>, description = "optional"),
    responses((status = 200, description = "closed", body = Object),
        (status = 400, description = "bad id or code"),
        (status = 401, description = "missing or wrong admin key"),
        (status = 404, description = "no such connection")))]
pub(crate) async fn disconnect(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(client_id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let client_id = ClientId::parse(&client_id).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let body: DisconnectBody = if body.is_empty() {
        DisconnectBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?
    };
    let code = match body.code {
        None => CloseCode::PolicyViolation,
        Some(n) => CloseCode::from_u16(n)
            .ok_or_else(|| ApiError::BadRequest(format!("{n} is not a roomcast close code")))?,
    };
    let mut reason = body
        .reason
        .unwrap_or_else(|| "Disconnected by admin".to_owned());
    // A close reason must fit a control frame.
    while reason.len() > 123 {
        reason.pop();
    }
    if !state.hub.kick(&client_id, code, reason) {
        return Err(ApiError::NotFound(format!(
            "no connection for client {client_id}"
        )));
    }
    Ok(Json(
        json!({"disconnected": client_id, "code": code.as_u16()}),
    ))
}

/// Body of a broadcast.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct BroadcastBody {
    /// One room (through its history), or every connection without it.
    room: Option<String>,
    /// The event type (default `broadcast`).
    #[serde(rename = "type")]
    ty: Option<String>,
    /// Any JSON value.
    #[schema(value_type = Object, required = true)]
    data: Option<Box<serde_json::value::RawValue>>,
}

/// `POST /api/admin/broadcast` with `{"type":T,"data":..,"room":R?}`: to one room (through
/// history, like `/api/publish`) or, without `room`, to every connection (ephemeral,
/// `{"type":T,"data":..,"timestamp":..}`).
#[utoipa::path(post, path = "/api/admin/broadcast", tag = "admin", security(("admin_key" = [])),
    request_body = BroadcastBody,
    responses((status = 200, description = "delivered (and, with a room, its position)", body = Object),
        (status = 400, description = "bad body"),
        (status = 401, description = "missing or wrong admin key")))]
pub(crate) async fn broadcast(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let body: BroadcastBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
    let ty = body.ty.unwrap_or_else(|| "broadcast".to_owned());
    roomcast_protocol::server::check_event_type(&ty)
        .map_err(|e| ApiError::BadRequest(format!("\"type\" {ty:?}: {e}")))?;
    let data = body
        .data
        .ok_or_else(|| ApiError::BadRequest("missing \"data\"".into()))?;
    match body.room {
        Some(room) => {
            let room = RoomName::parse(&room).map_err(|e| ApiError::BadRequest(e.to_string()))?;
            let body = roomcast_protocol::server::EventBody::data(&data);
            if let Some(cluster) = &state.cluster {
                let (epoch, sequence) = cluster
                    .publish(&room, &ty, &body, None)
                    .await
                    .map_err(|e| ApiError::Unavailable(e.to_string()))?;
                // Every node delivers it from Redis; the count is not known here.
                return Ok(Json(json!({
                    "room": room,
                    "sequence": sequence,
                    "epoch": epoch,
                })));
            }
            let published = state
                .hub
                .publish(&room, &ty, &body, None)
                .map_err(|e| ApiError::Unavailable(e.to_string()))?;
            Ok(Json(json!({
                "room": room,
                "sequence": published.sequence,
                "epoch": published.epoch,
                "delivered": published.delivery.delivered,
            })))
        }
        None => {
            let frame = roomcast_protocol::server::encode_broadcast(
                &ty,
                &roomcast_protocol::time::now_rfc3339(),
                &data,
            );
            let d = state.hub.broadcast_all(&bytes::Bytes::from(frame));
            Ok(Json(json!({"delivered": d.delivered})))
        }
    }
}

/// Body of a collective registration.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct CollectiveBody {
    /// Its id (client-id rules).
    id: String,
    /// Its Ed25519 public key: PEM, or base64 of the raw 32 bytes.
    public_key: String,
    /// The domain's profile fields (e.g. the arena's `starting_cash`), checked against the
    /// registered schema.
    #[serde(flatten)]
    #[schema(value_type = crate::openapi::CollectiveFunding)]
    profile: roomcast_engine::auth::Profile,
}

fn collective_json(c: &Collective) -> Value {
    let mut entry = c.profile.clone();
    entry.insert("id".into(), c.id.as_str().into());
    entry.insert("public_key".into(), c.public_key_text.clone().into());
    Value::Object(entry)
}

/// `GET /api/admin/collectives`.
#[utoipa::path(get, path = "/api/admin/collectives", tag = "admin", security(("admin_key" = [])),
    responses((status = 200, description = "registered collectives", body = Object),
        (status = 401, description = "missing or wrong admin key")))]
pub(crate) async fn list_collectives(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let list: Vec<Value> = state
        .security
        .collectives
        .list()
        .iter()
        .map(|c| collective_json(c))
        .collect();
    Ok(Json(json!({"collectives": list})))
}

/// `POST /api/admin/collectives` with `{"id","public_key","starting_cash"?}` → 201; 409 if
/// the id exists.
#[utoipa::path(post, path = "/api/admin/collectives", tag = "admin", security(("admin_key" = [])),
    request_body = CollectiveBody,
    responses((status = 201, description = "registered (and its arena account opened)", body = Object),
        (status = 400, description = "bad id, key or funding"),
        (status = 401, description = "missing or wrong admin key"),
        (status = 409, description = "the id is taken")))]
pub(crate) async fn add_collective(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    authorize(&state, &headers)?;
    let body: CollectiveBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
    let collective = Collective::parse(
        &body.id,
        &body.public_key,
        body.profile,
        state.security.profile_schema.as_deref(),
    )
    .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if let Some(arena) = &state.arena {
        // The account first (idempotent, durable), so a registered collective always has
        // one; a duplicate id below leaves the existing account as it was.
        let funding = arena
            .parse_funding(&collective.profile)
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        if state
            .security
            .collectives
            .get(collective.id.as_str())
            .is_none()
        {
            arena
                .open_account(collective.id.clone(), funding)
                .await
                .map_err(|e| ApiError::Unavailable(e.to_string()))?;
        }
    }
    let added = state
        .security
        .collectives
        .register(collective)
        .map_err(|e| match e {
            RegistryError::Duplicate(id) => {
                ApiError::Conflict(format!("collective {id} already exists"))
            }
            other => ApiError::BadRequest(other.to_string()),
        })?;
    Ok((StatusCode::CREATED, Json(collective_json(&added))))
}

/// `DELETE /api/admin/collectives/{id}`: removes it and closes its connections with 4012.
#[utoipa::path(delete, path = "/api/admin/collectives/{id}", tag = "admin", security(("admin_key" = [])),
    params(("id" = String, Path, description = "the collective")),
    responses((status = 200, description = "removed; its connections closed with 4012", body = Object),
        (status = 401, description = "missing or wrong admin key"),
        (status = 404, description = "no such collective")))]
pub(crate) async fn remove_collective(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let removed = state
        .security
        .collectives
        .remove(&id)
        .ok_or_else(|| ApiError::NotFound(format!("no collective {id}")))?;
    let mut disconnected = 0;
    for session in state.hub.sessions() {
        if session.collective.as_deref() == Some(removed.id.as_str()) {
            state.hub.kick(
                &session.client_id,
                CloseCode::SessionExpired,
                "Collective removed".to_owned(),
            );
            disconnected += 1;
        }
    }
    Ok(Json(
        json!({"removed": removed.id.as_str(), "disconnected": disconnected}),
    ))
}

//! The arena on a cluster: one node runs the exchange, every node serves it.
//!
//! - On the arena node the exchange publishes through [`RedisSequencer`] (the cluster's
//!   Lua sequencing, exactly like client publishes) and answers the other nodes' requests
//!   ([`handler`]): a stream's snapshot, or a REST call run through this node's own router
//!   (so signatures, replay protection and every error are checked where the state is).
//! - On any other node a stream's snapshot is asked of the arena node ([`snapshot`]) and
//!   the REST calls under `/api/v1` are forwarded to it ([`forward`]): a user behind a load
//!   balancer may reach any node.
//!
//! Requests travel over Redis (`roomcast_redis::Cluster::call_arena`) as JSON
//! ([`Call`] / [`Answer`]); bodies are base64 so any bytes survive.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use roomcast_arena::{AttachError, RoomSnapshot, Sequencer};
use roomcast_engine::auth::CollectiveId;
use roomcast_engine::history::RoomHead;
use roomcast_protocol::server::EventBody;
use roomcast_protocol::{Epoch, RoomName, Sequence};
use serde::{Deserialize, Serialize};

use crate::api::ApiError;
use crate::app::AppState;

/// Longest wait for the arena node's answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest forwarded request or response body (the API's own limit).
const MAX_FORWARDED_BODY: usize = 16 * 1024 * 1024;

/// The exchange's events into Redis, one pipeline per batch.
#[derive(Debug, Clone)]
pub struct RedisSequencer(pub roomcast_redis::Cluster);

impl Sequencer for RedisSequencer {
    fn ready(&self) -> Result<(), String> {
        self.0.ready()
    }

    fn publish<'a>(
        &'a self,
        events: &'a [roomcast_arena::state::DomainEvent],
    ) -> roomcast_arena::cluster::SequencerFuture<'a, Vec<RoomHead>> {
        Box::pin(async move {
            let batch: Vec<roomcast_redis::BatchEvent<'_>> = events
                .iter()
                .map(|e| roomcast_redis::BatchEvent {
                    room: &e.room,
                    event_type: e.event_type,
                    body: EventBody::data(&e.data),
                    origin: None,
                })
                .collect();
            let heads = self
                .0
                .publish_batch(&batch)
                .await
                .map_err(|e| e.to_string())?;
            Ok(heads
                .into_iter()
                .map(|(epoch, sequence)| RoomHead { epoch, sequence })
                .collect())
        })
    }

    fn heads<'a>(
        &'a self,
        rooms: &'a [RoomName],
    ) -> roomcast_arena::cluster::SequencerFuture<'a, Vec<RoomHead>> {
        Box::pin(async move { self.0.heads(rooms).await.map_err(|e| e.to_string()) })
    }

    fn reset<'a>(
        &'a self,
        rooms: &'a [RoomName],
    ) -> roomcast_arena::cluster::SequencerFuture<'a, ()> {
        Box::pin(async move { self.0.reset_rooms(rooms).await.map_err(|e| e.to_string()) })
    }
}

/// A request to the arena node.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Call {
    /// A stream's snapshot for `collective` (the room's owner the asking node verified).
    Snapshot {
        room: String,
        collective: Option<String>,
    },
    /// A REST call under `/api/v1`, as it arrived.
    Http {
        method: String,
        uri: String,
        headers: Vec<(String, String)>,
        body: String,
    },
}

/// The arena node's answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Answer {
    /// The snapshot.
    Snapshot {
        event_type: String,
        data: String,
        epoch: String,
        sequence: u64,
    },
    /// The snapshot was refused: `forbidden`, `unknown_symbol`, `unknown_order`,
    /// `bad_room`, `unavailable`.
    Refused { reason: String },
    /// The REST response.
    Http {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// The request did not parse.
    Invalid,
}

fn refusal(e: &AttachError) -> &'static str {
    match e {
        AttachError::Forbidden => "forbidden",
        AttachError::UnknownSymbol => "unknown_symbol",
        AttachError::UnknownOrder => "unknown_order",
        AttachError::NotArenaRoom | AttachError::BadRoom(_) => "bad_room",
        AttachError::Subscribe(_) | AttachError::Unavailable => "unavailable",
    }
}

fn from_refusal(reason: &str) -> AttachError {
    match reason {
        "forbidden" => AttachError::Forbidden,
        "unknown_symbol" => AttachError::UnknownSymbol,
        "unknown_order" => AttachError::UnknownOrder,
        "bad_room" => AttachError::NotArenaRoom,
        _ => AttachError::Unavailable,
    }
}

/// What the arena node does with another node's request.
pub fn handler(state: AppState) -> roomcast_redis::RpcHandler {
    let router = crate::app::router(state.clone());
    Arc::new(move |payload: Vec<u8>| {
        let state = state.clone();
        let router = router.clone();
        Box::pin(async move {
            let answer = match serde_json::from_slice::<Call>(&payload) {
                Ok(Call::Snapshot { room, collective }) => {
                    answer_snapshot(&state, &room, collective).await
                }
                Ok(Call::Http {
                    method,
                    uri,
                    headers,
                    body,
                }) => answer_http(router, &method, &uri, headers, &body).await,
                Err(_) => Answer::Invalid,
            };
            serde_json::to_vec(&answer).unwrap_or_default()
        })
    })
}

async fn answer_snapshot(state: &AppState, room: &str, collective: Option<String>) -> Answer {
    let Some(arena) = state.arena.as_ref() else {
        return Answer::Refused {
            reason: "unavailable".into(),
        };
    };
    let Ok(room) = RoomName::parse(room) else {
        return Answer::Refused {
            reason: "bad_room".into(),
        };
    };
    let collective = collective.and_then(|c| CollectiveId::parse(&c).ok());
    match arena.snapshot(&room, collective.as_ref()).await {
        Ok(s) => Answer::Snapshot {
            event_type: s.event_type,
            data: s.data,
            epoch: s.head.epoch.as_str().to_owned(),
            sequence: s.head.sequence.0,
        },
        Err(e) => Answer::Refused {
            reason: refusal(&e).into(),
        },
    }
}

async fn answer_http(
    router: axum::Router,
    method: &str,
    uri: &str,
    headers: Vec<(String, String)>,
    body: &str,
) -> Answer {
    let Ok(body) = B64.decode(body) else {
        return Answer::Invalid;
    };
    let mut request = axum::http::Request::builder().method(method).uri(uri);
    for (name, value) in &headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let Ok(request) = request.body(Body::from(body)) else {
        return Answer::Invalid;
    };
    let response = match tower::ServiceExt::oneshot(router, request).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .filter(|(name, _)| *name != axum::http::header::CONTENT_LENGTH)
        .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_owned())))
        .collect();
    let body = axum::body::to_bytes(response.into_body(), MAX_FORWARDED_BODY)
        .await
        .unwrap_or_default();
    Answer::Http {
        status,
        headers,
        body: B64.encode(&body),
    }
}

/// A stream's snapshot: from the exchange on this node, or asked of the arena node.
pub(crate) async fn snapshot(
    state: &AppState,
    room: &RoomName,
    collective: Option<&CollectiveId>,
) -> Result<RoomSnapshot, AttachError> {
    if let Some(arena) = &state.arena {
        return arena.snapshot(room, collective).await;
    }
    let Some(cluster) = state.cluster.as_ref().filter(|_| state.arena_elsewhere) else {
        return Err(AttachError::Unavailable);
    };
    let call = Call::Snapshot {
        room: room.as_str().to_owned(),
        collective: collective.map(|c| c.as_str().to_owned()),
    };
    let payload = serde_json::to_vec(&call).map_err(|_| AttachError::Unavailable)?;
    let reply = cluster
        .call_arena(&payload, CALL_TIMEOUT)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, %room, "arena snapshot not received");
            AttachError::Unavailable
        })?;
    match serde_json::from_slice::<Answer>(&reply) {
        Ok(Answer::Snapshot {
            event_type,
            data,
            epoch,
            sequence,
        }) => Ok(RoomSnapshot {
            event_type,
            data,
            head: RoomHead {
                epoch: Epoch::new(&epoch),
                sequence: Sequence(sequence),
            },
        }),
        Ok(Answer::Refused { reason }) => Err(from_refusal(&reason)),
        _ => Err(AttachError::Unavailable),
    }
}

/// Middleware on the arena's REST routes: on a node where the exchange runs elsewhere in
/// the cluster, the request is answered by the arena node; 503 `arena_unavailable` (naming
/// the reason) when it cannot be reached.
pub(crate) async fn forward(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if state.arena.is_some() || !state.arena_elsewhere {
        return next.run(request).await;
    }
    let Some(cluster) = state.cluster.clone() else {
        return next.run(request).await;
    };
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_FORWARDED_BODY).await else {
        return ApiError::BadRequest("request body too large".into()).into_response();
    };
    let call = Call::Http {
        method: parts.method.as_str().to_owned(),
        uri: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned()),
        headers: parts
            .headers
            .iter()
            .filter(|(name, _)| {
                *name != axum::http::header::HOST && *name != axum::http::header::CONTENT_LENGTH
            })
            .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_owned())))
            .collect(),
        body: B64.encode(&body),
    };
    let unavailable = |why: String| {
        ApiError::Coded {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "arena_unavailable",
            message: format!("the exchange runs on another node of the cluster: {why}"),
        }
        .into_response()
    };
    let Ok(payload) = serde_json::to_vec(&call) else {
        return unavailable("the request could not be encoded".into());
    };
    let reply = match cluster.call_arena(&payload, CALL_TIMEOUT).await {
        Ok(reply) => reply,
        Err(e) => return unavailable(e.to_string()),
    };
    let Ok(Answer::Http {
        status,
        headers,
        body,
    }) = serde_json::from_slice::<Answer>(&reply)
    else {
        return unavailable("the arena node sent no HTTP answer".into());
    };
    let Ok(body) = B64.decode(body) else {
        return unavailable("the arena node's answer did not decode".into());
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

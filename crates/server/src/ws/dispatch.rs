//! What each client request does. Replies go through the session's outbox like every
//! other frame, so they stay ordered with the events around them.

use std::sync::Arc;

use bytes::Bytes;
use roomcast_engine::hub::{RecoveryStart, SubscribeError};
use std::time::Instant;

use roomcast_engine::auth::ForbiddenVerdict;
use roomcast_engine::Session;
use roomcast_protocol::server::{ack, EventBody, Reply, UNSUBSCRIBED_FORBIDDEN};
use roomcast_protocol::{
    parse_request, Epoch, ErrorCode, ParsedRequest, Request, RequestId, RoomName, Sequence,
};

use super::auth;
use super::connection::{push_error, ConnCtx};
use crate::app::AppState;

/// Work a request leaves for the connection task to run after the current frame, one at
/// a time and in order.
#[derive(Debug)]
pub(super) enum Job {
    /// A subscribe-with-recovery.
    Replay(Replay),
    /// Joining a room whose domain sends a snapshot first (the arena's rooms).
    Attach(Attach),
    /// A request that needs Redis, on a cluster node.
    Cluster(super::cluster::ClusterJob),
}

/// A subscribe to a room with a snapshot: the exchange pushes the snapshot and joins the
/// session to the room atomically; the connection then acks the request with the
/// snapshot's position (or answers the one error).
#[derive(Debug)]
pub(super) struct Attach {
    pub(super) room: RoomName,
    pub(super) id: Option<RequestId>,
}

/// A subscribe-with-recovery to run after the current frame. Its room is already
/// reserved in the session (and the request answered), so the replay itself never
/// replies to the request's id again.
#[derive(Debug)]
pub(super) struct Replay {
    pub(super) room: RoomName,
    pub(super) start: RecoveryStart,
    pub(super) after: Sequence,
    pub(super) epoch: Option<String>,
}

fn push(session: &Session, reply: Reply<'_>) {
    session.outbox.push(Bytes::from(reply.to_json()));
}

/// Acknowledges a request that has an id with the room's position (subscribe, message).
pub(super) fn ack_position(
    session: &Session,
    id: Option<&RequestId>,
    room: &RoomName,
    sequence: Sequence,
    epoch: &Epoch,
) {
    if id.is_some() {
        push(
            session,
            Reply::Ack {
                id,
                room: Some(room),
                members: None,
                sequence: Some(sequence),
                epoch: Some(epoch),
            },
        );
    }
}

fn subscribe_error(session: &Session, e: SubscribeError, id: Option<&RequestId>) {
    push_error(session, e.error_code(), &e.to_string(), id);
}

/// Replies FORBIDDEN, or closes with 4031 when the connection keeps trying.
fn forbidden(
    session: &Session,
    ctx: &mut ConnCtx,
    what: &str,
    room: &RoomName,
    id: Option<&RequestId>,
) {
    if ctx.forbidden.record(Instant::now()) == ForbiddenVerdict::Close {
        let code = ForbiddenVerdict::CLOSE_CODE;
        session.outbox.close(code, code.default_reason(), false);
        return;
    }
    push_error(
        session,
        ErrorCode::Forbidden,
        &format!("not allowed to {what} room {room}"),
        id,
    );
}

/// `refresh`: a new token for the same subject replaces the session's credentials and
/// expiry; rooms the new token no longer allows are left, each with an `unsubscribed`
/// event, before the ack. A refused token is an `INVALID_TOKEN` error and changes nothing.
fn refresh(
    state: &AppState,
    session: &Arc<Session>,
    ctx: &mut ConnCtx,
    token: &str,
    id: Option<&RequestId>,
) {
    let verified = match &ctx.token {
        Some(binding) => auth::verify_refresh(&state.security, binding, &ctx.principal, token),
        None => Err(auth::RefreshError::NotTokenSession),
    };
    let (principal, remaining) = match verified {
        Ok(v) => v,
        Err(e) => {
            metrics::counter!("roomcast_token_refreshes_total", "result" => "refused").increment(1);
            push_error(session, ErrorCode::InvalidToken, &e.to_string(), id);
            return;
        }
    };
    metrics::counter!("roomcast_token_refreshes_total", "result" => "ok").increment(1);
    state.hub.set_credentials_expiry(session, remaining);
    ctx.principal = principal;
    leave_forbidden_rooms(state, session, ctx);
    // A subscribe queued before this refresh (a snapshot attach) was authorised by the
    // old token; the connection checks again once its queue has run.
    ctx.recheck_rooms = true;
    if let Some(id) = id {
        push(
            session,
            Reply::RefreshAck {
                id,
                expires_in: remaining.as_secs(),
            },
        );
    }
}

/// Leaves every room the connection's principal may no longer read, each with an
/// `unsubscribed` event.
pub(super) fn leave_forbidden_rooms(state: &AppState, session: &Session, ctx: &ConnCtx) {
    let policy = &state.security.policy;
    for room in session.rooms() {
        if !policy.can_subscribe(&ctx.principal, &room) && state.hub.unsubscribe(session, &room) {
            push(
                session,
                Reply::Unsubscribed {
                    room: &room,
                    reason: UNSUBSCRIBED_FORBIDDEN,
                },
            );
        }
    }
}

/// Whether `room` is joined through the arena (snapshot first) on this server.
pub(super) fn attaches(state: &AppState, room: &RoomName) -> bool {
    state.arena_present() && roomcast_arena::Arena::is_arena_room(room)
}

/// Handles one text frame; returns a job to run when the request asks for one.
pub(super) fn handle_text(
    state: &AppState,
    session: &Arc<Session>,
    ctx: &mut ConnCtx,
    text: &str,
) -> Option<Job> {
    let hub = &state.hub;
    let policy = &state.security.policy;
    let ParsedRequest { id, request } = match parse_request(text) {
        Ok(r) => r,
        Err(e) => {
            push_error(session, e.code, &e.message, e.id.as_ref());
            return None;
        }
    };
    let id = id.as_ref();
    match &request {
        Request::Subscribe { room, .. } | Request::Presence { room }
            if !policy.can_subscribe(&ctx.principal, room) =>
        {
            forbidden(session, ctx, "read", room, id);
            return None;
        }
        Request::Message { room, .. } if !policy.can_publish(&ctx.principal, room) => {
            forbidden(session, ctx, "publish to", room, id);
            return None;
        }
        _ => {}
    }
    let request = match state.cluster {
        None => request,
        Some(_) => match super::cluster::route(state, session, request, id) {
            Ok(job) => return job,
            Err(request) => request,
        },
    };
    match request {
        Request::Subscribe { room, since: None } if attaches(state, &room) => {
            return Some(Job::Attach(Attach {
                room,
                id: id.cloned(),
            }));
        }
        Request::Subscribe { room, since: None } => match hub.subscribe(session, &room) {
            Ok(head) => {
                ack_position(session, id, &room, head.sequence, &head.epoch);
            }
            Err(e) => subscribe_error(session, e, id),
        },
        Request::Subscribe {
            room,
            since: Some(since),
        } => {
            // Reserve (or refuse) now, so the request gets exactly one reply.
            let start = match hub.begin_recovery(session, &room) {
                Ok(start) => start,
                Err(e) => {
                    subscribe_error(session, e, id);
                    return None;
                }
            };
            ack_position(session, id, &room, start.head.sequence, &start.head.epoch);
            return Some(Job::Replay(Replay {
                room,
                start,
                after: Sequence(since.sequence),
                epoch: since.epoch,
            }));
        }
        Request::Unsubscribe { room } => {
            hub.unsubscribe(session, &room);
            if id.is_some() {
                push(session, ack(id));
            }
        }
        Request::Message { room, content } => {
            let body = chat_body(session, &room, content, id)?;
            match hub.publish(&room, "message", &body, Some(session.conn_id)) {
                Ok(published) => {
                    ack_position(session, id, &room, published.sequence, &published.epoch);
                }
                Err(e) => push_error(session, e.error_code(), &e.to_string(), id),
            }
        }
        Request::Ping => push(session, Reply::Pong { id }),
        Request::Pong => {}
        Request::Presence { room } => {
            let members = hub.presence(&room);
            push(
                session,
                Reply::Ack {
                    id,
                    room: Some(&room),
                    members: Some(&members),
                    sequence: None,
                    epoch: None,
                },
            );
        }
        // A cluster does not publish per-order rooms (crates/arena/src/cluster.rs).
        Request::SubscribeOrder { .. } if state.cluster.is_some() => push_error(
            session,
            ErrorCode::Unavailable,
            "subscribe_order is not served by a cluster; the orders stream carries every event of your orders",
            id,
        ),
        Request::SubscribeOrder { order_id } => {
            let room = ctx.principal.collective_id.as_ref().and_then(|c| {
                state
                    .arena
                    .as_ref()
                    .and_then(|_| roomcast_arena::rooms::order(c, order_id))
            });
            match room {
                Some(room) => return Some(Job::Attach(Attach { room, id: id.cloned() })),
                None => push_error(
                    session,
                    ErrorCode::Forbidden,
                    "subscribe_order needs a collective's connection (/ws/{collective_id}/orders) and a running arena",
                    id,
                ),
            }
        }
        Request::Refresh { token } => refresh(state, session, ctx, &token, id),
        Request::AuthResponse { .. } => push_error(
            session,
            ErrorCode::UnknownType,
            "auth_response is not expected on this endpoint",
            id,
        ),
    }
    None
}

/// The body of a chat `message` to `room`, or None (after answering `not_subscribed`)
/// when the session is not a member: only members may send to a room.
pub(super) fn chat_body(
    session: &Session,
    room: &RoomName,
    content: &serde_json::value::RawValue,
    id: Option<&RequestId>,
) -> Option<EventBody> {
    if !session.is_member(room) {
        push_error(
            session,
            ErrorCode::NotSubscribed,
            "join the room before sending to it",
            id,
        );
        return None;
    }
    Some(EventBody::chat(&session.client_id, content))
}

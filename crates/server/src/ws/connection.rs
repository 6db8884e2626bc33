//! One protocol session over a WebSocket: authentication, the session's registration in
//! the hub, and what each inbound frame does. The socket loop itself (draining the
//! session's outbox, reading frames, closing) is [`super::socket::pump`].
//!
//! Closing always goes through the session's outbox
//! ([`Outbox::close`](roomcast_engine::Outbox::close)), whoever decides it (the hub on
//! supersede or eviction, fan-out on overflow, this task on a bad frame, shutdown).

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket};
use bytes::Bytes;
use roomcast_engine::auth::{ForbiddenTracker, Principal};
use roomcast_engine::hub::Recovery;
use roomcast_engine::limits::{ConnectionPermit, PendingPermit, RateDecision, RateLimiter};
use roomcast_engine::{Outbox, Session, SessionMeta};
use roomcast_protocol::server::Reply;
use roomcast_protocol::{ClientId, CloseCode, ErrorCode, RequestId, RoomName, Sequence};

use super::auth::{self, Authenticated, Credentials, TokenBinding};
use super::dispatch::{self, Attach, Job, Replay};
use super::socket::{self, close_socket, Endpoint, FrameEncoding, JobFuture};
use super::WsQuery;
use crate::app::AppState;

/// Per-connection state the dispatcher needs besides the session.
pub(super) struct ConnCtx {
    pub(super) principal: Principal,
    pub(super) forbidden: ForbiddenTracker,
    rate: RateLimiter,
    /// What a `refresh` token must name; `None` for sessions not opened with a JWT.
    pub(super) token: Option<TokenBinding>,
    /// Set by a `refresh` while subscribe jobs authorised under the previous token may
    /// still join rooms: once the job queue is empty, the rooms are checked again.
    pub(super) recheck_rooms: bool,
}

/// What the upgrade handler hands to the connection task. Boxed, so the upgrade callback
/// captures one pointer and none of this stays in the task once the session is open.
pub(super) struct Handshake {
    pub(super) state: AppState,
    pub(super) client_id: ClientId,
    pub(super) remote: SocketAddr,
    pub(super) query: WsQuery,
    pub(super) credentials: Credentials,
    /// The arena stream this connection follows (`/ws/{collective_id}/{stream}`), if any.
    pub(super) stream: Option<super::Stream>,
    /// The place this connection holds in the pending-authentication budget, for
    /// connections that authenticate by challenge; given back once authentication ends.
    pub(super) pending: Option<PendingPermit>,
    /// Lets publishers write text frames straight to the socket (plain TCP only).
    pub(super) direct: Option<crate::wire::DirectSocket>,
}

/// An open session: what the connection task keeps for as long as the connection lives.
struct Live {
    state: AppState,
    session: Arc<Session>,
    ctx: ConnCtx,
    replays: VecDeque<Job>,
    /// The socket's direct writer (plain TCP only).
    direct: Option<crate::wire::DirectSocket>,
    _permit: ConnectionPermit,
    /// The connection's count in the cluster-wide limits (cluster nodes only).
    _cluster_slot: Option<roomcast_redis::ClusterSlot>,
}

/// The connection task.
///
/// Memory per idle connection is dominated by this future, so its shape is deliberate:
/// a plain function returning an `async move` block (an `async fn` would store its
/// arguments twice), the handshake step boxed and freed once the session is open, the
/// cluster's goodbye boxed too (inline, its Redis future made every connection's task
/// larger, by a 128-byte step of tokio's task cell, for an await that happens once, at
/// the end), and only [`Live`] plus
/// the socket kept across the loop's awaits (rust-lang/rust#62958 is why it is not an
/// `async fn`).
#[allow(clippy::manual_async_fn)]
pub(super) fn run(mut ws: WebSocket, handshake: Box<Handshake>) -> impl Future<Output = ()> {
    async move {
        let Some(mut live) = Box::pin(open(&mut ws, handshake)).await else {
            return;
        };
        socket::pump(&mut ws, &mut live).await;
        let current = live.state.hub.disconnect(&live.session);
        if let (true, Some(cluster)) = (current, &live.state.cluster) {
            if let Err(e) = Box::pin(cluster.announce_left(&live.session.client_id)).await {
                tracing::debug!(error = %e, "could not tell the cluster that a client left");
            }
        }
    }
}

/// Authenticates, takes a connection permit, registers the session and queues the
/// welcome. `None` when the connection was refused (and closed).
async fn open(ws: &mut WebSocket, handshake: Box<Handshake>) -> Option<Live> {
    let Handshake {
        state,
        client_id,
        remote,
        query,
        credentials,
        stream,
        pending,
        direct,
    } = *handshake;
    let security = state.security.clone();
    // Nothing is delivered before authentication succeeds.
    let authenticated = match &stream {
        None => Box::pin(auth::authenticate(ws, &security, &client_id, credentials)).await,
        Some(s) => {
            Box::pin(auth::authenticate_stream(
                ws,
                &security,
                &client_id,
                &s.collective,
                credentials,
            ))
            .await
        }
    };
    drop(pending);
    let Authenticated { principal, token } = match authenticated {
        Ok(a) => a,
        Err(refusal) => {
            security.auth_failures.fetch_add(1, Ordering::Relaxed);
            Box::pin(refuse(ws, refusal.code, &refusal.reason)).await;
            return None;
        }
    };
    let permit = match security.connections.try_acquire(principal.owner_key()) {
        Ok(permit) => permit,
        Err(limit) => {
            Box::pin(refuse(ws, limit.close_code(), limit.close_reason())).await;
            return None;
        }
    };
    // On a cluster the limits count every node's connections too.
    let cluster_slot = match &state.cluster {
        None => None,
        Some(cluster) => {
            let limits = &security.connections;
            match cluster
                .acquire_connection(
                    permit.principal(),
                    limits.max_per_principal(),
                    limits.max_total(),
                )
                .await
            {
                Ok(Ok(slot)) => Some(slot),
                Ok(Err(limit)) => {
                    Box::pin(refuse(ws, limit.close_code(), limit.close_reason())).await;
                    return None;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "cluster connection limits not checked");
                    None
                }
            }
        }
    };
    let hub = &state.hub;
    let meta = SessionMeta {
        remote: Some(remote),
        collective: principal
            .collective_id
            .as_ref()
            .map(|c| Arc::from(c.as_str())),
    };
    let session = hub.connect(client_id, meta);
    if let Some(direct) = &direct {
        session.outbox.set_direct(direct.clone().into_sink());
    }
    if let Some(cluster) = &state.cluster {
        // The same client id on another node is superseded there (4011).
        if let Err(e) = cluster.announce_connect(&session.client_id).await {
            tracing::debug!(error = %e, "could not announce a connection to the cluster");
        }
    }
    if let Some(token) = &token {
        hub.set_credentials_expiry(&session, token.remaining);
    }
    let ctx = ConnCtx {
        principal,
        forbidden: ForbiddenTracker::new(security.forbidden),
        rate: RateLimiter::new(security.rate),
        token: token.map(|t| t.binding),
        recheck_rooms: false,
    };
    if state.shutdown.is_cancelled() {
        session.outbox.close(
            state.config.shutdown_close,
            state.config.shutdown_close.default_reason(),
            false,
        );
    }
    let server_time = roomcast_protocol::time::now_rfc3339();
    let welcome = Reply::Welcome {
        client_id: &session.client_id,
        heartbeat_interval: hub.config().heartbeat_interval.as_secs(),
        server_time: &server_time,
        features: roomcast_protocol::server::FEATURES,
    };
    session.outbox.push(Bytes::from(welcome.to_json()));

    let general = RoomName::general();
    let mut replays: VecDeque<Job> = VecDeque::new();
    if let Some(stream) = &stream {
        // A stream starts on its own room, from a snapshot or from the client's position.
        if let Some(room) = stream.room() {
            match query.last_sequence {
                // A cluster node loads the room from Redis first, then recovers.
                Some(n) if state.cluster.is_some() => {
                    replays.push_back(Job::Cluster(super::cluster::ClusterJob::Subscribe {
                        room,
                        since: Some((Sequence(n), query.epoch.clone())),
                        id: None,
                    }))
                }
                Some(n) => match hub.begin_recovery(&session, &room) {
                    Ok(start) => replays.push_back(Job::Replay(Replay {
                        room,
                        start,
                        after: Sequence(n),
                        epoch: query.epoch,
                    })),
                    Err(e) => {
                        tracing::warn!(error = %e, "recovering a stream failed");
                        session
                            .outbox
                            .close(CloseCode::ServerError, "history unavailable", false);
                    }
                },
                None => replays.push_back(Job::Attach(Attach { room, id: None })),
            }
        }
    } else if state.cluster.is_some() && security.policy.can_subscribe(&ctx.principal, &general) {
        replays.push_back(Job::Cluster(super::cluster::ClusterJob::Subscribe {
            room: general,
            since: query
                .last_sequence
                .map(|n| (Sequence(n), query.epoch.clone())),
            id: None,
        }));
    } else if security.policy.can_subscribe(&ctx.principal, &general) {
        match query.last_sequence {
            Some(n) => match hub.begin_recovery(&session, &general) {
                Ok(start) => replays.push_back(Job::Replay(Replay {
                    room: general,
                    start,
                    after: Sequence(n),
                    epoch: query.epoch,
                })),
                Err(e) => {
                    tracing::warn!(error = %e, "recovering general failed");
                    session
                        .outbox
                        .close(CloseCode::ServerError, "history unavailable", false);
                }
            },
            None => {
                if let Err(e) = hub.subscribe(&session, &general) {
                    tracing::warn!(error = %e, "joining general failed");
                    session
                        .outbox
                        .close(CloseCode::ServerError, "history unavailable", false);
                }
            }
        }
    }
    Some(Live {
        state,
        session,
        ctx,
        replays,
        direct,
        _permit: permit,
        _cluster_slot: cluster_slot,
    })
}

impl Endpoint for Live {
    const ENCODING: FrameEncoding = FrameEncoding::Text;

    fn outbox(&self) -> &Outbox {
        &self.session.outbox
    }

    fn write_timeout(&self) -> Duration {
        self.state.hub.config().dead_after()
    }

    fn direct(&self) -> Option<&crate::wire::DirectSocket> {
        self.direct.as_ref()
    }

    fn on_frame(&mut self, msg: Message) -> bool {
        self.state.hub.touch(&self.session);
        on_frame(
            &self.state,
            &self.session,
            &mut self.ctx,
            msg,
            &mut self.replays,
        )
    }

    fn next_job(&mut self) -> Option<JobFuture> {
        let job = self.replays.pop_front()?;
        let job = super::cluster::coalesce(job, &mut self.replays);
        Some(start_job(&self.state, &self.session, job))
    }

    fn job_done(&mut self) {
        if self.ctx.recheck_rooms && self.replays.is_empty() {
            self.ctx.recheck_rooms = false;
            dispatch::leave_forbidden_rooms(&self.state, &self.session, &self.ctx);
        }
    }
}

/// Closes a connection that never became a session.
async fn refuse(ws: &mut WebSocket, code: CloseCode, reason: &str) {
    if code != CloseCode::TooManyConnections {
        metrics::counter!("roomcast_auth_failures_total", "code" => code.as_u16().to_string())
            .increment(1);
    }
    close_socket(ws, code, reason).await;
}

/// Handles one inbound frame. Returns false when the connection is over.
fn on_frame(
    state: &AppState,
    session: &Arc<Session>,
    ctx: &mut ConnCtx,
    msg: Message,
    replays: &mut VecDeque<Job>,
) -> bool {
    match msg {
        Message::Text(text) => {
            session.messages_in.fetch_add(1, Ordering::Relaxed);
            let stats = state.hub.stats();
            stats.messages_in.fetch_add(1, Ordering::Relaxed);
            stats
                .bytes_in
                .fetch_add(text.len() as u64, Ordering::Relaxed);
            match ctx.rate.check(Instant::now()) {
                RateDecision::Allow => {}
                RateDecision::Drop => {
                    metrics::counter!("roomcast_rate_limited_total").increment(1);
                    state.security.rate_limited.fetch_add(1, Ordering::Relaxed);
                    push_error(
                        session,
                        ErrorCode::RateLimited,
                        "rate limit exceeded; message dropped",
                        None,
                    );
                    return true;
                }
                RateDecision::Close => {
                    session.outbox.close(
                        CloseCode::RateLimited,
                        CloseCode::RateLimited.default_reason(),
                        false,
                    );
                    return true;
                }
            }
            if let Some(job) = dispatch::handle_text(state, session, ctx, text.as_str()) {
                replays.push_back(job);
            }
            true
        }
        Message::Binary(_) => {
            session.outbox.close(
                CloseCode::UnsupportedData,
                CloseCode::UnsupportedData.default_reason(),
                false,
            );
            true
        }
        // The codec answers pings itself; both only count as liveness.
        Message::Ping(_) | Message::Pong(_) => true,
        Message::Close(_) => false,
    }
}

fn start_job(state: &AppState, session: &Arc<Session>, job: Job) -> JobFuture {
    match job {
        Job::Replay(r) => start_replay(state, session, r),
        Job::Attach(a) => {
            let state = state.clone();
            let session = session.clone();
            Box::pin(async move { attach(&state, &session, a).await })
        }
        Job::Cluster(c) => {
            let state = state.clone();
            let session = session.clone();
            Box::pin(async move { super::cluster::run(&state, &session, c).await })
        }
    }
}

/// Runs an [`Attach`]: the arena pushes the snapshot and joins the room; the request is
/// then acked with the snapshot's position, or gets the one error.
pub(super) async fn attach(state: &AppState, session: &Arc<Session>, a: Attach) {
    if state.cluster.is_some() {
        return super::cluster::attach(state, session, a).await;
    }
    let Some(arena) = state.arena.as_ref() else {
        return;
    };
    // The room policy (or the stream's own authentication) already decided that this
    // session may read the room; the arena is told the room's owner so it can show it.
    let owner = state
        .security
        .policy
        .owner_of(a.room.as_str())
        .and_then(|o| roomcast_engine::auth::CollectiveId::parse(o).ok());
    match arena
        .attach(session.clone(), &a.room, owner.as_ref(), None)
        .await
    {
        Ok(head) => {
            if a.id.is_some() {
                let ack = Reply::Ack {
                    id: a.id.as_ref(),
                    room: Some(&a.room),
                    members: None,
                    sequence: Some(head.sequence),
                    epoch: Some(&head.epoch),
                };
                session.outbox.push(Bytes::from(ack.to_json()));
            }
        }
        Err(e) => attach_error(session, &a.room, a.id.as_ref(), &e),
    }
}

/// The one error an attach that failed answers.
pub(super) fn attach_error(
    session: &Session,
    room: &RoomName,
    id: Option<&RequestId>,
    e: &roomcast_arena::AttachError,
) {
    use roomcast_arena::AttachError;
    let code = match e {
        AttachError::Forbidden | AttachError::UnknownOrder => ErrorCode::Forbidden,
        AttachError::NotArenaRoom | AttachError::BadRoom(_) | AttachError::UnknownSymbol => {
            ErrorCode::InvalidRoom
        }
        AttachError::Subscribe(_) | AttachError::Unavailable => ErrorCode::Unavailable,
    };
    let message = match code {
        ErrorCode::Forbidden => format!("not allowed to read room {room}"),
        _ => format!("room {room}: {e}"),
    };
    push_error(session, code, &message, id);
}

pub(super) fn start_replay(state: &AppState, session: &Arc<Session>, r: Replay) -> JobFuture {
    let state = state.clone();
    let session = session.clone();
    Box::pin(async move {
        let hub = &state.hub;
        let result = hub
            .recover(&session, r.start, r.after, r.epoch.as_deref())
            .await;
        // A stream whose gap cannot be replayed gets a fresh snapshot, never a skip.
        if matches!(result, Ok(Recovery::Failed { .. })) && dispatch::attaches(&state, &r.room) {
            let room = r.room.clone();
            attach(&state, &session, Attach { room, id: None }).await;
            return;
        }
        if let Err(e) = result {
            // The request was acked already: this error carries no id (one reply per
            // id) and names the room, which the session is no longer subscribed to.
            let message = format!("recovery of room {} failed: {e}", r.room);
            push_error(&session, e.error_code(), &message, None);
        }
    })
}

pub(super) fn push_error(
    session: &Session,
    code: ErrorCode,
    message: &str,
    id: Option<&RequestId>,
) {
    let reply = Reply::Error { code, message, id };
    session.outbox.push(Bytes::from(reply.to_json()));
}

//! What client requests do on a cluster node (`--broker`): the requests that need Redis
//! become jobs the connection runs after the current frame, one at a time and in order,
//! so a client's publishes keep their order and each request gets exactly one reply.
//!
//! - `message`: Redis sequences the event ([`roomcast_redis::Cluster::publish`]); the ack
//!   carries the (epoch, sequence) Redis assigned; the event itself reaches every member,
//!   on every node, from the room's channel (the sender excluded, as on one node).
//!   Messages the client sent while one was in Redis go together in one pipeline
//!   ([`coalesce`]), still in order and each with its own ack: one at a time, a publisher
//!   was bound by the round trip;
//! - `subscribe` (with or without `since`): the room is held and, if this node has no
//!   state for it yet, subscribed to and loaded from Redis before the session joins (or
//!   recovers) exactly as on one node; a `since` beyond what this node has delivered so
//!   far (the client saw it on another node a moment ago) waits briefly for this node's
//!   subscription to catch up, so a reconnect elsewhere replays instead of failing;
//! - `presence`: members on every live node;
//! - an arena stream's room (see `attach`): the exchange's snapshot (asked of the arena
//!   node when it runs elsewhere) carries the room's position in Redis; the session then
//!   joins from that position exactly like a client resuming there, so the events after
//!   the snapshot are replayed from this node's mirror or delivered live: none missing,
//!   none twice.
//!
//! A single node never builds a [`ClusterJob`].

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use roomcast_engine::Session;
use roomcast_protocol::server::{EventBody, Reply};
use roomcast_protocol::{ErrorCode, Request, RequestId, RoomName, Sequence};

use super::connection::push_error;
use super::dispatch::{ack_position, Job, Replay};
use crate::app::AppState;

/// Longest wait for a room to be loaded from Redis before a subscribe fails with
/// `UNAVAILABLE`.
const SYNC_WAIT: Duration = Duration::from_secs(5);
/// Longest wait for this node to deliver up to a resuming client's position (woken by
/// every delivery to the room, not polled).
const CATCH_UP_WAIT: Duration = Duration::from_secs(2);

/// A request that needs Redis.
#[derive(Debug)]
pub(super) enum ClusterJob {
    /// `subscribe`, with the client's position when it resumes.
    Subscribe {
        room: RoomName,
        since: Option<(Sequence, Option<String>)>,
        id: Option<RequestId>,
    },
    /// `message`.
    Publish {
        room: RoomName,
        body: EventBody,
        id: Option<RequestId>,
    },
    /// Several `message`s queued back to back, sent to Redis in one pipeline.
    PublishMany(Vec<(RoomName, EventBody, Option<RequestId>)>),
    /// `presence`.
    Presence {
        room: RoomName,
        id: Option<RequestId>,
    },
}

/// Turns the requests that need Redis into jobs; hands every other request back.
/// Authorisation has already been checked.
pub(super) fn route<'a>(
    state: &AppState,
    session: &Session,
    request: Request<'a>,
    id: Option<&RequestId>,
) -> Result<Option<Job>, Request<'a>> {
    let id = id.cloned();
    let job = match request {
        // An arena room without a position starts from the exchange's snapshot (an
        // attach); with one it recovers like any room, from Redis.
        Request::Subscribe { room, since }
            if since.is_some() || !super::dispatch::attaches(state, &room) =>
        {
            ClusterJob::Subscribe {
                room,
                since: since.map(|s| (Sequence(s.sequence), s.epoch)),
                id,
            }
        }
        Request::Message { room, content } => {
            let Some(body) = super::dispatch::chat_body(session, &room, content, id.as_ref())
            else {
                return Ok(None);
            };
            ClusterJob::Publish { room, body, id }
        }
        Request::Presence { room } => ClusterJob::Presence { room, id },
        other => return Err(other),
    };
    Ok(Some(Job::Cluster(job)))
}

/// Most queued publishes of one connection sent in one pipeline.
const MAX_PIPELINE: usize = 64;

/// Merges a `message` job with the `message` jobs queued right behind it (the client sent
/// them while the first was in Redis) into one pipelined job: one round trip for all,
/// still in order, each still answered on its own. Any other job is returned as it is.
pub(super) fn coalesce(job: Job, queue: &mut std::collections::VecDeque<Job>) -> Job {
    let is_publish = |j: &Job| matches!(j, Job::Cluster(ClusterJob::Publish { .. }));
    if !is_publish(&job) || !queue.front().is_some_and(is_publish) {
        return job;
    }
    let mut batch = Vec::new();
    let mut next = Some(job);
    while let Some(Job::Cluster(ClusterJob::Publish { room, body, id })) = next {
        batch.push((room, body, id));
        next = (batch.len() < MAX_PIPELINE && queue.front().is_some_and(is_publish))
            .then(|| queue.pop_front())
            .flatten();
    }
    Job::Cluster(ClusterJob::PublishMany(batch))
}

/// Runs a job.
pub(super) async fn run(state: &AppState, session: &Arc<Session>, job: ClusterJob) {
    let Some(cluster) = state.cluster.as_ref() else {
        return;
    };
    match job {
        ClusterJob::Publish { room, body, id } => {
            match cluster
                .publish(&room, "message", &body, Some(session.conn_id))
                .await
            {
                Ok((epoch, sequence)) => {
                    ack_position(session, id.as_ref(), &room, sequence, &epoch)
                }
                Err(e) => push_error(session, e.error_code(), &e.to_string(), id.as_ref()),
            }
        }
        ClusterJob::PublishMany(batch) => {
            let (replies, bodies): (Vec<_>, Vec<_>) = batch
                .into_iter()
                .map(|(room, body, id)| ((room, id), body))
                .unzip();
            let events: Vec<roomcast_redis::BatchEvent<'_>> = replies
                .iter()
                .zip(bodies)
                .map(|((room, _), body)| roomcast_redis::BatchEvent {
                    room,
                    event_type: "message",
                    body,
                    origin: Some(session.conn_id),
                })
                .collect();
            match cluster.publish_batch(&events).await {
                Ok(positions) => {
                    for ((room, id), (epoch, sequence)) in replies.iter().zip(positions) {
                        ack_position(session, id.as_ref(), room, sequence, &epoch);
                    }
                }
                Err(e) => {
                    for (_, id) in &replies {
                        push_error(session, e.error_code(), &e.to_string(), id.as_ref());
                    }
                }
            }
        }
        ClusterJob::Presence { room, id } => match cluster.presence(&state.hub, &room).await {
            Ok(members) => {
                let ack = Reply::Ack {
                    id: id.as_ref(),
                    room: Some(&room),
                    members: Some(&members),
                    sequence: None,
                    epoch: None,
                };
                session.outbox.push(Bytes::from(ack.to_json()));
            }
            Err(e) => push_error(session, e.error_code(), &e.to_string(), id.as_ref()),
        },
        ClusterJob::Subscribe { room, since, id } => {
            subscribe(state, session, room, since, id, Join::Resume).await
        }
    }
}

/// How a session with a position joins a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Join {
    /// The client resumes: missed events come marked `replayed`, then `replay_complete`.
    Resume,
    /// The client just got a snapshot at the position: what follows are plain events.
    FromSnapshot,
}

/// Joins (or recovers into) a room once this node has it loaded from Redis.
pub(super) async fn subscribe(
    state: &AppState,
    session: &Arc<Session>,
    room: RoomName,
    since: Option<(Sequence, Option<String>)>,
    id: Option<RequestId>,
    join: Join,
) {
    let hub = &state.hub;
    let unavailable = |why: &str| {
        let message = format!("room {room} is unavailable: {why}");
        push_error(session, ErrorCode::Unavailable, &message, id.as_ref());
    };
    // The hold keeps the room (and this node's subscription to it) until the session
    // is a member.
    let hold = match hub.hold_room(&room) {
        Ok(hold) => hold,
        Err(e) => return unavailable(&e.to_string()),
    };
    if tokio::time::timeout(SYNC_WAIT, hold.synced())
        .await
        .is_err()
    {
        let why = state
            .hub
            .broker()
            .unavailable_reason()
            .unwrap_or_else(|| "loading it from redis timed out".into());
        return unavailable(&why);
    }
    let Some((after, epoch)) = since else {
        match hub.subscribe(session, &room) {
            Ok(head) => ack_position(session, id.as_ref(), &room, head.sequence, &head.epoch),
            Err(e) => push_error(session, e.error_code(), &e.to_string(), id.as_ref()),
        }
        return;
    };
    // Wait (bounded) while this node is behind the client: the client saw a later
    // sequence of the same epoch, or an epoch this node has not caught up with yet (after
    // Redis restarted, another node may already deliver the new epoch while this one is
    // still resyncing; answering `epoch_changed` from the stale head and then redelivering
    // the new epoch from its start would hand the client events twice, as the soak's
    // Redis phase showed). A client that really holds a vanished epoch gets its
    // `recovery_failed` after the wait.
    let caught_up = hold.head_satisfies(|head| match epoch.as_deref() {
        None => after <= head.sequence,
        Some(e) => e == head.epoch.as_str() && after <= head.sequence,
    });
    // After the wait the recovery decides (a replay, or `recovery_failed`).
    let _ = tokio::time::timeout(CATCH_UP_WAIT, caught_up).await;
    let start = match hub.begin_recovery(session, &room) {
        Ok(start) if join == Join::FromSnapshot => start.from_snapshot(),
        Ok(start) => start,
        Err(e) => {
            push_error(session, e.error_code(), &e.to_string(), id.as_ref());
            return;
        }
    };
    ack_position(
        session,
        id.as_ref(),
        &room,
        start.head.sequence,
        &start.head.epoch,
    );
    drop(hold);
    let replay = Replay {
        room,
        start,
        after,
        epoch,
    };
    super::connection::start_replay(state, session, replay).await;
}

/// Joins an arena stream's room on a cluster node: the snapshot (with its room position)
/// first, then the room from that position (see the module docs). A gap the replay cannot
/// cover ends in a fresh snapshot (`connection::start_replay`), never a skip.
pub(super) async fn attach(state: &AppState, session: &Arc<Session>, a: super::dispatch::Attach) {
    // The room policy (or the stream's own authentication) already decided that this
    // session may read the room; the exchange is told the room's owner so it can show it.
    let owner = state
        .security
        .policy
        .owner_of(a.room.as_str())
        .and_then(|o| roomcast_engine::auth::CollectiveId::parse(o).ok());
    let snapshot = match crate::arena::cluster::snapshot(state, &a.room, owner.as_ref()).await {
        Ok(snapshot) => snapshot,
        Err(e) => return super::connection::attach_error(session, &a.room, a.id.as_ref(), &e),
    };
    session
        .outbox
        .push(Bytes::from(snapshot.frame(&a.room, None)));
    ack_position(
        session,
        a.id.as_ref(),
        &a.room,
        snapshot.head.sequence,
        &snapshot.head.epoch,
    );
    let since = (
        snapshot.head.sequence,
        Some(snapshot.head.epoch.as_str().to_owned()),
    );
    Box::pin(subscribe(
        state,
        session,
        a.room,
        Some(since),
        None,
        Join::FromSnapshot,
    ))
    .await
}

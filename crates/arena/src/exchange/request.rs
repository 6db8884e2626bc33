//! What the exchange task is asked ([`Request`]) and how it answers ([`Reply`]): the queue's
//! message types, how a batch is gathered from the queue (bounded by orders, not
//! requests), and the one place that fails a request when the exchange cannot serve it.

use std::sync::Arc;

use roomcast_engine::auth::CollectiveId;
use roomcast_engine::history::RoomHead;
use roomcast_engine::Session;
use roomcast_protocol::request::RequestId;
use roomcast_protocol::RoomName;
use tokio::sync::{mpsc, oneshot};

use crate::account::Funding;
use crate::cluster::RoomSnapshot;
use crate::error::{ArenaError, AttachError, OrderError};
use crate::state::ExchangeState;
use crate::views::{OrderRequest, OrderView};

/// A read of the state, run by the task after the batch it arrived in is durable.
pub(crate) type Read = Box<dyn FnOnce(&ExchangeState) + Send>;

/// What the exchange task is asked to do.
pub(crate) enum Request {
    Open {
        id: CollectiveId,
        funding: Funding,
        reply: oneshot::Sender<Result<(), ArenaError>>,
    },
    Place {
        id: CollectiveId,
        request: OrderRequest,
        reply: oneshot::Sender<Result<OrderView, OrderError>>,
    },
    /// Several orders of one collective, applied in order inside one batch (one commit).
    PlaceMany {
        id: CollectiveId,
        requests: Vec<OrderRequest>,
        reply: oneshot::Sender<Vec<Result<OrderView, OrderError>>>,
    },
    Cancel {
        id: CollectiveId,
        order_id: u64,
        reply: oneshot::Sender<Result<OrderView, OrderError>>,
    },
    Read(Read),
    Attach {
        session: Arc<Session>,
        room: RoomName,
        principal: Option<CollectiveId>,
        request_id: Option<RequestId>,
        reply: oneshot::Sender<Result<RoomHead, AttachError>>,
    },
    /// A stream's snapshot and its room position, without joining (a cluster node joins
    /// the session itself, from that position).
    Snapshot {
        room: RoomName,
        principal: Option<CollectiveId>,
        reply: oneshot::Sender<Result<RoomSnapshot, AttachError>>,
    },
}

impl Request {
    /// How many commands it holds.
    fn weight(&self) -> usize {
        match self {
            Request::PlaceMany { requests, .. } => requests.len().max(1),
            _ => 1,
        }
    }

    /// Whether it may change the state (and so cause events).
    pub(super) fn writes(&self) -> bool {
        matches!(
            self,
            Request::Open { .. }
                | Request::Place { .. }
                | Request::PlaceMany { .. }
                | Request::Cancel { .. }
        )
    }
}

pub(crate) enum Reply {
    Open(
        oneshot::Sender<Result<(), ArenaError>>,
        Result<(), ArenaError>,
    ),
    Order(
        oneshot::Sender<Result<OrderView, OrderError>>,
        Result<OrderView, OrderError>,
    ),
    Orders(
        oneshot::Sender<Vec<Result<OrderView, OrderError>>>,
        Vec<Result<OrderView, OrderError>>,
    ),
}

impl Reply {
    pub(crate) fn send(self) {
        // A dropped receiver (the caller went away) is not an error: the command stands.
        match self {
            Reply::Open(tx, r) => drop(tx.send(r)),
            Reply::Order(tx, r) => drop(tx.send(r)),
            Reply::Orders(tx, r) => drop(tx.send(r)),
        }
    }

    pub(super) fn fail(self) {
        match self {
            Reply::Open(tx, _) => drop(tx.send(Err(ArenaError::Unavailable))),
            Reply::Order(tx, _) => drop(tx.send(Err(OrderError::Unavailable))),
            Reply::Orders(tx, r) => {
                drop(tx.send(r.iter().map(|_| Err(OrderError::Unavailable)).collect()))
            }
        }
    }
}

/// `first` and whatever else is queued, at most `max` requests.
/// The first request and what else is queued, up to `max` commands (a batch of orders
/// counts each order), so a batch's burst of events stays bounded.
pub(crate) fn gather(first: Request, rx: &mut mpsc::Receiver<Request>, max: usize) -> Vec<Request> {
    let mut weight = first.weight();
    let mut batch = vec![first];
    while weight < max {
        match rx.try_recv() {
            Ok(m) => {
                weight += m.weight();
                batch.push(m);
            }
            Err(_) => break,
        }
    }
    batch
}

pub(crate) fn fail(request: Request) {
    match request {
        Request::Open { reply, .. } => drop(reply.send(Err(ArenaError::Unavailable))),
        Request::Place { reply, .. } | Request::Cancel { reply, .. } => {
            drop(reply.send(Err(OrderError::Unavailable)))
        }
        Request::PlaceMany {
            requests, reply, ..
        } => drop(
            reply.send(
                requests
                    .iter()
                    .map(|_| Err(OrderError::Unavailable))
                    .collect(),
            ),
        ),
        Request::Read(_) => {}
        Request::Attach { reply, .. } => drop(reply.send(Err(AttachError::Unavailable))),
        Request::Snapshot { reply, .. } => drop(reply.send(Err(AttachError::Unavailable))),
    }
}

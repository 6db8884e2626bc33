//! Requests to the arena node and their replies, carried by Redis pub/sub.
//!
//! Why Redis and not HTTP between nodes: every node already reaches Redis, so the arena
//! node needs no advertised address, no second listener and no internal credential, and a
//! client of a public port can never reach this channel. Each node subscribes (on its own
//! pub/sub connection) to `PREFIX:rpc:NODE`. An asking node reads the lease to find the
//! arena node, publishes `Q ID FROM\nPAYLOAD` on its channel and awaits `A ID\nPAYLOAD` on
//! its own. `PUBLISH` answers how many subscribers got the message, so a request to a node
//! that is gone fails after a short retry (2 s: it may be coming back) instead of
//! waiting for the reply's timeout. Payloads are opaque
//! here: the server defines them (a snapshot request, a forwarded HTTP request).
//!
//! A request is answered at most once; a lost reply (the asker's subscription dropped)
//! ends in the asker's timeout, never in a reply to the wrong request (ids are unique per
//! node and the reply goes to the asking node only).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::{Cluster, ClusterError, Node};

/// What the arena node does with a request's payload: its reply's payload.
pub type RpcHandler =
    Arc<dyn Fn(Vec<u8>) -> Pin<Box<dyn Future<Output = Vec<u8>> + Send>> + Send + Sync>;

/// How long a call waits for an arena node to listen before it fails.
const NO_LISTENER_WAIT: Duration = Duration::from_secs(2);
const NO_LISTENER_RETRY: Duration = Duration::from_millis(50);
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// The node's side of the request channel.
pub(crate) struct Rpc {
    next: AtomicU64,
    pending: Mutex<HashMap<u64, oneshot::Sender<Vec<u8>>>>,
    handler: OnceLock<RpcHandler>,
    subscribed: watch::Sender<bool>,
}

impl Default for Rpc {
    fn default() -> Rpc {
        Rpc {
            next: AtomicU64::new(1),
            pending: Mutex::default(),
            handler: OnceLock::new(),
            subscribed: watch::Sender::new(false),
        }
    }
}

impl std::fmt::Debug for Rpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rpc").finish_non_exhaustive()
    }
}

impl Rpc {
    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Vec<u8>>>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Removes a request's entry when the asker stops waiting, whatever the reason.
struct PendingGuard<'a> {
    rpc: &'a Rpc,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.rpc.pending().remove(&self.id);
    }
}

impl Cluster {
    /// Makes this node answer requests with `handler` (the arena node).
    pub fn serve_arena_requests(&self, handler: RpcHandler) {
        let _ = self.rpc.handler.set(handler);
    }

    /// Sends `payload` to the node holding the arena lease and waits up to `timeout` for
    /// its reply.
    ///
    /// # Errors
    /// [`ClusterError::Unavailable`]: Redis is down, no node holds the lease, the holder
    /// does not listen, or it did not answer in time.
    pub async fn call_arena(
        &self,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, ClusterError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut subscribed = self.rpc.subscribed.subscribe();
        // (The watch's guard must not live across the awaits below.)
        let ready = matches!(
            tokio::time::timeout_at(deadline, subscribed.wait_for(|s| *s)).await,
            Ok(Ok(_))
        );
        if !ready {
            return Err(ClusterError::Unavailable(
                "this node's request channel is not connected".into(),
            ));
        }
        let id = self.rpc.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.rpc.pending().insert(id, tx);
        let _guard = PendingGuard { rpc: &self.rpc, id };
        let node = &self.node;
        let mut message = format!("Q {id} {}\n", node.id).into_bytes();
        message.extend_from_slice(payload);
        // Nobody to ask (no lease, or its holder is not subscribed: it is starting, or
        // its links are coming back after Redis returned) is retried briefly, then 503.
        let give_up = tokio::time::Instant::now() + NO_LISTENER_WAIT;
        let holder = loop {
            let holder = self.arena_node().await?;
            if let Some(holder) = &holder {
                let mut publish = redis::cmd("PUBLISH");
                publish.arg(node.keys.rpc(holder)).arg(&message);
                let mut conn = node.conn.clone();
                let heard: i64 = node.timed(publish.query_async(&mut conn)).await?;
                if heard > 0 {
                    break holder.clone();
                }
            }
            let now = tokio::time::Instant::now();
            if now >= give_up || now >= deadline {
                return Err(ClusterError::Unavailable(match holder {
                    Some(holder) => format!("the arena node {holder} does not answer"),
                    None => "no node of the cluster runs the arena".into(),
                }));
            }
            tokio::time::sleep(NO_LISTENER_RETRY).await;
        };
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(reply)) => Ok(reply),
            _ => Err(ClusterError::Unavailable(format!(
                "the arena node {holder} did not answer in time"
            ))),
        }
    }

    /// Subscribes this node to its request channel (replies to its calls, and requests
    /// when it serves them) on `tasks` until `cancel` fires. Call once, on nodes that
    /// serve the arena.
    pub fn start_requests(&self, tasks: &TaskTracker, cancel: CancellationToken) {
        tasks.spawn(run(
            self.node.clone(),
            self.rpc.clone(),
            tasks.clone(),
            cancel,
        ));
    }
}

/// Keeps the node's request channel subscribed until `cancel` fires.
async fn run(node: Arc<Node>, rpc: Arc<Rpc>, tasks: TaskTracker, cancel: CancellationToken) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let why = session(&node, &rpc, &tasks, &cancel, &mut backoff).await;
        rpc.subscribed.send_replace(false);
        let Some(why) = why else { return };
        tracing::warn!(error = %why, "redis request channel lost; reconnecting");
        let wait = backoff.mul_f64(rand::random::<f64>());
        backoff = (backoff * 2).min(BACKOFF_MAX);
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// One connection's life: `None` when cancelled, else why it ended.
async fn session(
    node: &Arc<Node>,
    rpc: &Arc<Rpc>,
    tasks: &TaskTracker,
    cancel: &CancellationToken,
    backoff: &mut Duration,
) -> Option<String> {
    let pubsub =
        match tokio::time::timeout(node.config.command_timeout, node.client.get_async_pubsub())
            .await
        {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => return Some(e.to_string()),
            Err(_) => return Some("connecting timed out".into()),
        };
    let (mut sink, mut stream) = pubsub.split();
    if let Err(e) = sink.subscribe(node.keys.rpc(&node.id)).await {
        return Some(e.to_string());
    }
    rpc.subscribed.send_replace(true);
    *backoff = BACKOFF_MIN;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return None,
            msg = stream.next() => {
                let Some(msg) = msg else { return Some("connection closed".into()) };
                receive(node, rpc, tasks, msg.get_payload_bytes());
            }
        }
    }
}

/// A request (answered on a task of its own) or a reply (handed to its asker).
fn receive(node: &Arc<Node>, rpc: &Arc<Rpc>, tasks: &TaskTracker, message: &[u8]) {
    let Some(split) = message.iter().position(|b| *b == b'\n') else {
        return;
    };
    let (head, payload) = (&message[..split], &message[split + 1..]);
    let Ok(head) = std::str::from_utf8(head) else {
        return;
    };
    let mut words = head.split(' ');
    match (
        words.next(),
        words.next().and_then(|i| i.parse::<u64>().ok()),
    ) {
        (Some("A"), Some(id)) => {
            if let Some(tx) = rpc.pending().remove(&id) {
                let _ = tx.send(payload.to_vec());
            }
        }
        (Some("Q"), Some(id)) => {
            let (Some(from), Some(handler)) = (words.next(), rpc.handler.get()) else {
                return;
            };
            let from = from.to_owned();
            let reply = handler(payload.to_vec());
            let node = node.clone();
            tasks.spawn(async move {
                let payload = reply.await;
                let mut message = format!("A {id}\n").into_bytes();
                message.extend_from_slice(&payload);
                let mut publish = redis::cmd("PUBLISH");
                publish.arg(node.keys.rpc(&from)).arg(message);
                let mut conn = node.conn.clone();
                if let Err(e) = node.timed(publish.query_async::<i64>(&mut conn)).await {
                    tracing::warn!(error = %e, "a reply to another node was not sent");
                }
            });
        }
        _ => {}
    }
}

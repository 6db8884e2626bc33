//! Scale-out on Redis: several roomcast nodes behave as one server.
//!
//! Redis is the cluster's sequencer and history: one Lua script per publish assigns the
//! room's next sequence, appends the event to the room's capped stream and publishes it on
//! the room's channel, atomically ([`scripts`]). Every node, the publishing one included,
//! delivers a room's events from its single subscription to that channel, in channel
//! order, which is sequence order ([`subscriber`]). Each node keeps a mirror of the
//! streams of the rooms it has members in, so the engine's recovery runs unchanged.
//!
//! - [`Cluster`]: the node's handle: connect, start the background tasks, publish,
//!   cluster-wide presence and supersede;
//! - [`RedisBroker`]: the engine's broker seam (room interest, readiness);
//! - `arena`: the lease that lets one node run the trading arena's exchange, and its
//!   batched publishes; `rpc`: requests to the arena node over pub/sub;
//! - `keys`: key and channel names; `health`: link state for `/readyz` and fail-fast
//!   publishes; `control`: the control channel (supersede across nodes); `presence`:
//!   members of every node; `limits`: connection limits across nodes.
//!
//! Architecture invariant: nothing outside this crate speaks to Redis, and a single node
//! (no `--broker`) never builds any of it.

mod arena;
mod batch;
mod broker;
mod control;
mod health;
mod keys;
mod limits;
mod presence;
mod rpc;
mod scripts;
mod subscriber;

pub use arena::{Claim, LEASE_TTL};
pub use batch::BatchEvent;
pub use broker::RedisBroker;
pub use limits::ClusterSlot;
pub use rpc::RpcHandler;

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use roomcast_engine::history::Retention;
use roomcast_engine::hub::{new_epoch, ConnId, RemoteSnapshot};
use roomcast_engine::Hub;
use roomcast_protocol::server::{check_event_type, EventBody};
use roomcast_protocol::{ClientId, Epoch, RoomName, Sequence};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use health::Health;
use keys::Keys;

/// How long a room's Redis state lives after its last publish when its retention rule
/// keeps no history (the sequence and epoch still need a home).
const NO_HISTORY_TTL: Duration = Duration::from_secs(24 * 3600);

/// Settings of a cluster node.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://host:port/db` (or `rediss://`).
    pub url: String,
    /// Prefix of every key and channel.
    pub prefix: String,
    /// The history each room keeps in Redis (`max_events` caps the stream, `ttl` expires it).
    pub retention: Retention,
    /// Longest wait for one Redis command before it fails (publishes fail fast with it).
    pub command_timeout: Duration,
}

impl RedisConfig {
    /// Defaults for `url`: prefix `roomcast`, 2 s command timeout.
    pub fn new(url: &str, retention: Retention) -> RedisConfig {
        RedisConfig {
            url: url.to_owned(),
            prefix: "roomcast".into(),
            retention,
            command_timeout: Duration::from_secs(2),
        }
    }
}

/// Why a cluster operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The event type is invalid or reserved.
    #[error("{0}")]
    InvalidType(#[from] roomcast_protocol::server::EventTypeError),
    /// Redis cannot be reached, or did not answer in time. Nothing was published.
    #[error("{0}")]
    Unavailable(String),
}

impl ClusterError {
    /// The wire error code a client gets for it.
    pub const fn error_code(&self) -> roomcast_protocol::ErrorCode {
        match self {
            ClusterError::InvalidType(_) => roomcast_protocol::ErrorCode::InvalidMessage,
            ClusterError::Unavailable(_) => roomcast_protocol::ErrorCode::Unavailable,
        }
    }
}

fn unavailable(e: redis::RedisError) -> ClusterError {
    ClusterError::Unavailable(format!("redis unavailable: {e}"))
}

/// What every task of this node shares.
pub(crate) struct Node {
    pub(crate) id: String,
    pub(crate) config: RedisConfig,
    pub(crate) keys: Keys,
    pub(crate) client: redis::Client,
    pub(crate) conn: ConnectionManager,
    pub(crate) health: Arc<Health>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// `(max_events, ttl_ms)` of a room in Redis.
    fn limits(&self, room: &RoomName) -> (usize, u64) {
        match self.config.retention.rule_for(room) {
            Some(rule) if rule.keeps() => (
                rule.max_events,
                u64::try_from(rule.ttl.as_millis())
                    .unwrap_or(u64::MAX)
                    .max(1),
            ),
            _ => (0, NO_HISTORY_TTL.as_millis() as u64),
        }
    }

    async fn timed<T>(
        &self,
        f: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, ClusterError> {
        match tokio::time::timeout(self.config.command_timeout, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
                    self.health.commands_down(&e.to_string());
                }
                Err(unavailable(e))
            }
            // One slow answer fails its command; readiness follows the probe's verdict.
            Err(_) => Err(ClusterError::Unavailable(
                "redis unavailable: command timed out".into(),
            )),
        }
    }

    /// Reads a room's head and retained events (creating its epoch if missing).
    pub(crate) async fn snapshot(&self, room: &RoomName) -> Result<RemoteSnapshot, ClusterError> {
        let (max_events, ttl_ms) = self.limits(room);
        let mut conn = self.conn.clone();
        let reply: Vec<Vec<u8>> = self
            .timed(
                scripts::LOAD_SCRIPT
                    .key(self.keys.meta(room))
                    .key(self.keys.stream(room))
                    .arg(new_epoch().as_str())
                    .arg(ttl_ms)
                    .arg(max_events)
                    .invoke_async(&mut conn),
            )
            .await?;
        subscriber::parse_snapshot(reply).map_err(ClusterError::Unavailable)
    }
}

/// A node's handle on the cluster. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Cluster {
    node: Arc<Node>,
    pending: Arc<std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<broker::Interest>>>>,
    rpc: Arc<rpc::Rpc>,
}

impl Cluster {
    /// Connects to Redis (fails when it cannot be reached) and returns the handle and the
    /// broker to build the node's hub with ([`Hub::clustered`]). Call [`Cluster::start`]
    /// with that hub next.
    pub async fn connect(config: RedisConfig) -> Result<(Cluster, Arc<RedisBroker>), ClusterError> {
        let client = redis::Client::open(config.url.as_str()).map_err(unavailable)?;
        let manager = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.command_timeout))
            .set_response_timeout(Some(config.command_timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let conn = tokio::time::timeout(
            config.command_timeout * 3,
            client.get_connection_manager_with_config(manager),
        )
        .await
        .map_err(|_| ClusterError::Unavailable(format!("redis at {} did not answer", config.url)))?
        .map_err(unavailable)?;
        let health = Arc::new(Health::default());
        health.commands_up();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let node = Arc::new(Node {
            id: format!("{:016x}", rand::random::<u64>()),
            keys: Keys::new(&config.prefix),
            config,
            client,
            conn,
            health: health.clone(),
        });
        let broker = Arc::new(RedisBroker {
            interest: tx,
            health,
        });
        Ok((
            Cluster {
                node,
                pending: Arc::new(std::sync::Mutex::new(Some(rx))),
                rpc: Arc::default(),
            },
            broker,
        ))
    }

    /// Starts the pub/sub subscriber, the health probe and the node heartbeat on `tasks`,
    /// stopped by `cancel`. A second call does nothing.
    pub fn start(&self, hub: Hub, tasks: &TaskTracker, cancel: CancellationToken) {
        let rx = match self.pending.lock() {
            Ok(mut p) => p.take(),
            Err(p) => p.into_inner().take(),
        };
        let Some(rx) = rx else { return };
        tasks.spawn(subscriber::run(
            self.node.clone(),
            hub.clone(),
            rx,
            cancel.clone(),
        ));
        tasks.spawn(probe(self.node.clone(), cancel.clone()));
        tasks.spawn(presence::run(self.node.clone(), hub, cancel));
    }

    /// This node's id in the cluster.
    pub fn node_id(&self) -> &str {
        &self.node.id
    }

    /// Why Redis cannot be used now, or `Ok`.
    pub fn ready(&self) -> Result<(), String> {
        self.node.health.check()
    }

    /// Publishes an event: Redis assigns its sequence, stores and broadcasts it; every
    /// node (this one too) delivers it from the room's channel. `origin` (the publishing
    /// connection on this node) does not receive its own event. Fails at once with
    /// [`ClusterError::Unavailable`] while Redis is unreachable; then nothing was published.
    pub async fn publish(
        &self,
        room: &RoomName,
        event_type: &str,
        body: &EventBody,
        origin: Option<ConnId>,
    ) -> Result<(Epoch, Sequence), ClusterError> {
        check_event_type(event_type)?;
        let node = &self.node;
        node.health.check().map_err(ClusterError::Unavailable)?;
        let timestamp = roomcast_protocol::time::now_rfc3339();
        let call =
            node.publish_invocation(room, event_type, body, origin, &timestamp, batch::unix_ms());
        let mut conn = node.conn.clone();
        let reply: (String, u64) = node.timed(call.invoke_async(&mut conn)).await?;
        Ok((Epoch::new(&reply.0), Sequence(reply.1)))
    }

    /// The room's head and retained events in Redis, oldest first (creating its epoch if
    /// it has none): what the history API serves on a cluster node.
    pub async fn snapshot(&self, room: &RoomName) -> Result<RemoteSnapshot, ClusterError> {
        self.node.snapshot(room).await
    }

    /// Tells the other nodes that `client_id` connected here: they close their session
    /// of it with 4011, as a single node does on a reconnect with the same id.
    pub async fn announce_connect(&self, client_id: &ClientId) -> Result<(), ClusterError> {
        control::announce_connect(&self.node, client_id).await
    }

    /// Tells the other nodes that `client_id`'s session here ended: their members of
    /// `general` get `user_left`.
    pub async fn announce_left(&self, client_id: &ClientId) -> Result<(), ClusterError> {
        control::announce_left(&self.node, client_id).await
    }

    /// Counts a connection of `principal` against the cluster-wide limits (0 = none):
    /// `Ok(Err(limit))` refuses it (4022), `Ok(Ok(slot))` admits it until the slot drops,
    /// `Err` means Redis could not be asked.
    pub async fn acquire_connection(
        &self,
        principal: &str,
        max_per_principal: usize,
        max_total: usize,
    ) -> Result<Result<ClusterSlot, roomcast_engine::limits::LimitExceeded>, ClusterError> {
        limits::acquire(&self.node, principal, max_per_principal, max_total).await
    }

    /// Every live node of the cluster and its connection count (as counted for the
    /// connection limits), sorted by node id.
    pub async fn nodes(&self) -> Result<Vec<(String, u64)>, ClusterError> {
        limits::nodes(&self.node).await
    }

    /// Members of a room on every live node, sorted.
    pub async fn presence(
        &self,
        hub: &Hub,
        room: &RoomName,
    ) -> Result<Vec<ClientId>, ClusterError> {
        presence::members(&self.node, hub, room).await
    }
}

/// Probes the command link every [`health::PROBE_EVERY`], so readiness follows Redis
/// going away and coming back even when nobody publishes.
async fn probe(node: Arc<Node>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(health::PROBE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let mut conn = node.conn.clone();
        let ping = redis::cmd("PING");
        match node.timed(ping.query_async::<String>(&mut conn)).await {
            Ok(_) => node.health.commands_up(),
            Err(e) => node
                .health
                .commands_down(e.to_string().trim_start_matches("redis unavailable: ")),
        }
    }
}

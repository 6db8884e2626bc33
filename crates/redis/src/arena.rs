//! The trading arena's place in a cluster: the lease that lets exactly one node run the
//! exchange, and the exchange's two Redis operations.
//!
//! The exchange's state lives in one node's data directory, so two exchanges would be two
//! different markets. A node configured to run it takes the **lease** (`PREFIX:arena:lease`,
//! `SET NX PX`, renewed every [`LEASE_RENEW`]); a node that finds the lease held by a live
//! node does not run an exchange. A clean stop releases the lease, so a restarted arena
//! node takes it at once; after a crash the lease expires within [`LEASE_TTL`].
//!
//! - [`Cluster::publish_batch`] (in `batch.rs`, shared with client publishes): a batch of
//!   events in ONE pipeline, so the exchange pays one round trip per batch;
//! - [`Cluster::heads`]: the rooms' heads, read while the exchange publishes nothing, for
//!   the snapshots it serves.

use std::time::Duration;

use roomcast_engine::history::RoomHead;
use roomcast_engine::hub::new_epoch;
use roomcast_protocol::{Epoch, RoomName, Sequence};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::{scripts, Cluster, ClusterError};

/// How long the lease lives without renewal: the longest the arena stays unclaimable after
/// its node died.
pub const LEASE_TTL: Duration = Duration::from_secs(5);
/// How often the holder renews the lease.
const LEASE_RENEW: Duration = Duration::from_secs(1);
/// How often a claimant retries while the lease is held.
const CLAIM_RETRY: Duration = Duration::from_millis(250);

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This node holds the lease.
    Held,
    /// Another live node holds it (its node id).
    Taken(String),
}

impl Cluster {
    /// Tries to take the arena lease, retrying for up to `wait` while another node holds
    /// it (a previous run of this node that crashed holds it until it expires).
    ///
    /// # Errors
    /// [`ClusterError::Unavailable`] when Redis cannot be asked.
    pub async fn claim_arena(&self, wait: Duration) -> Result<Claim, ClusterError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let holder = self.claim_once().await?;
            if holder == self.node.id {
                return Ok(Claim::Held);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(Claim::Taken(holder));
            }
            tokio::time::sleep(CLAIM_RETRY).await;
        }
    }

    async fn claim_once(&self) -> Result<String, ClusterError> {
        let node = &self.node;
        let mut conn = node.conn.clone();
        node.timed(
            scripts::CLAIM_SCRIPT
                .key(node.keys.arena_lease())
                .arg(&node.id)
                .arg(LEASE_TTL.as_millis() as u64)
                .invoke_async(&mut conn),
        )
        .await
    }

    /// Keeps the lease this node holds: renews it until `cancel` fires, then releases it.
    /// A renewal that finds the lease gone (Redis lost it) takes it again; one that finds
    /// another holder logs an error (two exchanges would now disagree).
    pub fn keep_arena_lease(&self, tasks: &TaskTracker, cancel: CancellationToken) {
        let cluster = self.clone();
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(LEASE_RENEW);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tick.tick() => {}
                }
                match cluster.claim_once().await {
                    Ok(holder) if holder == cluster.node.id => {}
                    Ok(holder) => tracing::error!(
                        holder,
                        "the arena lease is held by another node: two exchanges may be running"
                    ),
                    Err(e) => tracing::warn!(error = %e, "arena lease not renewed"),
                }
            }
            let node = &cluster.node;
            let mut conn = node.conn.clone();
            let released = node
                .timed(
                    scripts::RELEASE_SCRIPT
                        .key(node.keys.arena_lease())
                        .arg(&node.id)
                        .invoke_async::<i64>(&mut conn),
                )
                .await;
            if let Err(e) = released {
                tracing::warn!(error = %e, "arena lease not released; it expires by itself");
            }
        });
    }

    /// The node that holds the arena lease, if any.
    ///
    /// # Errors
    /// [`ClusterError::Unavailable`] when Redis cannot be asked.
    pub async fn arena_node(&self) -> Result<Option<String>, ClusterError> {
        let node = &self.node;
        let mut conn = node.conn.clone();
        let mut get = redis::cmd("GET");
        get.arg(node.keys.arena_lease());
        node.timed(get.query_async::<Option<String>>(&mut conn))
            .await
    }

    /// The heads of `rooms` in Redis (an epoch is created for a room that has none), in
    /// one pipeline.
    ///
    /// # Errors
    /// [`ClusterError::Unavailable`].
    pub async fn heads(&self, rooms: &[RoomName]) -> Result<Vec<RoomHead>, ClusterError> {
        if rooms.is_empty() {
            return Ok(Vec::new());
        }
        let node = &self.node;
        node.health.check().map_err(ClusterError::Unavailable)?;
        let mut pipe = redis::pipe();
        pipe.load_script(&scripts::HEAD_SCRIPT).ignore();
        for room in rooms {
            let (_, ttl_ms) = node.limits(room);
            pipe.invoke_script(
                scripts::HEAD_SCRIPT
                    .key(node.keys.meta(room))
                    .arg(new_epoch().as_str())
                    .arg(ttl_ms),
            );
        }
        let mut conn = node.conn.clone();
        let replies: Vec<(String, u64)> = node.timed(pipe.query_async(&mut conn)).await?;
        Ok(replies
            .into_iter()
            .map(|(epoch, seq)| RoomHead {
                epoch: Epoch::new(&epoch),
                sequence: Sequence(seq),
            })
            .collect())
    }

    /// Drops the rooms' sequence, epoch and history in Redis: their next event (or load)
    /// starts a new epoch, and every node's members get `recovery_failed` (`epoch_changed`)
    /// when it arrives.
    ///
    /// # Errors
    /// [`ClusterError::Unavailable`].
    pub async fn reset_rooms(&self, rooms: &[RoomName]) -> Result<(), ClusterError> {
        let node = &self.node;
        node.health.check().map_err(ClusterError::Unavailable)?;
        let mut pipe = redis::pipe();
        for room in rooms {
            pipe.cmd("DEL")
                .arg(node.keys.meta(room))
                .arg(node.keys.stream(room))
                .ignore();
        }
        let mut conn = node.conn.clone();
        node.timed(pipe.query_async::<()>(&mut conn)).await
    }
}

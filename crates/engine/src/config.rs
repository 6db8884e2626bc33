//! Engine settings. The server validates raw configuration (file, env, flags) into this
//! typed form before anything starts; the engine trusts it.

use std::time::Duration;

/// What to do when a recipient's outbound queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SlowConsumerPolicy {
    /// Close the connection with 1008 "slow consumer" (the default): the client reconnects
    /// and recovers from history instead of silently missing events.
    #[default]
    Disconnect,
    /// Drop the oldest queued message and count it; the client stays connected.
    DropOldest,
}

/// Settings of a [`crate::Hub`].
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Period of server `ping` messages.
    pub heartbeat_interval: Duration,
    /// Extra silence tolerated after a missed heartbeat before eviction.
    pub heartbeat_timeout: Duration,
    /// Outbound queue capacity per connection, in messages.
    pub outbox_capacity: usize,
    /// Outbound queue capacity per connection, in bytes (each queued frame counted at
    /// its full length). A frame larger than this still enters an empty queue.
    pub outbox_max_bytes: usize,
    /// Process-wide cap on queued outbound bytes (the sum over every outbox; 0 = none).
    /// When exceeded, the connections with the largest queues are closed as slow
    /// consumers (1008), largest first, until the total is back under the cap.
    pub max_queued_bytes: usize,
    /// Policy for full outbound queues.
    pub slow_consumer: SlowConsumerPolicy,
    /// Most rooms one connection may join.
    pub max_subscriptions: usize,
    /// How many events one replay batch reads from history.
    pub replay_batch: usize,
    /// `user_left` is sent to `general` only while it has at most this many members
    /// (0 = always). Per-departure notices cost O(members) each, so a mass disconnect of N
    /// clients costs O(N²) frames; above this size they are not sent.
    pub user_left_max_members: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            heartbeat_interval: Duration::from_secs(30),
            heartbeat_timeout: Duration::from_secs(10),
            outbox_capacity: 1024,
            outbox_max_bytes: 1 << 20,
            max_queued_bytes: 1 << 30,
            slow_consumer: SlowConsumerPolicy::Disconnect,
            max_subscriptions: 1000,
            replay_batch: 256,
            user_left_max_members: 2000,
        }
    }
}

impl HubConfig {
    /// Silence after which a connection is considered dead.
    pub fn dead_after(&self) -> Duration {
        self.heartbeat_interval + self.heartbeat_timeout
    }

    /// The maintenance tick (heartbeats, expiry, eviction): a quarter of the heartbeat
    /// interval, between 50 ms and 1 s, so eviction happens within a quarter interval of
    /// its deadline.
    pub fn maintenance_tick(&self) -> Duration {
        (self.heartbeat_interval / 4).clamp(Duration::from_millis(50), Duration::from_secs(1))
    }
}

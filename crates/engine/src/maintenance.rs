//! The hub's single maintenance timer: heartbeats, credential expiry (`token_expiring`,
//! then 4003), dead-connection eviction, empty-room sweeping and history trimming.
//!
//! One task for the whole process instead of a timer per connection: at 20,000
//! connections a per-connection interval is 20,000 timer-wheel entries and wake-ups per
//! period, where this is one wake-up per tick and a walk over the session shards. The
//! heartbeat `ping` is encoded once per period and shared by every connection.

use std::time::Duration;

use bytes::Bytes;
use roomcast_protocol::server::Reply;
use tokio_util::sync::CancellationToken;

use crate::hub::Hub;

/// How often room sweeping and history trimming run.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(5);

/// Runs until `cancel` fires.
pub async fn run(hub: Hub, cancel: CancellationToken) {
    let tick = hub.config().maintenance_tick();
    let interval = hub.config().heartbeat_interval;
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let start = tokio::time::Instant::now();
    let mut next_ping = start + interval;
    let mut next_housekeeping = start + HOUSEKEEPING_EVERY;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let now = tokio::time::Instant::now();
        if now >= next_ping {
            let ts = roomcast_protocol::time::now_rfc3339();
            let frame = Bytes::from(Reply::Ping { timestamp: &ts }.to_json());
            hub.broadcast_heartbeat(&frame);
            next_ping = now + interval;
        }
        let capped = hub.enforce_queued_bytes_cap();
        if capped > 0 {
            tracing::warn!(
                closed = capped,
                "closed the largest outboxes: queued bytes over the process-wide cap"
            );
        }
        let expired = hub.expire_credentials();
        if expired > 0 {
            metrics::counter!("roomcast_sessions_expired_total").increment(expired as u64);
            tracing::info!(
                expired,
                "closed sessions whose token expired without a refresh"
            );
        }
        let evicted = hub.evict_dead();
        if evicted > 0 {
            tracing::info!(
                evicted,
                "closed connections that stopped answering heartbeats"
            );
        }
        if now >= next_housekeeping {
            next_housekeeping = now + HOUSEKEEPING_EVERY;
            hub.sweep_empty_rooms();
            hub.history().trim(crate::hub::unix_millis());
        }
    }
}

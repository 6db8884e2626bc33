//! Prometheus metrics at `GET /metrics`.
//!
//! Counters the engine already keeps as atomics (connections, deliveries, slow consumers,
//! replays, ...) are copied into the registry at scrape time, so the hot paths pay nothing
//! for them. Histograms and labelled counters (close codes, auth failures) are recorded
//! where they happen through the `metrics` facade.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use roomcast_engine::hub::HubStats;

use crate::app::AppState;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder once. A second server in the same process (tests)
/// shares it.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let latency = [
                0.000_01, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
                0.05, 0.1, 0.25, 0.5, 1.0,
            ];
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &latency)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            Some(handle)
        })
        .as_ref()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_gauge!("roomcast_open_connections", "Current WebSocket sessions");
    describe_counter!("roomcast_connections_total", "Sessions ever registered");
    describe_counter!(
        "roomcast_connections_closed_total",
        "Connections closed by the server, by close code"
    );
    describe_counter!(
        "roomcast_auth_failures_total",
        "Refused authentications, by close code"
    );
    describe_gauge!("roomcast_rooms", "Rooms with state");
    describe_gauge!(
        "roomcast_history_store_failed",
        "1 while the history disk is failing (publishes to rooms with history are refused), else 0"
    );
    describe_counter!(
        "roomcast_history_write_errors_total",
        "Failed history disk writes and reopen attempts"
    );
    describe_gauge!("roomcast_subscriptions", "Room memberships");
    describe_counter!(
        "roomcast_received_messages_total",
        "Client messages received"
    );
    describe_counter!(
        "roomcast_received_bytes_total",
        Unit::Bytes,
        "Bytes of client messages received"
    );
    describe_counter!("roomcast_sent_messages_total", "Frames written to clients");
    describe_counter!(
        "roomcast_sent_bytes_total",
        Unit::Bytes,
        "Bytes of frames written to clients"
    );
    describe_counter!(
        "roomcast_deliveries_total",
        "Frames queued to recipients by fan-out"
    );
    describe_counter!(
        "roomcast_publishes_total",
        "Events and broadcasts fanned out"
    );
    describe_counter!(
        "roomcast_slow_consumer_disconnects_total",
        "Recipients closed because their queue was full"
    );
    describe_counter!(
        "roomcast_dropped_oldest_total",
        "Messages dropped by the drop-oldest policy"
    );
    describe_counter!(
        "roomcast_evicted_total",
        "Connections closed for heartbeat silence"
    );
    describe_counter!(
        "roomcast_superseded_total",
        "Sessions replaced by a newer connection"
    );
    describe_counter!(
        "roomcast_rate_limited_total",
        "Inbound messages dropped by the rate limit"
    );
    describe_counter!(
        "roomcast_replayed_events_total",
        "Events replayed from history"
    );
    describe_counter!(
        "roomcast_broker_errors_total",
        "Broker publish failures (0 with the single-node broker)"
    );
    describe_counter!(
        "roomcast_arena_orders_accepted_total",
        "Orders the arena accepted since start"
    );
    describe_counter!(
        "roomcast_arena_orders_rejected_total",
        "Orders the arena's risk checks refused since start"
    );
    describe_counter!(
        "roomcast_arena_trades_total",
        "Trades in the exchange's state (kept across restarts)"
    );
    describe_gauge!("roomcast_arena_accounts", "Open arena accounts");
    describe_histogram!(
        "roomcast_publish_fanout_seconds",
        Unit::Seconds,
        "Time to sequence, store and fan out one publish"
    );
    describe_histogram!(
        "roomcast_history_append_seconds",
        Unit::Seconds,
        "Time of the history append call on the publish path"
    );
    describe_counter!(
        "roomcast_pending_auth_refused_total",
        "Upgrades refused because too many connections were still authenticating"
    );
    describe_counter!(
        "roomcast_sessions_expired_total",
        "Sessions closed because their token expired"
    );
    describe_counter!(
        "roomcast_token_refreshes_total",
        "In-band token refreshes, by result (ok, refused)"
    );
}

/// `GET /metrics` in Prometheus text format.
pub(crate) async fn render(State(state): State<AppState>) -> impl IntoResponse {
    let Some(handle) = install() else {
        return (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder unavailable",
        )
            .into_response();
    };
    let hub = &state.hub;
    let s = hub.stats();
    let get = HubStats::get;
    let rooms = hub.rooms();
    metrics::gauge!("roomcast_open_connections").set(hub.connection_count() as f64);
    metrics::gauge!("roomcast_rooms").set(rooms.len() as f64);
    metrics::gauge!("roomcast_subscriptions")
        .set(rooms.iter().map(|(_, n)| *n as f64).sum::<f64>());
    metrics::counter!("roomcast_connections_total").absolute(get(&s.connections_total));
    metrics::counter!("roomcast_received_messages_total").absolute(get(&s.messages_in));
    metrics::counter!("roomcast_received_bytes_total").absolute(get(&s.bytes_in));
    metrics::counter!("roomcast_deliveries_total").absolute(get(&s.deliveries));
    let (frames_out, bytes_out) = hub.outbound_totals();
    metrics::counter!("roomcast_sent_messages_total").absolute(frames_out);
    metrics::counter!("roomcast_sent_bytes_total").absolute(bytes_out);
    metrics::counter!("roomcast_publishes_total").absolute(get(&s.publishes));
    metrics::counter!("roomcast_slow_consumer_disconnects_total").absolute(get(&s.slow_consumers));
    metrics::counter!("roomcast_dropped_oldest_total").absolute(get(&s.dropped_oldest));
    metrics::counter!("roomcast_evicted_total").absolute(get(&s.evicted));
    metrics::counter!("roomcast_superseded_total").absolute(get(&s.superseded));
    metrics::counter!("roomcast_replayed_events_total").absolute(get(&s.replayed));
    metrics::counter!("roomcast_broker_errors_total").absolute(get(&s.broker_errors));
    let history = hub.history();
    metrics::gauge!("roomcast_history_store_failed").set(if history.writable().is_err() {
        1.0
    } else {
        0.0
    });
    metrics::counter!("roomcast_history_write_errors_total").absolute(history.write_errors());
    if let Some(arena) = &state.arena {
        let a = arena.stats();
        metrics::counter!("roomcast_arena_orders_accepted_total").absolute(a.orders_accepted);
        metrics::counter!("roomcast_arena_orders_rejected_total").absolute(a.orders_rejected);
        metrics::counter!("roomcast_arena_trades_total").absolute(a.trades);
        metrics::gauge!("roomcast_arena_accounts").set(a.accounts as f64);
    }
    let body = handle.render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

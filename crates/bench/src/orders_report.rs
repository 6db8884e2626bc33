//! The figures of an `orders` run ([`OrdersResults`]) and their rows in the summary table.
//! Kept apart from [`crate::report`] so that file stays about the figures every scenario
//! shares.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::report::Latency;

/// Order-entry figures. Orders count when sent inside the measured time; market
/// deliveries when received inside it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OrdersResults {
    /// Collectives trading.
    pub collectives: u64,
    /// Orders streams (`/ws/{id}/orders`) open when the load started.
    pub order_streams: u64,
    /// Keep-alive HTTP connections sending orders.
    pub http_connections: u64,
    /// Orders per HTTP request (1: `POST /api/v1/orders`; more: `/api/v1/orders/batch`).
    pub orders_per_request: u64,
    /// Orders sent.
    pub sent: u64,
    /// Orders the server accepted (HTTP 201).
    pub accepted: u64,
    /// `accepted / measured_seconds`.
    pub accepted_per_sec: f64,
    /// Orders refused with HTTP 422, by `reason`.
    pub rejected: BTreeMap<String, u64>,
    /// Requests that failed otherwise, by status or error.
    pub failed: BTreeMap<String, u64>,
    /// HTTP round trip of an order: request written → response read.
    pub request_latency_us: Latency,
    /// Accepted orders that filled on arrival (the response says `filled`): each owes one
    /// `order_filled` event with `liquidity` `taker` on its collective's orders stream.
    pub taker_fills_expected: u64,
    /// Those events received.
    pub taker_fills_received: u64,
    /// `expected - received` after the drain.
    pub lost: u64,
    /// Order sent → its own `order_filled` event (taker side) on the orders stream.
    pub order_to_fill_latency_us: Latency,
    /// Every event read on the orders streams during the measured time.
    pub order_events: u64,
    /// Market subscribers asked for.
    pub market_subscribers: u64,
    /// Market subscribers subscribed when the load started.
    pub market_connected: u64,
    /// Events received by all market subscribers during the measured time.
    pub market_deliveries: u64,
    /// `market_deliveries / measured_seconds`.
    pub market_deliveries_per_sec: f64,
    /// Setup failures (streams and subscribers) by reason.
    pub connect_failures: BTreeMap<String, u64>,
    /// Connections (HTTP, streams, subscribers) the server closed during the run.
    pub dropped: u64,
}

fn map(m: &BTreeMap<String, u64>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The summary rows of an orders run.
pub(crate) fn orders_rows(r: &OrdersResults, rows: &mut Vec<(&str, String)>) {
    rows.push((
        "collectives",
        format!(
            "{} ({} orders streams, {} http connections, {} per request)",
            r.collectives, r.order_streams, r.http_connections, r.orders_per_request
        ),
    ));
    rows.push((
        "orders",
        format!(
            "{} sent, {} accepted ({:.0}/s)",
            r.sent, r.accepted, r.accepted_per_sec
        ),
    ));
    if !r.rejected.is_empty() {
        rows.push(("rejected", map(&r.rejected)));
    }
    if !r.failed.is_empty() {
        rows.push(("failed", map(&r.failed)));
    }
    rows.push(("order round trip", r.request_latency_us.summary()));
    rows.push((
        "taker fills",
        format!(
            "{} expected, {} received, {} lost",
            r.taker_fills_expected, r.taker_fills_received, r.lost
        ),
    ));
    rows.push(("order→filled", r.order_to_fill_latency_us.summary()));
    rows.push((
        "market",
        format!(
            "{} of {} subscribers, {} deliveries ({:.0}/s)",
            r.market_connected,
            r.market_subscribers,
            r.market_deliveries,
            r.market_deliveries_per_sec
        ),
    ));
    if !r.connect_failures.is_empty() {
        rows.push(("connect failures", map(&r.connect_failures)));
    }
    if r.dropped > 0 {
        rows.push(("dropped", r.dropped.to_string()));
    }
}

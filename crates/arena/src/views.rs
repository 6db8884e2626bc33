//! The arena's wire types: [`OrderRequest`] (what a client sends) and the views it gets
//! back and sees in events. Every amount is a decimal string (see [`crate::decimal`]); the
//! types derive `Serialize` and `utoipa::ToSchema` so the server can publish an OpenAPI
//! document generated from them.

use roomcast_engine::auth::CollectiveId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::matching;

/// Buy or sell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrderSide {
    /// Buy.
    Buy,
    /// Sell.
    Sell,
}

impl From<OrderSide> for matching::Side {
    fn from(s: OrderSide) -> matching::Side {
        match s {
            OrderSide::Buy => matching::Side::Buy,
            OrderSide::Sell => matching::Side::Sell,
        }
    }
}

impl From<matching::Side> for OrderSide {
    fn from(s: matching::Side) -> OrderSide {
        match s {
            matching::Side::Buy => OrderSide::Buy,
            matching::Side::Sell => OrderSide::Sell,
        }
    }
}

/// Limit or market.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrderType {
    /// Trades at its price or better; a GTC remainder rests.
    Limit,
    /// Trades at any price; never rests (GTC is treated as IOC).
    Market,
}

/// How long the unfilled part of an order lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TimeInForce {
    /// Good till cancelled (the default).
    #[default]
    Gtc,
    /// Immediate or cancel.
    Ioc,
    /// Fill or kill.
    Fok,
}

impl From<TimeInForce> for matching::TimeInForce {
    fn from(t: TimeInForce) -> matching::TimeInForce {
        match t {
            TimeInForce::Gtc => matching::TimeInForce::Gtc,
            TimeInForce::Ioc => matching::TimeInForce::Ioc,
            TimeInForce::Fok => matching::TimeInForce::Fok,
        }
    }
}

/// A new order, as `POST /api/v1/orders` accepts it. Amounts are decimal strings; JSON
/// numbers are refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderRequest {
    /// The instrument, e.g. `BTC-USD`.
    pub symbol: String,
    /// `buy` or `sell`.
    pub side: OrderSide,
    /// `limit` or `market`.
    #[serde(rename = "type")]
    pub order_type: OrderType,
    /// Quantity, a decimal string aligned to the lot size.
    #[schema(example = "0.5")]
    pub quantity: String,
    /// Limit price, a decimal string aligned to the tick size; limit orders only.
    #[serde(default)]
    #[schema(example = "101.25")]
    pub price: Option<String>,
    /// `gtc` (default), `ioc` or `fok`.
    #[serde(default)]
    pub time_in_force: TimeInForce,
    /// Up to 64 characters of `[A-Za-z0-9_.:-]`; the same id from the same collective
    /// returns the first order instead of placing a second one.
    #[serde(default)]
    pub client_order_id: Option<String>,
}

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Resting, nothing filled yet.
    Open,
    /// Resting, some filled.
    PartiallyFilled,
    /// Completely filled.
    Filled,
    /// Cancelled (possibly after partial fills); see `cancel_reason`.
    Cancelled,
}

/// Why an order was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    /// Its owner cancelled it.
    Requested,
    /// IOC, FOK or market remainder that could not fill.
    Unfilled,
    /// A newer order of the same collective would have traded with it (self-trade
    /// prevention cancels the resting order).
    SelfTrade,
}

/// An order as the API reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrderView {
    /// The exchange's id for it.
    pub order_id: u64,
    /// The client's id for it, if given.
    pub client_order_id: Option<String>,
    /// Its owner.
    #[schema(value_type = String)]
    pub collective_id: CollectiveId,
    /// The instrument.
    pub symbol: String,
    /// Buy or sell.
    pub side: OrderSide,
    /// Limit or market.
    #[serde(rename = "type")]
    pub order_type: OrderType,
    /// Time in force as applied (a market order is `ioc` or `fok`).
    pub time_in_force: TimeInForce,
    /// Limit price (none for market orders).
    pub price: Option<String>,
    /// Quantity ordered.
    pub quantity: String,
    /// Quantity filled so far.
    pub filled_quantity: String,
    /// Quantity still open (0 once filled or cancelled).
    pub remaining_quantity: String,
    /// Volume-weighted fill price, truncated to the tick precision; none before a fill.
    pub average_fill_price: Option<String>,
    /// Status.
    pub status: OrderStatus,
    /// Why it was cancelled, when it was.
    pub cancel_reason: Option<CancelReason>,
    /// Cash still reserved for it (buys).
    pub reserved_cash: String,
    /// Creation time, Unix milliseconds.
    pub created_at_ms: i64,
    /// Last change, Unix milliseconds.
    pub updated_at_ms: i64,
}

/// One fill of an order, carried by `order_partial` / `order_filled` events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FillView {
    /// The trade's id (per exchange, increasing).
    pub trade_id: u64,
    /// Trade price.
    pub price: String,
    /// Quantity traded.
    pub quantity: String,
    /// `maker` (the order was resting) or `taker`.
    pub liquidity: Liquidity,
}

/// Which side of a trade an order was on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Liquidity {
    /// Resting order.
    Maker,
    /// Incoming order.
    Taker,
}

/// The data of an order event: the order after the change, plus the fill that caused it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrderEventView {
    /// The order, absolute values.
    #[serde(flatten)]
    pub order: OrderView,
    /// The fill (`order_partial`, `order_filled` only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub fill: Option<FillView>,
}

/// The data of an `order_rejected` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RejectView {
    /// The machine-readable reason, e.g. `insufficient_funds`.
    pub reason: String,
    /// A human-readable explanation.
    pub message: String,
    /// The request's client order id.
    pub client_order_id: Option<String>,
    /// The request's symbol.
    pub symbol: String,
    /// The request's side.
    pub side: OrderSide,
    /// The request's type.
    #[serde(rename = "type")]
    pub order_type: OrderType,
    /// The request's quantity.
    pub quantity: String,
    /// The request's price.
    pub price: Option<String>,
}

/// Cash in one currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BalanceView {
    /// The currency.
    pub currency: String,
    /// Free plus reserved.
    pub total: String,
    /// Held for open buy orders.
    pub reserved: String,
    /// Free to use.
    pub available: String,
    /// Realised profit and loss of the instruments quoted in it.
    pub realised_pnl: String,
}

/// A position in one instrument.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PositionView {
    /// The instrument.
    pub symbol: String,
    /// Held quantity (negative when short), free plus reserved.
    pub quantity: String,
    /// Held for open sell orders.
    pub reserved: String,
    /// Free to sell.
    pub available: String,
    /// Average entry price of the open quantity (truncated to tick precision).
    pub average_entry_price: Option<String>,
    /// Realised profit and loss in the quote currency.
    pub realised_pnl: String,
}

/// Equity in one currency: cash plus positions marked to their last trade price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EquityView {
    /// The currency.
    pub currency: String,
    /// Cash total plus the value of every position quoted in it at its last trade price
    /// (positions of a symbol that never traded count at their entry cost).
    pub equity: String,
}

/// A collective's portfolio.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PortfolioView {
    /// Whose.
    #[schema(value_type = String)]
    pub collective_id: CollectiveId,
    /// Cash per currency.
    pub balances: Vec<BalanceView>,
    /// Positions per instrument.
    pub positions: Vec<PositionView>,
    /// Marked-to-market equity per currency (derived from the market; not updated by
    /// portfolio events).
    pub equity: Vec<EquityView>,
}

/// One instrument as `GET /api/v1/markets` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MarketView {
    /// Symbol.
    pub symbol: String,
    /// Quote currency.
    pub quote_currency: String,
    /// Price increment.
    pub tick_size: String,
    /// Quantity increment.
    pub lot_size: String,
    /// Largest order quantity.
    pub max_order_size: String,
    /// `open` or `closed`.
    pub status: MarketStatus,
    /// Last trade price.
    pub last_price: Option<String>,
    /// Best bid price.
    pub best_bid: Option<String>,
    /// Best ask price.
    pub best_ask: Option<String>,
    /// Quantity traded since the exchange's state began.
    pub volume: String,
}

/// Whether a market accepts orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MarketStatus {
    /// Accepting orders.
    Open,
    /// Refusing new orders (`market_closed`); cancels still work.
    Closed,
}

/// One aggregated price level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LevelView {
    /// Price.
    pub price: String,
    /// Total resting quantity; `"0"` in a `book_update` means the level is gone.
    pub quantity: String,
}

/// An order book's levels, best first (`book_snapshot` data, `GET .../book`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BookView {
    /// Symbol.
    pub symbol: String,
    /// Bids, highest first.
    pub bids: Vec<LevelView>,
    /// Asks, lowest first.
    pub asks: Vec<LevelView>,
}

/// One trade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TradeView {
    /// Trade id.
    pub trade_id: u64,
    /// Symbol.
    pub symbol: String,
    /// Price (the resting order's).
    pub price: String,
    /// Quantity.
    pub quantity: String,
    /// The incoming order's side.
    pub taker_side: OrderSide,
    /// When, Unix milliseconds.
    pub timestamp_ms: i64,
}

/// Best prices and last trade (`ticker` event data).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TickerView {
    /// Symbol.
    pub symbol: String,
    /// Last trade price.
    pub last_price: Option<String>,
    /// Best bid price.
    pub best_bid: Option<String>,
    /// Best ask price.
    pub best_ask: Option<String>,
    /// Quantity traded since the exchange's state began.
    pub volume: String,
}

/// Open orders (`orders_snapshot` data).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrdersSnapshotView {
    /// Whose.
    #[schema(value_type = String)]
    pub collective_id: CollectiveId,
    /// Open orders, oldest first.
    pub orders: Vec<OrderView>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_take_decimal_strings_only_and_no_unknown_fields() {
        let ok: OrderRequest = serde_json::from_str(
            r#"{"symbol":"BTC-USD","side":"buy","type":"limit","quantity":"0.5","price":"101.25"}"#,
        )
        .expect("valid");
        assert_eq!(ok.time_in_force, TimeInForce::Gtc);
        assert_eq!(ok.client_order_id, None);
        for bad in [
            r#"{"symbol":"BTC-USD","side":"buy","type":"limit","quantity":0.5,"price":"1"}"#,
            r#"{"symbol":"BTC-USD","side":"buy","type":"limit","quantity":"1","price":101.25}"#,
            r#"{"symbol":"BTC-USD","side":"buy","type":"limit","quantity":"1","price":"1","extra":1}"#,
            r#"{"symbol":"BTC-USD","side":"long","type":"limit","quantity":"1","price":"1"}"#,
            r#"{"symbol":"BTC-USD","side":"buy","type":"stop","quantity":"1"}"#,
            r#"{"symbol":"BTC-USD","side":"buy","type":"market","quantity":"1","time_in_force":"day"}"#,
            r#"{"side":"buy","type":"market","quantity":"1"}"#,
        ] {
            assert!(serde_json::from_str::<OrderRequest>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn order_events_flatten_the_order_and_add_the_fill() {
        let view = OrderEventView {
            order: OrderView {
                order_id: 1,
                client_order_id: None,
                collective_id: CollectiveId::parse("acme").expect("id"),
                symbol: "BTC-USD".into(),
                side: OrderSide::Buy,
                order_type: OrderType::Limit,
                time_in_force: TimeInForce::Gtc,
                price: Some("100".into()),
                quantity: "1".into(),
                filled_quantity: "1".into(),
                remaining_quantity: "0".into(),
                average_fill_price: Some("100".into()),
                status: OrderStatus::Filled,
                cancel_reason: None,
                reserved_cash: "0".into(),
                created_at_ms: 1,
                updated_at_ms: 2,
            },
            fill: Some(FillView {
                trade_id: 9,
                price: "100".into(),
                quantity: "1".into(),
                liquidity: Liquidity::Taker,
            }),
        };
        let v = serde_json::to_value(&view).expect("json");
        assert_eq!(v["order_id"], 1);
        assert_eq!(v["type"], "limit");
        assert_eq!(v["status"], "filled");
        assert_eq!(v["fill"]["liquidity"], "taker");
    }
}

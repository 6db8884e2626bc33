//! Local state of the arena's streams. Events carry absolute values (a level's new
//! quantity, an order's new view, a balance's new amounts), so applying one is a replace;
//! a snapshot replaces the whole state in one step.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::decimal::DecimalKey;

/// A state built from one kind of stream.
pub trait ArenaState: Default {
    /// The snapshot type that (re)initialises it, e.g. `book_snapshot`.
    const SNAPSHOT: &'static str;
    /// Replaces everything with a snapshot's `data`.
    fn replace(&mut self, data: &Value);
    /// Applies one event (type and `data`); unknown types are ignored.
    fn apply(&mut self, kind: &str, data: &Value);
}

/// One market's order book: price → quantity (decimal strings), per side.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BookState {
    bids: BTreeMap<DecimalKey, (String, String)>,
    asks: BTreeMap<DecimalKey, (String, String)>,
    /// The last trade (`data` of the latest `trade` event).
    pub last_trade: Option<Value>,
}

impl BookState {
    /// Bids, best (highest) first, as (price, quantity).
    pub fn bids(&self) -> impl Iterator<Item = (&str, &str)> {
        self.bids
            .values()
            .rev()
            .map(|(p, q)| (p.as_str(), q.as_str()))
    }

    /// Asks, best (lowest) first, as (price, quantity).
    pub fn asks(&self) -> impl Iterator<Item = (&str, &str)> {
        self.asks.values().map(|(p, q)| (p.as_str(), q.as_str()))
    }

    /// `{"bids":[{price,quantity}..],"asks":[..]}`, the levels of
    /// `GET /api/v1/markets/{symbol}/book`.
    pub fn to_json(&self) -> Value {
        let side = |it: Box<dyn Iterator<Item = (&str, &str)> + '_>| {
            it.map(|(p, q)| json!({"price": p, "quantity": q}))
                .collect::<Vec<_>>()
        };
        json!({"bids": side(Box::new(self.bids())), "asks": side(Box::new(self.asks()))})
    }

    fn set_levels(book: &mut BTreeMap<DecimalKey, (String, String)>, levels: &Value) {
        for level in levels.as_array().into_iter().flatten() {
            let (Some(price), Some(qty)) = (
                level.get("price").and_then(Value::as_str),
                level.get("quantity").and_then(Value::as_str),
            ) else {
                continue;
            };
            let (Some(key), Some(q)) = (DecimalKey::parse(price), DecimalKey::parse(qty)) else {
                continue;
            };
            if q.is_zero() {
                book.remove(&key);
            } else {
                book.insert(key, (price.to_owned(), qty.to_owned()));
            }
        }
    }
}

impl ArenaState for BookState {
    const SNAPSHOT: &'static str = "book_snapshot";

    fn replace(&mut self, data: &Value) {
        self.bids.clear();
        self.asks.clear();
        Self::set_levels(&mut self.bids, &data["bids"]);
        Self::set_levels(&mut self.asks, &data["asks"]);
    }

    fn apply(&mut self, kind: &str, data: &Value) {
        match kind {
            "book_update" => {
                Self::set_levels(&mut self.bids, &data["bids"]);
                Self::set_levels(&mut self.asks, &data["asks"]);
            }
            "trade" => self.last_trade = Some(data.clone()),
            _ => {}
        }
    }
}

/// A collective's orders: order id → latest view.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct OrdersState {
    /// Every order seen, by id (filled and cancelled ones too).
    pub orders: BTreeMap<u64, Value>,
    /// The `data` of recent `order_rejected` events (at most 100).
    pub rejected: Vec<Value>,
}

impl OrdersState {
    /// The orders still open or partially filled.
    pub fn open(&self) -> impl Iterator<Item = (&u64, &Value)> {
        self.orders
            .iter()
            .filter(|(_, o)| o["status"] == "open" || o["status"] == "partially_filled")
    }

    fn put(&mut self, order: &Value) {
        if let Some(id) = order.get("order_id").and_then(Value::as_u64) {
            let mut view = order.clone();
            if let Some(map) = view.as_object_mut() {
                map.remove("fill");
            }
            self.orders.insert(id, view);
        }
    }
}

impl ArenaState for OrdersState {
    const SNAPSHOT: &'static str = "orders_snapshot";

    fn replace(&mut self, data: &Value) {
        self.orders.clear();
        for order in data["orders"].as_array().into_iter().flatten() {
            self.put(order);
        }
    }

    fn apply(&mut self, kind: &str, data: &Value) {
        match kind {
            "order_created" | "order_partial" | "order_filled" | "order_cancelled" => {
                self.put(data)
            }
            "order_rejected" => {
                self.rejected.push(data.clone());
                if self.rejected.len() > 100 {
                    self.rejected.remove(0);
                }
            }
            _ => {}
        }
    }
}

/// A collective's balances (by currency) and positions (by symbol).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PortfolioState {
    /// Currency → balance view (`available`, `reserved`, … as decimal strings).
    pub balances: BTreeMap<String, Value>,
    /// Symbol → position view.
    pub positions: BTreeMap<String, Value>,
}

impl PortfolioState {
    /// The available amount of a currency, as its decimal string.
    pub fn available(&self, currency: &str) -> Option<&str> {
        self.balances.get(currency)?.get("available")?.as_str()
    }
}

fn keyed(list: &Value, key: &str) -> BTreeMap<String, Value> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| Some((v.get(key)?.as_str()?.to_owned(), v.clone())))
        .collect()
}

impl ArenaState for PortfolioState {
    const SNAPSHOT: &'static str = "portfolio_snapshot";

    fn replace(&mut self, data: &Value) {
        self.balances = keyed(&data["balances"], "currency");
        self.positions = keyed(&data["positions"], "symbol");
    }

    fn apply(&mut self, kind: &str, data: &Value) {
        let (map, key) = match kind {
            "balance_updated" => (&mut self.balances, "currency"),
            "position_updated" => (&mut self.positions, "symbol"),
            _ => return,
        };
        if let Some(k) = data.get(key).and_then(Value::as_str) {
            map.insert(k.to_owned(), data.clone());
        }
    }
}

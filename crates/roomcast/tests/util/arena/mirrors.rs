//! Client-side state rebuilt from a stream: a snapshot, then every event with the next
//! sequence of its room applied on top (absolute values, never deltas). A gap or a double
//! fails the test; the mirrors then compare exactly with the REST API.

use std::collections::BTreeMap;

use serde_json::Value;

use super::units;

/// Checks that `event` is the next one of its room after `last` and advances `last`.
fn next_in_room(last: &mut u64, event: &Value) {
    let seq = event["sequence"]
        .as_u64()
        .unwrap_or_else(|| panic!("an event with a sequence: {event}"));
    assert_eq!(seq, *last + 1, "gap or double before {event}");
    *last = seq;
}

/// An order view as events carry it, without the event's `fill`.
pub fn order_of(data: &Value) -> Value {
    let mut o = data.clone();
    if let Some(map) = o.as_object_mut() {
        map.remove("fill");
    }
    o
}

/// A collective's orders rebuilt from `orders_snapshot` + order events.
#[derive(Debug, Default)]
pub struct OrdersMirror {
    pub room: String,
    pub sequence: u64,
    /// Order id → latest view.
    pub orders: BTreeMap<u64, Value>,
    /// Every event applied, in order.
    pub events: Vec<Value>,
}

impl OrdersMirror {
    pub fn new(snapshot: &Value) -> OrdersMirror {
        assert_eq!(snapshot["type"], "orders_snapshot", "{snapshot}");
        let mut m = OrdersMirror {
            room: snapshot["room"].as_str().expect("room").to_owned(),
            sequence: snapshot["sequence"].as_u64().expect("sequence"),
            ..OrdersMirror::default()
        };
        for o in snapshot["data"]["orders"].as_array().expect("orders") {
            m.orders
                .insert(o["order_id"].as_u64().expect("id"), o.clone());
        }
        m
    }

    pub fn apply(&mut self, event: &Value) {
        assert_eq!(event["room"], self.room.as_str(), "{event}");
        next_in_room(&mut self.sequence, event);
        self.events.push(event.clone());
        let ty = event["type"].as_str().expect("type");
        match ty {
            "order_rejected" => {}
            "order_created" | "order_partial" | "order_filled" | "order_cancelled" => {
                let o = order_of(&event["data"]);
                self.orders.insert(o["order_id"].as_u64().expect("id"), o);
            }
            other => panic!("unexpected event {other} on the orders stream: {event}"),
        }
    }

    /// The orders still open, by id.
    pub fn open(&self) -> BTreeMap<u64, Value> {
        self.orders
            .iter()
            .filter(|(_, o)| o["status"] == "open" || o["status"] == "partially_filled")
            .map(|(id, o)| (*id, o.clone()))
            .collect()
    }
}

/// A collective's balances and positions rebuilt from `portfolio_snapshot` + updates.
#[derive(Debug, Default)]
pub struct PortfolioMirror {
    pub room: String,
    pub sequence: u64,
    pub balances: BTreeMap<String, Value>,
    pub positions: BTreeMap<String, Value>,
}

impl PortfolioMirror {
    pub fn new(snapshot: &Value) -> PortfolioMirror {
        assert_eq!(snapshot["type"], "portfolio_snapshot", "{snapshot}");
        let mut m = PortfolioMirror {
            room: snapshot["room"].as_str().expect("room").to_owned(),
            sequence: snapshot["sequence"].as_u64().expect("sequence"),
            ..PortfolioMirror::default()
        };
        m.set_from(&snapshot["data"]);
        m
    }

    fn set_from(&mut self, portfolio: &Value) {
        self.balances = keyed(&portfolio["balances"], "currency");
        self.positions = keyed(&portfolio["positions"], "symbol");
    }

    pub fn apply(&mut self, event: &Value) {
        assert_eq!(event["room"], self.room.as_str(), "{event}");
        next_in_room(&mut self.sequence, event);
        let data = &event["data"];
        match event["type"].as_str().expect("type") {
            "balance_updated" => {
                let k = data["currency"].as_str().expect("currency").to_owned();
                self.balances.insert(k, data.clone());
            }
            "position_updated" => {
                let k = data["symbol"].as_str().expect("symbol").to_owned();
                self.positions.insert(k, data.clone());
            }
            other => panic!("unexpected event {other} on the portfolio stream: {event}"),
        }
    }

    /// Asserts the mirror equals a REST portfolio (equity is not streamed).
    pub fn assert_matches(&self, rest: &Value) {
        assert_eq!(
            self.balances,
            keyed(&rest["balances"], "currency"),
            "balances"
        );
        assert_eq!(
            self.positions,
            keyed(&rest["positions"], "symbol"),
            "positions"
        );
    }
}

fn keyed(list: &Value, key: &str) -> BTreeMap<String, Value> {
    list.as_array()
        .unwrap_or_else(|| panic!("an array: {list}"))
        .iter()
        .map(|v| (v[key].as_str().expect("key").to_owned(), v.clone()))
        .collect()
}

/// One market's book rebuilt from `book_snapshot` + `book_update`s; trades and tickers
/// are kept as they come.
#[derive(Debug, Default)]
pub struct BookMirror {
    pub room: String,
    pub sequence: u64,
    /// Price (1e-8 units) → quantity string.
    pub bids: BTreeMap<i128, String>,
    pub asks: BTreeMap<i128, String>,
    pub trades: Vec<Value>,
    pub tickers: Vec<Value>,
    pub events: Vec<Value>,
}

impl BookMirror {
    pub fn new(snapshot: &Value) -> BookMirror {
        assert_eq!(snapshot["type"], "book_snapshot", "{snapshot}");
        let (bids, asks) = levels(&snapshot["data"]);
        BookMirror {
            room: snapshot["room"].as_str().expect("room").to_owned(),
            sequence: snapshot["sequence"].as_u64().expect("sequence"),
            bids,
            asks,
            ..BookMirror::default()
        }
    }

    pub fn apply(&mut self, event: &Value) {
        assert_eq!(event["room"], self.room.as_str(), "{event}");
        next_in_room(&mut self.sequence, event);
        self.events.push(event.clone());
        let data = &event["data"];
        match event["type"].as_str().expect("type") {
            "book_update" => {
                for (side, book) in [("bids", &mut self.bids), ("asks", &mut self.asks)] {
                    for l in data[side].as_array().expect("levels") {
                        let price = units(&l["price"]);
                        if units(&l["quantity"]) == 0 {
                            assert!(
                                book.remove(&price).is_some(),
                                "removed a missing level: {event}"
                            );
                        } else {
                            book.insert(price, l["quantity"].as_str().expect("qty").to_owned());
                        }
                    }
                }
            }
            "trade" => self.trades.push(data.clone()),
            "ticker" => self.tickers.push(data.clone()),
            other => panic!("unexpected event {other} on a market room: {event}"),
        }
    }

    /// Asserts the mirror equals a REST book (full depth) and that neither is crossed.
    pub fn assert_matches(&self, rest: &Value) {
        let (bids, asks) = levels(rest);
        assert_eq!(self.bids, bids, "bids");
        assert_eq!(self.asks, asks, "asks");
        if let (Some(bid), Some(ask)) = (bids.keys().next_back(), asks.keys().next()) {
            assert!(bid < ask, "crossed book {bid} >= {ask}");
        }
    }
}

/// A book's (bids, asks) as price (1e-8 units) → quantity string.
pub fn levels(book: &Value) -> (BTreeMap<i128, String>, BTreeMap<i128, String>) {
    let side = |name: &str| {
        book[name]
            .as_array()
            .unwrap_or_else(|| panic!("levels in {book}"))
            .iter()
            .map(|l| {
                (
                    units(&l["price"]),
                    l["quantity"].as_str().expect("qty").to_owned(),
                )
            })
            .collect::<BTreeMap<_, _>>()
    };
    (side("bids"), side("asks"))
}

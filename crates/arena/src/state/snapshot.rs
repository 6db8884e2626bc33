//! [`StateSnapshot`]: the exchange state in a serialisable form, and the rebuild from it.
//!
//! The books are not stored: every open order is, and an order book is rebuilt by resting
//! the open orders again in id order. That reproduces the exact book, time priority
//! included, because an order only ever rests at the end of its own placement, so within a
//! price level the queue is always in increasing id order.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ExchangeState, MarketData, OrderRecord};
use crate::account::Account;
use crate::matching::{NewOrder, OrderId, Price, Quantity, TimeInForce};

/// The serialisable exchange state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateSnapshot {
    /// Accounts.
    pub accounts: Vec<Account>,
    /// Order records (open and recent), by id.
    pub orders: Vec<OrderRecord>,
    /// Market data per symbol.
    pub markets: BTreeMap<String, MarketData>,
    /// Next order id.
    pub next_order_id: u64,
    /// Next trade id.
    pub next_trade_id: u64,
    /// Next account handle.
    pub next_handle: u64,
}

/// The state's [`StateSnapshot`] JSON, serialised straight from the state: the same bytes
/// as `serde_json::to_vec(&state.snapshot())` without copying every record first (the
/// copy of a few MB took 10-20 ms).
#[derive(Serialize)]
struct SnapshotRef<'a> {
    accounts: Vec<&'a Account>,
    orders: Vec<&'a OrderRecord>,
    markets: &'a BTreeMap<String, MarketData>,
    next_order_id: u64,
    next_trade_id: u64,
    next_handle: u64,
}

impl ExchangeState {
    /// The JSON of [`ExchangeState::snapshot`], without the copy.
    ///
    /// # Errors
    /// The serialiser's error (a map key that is not a string cannot occur here).
    pub fn snapshot_json(&self) -> serde_json::Result<Vec<u8>> {
        let mut orders: Vec<&OrderRecord> = self.orders.values().collect();
        orders.sort_unstable_by_key(|o| o.id);
        serde_json::to_vec(&SnapshotRef {
            accounts: self.accounts.values().collect(),
            orders,
            markets: &self.markets,
            next_order_id: self.next_order_id,
            next_trade_id: self.next_trade_id,
            next_handle: self.next_handle,
        })
    }

    /// The state in serialisable form.
    pub fn snapshot(&self) -> StateSnapshot {
        let mut orders: Vec<OrderRecord> = self.orders.values().cloned().collect();
        orders.sort_unstable_by_key(|o| o.id);
        StateSnapshot {
            accounts: self.accounts.values().cloned().collect(),
            orders,
            markets: self.markets.clone(),
            next_order_id: self.next_order_id,
            next_trade_id: self.next_trade_id,
            next_handle: self.next_handle,
        }
    }

    /// Replaces this (empty) state's contents with a snapshot's.
    ///
    /// # Errors
    /// A description of what does not fit (an unknown symbol, an order the book refuses).
    pub fn restore(&mut self, snap: StateSnapshot) -> Result<(), String> {
        for account in snap.accounts {
            self.by_handle.insert(account.handle, account.id.clone());
            self.accounts.insert(account.id.clone(), account);
        }
        let mut events = Vec::new();
        for order in snap.orders {
            if order.is_open() {
                let book = self.books.get_mut(&order.symbol).ok_or_else(|| {
                    format!("order {} is for unknown symbol {}", order.id, order.symbol)
                })?;
                let handle = self
                    .accounts
                    .get(&order.owner)
                    .map(|a| a.handle)
                    .ok_or_else(|| {
                        format!(
                            "order {} belongs to unknown account {}",
                            order.id, order.owner
                        )
                    })?;
                let price = order
                    .price
                    .ok_or_else(|| format!("open order {} has no price", order.id))?;
                events.clear();
                let new = NewOrder::limit(
                    OrderId(order.id),
                    handle,
                    order.side.into(),
                    Price(price),
                    Quantity(order.remaining()),
                    TimeInForce::Gtc,
                );
                let outcome = book
                    .submit(new, &mut events)
                    .map_err(|e| format!("order {}: {e}", order.id))?;
                if outcome.rested != Quantity(order.remaining()) {
                    return Err(format!(
                        "order {} would trade on rebuild: the snapshot's book is crossed",
                        order.id
                    ));
                }
            }
            self.orders.insert(order.id, order);
        }
        for (symbol, data) in snap.markets {
            if self.markets.contains_key(&symbol) {
                self.markets.insert(symbol, data);
            }
        }
        self.next_order_id = snap.next_order_id;
        self.next_trade_id = snap.next_trade_id;
        self.next_handle = snap.next_handle;
        Ok(())
    }
}

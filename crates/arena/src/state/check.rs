//! The conservation check: the invariants the exchange state must satisfy after any
//! sequence of commands, verified on the recovered state at start-up (the arena refuses to
//! serve a state that fails it) and by the property test after every command.
//!
//! - Per currency, the sum over accounts of cash (free + reserved) equals what was funded;
//!   per symbol, the sum of positions (free + reserved) equals what was funded. Trading
//!   moves cash and quantity between accounts and never creates or destroys them (fees 0).
//! - Reservations are exact: an account's reserved cash equals what its open buy orders
//!   still hold, and its reserved quantity equals the open remainder of its sell orders;
//!   neither is negative, and free cash never is.
//! - Without shorts no position is below what it has reserved.
//! - The books hold exactly the open orders (same remaining quantities) and are not crossed.

use std::collections::BTreeMap;

use super::ExchangeState;
use crate::matching::OrderId;
use crate::views::OrderSide;

impl ExchangeState {
    /// Runs the check. See the module docs.
    ///
    /// # Errors
    /// The first violated invariant, described.
    pub fn check_conservation(&self) -> Result<(), String> {
        let mut cash: BTreeMap<&str, (i128, i128)> = BTreeMap::new();
        let mut qty: BTreeMap<&str, (i128, i128)> = BTreeMap::new();
        for a in self.accounts.values() {
            for (currency, c) in &a.cash {
                let e = cash.entry(currency).or_default();
                e.0 += c.total;
                if c.reserved < 0 || c.available() < 0 {
                    return Err(format!(
                        "{}: {currency} cash {} with {} reserved",
                        a.id, c.total, c.reserved
                    ));
                }
            }
            for (currency, f) in &a.funded_cash {
                cash.entry(currency).or_default().1 += f;
            }
            for (symbol, p) in &a.positions {
                qty.entry(symbol).or_default().0 += p.quantity;
                if p.reserved < 0 || (!self.limits.allow_shorts && p.available() < 0) {
                    return Err(format!(
                        "{}: {symbol} position {} with {} reserved",
                        a.id, p.quantity, p.reserved
                    ));
                }
            }
            for (symbol, f) in &a.funded_positions {
                qty.entry(symbol).or_default().1 += f;
            }
            let mut reserved_cash: BTreeMap<&str, i128> = BTreeMap::new();
            let mut reserved_qty: BTreeMap<&str, i128> = BTreeMap::new();
            for oid in &a.open_orders {
                let Some(o) = self.orders.get(oid) else {
                    return Err(format!("{}: open order {oid} has no record", a.id));
                };
                if !o.is_open() {
                    return Err(format!(
                        "{}: order {oid} is listed open but is {:?}",
                        a.id, o.status
                    ));
                }
                let quote = self
                    .instruments
                    .get(&o.symbol)
                    .map_or("", |i| i.quote.as_str());
                match o.side {
                    OrderSide::Buy => *reserved_cash.entry(quote).or_default() += o.reserved_cash,
                    OrderSide::Sell => {
                        *reserved_qty.entry(&o.symbol).or_default() += i128::from(o.remaining())
                    }
                }
            }
            for (currency, c) in &a.cash {
                let held = reserved_cash.get(currency.as_str()).copied().unwrap_or(0);
                if c.reserved != held {
                    return Err(format!(
                        "{}: {currency} reserved {} but its open buys hold {held}",
                        a.id, c.reserved
                    ));
                }
            }
            for (symbol, p) in &a.positions {
                let held = reserved_qty.get(symbol.as_str()).copied().unwrap_or(0);
                if p.reserved != held {
                    return Err(format!(
                        "{}: {symbol} reserved {} but its open sells hold {held}",
                        a.id, p.reserved
                    ));
                }
            }
        }
        for (currency, (now, funded)) in cash {
            if now != funded {
                return Err(format!(
                    "{currency}: total cash {now} differs from the {funded} funded"
                ));
            }
        }
        for (symbol, (now, funded)) in qty {
            if now != funded {
                return Err(format!(
                    "{symbol}: total quantity {now} differs from the {funded} funded"
                ));
            }
        }
        let mut resting: BTreeMap<&str, usize> = BTreeMap::new();
        for o in self.orders.values().filter(|o| o.is_open()) {
            *resting.entry(&o.symbol).or_default() += 1;
            let in_book = self
                .books
                .get(&o.symbol)
                .and_then(|b| b.order(OrderId(o.id)));
            match in_book {
                Some(r) if r.quantity.0 == o.remaining() => {}
                _ => {
                    return Err(format!(
                        "open order {} is not in the {} book as recorded",
                        o.id, o.symbol
                    ))
                }
            }
        }
        for (symbol, book) in &self.books {
            let open = resting.get(symbol.as_str()).copied().unwrap_or(0);
            if book.len() != open {
                return Err(format!(
                    "{symbol}: the book holds {} orders, the records {open}",
                    book.len()
                ));
            }
            if let (Some((bid, _)), Some((ask, _))) = (book.best_bid(), book.best_ask()) {
                if bid >= ask {
                    return Err(format!("{symbol}: crossed book, bid {bid} >= ask {ask}"));
                }
            }
        }
        Ok(())
    }
}

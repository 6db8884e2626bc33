//! A collective's account: cash per quote currency and a position per instrument, with the
//! arithmetic of reservations, trades, average entry price and realised profit and loss.
//!
//! All amounts are integers: cash in the currency's cash unit, quantities in lots (see
//! [`crate::instrument`]). `total` fields include what is reserved, so conservation is a
//! sum of totals. A position keeps its *cost basis* (the signed cash value of the open
//! quantity at entry) instead of an average price: the average is derived when shown, and
//! closing a whole position releases exactly its basis, so rounding never accumulates.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use roomcast_engine::auth::CollectiveId;
use serde::{Deserialize, Serialize};

use crate::matching::AccountId;

/// Cash in one currency.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cash {
    /// Free plus reserved.
    pub total: i128,
    /// Held for open buy orders (never above `total`).
    pub reserved: i128,
    /// Realised profit and loss of instruments quoted in this currency.
    pub realised_pnl: i128,
}

impl Cash {
    /// What is free to spend.
    pub fn available(&self) -> i128 {
        self.total - self.reserved
    }
}

/// A position in one instrument.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Lots held, free plus reserved; negative when short.
    pub quantity: i128,
    /// Lots held for open sell orders.
    pub reserved: i128,
    /// Signed cash value of the open quantity at its entry prices (same sign as
    /// `quantity`, 0 when flat).
    pub cost_basis: i128,
    /// Realised profit and loss, in cash units of the quote currency.
    pub realised_pnl: i128,
}

impl Position {
    /// What is free to sell.
    pub fn available(&self) -> i128 {
        self.quantity - self.reserved
    }

    /// Applies a trade of `lots` (positive: bought, negative: sold) worth `value` cash units
    /// (positive, an exact multiple of `|lots|`). Returns the realised profit and loss it
    /// produced: reducing a position realises `value of the closed part - its share of the
    /// cost basis` (for a long; the opposite for a short); a trade through zero closes the
    /// old position and opens the rest at the trade price. `None` on arithmetic overflow,
    /// with the position unchanged.
    pub fn apply_trade(&mut self, lots: i128, value: i128) -> Option<i128> {
        let abs = lots.checked_abs()?;
        if abs == 0 {
            return Some(0);
        }
        let unit = value / abs;
        let signed = |n: i128| if lots > 0 { n } else { -n };
        let mut next = self.clone();
        let mut pnl = 0;
        if next.quantity == 0 || (next.quantity > 0) == (lots > 0) {
            next.quantity = next.quantity.checked_add(lots)?;
            next.cost_basis = next.cost_basis.checked_add(signed(value))?;
        } else {
            let held = next.quantity.checked_abs()?;
            let closing = abs.min(held);
            let removed = if closing == held {
                next.cost_basis
            } else {
                match next.cost_basis.checked_mul(closing) {
                    Some(v) => v / held,
                    None => (next.cost_basis / held).checked_mul(closing)?,
                }
            };
            pnl = next
                .quantity
                .signum()
                .checked_mul(unit.checked_mul(closing)?)?
                .checked_sub(removed)?;
            next.cost_basis -= removed;
            next.quantity += signed(closing);
            let rest = abs - closing;
            if rest > 0 {
                next.quantity = signed(rest);
                next.cost_basis = signed(unit.checked_mul(rest)?);
            }
            next.realised_pnl = next.realised_pnl.checked_add(pnl)?;
        }
        *self = next;
        Some(pnl)
    }
}

/// What a collective was funded with when its account opened: starting cash in the
/// primary currency (integer cents) and starting positions in lots.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Funding {
    /// Cash, integer cents of the primary quote currency.
    pub cash_cents: u64,
    /// Positions, lots per symbol.
    pub positions: BTreeMap<String, u64>,
}

/// One collective's account. `handle` is the dense [`AccountId`] the order books use for
/// this collective (interned once, in account-opening order, never reused).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The collective.
    pub id: CollectiveId,
    /// Its handle in the order books.
    pub handle: AccountId,
    /// Cash per currency.
    pub cash: BTreeMap<String, Cash>,
    /// Position per symbol.
    pub positions: BTreeMap<String, Position>,
    /// Cash funded at opening, per currency (for the conservation check).
    pub funded_cash: BTreeMap<String, i128>,
    /// Lots funded at opening, per symbol.
    pub funded_positions: BTreeMap<String, i128>,
    /// Ids of its open orders.
    pub open_orders: BTreeSet<u64>,
    /// Ids of its most recent closed orders, oldest first (bounded).
    pub recent: VecDeque<u64>,
    /// Client order id → order id, for the open and recent orders.
    pub client_ids: HashMap<String, u64>,
}

impl Account {
    /// A new account with nothing in it.
    pub fn new(id: CollectiveId, handle: AccountId) -> Account {
        Account {
            id,
            handle,
            cash: BTreeMap::new(),
            positions: BTreeMap::new(),
            funded_cash: BTreeMap::new(),
            funded_positions: BTreeMap::new(),
            open_orders: BTreeSet::new(),
            recent: VecDeque::new(),
            client_ids: HashMap::new(),
        }
    }

    /// Cash in `currency` (created empty).
    pub fn cash_mut(&mut self, currency: &str) -> &mut Cash {
        self.cash.entry(currency.to_owned()).or_default()
    }

    /// The position in `symbol` (created flat).
    pub fn position_mut(&mut self, symbol: &str) -> &mut Position {
        self.positions.entry(symbol.to_owned()).or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos() -> Position {
        Position::default()
    }

    #[test]
    fn buying_twice_averages_the_entry() {
        let mut p = pos();
        assert_eq!(p.apply_trade(10, 1000), Some(0)); // 10 @ 100
        assert_eq!(p.apply_trade(10, 1200), Some(0)); // 10 @ 120
        assert_eq!((p.quantity, p.cost_basis), (20, 2200)); // avg 110
    }

    #[test]
    fn selling_part_realises_against_the_average() {
        let mut p = pos();
        p.apply_trade(20, 2200);
        assert_eq!(p.apply_trade(-5, 650), Some(650 - 550)); // 5 @ 130, avg 110
        assert_eq!((p.quantity, p.cost_basis, p.realised_pnl), (15, 1650, 100));
        assert_eq!(p.apply_trade(-15, 1500), Some(1500 - 1650)); // close @ 100
        assert_eq!((p.quantity, p.cost_basis, p.realised_pnl), (0, 0, -50));
    }

    #[test]
    fn basis_rounding_never_survives_a_close() {
        let mut p = pos();
        p.apply_trade(3, 10); // not divisible: value per lot is value/abs only for trades
        p.apply_trade(-1, 4);
        p.apply_trade(-2, 8);
        assert_eq!((p.quantity, p.cost_basis), (0, 0));
        assert_eq!(p.realised_pnl, (4 - 3) + (8 - 7));
    }

    #[test]
    fn trading_through_zero_opens_a_short_at_the_trade_price() {
        let mut p = pos();
        p.apply_trade(10, 1000); // 10 @ 100
        assert_eq!(p.apply_trade(-15, 1800), Some(1200 - 1000)); // 15 @ 120
        assert_eq!((p.quantity, p.cost_basis), (-5, -600));
        // cover the short lower: profit
        assert_eq!(p.apply_trade(5, 500), Some(600 - 500));
        assert_eq!((p.quantity, p.cost_basis, p.realised_pnl), (0, 0, 300));
    }

    #[test]
    fn overflow_leaves_the_position_unchanged() {
        let mut p = pos();
        p.apply_trade(1, i128::MAX - 1);
        let before = p.clone();
        assert_eq!(p.apply_trade(1, i128::MAX - 1), None);
        assert_eq!(p, before);
    }
}

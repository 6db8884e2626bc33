//! [`Instrument`]: one tradable symbol with its units, and [`Instruments`], the validated set
//! plus the cash unit of each quote currency.
//!
//! Units: a price is a count of ticks, a quantity a count of lots, cash a count of the quote
//! currency's *cash unit* `10^-cash_scale`, chosen per currency so that every
//! `price × quantity` of its instruments is an exact whole number of cash units: for tick
//! 0.01 and lot 0.0001 the cash unit is 10^-6 USD, and one tick × one lot is
//! `cash_per_tick_lot = 1` unit. The cash scale is at least 2 (starting cash is configured in
//! cents) and at most [`MAX_SCALE`](crate::decimal::MAX_SCALE).

use std::collections::BTreeMap;

use crate::config::{ArenaConfig, ConfigError};
use crate::decimal::{format_units, parse_units, pow10, scale_of, DecimalError, MAX_SCALE};
use crate::matching::{Price, Quantity};

/// Default largest order, in lots.
pub const DEFAULT_MAX_ORDER_LOTS: u64 = 1_000_000;

/// A validated instrument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instrument {
    /// The symbol.
    pub symbol: String,
    /// The quote currency.
    pub quote: String,
    /// The tick size as configured (for listing).
    pub tick_size: String,
    /// The lot size as configured.
    pub lot_size: String,
    /// Decimal places of prices.
    pub price_scale: u32,
    /// Decimal places of quantities.
    pub qty_scale: u32,
    /// One tick in `10^-price_scale` units.
    pub tick_units: i128,
    /// One lot in `10^-qty_scale` units.
    pub lot_units: i128,
    /// Cash units of one tick × one lot.
    pub cash_per_tick_lot: i128,
    /// Decimal places of the quote currency's cash unit.
    pub cash_scale: u32,
    /// Largest order, in lots.
    pub max_order_lots: u64,
    /// Whether orders are accepted.
    pub open: bool,
}

/// Why a price or quantity string was refused (mapped to a reject reason by the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmountError {
    /// Not a positive decimal, or out of range.
    Invalid,
    /// Not a whole number of ticks / lots.
    Misaligned,
}

impl Instrument {
    /// A price string in ticks.
    pub fn parse_price(&self, s: &str) -> Result<Price, AmountError> {
        parse_steps(s, self.price_scale, self.tick_units).map(Price)
    }

    /// A quantity string in lots.
    pub fn parse_quantity(&self, s: &str) -> Result<Quantity, AmountError> {
        parse_steps(s, self.qty_scale, self.lot_units).map(Quantity)
    }

    /// Ticks as a decimal string.
    pub fn format_price(&self, ticks: u64) -> String {
        format_units(
            i128::from(ticks).saturating_mul(self.tick_units),
            self.price_scale,
        )
    }

    /// A signed count of lots as a decimal string.
    pub fn format_quantity(&self, lots: i128) -> String {
        format_units(lots.saturating_mul(self.lot_units), self.qty_scale)
    }

    /// Cash units as a decimal string.
    pub fn format_cash(&self, units: i128) -> String {
        format_units(units, self.cash_scale)
    }

    /// The value of `lots` at `ticks`, in cash units; `None` on overflow.
    pub fn value(&self, ticks: u64, lots: u64) -> Option<i128> {
        i128::from(ticks)
            .checked_mul(i128::from(lots))?
            .checked_mul(self.cash_per_tick_lot)
    }

    /// A price in ticks from a value in cash units per lot (an average), truncated toward
    /// zero to a whole price unit, as a decimal string.
    pub fn format_average_price(&self, value: i128, lots: i128) -> Option<String> {
        if lots == 0 {
            return None;
        }
        // value / (lots * cash_per_tick_lot) ticks = value * tick_units / (lots * cptl) price units
        let num = value.checked_mul(self.tick_units)?;
        let den = lots.checked_mul(self.cash_per_tick_lot)?;
        Some(format_units(num / den, self.price_scale))
    }
}

fn parse_steps(s: &str, scale: u32, step: i128) -> Result<u64, AmountError> {
    let units = match parse_units(s, scale) {
        Ok(u) => u,
        Err(DecimalError::TooPrecise(_)) => return Err(AmountError::Misaligned),
        Err(_) => return Err(AmountError::Invalid),
    };
    if units <= 0 {
        return Err(AmountError::Invalid);
    }
    if units % step != 0 {
        return Err(AmountError::Misaligned);
    }
    u64::try_from(units / step).map_err(|_| AmountError::Invalid)
}

/// Every instrument, by symbol, and the cash scale of each quote currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruments {
    by_symbol: BTreeMap<String, Instrument>,
    /// Symbols in configuration order.
    order: Vec<String>,
    /// Quote currency → cash scale.
    currencies: BTreeMap<String, u32>,
    /// The currency `starting_cash` funds: the first instrument's quote currency.
    primary: String,
}

impl Instruments {
    /// The instrument with this symbol.
    pub fn get(&self, symbol: &str) -> Option<&Instrument> {
        self.by_symbol.get(symbol)
    }

    /// Every instrument in configuration order.
    pub fn iter(&self) -> impl Iterator<Item = &Instrument> {
        self.order.iter().filter_map(|s| self.by_symbol.get(s))
    }

    /// The cash scale of a quote currency.
    pub fn cash_scale(&self, currency: &str) -> Option<u32> {
        self.currencies.get(currency).copied()
    }

    /// Every quote currency.
    pub fn currencies(&self) -> impl Iterator<Item = &str> {
        self.currencies.keys().map(String::as_str)
    }

    /// The currency that `starting_cash` (integer cents) funds.
    pub fn primary_currency(&self) -> &str {
        &self.primary
    }

    /// Cents of the primary currency in its cash units.
    pub fn cents_to_units(&self, cents: u64) -> Option<i128> {
        let scale = self.cash_scale(&self.primary)?;
        i128::from(cents).checked_mul(pow10(scale - 2)?)
    }

    /// Cash units of `currency` as a decimal string.
    pub fn format_cash(&self, currency: &str, units: i128) -> String {
        format_units(units, self.cash_scale(currency).unwrap_or(0))
    }
}

fn valid_symbol(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes().all(|b| {
            b.is_ascii_uppercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-')
        })
}

fn positive(symbol: &str, field: &'static str, value: &str) -> Result<(u32, i128), ConfigError> {
    let bad = || ConfigError::BadSize {
        symbol: symbol.to_owned(),
        field,
        value: value.to_owned(),
    };
    let scale = scale_of(value).map_err(|_| bad())?;
    if scale > MAX_SCALE {
        return Err(bad());
    }
    let units = parse_units(value, scale).map_err(|_| bad())?;
    if units <= 0 || units > i128::from(u64::MAX) {
        return Err(bad());
    }
    Ok((scale, units))
}

impl ArenaConfig {
    /// Checks the configuration and derives every instrument's units.
    ///
    /// # Errors
    /// The first problem found, as a [`ConfigError`].
    pub fn validate(&self) -> Result<Instruments, ConfigError> {
        if self.instruments.is_empty() {
            return Err(ConfigError::NoInstruments);
        }
        for (name, v) in [
            (
                "max_open_orders_per_collective",
                self.max_open_orders_per_collective,
            ),
            ("max_orders_per_book", self.max_orders_per_book),
            (
                "recent_orders_per_collective",
                self.recent_orders_per_collective,
            ),
            ("recent_trades_per_symbol", self.recent_trades_per_symbol),
            ("queue_capacity", self.queue_capacity),
        ] {
            if v == 0 || v > 10_000_000 {
                return Err(ConfigError::BadLimit(name));
            }
        }
        if self.snapshot_every == 0 {
            return Err(ConfigError::BadLimit("snapshot_every"));
        }
        let mut currencies: BTreeMap<String, u32> = BTreeMap::new();
        let mut parsed = Vec::new();
        for ic in &self.instruments {
            if !valid_symbol(&ic.symbol) {
                return Err(ConfigError::BadSymbol(ic.symbol.clone()));
            }
            let q = &ic.quote_currency;
            if q.is_empty()
                || q.len() > 12
                || !q
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            {
                return Err(ConfigError::BadCurrency(q.clone()));
            }
            if parsed
                .iter()
                .any(|(c, ..): &(&crate::config::InstrumentConfig, _, _)| c.symbol == ic.symbol)
            {
                return Err(ConfigError::DuplicateSymbol(ic.symbol.clone()));
            }
            let tick = positive(&ic.symbol, "tick_size", &ic.tick_size)?;
            let lot = positive(&ic.symbol, "lot_size", &ic.lot_size)?;
            let need = (tick.0 + lot.0).max(2);
            if need > MAX_SCALE {
                return Err(ConfigError::TooFine(ic.symbol.clone()));
            }
            let scale = currencies.entry(q.clone()).or_insert(2);
            *scale = (*scale).max(need);
            parsed.push((ic, tick, lot));
        }
        let mut by_symbol = BTreeMap::new();
        let mut order = Vec::new();
        for (ic, (price_scale, tick_units), (qty_scale, lot_units)) in parsed {
            let cash_scale = currencies.get(&ic.quote_currency).copied().unwrap_or(2);
            let too_fine = || ConfigError::TooFine(ic.symbol.clone());
            let cash_per_tick_lot = pow10(cash_scale - price_scale - qty_scale)
                .and_then(|p| p.checked_mul(tick_units))
                .and_then(|v| v.checked_mul(lot_units))
                .ok_or_else(too_fine)?;
            let max_order_lots = match &ic.max_order_size {
                None => DEFAULT_MAX_ORDER_LOTS,
                Some(s) => {
                    let bad = || ConfigError::BadSize {
                        symbol: ic.symbol.clone(),
                        field: "max_order_size",
                        value: s.clone(),
                    };
                    parse_steps(s, qty_scale, lot_units).map_err(|_| bad())?
                }
            };
            // Book sums (max orders × max lots) must fit u64 (see matching::BookLimits).
            if (self.max_orders_per_book as u128) * u128::from(max_order_lots)
                > u128::from(u64::MAX)
            {
                return Err(ConfigError::BadLimit("max_order_size"));
            }
            order.push(ic.symbol.clone());
            by_symbol.insert(
                ic.symbol.clone(),
                Instrument {
                    symbol: ic.symbol.clone(),
                    quote: ic.quote_currency.clone(),
                    tick_size: ic.tick_size.clone(),
                    lot_size: ic.lot_size.clone(),
                    price_scale,
                    qty_scale,
                    tick_units,
                    lot_units,
                    cash_per_tick_lot,
                    cash_scale,
                    max_order_lots,
                    open: ic.open,
                },
            );
        }
        if let Some(demo) = &self.demo {
            if demo.bots == 0 || demo.bots > 100 {
                return Err(ConfigError::BadLimit("demo.bots (at most 100)"));
            }
            if demo.orders_per_second == 0 || demo.orders_per_second > 10_000 {
                return Err(ConfigError::BadLimit(
                    "demo.orders_per_second (at most 10000)",
                ));
            }
            for s in &demo.symbols {
                if !by_symbol.contains_key(s) {
                    return Err(ConfigError::UnknownDemoSymbol(s.clone()));
                }
            }
        }
        let primary = self.instruments[0].quote_currency.clone();
        Ok(Instruments {
            by_symbol,
            order,
            currencies,
            primary,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::InstrumentConfig;

    #[test]
    fn default_units_make_price_times_quantity_exact() {
        let ins = ArenaConfig::default().validate().expect("valid");
        let btc = ins.get("BTC-USD").expect("btc");
        assert_eq!((btc.price_scale, btc.qty_scale, btc.cash_scale), (2, 4, 6));
        assert_eq!(btc.cash_per_tick_lot, 1);
        let eth = ins.get("ETH-USD").expect("eth");
        assert_eq!((eth.cash_scale, eth.cash_per_tick_lot), (6, 10));
        assert_eq!(btc.parse_price("101.25"), Ok(Price(10125)));
        assert_eq!(btc.parse_price("101.255"), Err(AmountError::Misaligned));
        assert_eq!(btc.parse_price("0"), Err(AmountError::Invalid));
        assert_eq!(btc.parse_price("1e3"), Err(AmountError::Invalid));
        assert_eq!(btc.parse_quantity("0.5"), Ok(Quantity(5000)));
        assert_eq!(eth.parse_quantity("0.0005"), Err(AmountError::Misaligned));
        // 0.5 BTC at 101.25 = 50.625 USD = 50_625_000 micro-USD
        assert_eq!(btc.value(10125, 5000), Some(50_625_000));
        assert_eq!(btc.format_cash(50_625_000), "50.625");
        assert_eq!(ins.cents_to_units(12_345), Some(123_450_000));
    }

    #[test]
    fn odd_ticks_are_checked_against_their_step() {
        let c = ArenaConfig {
            instruments: vec![InstrumentConfig::new("X", "0.05", "2")],
            ..ArenaConfig::default()
        };
        let ins = c.validate().expect("valid");
        let x = ins.get("X").expect("x");
        assert_eq!(x.parse_price("1.05"), Ok(Price(21)));
        assert_eq!(x.parse_price("1.02"), Err(AmountError::Misaligned));
        assert_eq!(x.parse_quantity("4"), Ok(Quantity(2)));
        assert_eq!(x.parse_quantity("3"), Err(AmountError::Misaligned));
        assert_eq!(x.format_price(21), "1.05");
        assert_eq!(x.format_quantity(2), "4");
        assert_eq!(x.value(21, 2), Some(21 * 2 * 5 * 2));
        assert_eq!(x.format_cash(x.value(21, 2).unwrap_or(0)), "4.2");
    }

    #[test]
    fn refuses_bad_configs() {
        let with = |ic: InstrumentConfig| ArenaConfig {
            instruments: vec![ic],
            ..ArenaConfig::default()
        };
        assert!(matches!(
            with(InstrumentConfig::new("btc", "0.01", "1")).validate(),
            Err(ConfigError::BadSymbol(_))
        ));
        assert!(matches!(
            with(InstrumentConfig::new("B", "0", "1")).validate(),
            Err(ConfigError::BadSize { .. })
        ));
        assert!(matches!(
            with(InstrumentConfig::new("B", "-1", "1")).validate(),
            Err(ConfigError::BadSize { .. })
        ));
        assert!(matches!(
            with(InstrumentConfig::new("B", "0.0000000001", "0.0000000001")).validate(),
            Err(ConfigError::TooFine(_))
        ));
        let dup = ArenaConfig {
            instruments: vec![
                InstrumentConfig::new("B", "1", "1"),
                InstrumentConfig::new("B", "1", "1"),
            ],
            ..ArenaConfig::default()
        };
        assert!(matches!(
            dup.validate(),
            Err(ConfigError::DuplicateSymbol(_))
        ));
        assert!(matches!(
            ArenaConfig {
                instruments: vec![],
                ..ArenaConfig::default()
            }
            .validate(),
            Err(ConfigError::NoInstruments)
        ));
    }
}

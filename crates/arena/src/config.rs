//! The arena's settings as they arrive from the config file ([`ArenaConfig`]), and their
//! validation into the typed [`Instruments`](crate::instrument::Instruments) the exchange
//! runs on.
//!
//! Raw values are strings and plain integers (serde, unknown fields refused); nothing runs
//! until [`ArenaConfig::validate`] has turned them into exact integer units. With no
//! configuration the arena trades `BTC-USD` (tick 0.01, lot 0.0001) and `ETH-USD` (tick 0.01,
//! lot 0.001), both quoted in USD, so it works out of the box.

use serde::{Deserialize, Serialize};

/// When an accepted command counts as durable: the history store's policy, applied to the
/// arena's command log (`Batch`: commands queued together share one transaction and one
/// fsync, replies follow it; `Always`: one per command; `Never`: commit without fsync, a
/// crash can lose recent commands).
pub use roomcast_engine::history::FsyncPolicy;

/// The arena's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArenaConfig {
    /// The tradable instruments.
    pub instruments: Vec<InstrumentConfig>,
    /// Whether a sell may exceed the seller's free position (short selling). Off by default.
    pub allow_shorts: bool,
    /// Durability of accepted commands.
    pub fsync: FsyncPolicy,
    /// Demo bots; `None` runs none.
    pub demo: Option<DemoConfig>,
    /// Most open orders one collective may hold at once (all symbols).
    pub max_open_orders_per_collective: usize,
    /// Most orders resting in one book.
    pub max_orders_per_book: usize,
    /// Closed orders remembered per collective (for `GET /orders?status=all` and
    /// `client_order_id` idempotency).
    pub recent_orders_per_collective: usize,
    /// Trades remembered per symbol (for `GET /markets/{symbol}/trades`).
    pub recent_trades_per_symbol: usize,
    /// Commands queued for the exchange task before senders wait.
    pub queue_capacity: usize,
    /// A snapshot is written (and the command log truncated) after this many commands.
    pub snapshot_every: u64,
}

impl Default for ArenaConfig {
    fn default() -> ArenaConfig {
        ArenaConfig {
            instruments: vec![
                InstrumentConfig::new("BTC-USD", "0.01", "0.0001"),
                InstrumentConfig::new("ETH-USD", "0.01", "0.001"),
            ],
            allow_shorts: false,
            fsync: FsyncPolicy::Batch,
            demo: None,
            max_open_orders_per_collective: 1_000,
            max_orders_per_book: 100_000,
            recent_orders_per_collective: 1_000,
            recent_trades_per_symbol: 1_000,
            queue_capacity: 4_096,
            snapshot_every: 10_000,
        }
    }
}

/// One instrument as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstrumentConfig {
    /// Its symbol, e.g. `BTC-USD`: 1-32 characters of `[A-Z0-9_.-]`.
    pub symbol: String,
    /// The price increment, a decimal string (`"0.01"`).
    pub tick_size: String,
    /// The quantity increment, a decimal string (`"0.0001"`).
    pub lot_size: String,
    /// The currency prices are quoted in (cash is held per quote currency).
    #[serde(default = "default_quote")]
    pub quote_currency: String,
    /// The largest quantity of one order, a decimal string; default one million lots.
    #[serde(default)]
    pub max_order_size: Option<String>,
    /// Whether orders are accepted (default true).
    #[serde(default = "default_open")]
    pub open: bool,
}

fn default_quote() -> String {
    "USD".to_owned()
}

const fn default_open() -> bool {
    true
}

impl InstrumentConfig {
    /// An open instrument quoted in USD with the default order size limit.
    pub fn new(symbol: &str, tick_size: &str, lot_size: &str) -> InstrumentConfig {
        InstrumentConfig {
            symbol: symbol.to_owned(),
            tick_size: tick_size.to_owned(),
            lot_size: lot_size.to_owned(),
            quote_currency: default_quote(),
            max_order_size: None,
            open: true,
        }
    }
}

/// Demo bots: collectives `bot-1`..`bot-N` that trade a random walk through the same command
/// path as REST users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DemoConfig {
    /// How many bots.
    pub bots: usize,
    /// Orders per second over all bots (an integer rate).
    pub orders_per_second: u32,
    /// The symbols they trade; empty means every instrument.
    pub symbols: Vec<String>,
    /// Seed of their random walk (the same seed gives the same order stream).
    pub seed: u64,
    /// Starting cash of each bot, integer cents.
    pub starting_cash: u64,
}

impl Default for DemoConfig {
    fn default() -> DemoConfig {
        DemoConfig {
            bots: 3,
            orders_per_second: 5,
            symbols: Vec::new(),
            seed: 42,
            starting_cash: 1_000_000_000,
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// No instrument configured.
    #[error("the arena needs at least one instrument")]
    NoInstruments,
    /// A symbol is empty, too long or has characters outside `[A-Z0-9_.-]`.
    #[error("instrument symbol {0:?} must be 1-32 characters of A-Z 0-9 _ . -")]
    BadSymbol(String),
    /// A currency code is empty, too long or not `[A-Z0-9]`.
    #[error("quote currency {0:?} must be 1-12 characters of A-Z 0-9")]
    BadCurrency(String),
    /// The same symbol twice.
    #[error("instrument {0} is configured twice")]
    DuplicateSymbol(String),
    /// A tick, lot or size is not a positive decimal, or too fine.
    #[error("instrument {symbol}: {field} {value:?} must be a positive decimal with at most 18 decimal places")]
    BadSize {
        /// The instrument.
        symbol: String,
        /// Which field.
        field: &'static str,
        /// The value.
        value: String,
    },
    /// Tick and lot decimals together are finer than cash can count exactly.
    #[error(
        "instrument {0}: tick and lot sizes together need more than 18 decimal places of cash"
    )]
    TooFine(String),
    /// A demo symbol is not an instrument.
    #[error("demo symbol {0} is not a configured instrument")]
    UnknownDemoSymbol(String),
    /// A limit is 0 or out of range.
    #[error("{0} must be above 0 (and within range)")]
    BadLimit(&'static str),
}

//! The arena's typed errors, one enum per kind of operation, each knowing how the server
//! should answer it.

use roomcast_protocol::IdError;

use crate::config::ConfigError;

/// Why an order was not placed or cancelled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    /// A risk or validation check refused it; an `order_rejected` event was published to
    /// the collective's `orders:` room. HTTP 422.
    #[error("{message}")]
    Rejected {
        /// The machine-readable reason (see [`RejectReason`]).
        reason: RejectReason,
        /// A human-readable explanation.
        message: String,
    },
    /// No such order of this collective (someone else's order is reported the same way).
    /// HTTP 404.
    #[error("unknown order")]
    NotFound,
    /// The order exists but is no longer open (cancel of a filled or cancelled order).
    /// HTTP 409; no event.
    #[error("order is not open")]
    NotOpen,
    /// The exchange is not running (shut down, or stopped after a storage failure).
    /// HTTP 503.
    #[error("the exchange is unavailable")]
    Unavailable,
}

/// How the server should classify an [`OrderError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderErrorKind {
    /// 422, an `order_rejected` event was published.
    Rejected,
    /// 404.
    NotFound,
    /// 409.
    Conflict,
    /// 503.
    Unavailable,
}

impl OrderError {
    /// The wire reason string: the reject reason, `unknown_order`, `not_open` or
    /// `unavailable`.
    pub fn reason(&self) -> &'static str {
        match self {
            OrderError::Rejected { reason, .. } => reason.as_str(),
            OrderError::NotFound => "unknown_order",
            OrderError::NotOpen => "not_open",
            OrderError::Unavailable => "unavailable",
        }
    }

    /// How to answer it.
    pub fn kind(&self) -> OrderErrorKind {
        match self {
            OrderError::Rejected { .. } => OrderErrorKind::Rejected,
            OrderError::NotFound => OrderErrorKind::NotFound,
            OrderError::NotOpen => OrderErrorKind::Conflict,
            OrderError::Unavailable => OrderErrorKind::Unavailable,
        }
    }
}

/// Why a risk check refused an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// Not enough free cash for the buy's reservation.
    InsufficientFunds,
    /// Not enough free position for the sell (shorts disabled).
    InsufficientPosition,
    /// The price is not a multiple of the tick size.
    InvalidTick,
    /// The quantity is not a multiple of the lot size.
    InvalidLot,
    /// No such instrument.
    UnknownSymbol,
    /// The instrument does not accept orders.
    MarketClosed,
    /// The quantity is missing, 0, negative or not a plain decimal.
    InvalidQuantity,
    /// The price is missing (limit), present (market), 0 or not a plain decimal.
    InvalidPrice,
    /// The quantity is above the instrument's max order size, or the order's value does not
    /// fit the exchange's arithmetic.
    OrderTooLarge,
    /// The book holds its maximum number of resting orders.
    BookFull,
    /// The collective holds its maximum number of open orders.
    TooManyOpenOrders,
    /// The client order id is longer than 64 or has characters outside `[A-Za-z0-9_.:-]`.
    InvalidClientOrderId,
    /// The collective has no account.
    UnknownAccount,
}

impl RejectReason {
    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::InsufficientFunds => "insufficient_funds",
            RejectReason::InsufficientPosition => "insufficient_position",
            RejectReason::InvalidTick => "invalid_tick",
            RejectReason::InvalidLot => "invalid_lot",
            RejectReason::UnknownSymbol => "unknown_symbol",
            RejectReason::MarketClosed => "market_closed",
            RejectReason::InvalidQuantity => "invalid_quantity",
            RejectReason::InvalidPrice => "invalid_price",
            RejectReason::OrderTooLarge => "order_too_large",
            RejectReason::BookFull => "book_full",
            RejectReason::TooManyOpenOrders => "too_many_open_orders",
            RejectReason::InvalidClientOrderId => "invalid_client_order_id",
            RejectReason::UnknownAccount => "unknown_account",
        }
    }
}

/// Why the arena could not start or answer.
#[derive(Debug, thiserror::Error)]
pub enum ArenaError {
    /// The configuration is invalid.
    #[error("arena config: {0}")]
    Config(#[from] ConfigError),
    /// The exchange store failed (open, read, write).
    #[error("arena store: {0}")]
    Storage(String),
    /// The recovered state is inconsistent; the arena refuses to serve it.
    #[error("arena state failed its conservation check: {0}")]
    Conservation(String),
    /// The funding of an account is invalid.
    #[error(transparent)]
    Funding(#[from] FundingError),
    /// The exchange task is not running.
    #[error("the exchange is unavailable")]
    Unavailable,
}

/// Why `starting_cash` / `starting_positions` were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FundingError {
    /// `starting_cash` is not a non-negative integer (cents).
    #[error("starting_cash must be a non-negative integer number of cents")]
    BadCash,
    /// `starting_positions` is not a table of decimal strings.
    #[error("starting_positions must map symbols to decimal strings")]
    BadPositions,
    /// A symbol in `starting_positions` is not an instrument.
    #[error("starting_positions: unknown symbol {0}")]
    UnknownSymbol(String),
    /// A quantity is not a non-negative decimal aligned to the lot size.
    #[error("starting_positions: {symbol} quantity {value:?} must be a decimal string aligned to the lot size")]
    BadQuantity {
        /// The symbol.
        symbol: String,
        /// The value.
        value: String,
    },
}

/// Why a stream attach was refused.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// Not a `portfolio:`, `orders:`, `order:` or `market:` room.
    #[error("not an arena room")]
    NotArenaRoom,
    /// The room names a collective id or order id that does not parse.
    #[error("bad arena room name: {0}")]
    BadRoom(String),
    /// `market:{symbol}` of an unknown symbol.
    #[error("unknown symbol")]
    UnknownSymbol,
    /// `order:{collective}/{id}` of an unknown order (or not the collective's).
    #[error("unknown order")]
    UnknownOrder,
    /// A private room of another collective (or no principal).
    #[error("not the owner of this room")]
    Forbidden,
    /// The hub refused the subscription (limit reached, history failure).
    #[error("subscribe failed: {0}")]
    Subscribe(String),
    /// The exchange task is not running.
    #[error("the exchange is unavailable")]
    Unavailable,
}

impl From<IdError> for AttachError {
    fn from(e: IdError) -> AttachError {
        AttachError::BadRoom(e.to_string())
    }
}

//! The arena's room names: which rooms it publishes into and how a room name maps back to
//! what it shows.
//!
//! - `portfolio:{collective}`: `balance_updated`, `position_updated` (private);
//! - `orders:{collective}`: every order event of the collective (private);
//! - `order:{collective}/{order_id}`: the events of one order (private);
//! - `market:{SYMBOL}`: `trade`, `book_update`, `ticker` (public).
//!
//! The exchange task is the only publisher into these rooms; that is what makes a stream
//! snapshot atomic with the room's sequence (see [`crate::exchange`]).

use roomcast_engine::auth::CollectiveId;
use roomcast_protocol::RoomName;

use crate::error::AttachError;

/// The private room prefixes the arena owns (the server registers them with the engine's
/// room policy so only the named collective may join them).
pub const PRIVATE_PREFIXES: [&str; 3] = ["portfolio:", "orders:", "order:"];

/// The public market data prefix.
pub const MARKET_PREFIX: &str = "market:";

/// Every prefix of the arena's rooms, private and public.
pub const ALL_PREFIXES: [&str; 4] = ["portfolio:", "orders:", "order:", "market:"];

/// Every event type the arena publishes and every snapshot frame type it sends (for the
/// server's list of types clients may not emit).
pub const EVENT_TYPES: [&str; 14] = [
    "balance_updated",
    "position_updated",
    "order_created",
    "order_partial",
    "order_filled",
    "order_cancelled",
    "order_rejected",
    "trade",
    "book_update",
    "ticker",
    "portfolio_snapshot",
    "orders_snapshot",
    "order_snapshot",
    "book_snapshot",
];

/// `portfolio:{collective}`.
pub fn portfolio(id: &CollectiveId) -> Option<RoomName> {
    RoomName::parse(&format!("portfolio:{id}")).ok()
}

/// `orders:{collective}`.
pub fn orders(id: &CollectiveId) -> Option<RoomName> {
    RoomName::parse(&format!("orders:{id}")).ok()
}

/// `order:{collective}/{order_id}`.
pub fn order(id: &CollectiveId, order_id: u64) -> Option<RoomName> {
    RoomName::parse(&format!("order:{id}/{order_id}")).ok()
}

/// `market:{symbol}`.
pub fn market(symbol: &str) -> Option<RoomName> {
    RoomName::parse(&format!("market:{symbol}")).ok()
}

/// What an arena room shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArenaRoom {
    /// A collective's portfolio.
    Portfolio(CollectiveId),
    /// A collective's orders.
    Orders(CollectiveId),
    /// One order of a collective.
    Order(CollectiveId, u64),
    /// A market.
    Market(String),
}

impl ArenaRoom {
    /// Classifies a room name; `Ok(None)` when it is not an arena room.
    ///
    /// # Errors
    /// [`AttachError::BadRoom`] when it has an arena prefix but a malformed rest.
    pub fn parse(room: &RoomName) -> Result<Option<ArenaRoom>, AttachError> {
        let s = room.as_str();
        if let Some(rest) = s.strip_prefix("portfolio:") {
            return Ok(Some(ArenaRoom::Portfolio(CollectiveId::parse(rest)?)));
        }
        if let Some(rest) = s.strip_prefix("orders:") {
            return Ok(Some(ArenaRoom::Orders(CollectiveId::parse(rest)?)));
        }
        if let Some(rest) = s.strip_prefix("order:") {
            let (cid, id) = rest.rsplit_once('/').ok_or_else(|| {
                AttachError::BadRoom("expected order:{collective}/{order_id}".into())
            })?;
            let id: u64 = id
                .parse()
                .map_err(|_| AttachError::BadRoom("order id must be an integer".into()))?;
            return Ok(Some(ArenaRoom::Order(CollectiveId::parse(cid)?, id)));
        }
        if let Some(rest) = s.strip_prefix(MARKET_PREFIX) {
            return Ok(Some(ArenaRoom::Market(rest.to_owned())));
        }
        Ok(None)
    }

    /// The collective a private room belongs to (`None` for a market).
    pub fn owner(&self) -> Option<&CollectiveId> {
        match self {
            ArenaRoom::Portfolio(c) | ArenaRoom::Orders(c) | ArenaRoom::Order(c, _) => Some(c),
            ArenaRoom::Market(_) => None,
        }
    }
}

/// Whether `room` is one of the arena's rooms (by prefix).
pub fn is_arena_room(room: &RoomName) -> bool {
    let s = room.as_str();
    PRIVATE_PREFIXES.iter().any(|p| s.starts_with(p)) || s.starts_with(MARKET_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(s: &str) -> RoomName {
        RoomName::parse(s).expect("room")
    }

    #[test]
    fn classifies_arena_rooms() {
        let acme = CollectiveId::parse("acme").expect("id");
        assert_eq!(
            ArenaRoom::parse(&room("portfolio:acme")).ok().flatten(),
            Some(ArenaRoom::Portfolio(acme.clone()))
        );
        assert_eq!(
            ArenaRoom::parse(&room("order:acme/12")).ok().flatten(),
            Some(ArenaRoom::Order(acme, 12))
        );
        assert_eq!(
            ArenaRoom::parse(&room("market:BTC-USD")).ok().flatten(),
            Some(ArenaRoom::Market("BTC-USD".into()))
        );
        assert_eq!(ArenaRoom::parse(&room("chat")).ok().flatten(), None);
        assert!(ArenaRoom::parse(&room("order:acme/x")).is_err());
        assert!(ArenaRoom::parse(&room("orders:a/b")).is_err());
        assert!(is_arena_room(&room("orders:x")));
        assert!(!is_arena_room(&room("ordersx")));
    }
}

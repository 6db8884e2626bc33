"""The trading arena: signed REST calls and local state kept from stream snapshots + events."""

from .rest import ArenaRest
from .state import BookState, OrdersState, PortfolioState
from .streams import follow_market, follow_order, follow_orders, follow_portfolio

__all__ = [
    "ArenaRest",
    "BookState",
    "OrdersState",
    "PortfolioState",
    "follow_market",
    "follow_order",
    "follow_orders",
    "follow_portfolio",
]

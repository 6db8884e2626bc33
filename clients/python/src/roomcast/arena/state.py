"""Local arena state kept from a stream's snapshot and its later events.

Events carry absolute values (docs/ARENA.md "Snapshot + events = state"), so applying is a
replace, never an add; a snapshot replaces the whole state at once. Each `apply` takes the
events of one room as the client delivers them (already deduplicated by sequence).
Quantities and prices are `Decimal`, never float.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal
from typing import Any

Json = dict[str, Any]


class PortfolioState:
    """Balances per currency and positions per symbol of `portfolio:{collective}`."""

    def __init__(self) -> None:
        self.balances: dict[str, Json] = {}
        self.positions: dict[str, Json] = {}
        self.equity: list[Json] = []
        self.ready = False
        """True once a snapshot was applied."""

    def apply(self, event: Json) -> None:
        """Applies `portfolio_snapshot`, `balance_updated` or `position_updated`."""
        kind = event.get("type")
        data = event.get("data")
        if not isinstance(data, dict):
            return
        if kind == "portfolio_snapshot":
            self.balances = {b["currency"]: b for b in data.get("balances", [])}
            self.positions = {p["symbol"]: p for p in data.get("positions", [])}
            self.equity = list(data.get("equity", []))
            self.ready = True
        elif kind == "balance_updated":
            self.balances[data["currency"]] = data
        elif kind == "position_updated":
            self.positions[data["symbol"]] = data

    def available(self, currency: str) -> Decimal:
        """Free cash of `currency` (0 when unknown)."""
        return Decimal(str(self.balances.get(currency, {}).get("available", "0")))


class OrdersState:
    """The open orders of `orders:{collective}` and the recent rejections."""

    OPEN = ("open", "partially_filled")

    def __init__(self, keep_rejected: int = 100) -> None:
        self.open: dict[int, Json] = {}
        self.rejected: deque[Json] = deque(maxlen=keep_rejected)
        self.ready = False
        """True once a snapshot was applied."""

    def apply(self, event: Json) -> None:
        """Applies `orders_snapshot`/`order_snapshot` and the `order_*` events."""
        kind = event.get("type")
        data = event.get("data")
        if not isinstance(data, dict) or not isinstance(kind, str):
            return
        if kind == "orders_snapshot":
            self.open = {o["order_id"]: o for o in data.get("orders", [])}
            self.ready = True
        elif kind == "order_rejected":
            self.rejected.append(data)
        elif kind == "order_snapshot" or kind.startswith("order_"):
            order_id = data.get("order_id")
            if not isinstance(order_id, int):
                return
            if kind == "order_snapshot":
                self.ready = True
            merged = {**self.open.get(order_id, {}), **data}
            if merged.get("status") in self.OPEN:
                self.open[order_id] = merged
            else:
                self.open.pop(order_id, None)


class BookState:
    """The order book of `market:{symbol}`: price → quantity per side."""

    def __init__(self) -> None:
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        self.last_trade: Json | None = None
        self.ready = False
        """True once a snapshot was applied."""

    def apply(self, event: Json) -> None:
        """Applies `book_snapshot`, `book_update` (quantity "0" removes a level), `trade`."""
        kind = event.get("type")
        data = event.get("data")
        if not isinstance(data, dict):
            return
        if kind == "book_snapshot":
            self.bids = _levels(data.get("bids", []))
            self.asks = _levels(data.get("asks", []))
            self.ready = True
        elif kind == "book_update":
            for side, levels in (
                (self.bids, data.get("bids", [])),
                (self.asks, data.get("asks", [])),
            ):
                for price, quantity in _levels(levels).items():
                    if quantity == 0:
                        side.pop(price, None)
                    else:
                        side[price] = quantity
        elif kind == "trade":
            self.last_trade = data

    def top(
        self, depth: int | None = None
    ) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        """Bids (best first) and asks (best first), `depth` levels each."""
        bids = sorted(self.bids.items(), key=lambda level: level[0], reverse=True)
        asks = sorted(self.asks.items(), key=lambda level: level[0])
        return (bids[:depth], asks[:depth]) if depth is not None else (bids, asks)


def _levels(levels: Any) -> dict[Decimal, Decimal]:
    return {Decimal(str(level["price"])): Decimal(str(level["quantity"])) for level in levels}

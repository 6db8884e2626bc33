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


class _StreamState:
    """What every stream state shares: `ready` and an `apply` that passes each well-formed
    event (a string `type`, an object `data`) to the state's own `_apply`; malformed events
    are ignored."""

    def __init__(self) -> None:
        self.ready = False
        """True once a snapshot was applied."""

    def apply(self, event: Json) -> None:
        """Applies one event of the stream's room (see the class for which)."""
        kind = event.get("type")
        data = event.get("data")
        if isinstance(kind, str) and isinstance(data, dict):
            self._apply(kind, data)

    def _apply(self, kind: str, data: Json) -> None:
        raise NotImplementedError


class PortfolioState(_StreamState):
    """Balances per currency and positions per symbol of `portfolio:{collective}`; `apply`
    takes `portfolio_snapshot`, `balance_updated` and `position_updated`."""

    def __init__(self) -> None:
        super().__init__()
        self.balances: dict[str, Json] = {}
        self.positions: dict[str, Json] = {}
        self.equity: list[Json] = []

    def _apply(self, kind: str, data: Json) -> None:
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


class OrdersState(_StreamState):
    """The open orders of `orders:{collective}` and the recent rejections; `apply` takes
    `orders_snapshot`/`order_snapshot` and the `order_*` events."""

    OPEN = ("open", "partially_filled")

    def __init__(self, keep_rejected: int = 100) -> None:
        super().__init__()
        self.open: dict[int, Json] = {}
        self.rejected: deque[Json] = deque(maxlen=keep_rejected)

    def _apply(self, kind: str, data: Json) -> None:
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


class BookState(_StreamState):
    """The order book of `market:{symbol}`: price → quantity per side; `apply` takes
    `book_snapshot`, `book_update` (quantity "0" removes a level) and `trade`."""

    def __init__(self) -> None:
        super().__init__()
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        self.last_trade: Json | None = None

    def _apply(self, kind: str, data: Json) -> None:
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

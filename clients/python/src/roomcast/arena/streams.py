"""Ready-made followers: a stream connection plus the state it keeps.

`follow_orders` and `follow_portfolio` open `/ws/{collective}/{stream}` (Ed25519 challenge or
a JWT); `follow_market` subscribes a `market:` room on any client. Reconnects resume with
`last_sequence`/`since`; after a failed recovery the server sends a fresh snapshot, which
replaces the state in one step.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from ..auth import Ed25519Credentials
from ..client import ClientOptions, RoomcastClient
from ..rooms import Subscription
from .state import BookState, OrdersState, PortfolioState


class _State(Protocol):
    ready: bool

    def apply(self, event: dict[str, Any]) -> None: ...


async def _connect_ready(client: RoomcastClient, room: str, state: _State, timeout: float) -> None:
    """Connects and returns once the stream's snapshot has been applied."""
    snapshot = asyncio.Event()

    def apply(event: dict[str, Any]) -> None:
        state.apply(event)
        if state.ready:
            snapshot.set()

    client.listen(room, apply)
    await client.connect()
    try:
        await asyncio.wait_for(snapshot.wait(), timeout)
    except TimeoutError:
        await client.close()
        raise


async def follow_orders(
    url: str,
    credentials: Ed25519Credentials,
    *,
    token: str | None = None,
    options: ClientOptions | None = None,
    snapshot_timeout: float = 10.0,
) -> tuple[RoomcastClient, OrdersState]:
    """Connects `/ws/{collective}/orders`; returns once its snapshot is applied."""
    state = OrdersState()
    client = RoomcastClient(url, ed25519=credentials, token=token, stream="orders", options=options)
    await _connect_ready(client, f"orders:{credentials.collective_id}", state, snapshot_timeout)
    return client, state


async def follow_portfolio(
    url: str,
    credentials: Ed25519Credentials,
    *,
    token: str | None = None,
    options: ClientOptions | None = None,
    snapshot_timeout: float = 10.0,
) -> tuple[RoomcastClient, PortfolioState]:
    """Connects `/ws/{collective}/portfolio`; returns once its snapshot is applied."""
    state = PortfolioState()
    client = RoomcastClient(
        url, ed25519=credentials, token=token, stream="portfolio", options=options
    )
    await _connect_ready(client, f"portfolio:{credentials.collective_id}", state, snapshot_timeout)
    return client, state


async def follow_market(client: RoomcastClient, symbol: str) -> tuple[Subscription, BookState]:
    """Subscribes `market:{symbol}` on a connected client and keeps its order book."""
    state = BookState()
    subscription = await client.subscribe(f"market:{symbol}", state.apply)
    return subscription, state


async def follow_order(
    client: RoomcastClient, collective_id: str, order_id: int
) -> tuple[Subscription, OrdersState]:
    """Follows one order (`order:{collective}/{id}`, from its `order_snapshot`).

    Needs a connection of the collective (its orders stream); another collective's order
    is refused with `RequestError` `FORBIDDEN`.
    """
    state = OrdersState()
    subscription = await client.subscribe(f"order:{collective_id}/{order_id}", state.apply)
    return subscription, state

"""Ready-made followers: a stream connection plus the state it keeps.

`follow_orders` and `follow_portfolio` open `/ws/{collective}/{stream}` (Ed25519 challenge or
a JWT); `follow_market` subscribes a `market:` room on any client. Reconnects resume with
`last_sequence`/`since`; after a failed recovery the server sends a fresh snapshot, which
replaces the state in one step.
"""

from __future__ import annotations

from ..auth import Ed25519Credentials
from ..client import ClientOptions, RoomcastClient
from ..rooms import Subscription
from .state import BookState, OrdersState, PortfolioState


async def follow_orders(
    url: str,
    credentials: Ed25519Credentials,
    *,
    token: str | None = None,
    options: ClientOptions | None = None,
) -> tuple[RoomcastClient, OrdersState]:
    """Connects `/ws/{collective}/orders` and keeps the open orders."""
    state = OrdersState()
    client = RoomcastClient(
        url, ed25519=credentials, token=token, stream="orders", options=options
    )
    client.listen(f"orders:{credentials.collective_id}", state.apply)
    await client.connect()
    return client, state


async def follow_portfolio(
    url: str,
    credentials: Ed25519Credentials,
    *,
    token: str | None = None,
    options: ClientOptions | None = None,
) -> tuple[RoomcastClient, PortfolioState]:
    """Connects `/ws/{collective}/portfolio` and keeps balances and positions."""
    state = PortfolioState()
    client = RoomcastClient(
        url, ed25519=credentials, token=token, stream="portfolio", options=options
    )
    client.listen(f"portfolio:{credentials.collective_id}", state.apply)
    await client.connect()
    return client, state


async def follow_market(client: RoomcastClient, symbol: str) -> tuple[Subscription, BookState]:
    """Subscribes `market:{symbol}` on a connected client and keeps its order book."""
    state = BookState()
    subscription = await client.subscribe(f"market:{symbol}", state.apply)
    return subscription, state

#!/usr/bin/env python3
"""A small trading bot on the roomcast Python client (`pip install -e clients/python`).

It follows its collective's orders and portfolio streams (Ed25519 challenge), and once a
second quotes one bid a little under the market through the signed REST API, cancelling the
previous quote. Every stream event it sees is printed as one line. Run against
`roomcast serve --dev --demo --collectives FILE`:

    python examples/python_bot.py --url http://127.0.0.1:8080 --collective acme --key acme.pem

tests in clients/python/tests/test_examples.py run it for a few seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from decimal import ROUND_DOWN, Decimal
from typing import Any

from roomcast import ArenaError, Ed25519Credentials
from roomcast.arena import ArenaRest, follow_orders, follow_portfolio


def print_event(stream: str) -> Any:
    def show(event: dict[str, Any]) -> None:
        data = event.get("data") or {}
        detail = data.get("order_id", data.get("currency", data.get("symbol", "")))
        print(f"{stream} {event.get('type')} {detail} seq={event.get('sequence')}", flush=True)

    return show


async def reference_price(rest: ArenaRest, symbol: str, fallback: Decimal) -> Decimal:
    """The best ask, else the best bid, else `fallback`."""
    book = await rest.book(symbol, depth=1)
    for side in ("asks", "bids"):
        if book[side]:
            return Decimal(book[side][0]["price"])
    return fallback


async def run(args: argparse.Namespace) -> int:
    credentials = Ed25519Credentials.from_pem_file(args.collective, args.key)
    ws_url = args.url.replace("http", "ws", 1)
    orders_client, orders = await follow_orders(ws_url, credentials)
    portfolio_client, portfolio = await follow_portfolio(ws_url, credentials)
    orders_client.listen(f"orders:{args.collective}", print_event("orders"))
    portfolio_client.listen(f"portfolio:{args.collective}", print_event("portfolio"))
    print(f"ready: {len(orders.open)} open orders, USD available {portfolio.available('USD')}")

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.call_later(args.duration, stop.set)

    placed = cancelled = rejected = 0
    quote: int | None = None
    async with ArenaRest(args.url, credentials) as rest:
        while not stop.is_set():
            if quote is not None and quote in orders.open:
                await rest.cancel_order(quote)
                cancelled += 1
            reference = await reference_price(rest, args.symbol, Decimal(args.fallback_price))
            price = (reference * Decimal("0.99")).quantize(Decimal("0.01"), rounding=ROUND_DOWN)
            try:
                order = await rest.place_order(args.symbol, "buy", args.quantity, price=price)
                quote = order["order_id"]
                placed += 1
            except ArenaError as e:
                print(f"rejected: {e.reason or e.code}", flush=True)
                rejected += 1
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except TimeoutError:
                pass
        if quote is not None and quote in orders.open:
            await rest.cancel_order(quote)
            cancelled += 1
    await orders_client.close()
    await portfolio_client.close()
    print(
        f"done: placed {placed}, cancelled {cancelled}, rejected {rejected}, "
        f"open {len(orders.open)}, USD available {portfolio.available('USD')}",
        flush=True,
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="server base URL")
    parser.add_argument("--collective", required=True)
    parser.add_argument("--key", required=True, help="PKCS#8 PEM private key")
    parser.add_argument("--symbol", default="BTC-USD")
    parser.add_argument("--quantity", default="0.01")
    parser.add_argument("--fallback-price", default="50000", help="when the book is empty")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds to run")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())

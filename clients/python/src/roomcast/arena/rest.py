"""Signed REST helper for the arena's `/api/v1` (docs/ARENA.md "Signing requests").

Each private call signs `timestamp + METHOD + path_with_query + body` with the collective's
Ed25519 key and sends exactly the bytes it signed. Prices and quantities are decimal
strings; pass `Decimal` or `str`, never `float`.
"""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import urlencode

import httpx

from ..auth import Ed25519Credentials
from ..errors import ArenaError

Json = dict[str, Any]
Amount = Decimal | str


class ArenaRest:
    """An async client of the arena REST API for one collective."""

    def __init__(
        self,
        base_url: str,
        credentials: Ed25519Credentials,
        *,
        timeout: float = 10.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._credentials = credentials
        self._http = client or httpx.AsyncClient(timeout=timeout)
        self._owns_http = client is None

    async def __aenter__(self) -> ArenaRest:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Closes the HTTP connection pool (when this helper created it)."""
        if self._owns_http:
            await self._http.aclose()

    async def place_order(
        self,
        symbol: str,
        side: Literal["buy", "sell"],
        quantity: Amount,
        *,
        price: Amount | None = None,
        order_type: Literal["limit", "market"] | None = None,
        time_in_force: Literal["gtc", "ioc", "fok"] | None = None,
        client_order_id: str | None = None,
    ) -> Json:
        """Places an order; a limit order when `price` is given, else a market order.

        Raises `ArenaError` with `reason` set (e.g. `insufficient_funds`) on a 422.
        """
        body: Json = {
            "symbol": symbol,
            "side": side,
            "type": order_type or ("limit" if price is not None else "market"),
            "quantity": _amount(quantity),
        }
        if price is not None:
            body["price"] = _amount(price)
        if time_in_force is not None:
            body["time_in_force"] = time_in_force
        if client_order_id is not None:
            body["client_order_id"] = client_order_id
        result: Json = await self.signed("POST", "/api/v1/orders", body)
        return result

    async def cancel_order(self, order_id: int) -> Json:
        """Cancels an open order of the caller."""
        result: Json = await self.signed("DELETE", f"/api/v1/orders/{order_id}")
        return result

    async def order(self, order_id: int) -> Json:
        """One of the caller's orders."""
        result: Json = await self.signed("GET", f"/api/v1/orders/{order_id}")
        return result

    async def orders(self, status: Literal["open", "all"] = "open") -> Any:
        """The caller's open (or open and recent) orders."""
        return await self.signed("GET", "/api/v1/orders?" + urlencode({"status": status}))

    async def portfolio(self) -> Json:
        """Balances, positions, realised PnL and equity."""
        result: Json = await self.signed("GET", "/api/v1/portfolio")
        return result

    async def markets(self) -> Any:
        """The instruments (public)."""
        return await self._send("GET", "/api/v1/markets", b"", {})

    async def book(self, symbol: str, depth: int = 20) -> Json:
        """The best `depth` levels per side (public)."""
        path = f"/api/v1/markets/{symbol}/book?" + urlencode({"depth": depth})
        result: Json = await self._send("GET", path, b"", {})
        return result

    async def signed(self, method: str, path_with_query: str, body: Json | None = None) -> Any:
        """Sends a signed request; returns the decoded JSON reply or raises `ArenaError`."""
        text = json.dumps(body, separators=(",", ":")) if body is not None else ""
        ts = str(int(time.time() * 1000))
        headers = {
            "X-Collective-Id": self._credentials.collective_id,
            "X-Timestamp": ts,
            "X-Signature": self._credentials.sign(ts + method + path_with_query + text),
        }
        if body is not None:
            headers["Content-Type"] = "application/json"
        return await self._send(method, path_with_query, text.encode("utf-8"), headers)

    async def _send(self, method: str, path: str, content: bytes, headers: dict[str, str]) -> Any:
        response = await self._http.request(
            method, self._base + path, content=content, headers=headers
        )
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.is_success:
            return payload
        error = payload.get("error") if isinstance(payload, dict) else None
        if not isinstance(error, dict):
            raise ArenaError(response.status_code, "http_error", response.text[:200], None)
        reason = error.get("reason")
        return _raise(
            ArenaError(
                response.status_code,
                str(error.get("code", "")),
                str(error.get("message", "")),
                reason if isinstance(reason, str) else None,
            )
        )


def _raise(error: ArenaError) -> Any:
    raise error


def _amount(value: Amount) -> str:
    if isinstance(value, float):
        raise TypeError("prices and quantities are Decimal or str, never float")
    return str(value)

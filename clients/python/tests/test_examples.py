"""`examples/python_bot.py` runs against a real `--demo` server for a few seconds and does
what it says: follows its streams, quotes, cancels, and leaves no order open."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from conftest import (
    REPO,
    Server,
    ServerFactory,
    new_credentials,
    write_collectives,
    write_private_pem,
)

from roomcast.arena import ArenaRest


async def test_python_bot_signs_orders_and_follows_its_streams(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    acme = new_credentials("acme")
    collectives = write_collectives(tmp_path / "collectives.toml", [(acme, 10_000_000)])
    server: Server = await make_server("--collectives", str(collectives), "--demo")
    key = write_private_pem(tmp_path / "acme.pem", acme)

    bot = await asyncio.create_subprocess_exec(
        sys.executable,
        str(REPO / "examples" / "python_bot.py"),
        "--url", server.http_url,
        "--collective", "acme",
        "--key", str(key),
        "--duration", "3",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(bot.communicate(), 30)
    text = out.decode()

    assert bot.returncode == 0, text
    lines = text.splitlines()
    assert lines[0] == "ready: 0 open orders, USD available 100000"
    created = [line for line in lines if line.startswith("orders order_created")]
    closed = [
        line for line in lines if line.startswith(("orders order_cancelled", "orders order_filled"))
    ]
    # every quote ends cancelled, or filled if the demo bots' walk came down to it
    assert len(created) >= 3 and len(closed) == len(created), text
    assert any(line.startswith("portfolio balance_updated USD") for line in lines), text
    assert lines[-1].startswith("done: placed ") and ", open 0, " in lines[-1], text
    streamed_usd = lines[-1].rsplit("USD available ", 1)[1]
    async with ArenaRest(server.http_url, acme) as rest:
        assert (await rest.orders()) in ([], {"orders": []})
        portfolio = await rest.portfolio()
    # the portfolio the bot kept from its stream is the one REST reports
    assert [b["available"] for b in portfolio["balances"] if b["currency"] == "USD"] == [
        streamed_usd
    ]

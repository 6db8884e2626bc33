"""The session over a real server: subscribe/publish with acks, presence, errors, fatal
close codes, the Ed25519 challenge, and token refresh."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import (
    Recorder,
    Server,
    ServerFactory,
    connected,
    new_credentials,
    roomcast_bin,
    write_collectives,
)

from roomcast import ClientClosed, ClientOptions, NotConnected, RequestError, RoomcastClient

FAST = ClientOptions(backoff_base=0.05, backoff_cap=0.3)


async def test_subscribe_publish_ack_and_presence(server: Server) -> None:
    alice = RoomcastClient(server.ws_url, client_id="alice", options=FAST)
    bob = RoomcastClient(server.ws_url, client_id="bob", options=FAST)
    await alice.connect()
    await bob.connect()
    got = Recorder()
    await bob.subscribe("chat", got)
    await alice.subscribe("chat", Recorder())

    acks = [await alice.publish("chat", {"n": n}) for n in range(1, 6)]

    assert [a["sequence"] for a in acks] == [1, 2, 3, 4, 5]
    await got.wait_until(lambda items: len(items) == 5)
    assert [e["content"] for e in got.items] == [{"n": n} for n in range(1, 6)]
    assert [e["sequence"] for e in got.items] == [1, 2, 3, 4, 5]
    assert all(e["from"] == "alice" for e in got.items)
    assert await alice.presence("chat") == ["alice", "bob"]
    await alice.close()
    await bob.close()
    assert alice.state == "closed"


async def test_error_reply_rejects_the_awaitable(server: Server) -> None:
    alice = RoomcastClient(server.ws_url, client_id="alice", options=FAST)
    await alice.connect()
    with pytest.raises(RequestError) as err:
        await alice.publish("not-joined", "x")
    assert err.value.code == "NOT_SUBSCRIBED"
    with pytest.raises(RequestError) as err:
        await alice.subscribe("bad room!", Recorder())
    assert err.value.code == "INVALID_ROOM"
    await alice.close()


async def test_superseded_session_stops_and_does_not_reconnect(server: Server) -> None:
    first, states = await connected(server.ws_url, "dup", FAST, on="state")
    second = RoomcastClient(server.ws_url, client_id="dup", options=FAST)
    await second.connect()

    why = await asyncio.wait_for(first.wait_closed(), 10)

    assert why is not None and why.code == 4011
    assert first.state == "closed"
    assert "reconnecting" not in states.items
    with pytest.raises(ClientClosed):
        await first.publish("general", "x")
    # the newer session is untouched by the old one giving up
    assert second.state == "connected"
    assert await second.presence("general") == ["dup"]
    await second.close()


async def test_ed25519_challenge_and_wrong_key_stops_with_4001(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    acme = new_credentials("acme")
    server: Server = await make_server(
        "--collectives", str(write_collectives(tmp_path / "c.toml", [(acme, 1_000_000)]))
    )
    good = RoomcastClient(server.ws_url, ed25519=acme, options=FAST)
    welcomes = Recorder()
    good.on("welcome", welcomes)
    await good.connect()
    assert welcomes.items[0]["client_id"] == "acme"
    await good.close()

    impostor = RoomcastClient(server.ws_url, ed25519=new_credentials("acme"), options=FAST)
    with pytest.raises(ClientClosed) as err:
        await impostor.connect()
    assert err.value.code == 4001
    assert impostor.state == "closed"


def mint(secret: str, sub: str, ttl: str) -> str:
    """A real HS256 token from `roomcast token`."""
    out = subprocess.run(
        [roomcast_bin(), "token", "--sub", sub, "--ttl", ttl, "--jwt-secret", secret],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


async def test_token_refresh_keeps_the_session_past_the_first_expiry(
    make_server: ServerFactory,
) -> None:
    secret = "python-client-test-secret-0123456789"
    server: Server = await make_server(
        "--jwt-secret", secret, "--jwt-leeway", "0", "--heartbeat-interval", "1"
    )
    minted: list[str] = []

    def get_token() -> str:
        minted.append(mint(secret, "alice", "2s" if not minted else "1h"))
        return minted[-1]

    client = RoomcastClient(server.ws_url, client_id="alice", get_token=get_token, options=FAST)
    refreshed = Recorder()
    states = Recorder()
    client.on("token_refreshed", refreshed)
    client.on("state", states)
    await client.connect()
    assert "refresh" in client.features

    await refreshed.wait_until(lambda items: len(items) == 1, timeout=10)
    assert refreshed.items[0]["expires_in"] > 3000
    # past the first token's expiry (2 s) plus one maintenance tick: still the same session
    await asyncio.sleep(2.5)
    assert states.items == ["connecting", "connected"]
    assert await client.presence("general") == ["alice"]
    await client.close()


async def test_expired_token_reconnects_only_with_a_new_token(make_server: ServerFactory) -> None:
    secret = "python-client-test-secret-0123456789"
    server: Server = await make_server(
        "--jwt-secret", secret, "--jwt-leeway", "0", "--heartbeat-interval", "1"
    )
    short = mint(secret, "stuck", "2s")
    stuck = RoomcastClient(server.ws_url, client_id="stuck", get_token=lambda: short, options=FAST)
    states = Recorder()
    renews_short, renews_long = mint(secret, "renews", "2s"), mint(secret, "renews", "1h")

    def renew() -> str:  # only the short token while the first session lives
        return renews_long if "disconnected" in states.items else renews_short

    renews = RoomcastClient(server.ws_url, client_id="renews", get_token=renew, options=FAST)
    renews.on("state", states)
    await stuck.connect()
    await renews.connect()

    # the same token again cannot revive a session closed with 4003: stop
    why = await asyncio.wait_for(stuck.wait_closed(), 10)
    assert why is not None and why.code == 4003
    # a new token can: reconnect with it
    await states.wait_until(lambda items: items.count("connected") == 2, timeout=10)
    assert states.items == ["connecting", "connected", "disconnected", "reconnecting", "connected"]
    assert await renews.presence("general") == ["renews"]
    await renews.close()


async def test_offline_policy_fail_and_requests_before_connect(server: Server) -> None:
    client = RoomcastClient(
        server.ws_url,
        client_id="alice",
        options=ClientOptions(backoff_base=0.05, backoff_cap=0.3, offline_policy="fail"),
    )
    with pytest.raises(NotConnected):
        await client.publish("general", "too early")
    states = Recorder()
    client.on("state", states)
    await client.connect()
    home = server.addr
    await server.stop(signal.SIGTERM)
    await states.wait_until(lambda items: "disconnected" in items)
    with pytest.raises(NotConnected):
        await client.publish("general", "while away")
    await server.start(home)
    await states.wait_until(lambda items: items[-1] == "connected")
    assert (await client.publish("general", "back"))["sequence"] >= 1
    await client.close()

"""Reconnect and recovery against real restarts: SIGTERM keeps epochs (exact replay), kill -9
starts new epochs (recovery_failed), SIGSTOP makes the link silent (heartbeat timeout), and
the backoff stays inside its full-jitter windows."""

from __future__ import annotations

import asyncio
import random
import signal
import socket
import time

import httpx
import pytest
from conftest import Recorder, Server, ServerFactory, connected, member

from roomcast import Backoff, ClientClosed, ClientOptions, RoomcastClient

FAST = ClientOptions(backoff_base=0.05, backoff_cap=0.3)


def seqs(rec: Recorder) -> list[int]:
    return [e["sequence"] for e in rec.of_type("message")]


async def chat_with_three_events(
    server: Server, on: str
) -> tuple[RoomcastClient, Recorder, Recorder, RoomcastClient]:
    """alice in `chat` (her `on` events and her room's events recorded), after bob published
    1, 2 and 3 there and alice got them; bob is returned still connected."""
    alice, events = await connected(server.ws_url, "alice", FAST, on=on)
    got = Recorder()
    await alice.subscribe("chat", got)
    bob = await member(server.ws_url, "bob", "chat", FAST)
    for n in range(1, 4):
        await bob.publish("chat", n)
    await got.wait_until(lambda _: seqs(got) == [1, 2, 3])
    return alice, events, got, bob


async def test_sigterm_restart_replays_missed_events_exactly_once(server: Server) -> None:
    alice, states, got, bob = await chat_with_three_events(server, on="state")
    await bob.close()

    # Stop cleanly, publish 4..8 on a server alice cannot reach (other port, same data),
    # then bring the server back where alice keeps trying.
    home = server.addr
    await server.stop(signal.SIGTERM)
    await states.wait_until(lambda items: "reconnecting" in items)
    await server.start("127.0.0.1:0")
    carol = await member(server.ws_url, "carol", "chat", FAST)
    for n in range(4, 9):
        await carol.publish("chat", n)
    await carol.close()
    await server.stop(signal.SIGTERM)
    await server.start(home)

    await got.wait_until(lambda items: any(e.get("type") == "replay_complete" for e in items))
    replayed = [e["sequence"] for e in got.of_type("message") if e.get("replayed")]
    assert replayed == [4, 5, 6, 7, 8]
    assert alice.state == "connected"
    dave = await member(server.ws_url, "dave", "chat", FAST)
    await dave.publish("chat", 9)
    await got.wait_until(lambda _: seqs(got)[-1:] == [9])
    assert seqs(got) == list(range(1, 10))
    assert [e["content"] for e in got.of_type("message")] == list(range(1, 10))
    assert not got.of_type("recovery_failed")
    await alice.close()
    await dave.close()


async def test_kill_9_restart_surfaces_recovery_failed_and_goes_on_live(server: Server) -> None:
    alice, failed, got, bob = await chat_with_three_events(server, on="recovery_failed")
    old_epoch = got.items[-1]["epoch"]
    await bob.close()

    await server.restart(signal.SIGKILL)

    await failed.wait_until(lambda items: len(items) == 1)
    assert failed.items[0]["room"] == "chat"
    assert failed.items[0]["reason"] == "epoch_changed"
    assert failed.items[0]["epoch"] != old_epoch
    assert got.of_type("recovery_failed") == failed.items  # the room's handler sees it too
    bob = await member(server.ws_url, "bob", "chat", FAST)
    ack = await bob.publish("chat", "after crash")
    await got.wait_until(lambda items: items[-1].get("content") == "after crash")
    assert got.items[-1]["epoch"] == ack["epoch"] == failed.items[0]["epoch"]
    await alice.close()
    await bob.close()


async def test_silent_server_is_detected_by_heartbeat_and_left(make_server: ServerFactory) -> None:
    server: Server = await make_server("--heartbeat-interval", "1")
    options = ClientOptions(backoff_base=0.05, backoff_cap=0.3, heartbeat_timeout=0.5)
    alice, states = await connected(server.ws_url, "alice", options, on="state")
    assert server.proc is not None
    server.proc.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        await states.wait_until(lambda items: "disconnected" in items, timeout=5)
        silent_for = time.monotonic() - started
    finally:
        server.proc.send_signal(signal.SIGCONT)
    assert 0.5 <= silent_for <= 5.0  # dead after 1 + 0.5 s of silence, plus scheduling
    await states.wait_until(lambda items: items[-1] == "connected", timeout=10)
    await alice.close()


def test_backoff_windows_are_exponential_capped_and_fully_jittered() -> None:
    backoff = Backoff(base=0.5, cap=30.0, max_attempts=12, rng=random.Random(7))
    windows = [backoff.window(n) for n in range(12)]
    assert windows[:7] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0]
    assert windows[7:] == [30.0] * 5
    delays = [backoff.next_delay() for _ in range(12)]
    assert all(d is not None and 0 <= d <= w for d, w in zip(delays, windows, strict=True))
    assert backoff.next_delay() is None  # max_attempts used up
    backoff.reset()
    first = backoff.next_delay()
    assert first is not None and first <= 0.5
    assert backoff.window(10_000) == 30.0


async def test_unreachable_server_backs_off_within_bounds_then_gives_up() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    options = ClientOptions(backoff_base=0.2, backoff_cap=0.4, max_attempts=4)
    client = RoomcastClient(f"ws://127.0.0.1:{port}", client_id="alice", options=options)
    states = Recorder()
    client.on("state", states)
    started = time.monotonic()
    with pytest.raises(ClientClosed) as err:
        await client.connect()
    elapsed = time.monotonic() - started
    assert "attempts" in str(err.value)
    assert elapsed <= 0.2 + 0.4 + 0.4 + 0.4 + 1.0  # the windows' sum plus connect overhead
    assert states.items[0] == "connecting" and states.items[-1] == "closed"
    assert states.items.count("reconnecting") == 4


async def test_queued_publish_is_sent_after_reconnect(server: Server) -> None:
    alice, states = await connected(server.ws_url, "alice", FAST, on="state")
    await alice.subscribe("chat", Recorder())
    bob = RoomcastClient(server.ws_url, client_id="bob", options=FAST)
    await bob.connect()
    got = Recorder()
    await bob.subscribe("chat", got)
    await alice.publish("chat", "before")  # an event, so the room's epoch survives SIGTERM
    await got.wait_until(lambda items: len(items) == 1)

    home = server.addr
    await server.stop(signal.SIGTERM)
    await states.wait_until(lambda items: "reconnecting" in items)
    pending = asyncio.create_task(alice.publish("chat", "queued"))
    await asyncio.sleep(0)  # let the publish start waiting for the connection
    assert not pending.done()
    await server.start(home)
    ack = await asyncio.wait_for(pending, 10)

    assert ack["sequence"] == 2
    # bob gets it live or replayed, depending on who reconnected first: once either way
    await got.wait_until(lambda items: any(e.get("content") == "queued" for e in items))
    assert [e["content"] for e in got.of_type("message")] == ["before", "queued"]
    assert not got.of_type("recovery_failed")
    assert states.items.count("connected") == 2
    await alice.close()
    await bob.close()


async def test_gapless_while_another_client_publishes_and_the_link_keeps_dropping(
    make_server: ServerFactory,
) -> None:
    server: Server = await make_server("--rate-limit", "100000", "--rate-burst", "100000")
    alice, states = await connected(server.ws_url, "alice", FAST, on="state")
    got = Recorder()
    await alice.subscribe("feed", got)
    bob = await member(server.ws_url, "bob", "feed", FAST)

    async with httpx.AsyncClient(base_url=server.http_url) as admin:
        for n in range(1, 301):
            await bob.publish("feed", n)
            if n in (60, 140, 220):  # drop alice's link mid-stream (1008 like a slow consumer)
                await states.wait_until(lambda items: items[-1] == "connected")
                reply = await admin.post(
                    "/api/admin/connections/alice/disconnect", json={"code": 1008}
                )
                assert reply.status_code == 200, reply.text
    await got.wait_until(lambda _: seqs(got)[-1:] == [300])

    assert seqs(got) == list(range(1, 301))  # every event once, in order
    assert [e["content"] for e in got.of_type("message")] == list(range(1, 301))
    assert states.items.count("reconnecting") == 3
    assert not got.of_type("recovery_failed")
    await alice.close()
    await bob.close()

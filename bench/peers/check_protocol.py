"""Smoke check of the /ws/{client_id} JSON protocol every compared server must speak.

Two clients connect, get `welcome`, subscribe to a room (ack), one publishes (ack) and the
other receives it with room/from/content/timestamp; ping/pong with and without id, pong
ignored, INVALID_JSON, UNKNOWN_TYPE, unsubscribe (ack, then nothing more from that room),
messages to `general`. Replies may carry extra fields (roomcast's acks carry `sequence`),
so only the fields of the common protocol are checked.

Usage: python check_protocol.py ws://127.0.0.1:PORT   (exit 0 when everything holds)
Needs the `websockets` package (bench/peers/.venv has it).
"""

import asyncio
import json
import os
import sys

from websockets.asyncio.client import connect


async def recv(ws):
    """Next message that is not a server heartbeat."""
    while True:
        m = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if m.get("type") != "ping":
            return m


def expect(cond, what, got):
    if not cond:
        raise AssertionError(f"{what}: got {got!r}")


async def check(url: str) -> None:
    tag = os.getpid()
    alice, bob = f"check-{tag}-alice", f"check-{tag}-bob"
    room = f"check-{tag}"
    async with connect(f"{url}/ws/{alice}") as a, connect(f"{url}/ws/{bob}") as b:
        for ws, cid in ((a, alice), (b, bob)):
            w = await recv(ws)
            expect(w.get("type") == "welcome" and w.get("client_id") == cid
                   and w.get("heartbeat_interval") == 30 and "server_time" in w, "welcome", w)

        await a.send(json.dumps({"type": "subscribe", "room": room, "id": 1}))
        m = await recv(a)
        expect(m.get("type") == "ack" and m.get("id") == 1, "subscribe ack (numeric id)", m)
        await b.send(json.dumps({"type": "subscribe", "room": room, "id": "s"}))
        m = await recv(b)
        expect(m.get("type") == "ack" and m.get("id") == "s", "subscribe ack (string id)", m)

        await b.send(json.dumps({"type": "message", "room": room, "content": {"text": "hi"}, "id": 7}))
        m = await recv(b)
        expect(m.get("type") == "ack" and m.get("id") == 7, "message ack to the sender", m)
        m = await recv(a)
        expect(m.get("type") == "message" and m.get("room") == room and m.get("from") == bob
               and m.get("content") == {"text": "hi"} and "timestamp" in m, "delivered message", m)

        await a.send(json.dumps({"type": "ping", "id": 3}))
        m = await recv(a)
        expect(m == {"type": "pong", "id": 3}, "pong with id", m)
        await a.send(json.dumps({"type": "ping"}))
        m = await recv(a)
        expect(m == {"type": "pong"}, "pong without id", m)
        await a.send(json.dumps({"type": "pong"}))  # ignored: no reply

        await a.send("{not json")
        m = await recv(a)
        expect(m.get("type") == "error" and m.get("code") == "INVALID_JSON", "INVALID_JSON", m)
        await a.send(json.dumps({"type": "bogus", "id": 9}))
        m = await recv(a)
        expect(m.get("type") == "error" and m.get("code") == "UNKNOWN_TYPE", "UNKNOWN_TYPE", m)

        await a.send(json.dumps({"type": "unsubscribe", "room": room, "id": 4}))
        m = await recv(a)
        expect(m.get("type") == "ack" and m.get("id") == 4, "unsubscribe ack", m)
        await b.send(json.dumps({"type": "message", "room": room, "content": 1}))
        await b.send(json.dumps({"type": "message", "room": "general", "content": 2}))
        m = await recv(a)
        expect(m.get("type") == "message" and m.get("room") == "general" and m.get("content") == 2,
               "only the `general` message after unsubscribing", m)
    print(f"protocol check passed: {url}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: check_protocol.py ws://HOST:PORT")
    try:
        asyncio.run(check(sys.argv[1].rstrip("/")))
    except Exception as e:  # one line for the caller's log
        sys.exit(f"protocol check FAILED against {sys.argv[1]}: {type(e).__name__}: {e}")

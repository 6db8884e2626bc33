"""Python `websockets` peer for `scripts/bench-compare`.

roomcast's /ws/{client_id} JSON protocol on the `websockets` library's asyncio server,
written the way its documentation suggests: rooms as a dict of sets of connections, one
`json.dumps` per publish, fan-out with the library's own `broadcast()` helper (which
writes to every connection without awaiting). Plain asyncio event loop, library defaults
otherwise (its keepalive pings included). No auth, no rate limit, no history, no
application heartbeat loop.

Usage: python server.py [PORT]   (or PORT=…; HOST defaults to 127.0.0.1)
"""

import asyncio
import json
import os
import signal
import sys
from datetime import datetime, timezone
from http import HTTPStatus
from urllib.parse import unquote

from websockets.asyncio.server import broadcast, serve

HEARTBEAT_INTERVAL = 30

# room name -> connections in it
ROOMS: dict[str, set] = {}
# client id -> its connection (one session per client id)
CLIENTS: dict[str, object] = {}


def dumps(message: dict) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def join(ws, room: str) -> None:
    ROOMS.setdefault(room, set()).add(ws)
    ws.rooms.add(room)


def leave(ws, room: str) -> None:
    members = ROOMS.get(room)
    if members is not None:
        members.discard(ws)
        if not members:
            del ROOMS[room]
    ws.rooms.discard(room)


def publish(room: str, message: dict, exclude=None) -> None:
    members = ROOMS.get(room)
    if not members:
        return
    broadcast([ws for ws in members if ws is not exclude], dumps(message))


def client_id_of(path: str):
    if not path.startswith("/ws/"):
        return None
    client_id = unquote(path[4:].split("?", 1)[0])
    return client_id if client_id and "/" not in client_id else None


def process_request(connection, request):
    if client_id_of(request.path) is None:
        return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
    return None


async def handler(ws):
    client_id = client_id_of(ws.request.path)
    ws.rooms = set()

    old = CLIENTS.get(client_id)
    if old is not None:
        await old.close(4000, "Superseded")
    CLIENTS[client_id] = ws

    try:
        await ws.send(dumps({
            "type": "welcome",
            "client_id": client_id,
            "heartbeat_interval": HEARTBEAT_INTERVAL,
            "server_time": now_iso(),
        }))
        join(ws, "general")

        async for text in ws:
            try:
                data = json.loads(text)
            except ValueError:
                await ws.send(dumps({"type": "error", "code": "INVALID_JSON",
                                     "message": "the frame is not valid JSON"}))
                continue
            if not isinstance(data, dict):
                await ws.send(dumps({"type": "error", "code": "INVALID_MESSAGE",
                                     "message": "expected a JSON object"}))
                continue
            request_id = data.get("id")
            kind = data.get("type")
            if kind == "subscribe":
                join(ws, data["room"])
                if request_id is not None:
                    await ws.send(dumps({"type": "ack", "id": request_id}))
            elif kind == "unsubscribe":
                leave(ws, data["room"])
                if request_id is not None:
                    await ws.send(dumps({"type": "ack", "id": request_id}))
            elif kind == "message":
                publish(data["room"], {
                    "type": "message",
                    "room": data["room"],
                    "from": client_id,
                    "content": data["content"],
                    "timestamp": now_iso(),
                }, exclude=ws)
                if request_id is not None:
                    await ws.send(dumps({"type": "ack", "id": request_id}))
            elif kind == "ping":
                reply = {"type": "pong"}
                if request_id is not None:
                    reply["id"] = request_id
                await ws.send(dumps(reply))
            elif kind == "pong":
                pass
            else:
                error = {"type": "error", "code": "UNKNOWN_TYPE",
                         "message": f"unknown message type {kind!r}"}
                if request_id is not None:
                    error["id"] = request_id
                await ws.send(dumps(error))
    finally:
        for room in list(ws.rooms):
            leave(ws, room)
        if CLIENTS.get(client_id) is ws:
            del CLIENTS[client_id]
            publish("general", {"type": "user_left", "client_id": client_id})


async def main(port: int) -> None:
    host = os.environ.get("HOST", "127.0.0.1")
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set_result, None)
    async with serve(handler, host, port, process_request=process_request):
        print(f"py-websockets peer listening on ws://{host}:{port}", flush=True)
        await stop


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("PORT", 8080))))

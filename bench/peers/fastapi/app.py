"""FastAPI peer for `scripts/bench-compare`: the seed guide's pattern, as a user would run it.

The ConnectionManager below is the one of the seed guide
(websocket-server-patterns.md, Part 3 "Connection Manager Pattern") copied unchanged:
one asyncio.Lock, rooms as dicts of sets of client ids, `send_json` per recipient in
`broadcast_to_room`. The endpoint is the guide's "Usage with FastAPI", extended only with
what roomcast's protocol needs on top of it: the `welcome` message, request ids and their
`ack`s, `room` and `timestamp` in delivered messages, application `ping`/`pong`, and the
`INVALID_JSON` / `UNKNOWN_TYPE` errors (which needs `receive_text` + `json.loads` instead
of `receive_json`). Nothing is tuned: no auth, no rate limit, no history, no heartbeat
loop (uvicorn's own WebSocket keepalive pings stay at their default).

Run: uvicorn app:app --host 127.0.0.1 --port PORT --log-level warning
"""

import json
from datetime import datetime, timezone
from typing import Dict, Optional, Set

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

import asyncio


# --- seed guide, Part 3, api/websocket/manager.py (unchanged) -----------------------------
class ConnectionManager:
    """
    Production-ready WebSocket connection manager.

    Features:
    - Track connections by client ID
    - Room-based subscription system
    - Broadcast to all, room, or specific client
    - Connection metadata tracking
    - Graceful disconnect handling
    """

    def __init__(self):
        # client_id -> WebSocket mapping
        self.active_connections: Dict[str, WebSocket] = {}
        # room_name -> set of client_ids
        self.rooms: Dict[str, Set[str]] = {}
        # client_id -> metadata (connected_at, subscriptions, etc.)
        self.metadata: Dict[str, dict] = {}
        # Lock for thread-safe operations
        self._lock = asyncio.Lock()

    async def connect(
        self,
        websocket: WebSocket,
        client_id: str,
        metadata: Optional[dict] = None
    ) -> bool:
        """
        Accept connection and register client.
        Returns True if successful, False if client_id already connected.
        """
        async with self._lock:
            if client_id in self.active_connections:
                # Option 1: Reject new connection
                # return False

                # Option 2: Disconnect old, accept new (recommended)
                old_ws = self.active_connections[client_id]
                try:
                    await old_ws.close(code=4000, reason="Superseded")
                except:  # noqa: E722 (as in the guide)
                    pass

            await websocket.accept()
            self.active_connections[client_id] = websocket
            self.metadata[client_id] = {
                "connected_at": datetime.utcnow().isoformat(),
                "subscriptions": set(),
                **(metadata or {})
            }
            return True

    async def disconnect(self, client_id: str):
        """Remove client from all rooms and connections."""
        async with self._lock:
            # Remove from all rooms
            for room_name, members in list(self.rooms.items()):
                members.discard(client_id)
                if not members:
                    del self.rooms[room_name]

            # Remove connection and metadata
            self.active_connections.pop(client_id, None)
            self.metadata.pop(client_id, None)

    async def join_room(self, client_id: str, room: str):
        """Subscribe client to a room."""
        async with self._lock:
            if room not in self.rooms:
                self.rooms[room] = set()
            self.rooms[room].add(client_id)

            if client_id in self.metadata:
                self.metadata[client_id]["subscriptions"].add(room)

    async def leave_room(self, client_id: str, room: str):
        """Unsubscribe client from a room."""
        async with self._lock:
            if room in self.rooms:
                self.rooms[room].discard(client_id)
                if not self.rooms[room]:
                    del self.rooms[room]

            if client_id in self.metadata:
                self.metadata[client_id]["subscriptions"].discard(room)

    async def send_personal(self, client_id: str, message: dict):
        """Send message to specific client."""
        if client_id in self.active_connections:
            websocket = self.active_connections[client_id]
            try:
                await websocket.send_json(message)
            except Exception:
                await self.disconnect(client_id)

    async def broadcast(self, message: dict, exclude: Set[str] = None):
        """Send message to all connected clients."""
        exclude = exclude or set()
        disconnected = []

        for client_id, websocket in self.active_connections.items():
            if client_id not in exclude:
                try:
                    await websocket.send_json(message)
                except Exception:
                    disconnected.append(client_id)

        # Clean up disconnected clients
        for client_id in disconnected:
            await self.disconnect(client_id)

    async def broadcast_to_room(
        self,
        room: str,
        message: dict,
        exclude: Set[str] = None
    ):
        """Send message to all clients in a room."""
        exclude = exclude or set()
        if room not in self.rooms:
            return

        disconnected = []
        for client_id in self.rooms[room]:
            if client_id not in exclude:
                websocket = self.active_connections.get(client_id)
                if websocket:
                    try:
                        await websocket.send_json(message)
                    except Exception:
                        disconnected.append(client_id)

        for client_id in disconnected:
            await self.disconnect(client_id)

    @property
    def connection_count(self) -> int:
        """Number of active connections."""
        return len(self.active_connections)

    def get_room_members(self, room: str) -> Set[str]:
        """Get all client IDs in a room."""
        return self.rooms.get(room, set()).copy()


# Singleton instance
manager = ConnectionManager()
# --- end of the seed's ConnectionManager ---------------------------------------------------

HEARTBEAT_INTERVAL = 30

app = FastAPI()


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def error(code: str, message: str, request_id=None) -> dict:
    reply = {"type": "error", "code": code, "message": message}
    if request_id is not None:
        reply["id"] = request_id
    return reply


@app.websocket("/ws/{client_id}")
async def websocket_endpoint(websocket: WebSocket, client_id: str):
    connected = await manager.connect(websocket, client_id)
    if not connected:
        return

    try:
        await websocket.send_json({
            "type": "welcome",
            "client_id": client_id,
            "heartbeat_interval": HEARTBEAT_INTERVAL,
            "server_time": now_iso(),
        })
        # Join default room
        await manager.join_room(client_id, "general")

        while True:
            text = await websocket.receive_text()
            try:
                data = json.loads(text)
            except ValueError:
                await websocket.send_json(error("INVALID_JSON", "the frame is not valid JSON"))
                continue
            if not isinstance(data, dict):
                await websocket.send_json(error("INVALID_MESSAGE", "expected a JSON object"))
                continue
            request_id = data.get("id")

            # Handle different message types
            if data.get("type") == "subscribe":
                await manager.join_room(client_id, data["room"])
                if request_id is not None:
                    await websocket.send_json({"type": "ack", "id": request_id})
            elif data.get("type") == "unsubscribe":
                await manager.leave_room(client_id, data["room"])
                if request_id is not None:
                    await websocket.send_json({"type": "ack", "id": request_id})
            elif data.get("type") == "message":
                # Broadcast to room
                await manager.broadcast_to_room(
                    data["room"],
                    {
                        "type": "message",
                        "room": data["room"],
                        "from": client_id,
                        "content": data["content"],
                        "timestamp": now_iso(),
                    },
                    exclude={client_id}  # Don't echo back
                )
                if request_id is not None:
                    await websocket.send_json({"type": "ack", "id": request_id})
            elif data.get("type") == "ping":
                reply = {"type": "pong"}
                if request_id is not None:
                    reply["id"] = request_id
                await websocket.send_json(reply)
            elif data.get("type") == "pong":
                pass
            else:
                await websocket.send_json(
                    error("UNKNOWN_TYPE", f"unknown message type {data.get('type')!r}", request_id)
                )

    except WebSocketDisconnect:
        await manager.disconnect(client_id)
        await manager.broadcast_to_room(
            "general",
            {"type": "user_left", "client_id": client_id}
        )

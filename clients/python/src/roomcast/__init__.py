"""roomcast: an asyncio client for the roomcast WebSocket server and its trading arena.

Modules: `client` (the session: reconnect, recovery, acks, refresh), `rooms` (per-room
position and dedupe), `backoff` (full jitter), `close_codes` (reconnect or stop), `auth`
(Ed25519), `errors`, and `arena` (signed REST and stream state).
"""

from .auth import Ed25519Credentials
from .backoff import Backoff
from .client import ClientOptions, RoomcastClient, State
from .close_codes import CloseAction, CloseCode, action_for
from .errors import (
    ArenaError,
    AuthError,
    ClientClosed,
    ConnectionLost,
    NotConnected,
    RequestError,
    RequestTimeout,
    RoomcastError,
)
from .rooms import Event, Handler, Position, Subscription

__all__ = [
    "ArenaError",
    "AuthError",
    "Backoff",
    "ClientClosed",
    "ClientOptions",
    "CloseAction",
    "CloseCode",
    "ConnectionLost",
    "Ed25519Credentials",
    "Event",
    "Handler",
    "NotConnected",
    "Position",
    "RequestError",
    "RequestTimeout",
    "RoomcastClient",
    "RoomcastError",
    "State",
    "Subscription",
    "action_for",
]

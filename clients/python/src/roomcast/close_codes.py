"""WebSocket close codes of the roomcast protocol and what the client does on each.

The table lives in docs/CLIENTS.md (shared with the TypeScript client); this module is
the one place that decides whether a close code means "reconnect" or "stop".
"""

from __future__ import annotations

import enum


class CloseCode(enum.IntEnum):
    """Every close code roomcast sends (docs/PROTOCOL.md, "Close codes")."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    INVALID_PAYLOAD = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    UNAUTHORIZED = 4001
    INVALID_TOKEN = 4002
    TOKEN_EXPIRED = 4003
    AUTH_TIMEOUT = 4004
    SESSION_SUPERSEDED = 4011
    SESSION_EXPIRED = 4012
    RATE_LIMITED = 4021
    TOO_MANY_CONNECTIONS = 4022
    INVALID_SUBSCRIPTION = 4031
    MARKET_CLOSED = 4032
    SERVER_SHUTDOWN = 4091
    SERVER_ERROR = 4092


class CloseAction(enum.Enum):
    """What the client does after a close."""

    RECONNECT = "reconnect"
    """Reconnect with backoff and recover every room."""
    REAUTHENTICATE = "reauthenticate"
    """Reconnect only if `get_token` yields a new token; otherwise stop."""
    STOP = "stop"
    """Never reconnect automatically."""


_AUTH = {
    CloseCode.UNAUTHORIZED,
    CloseCode.INVALID_TOKEN,
    CloseCode.TOKEN_EXPIRED,
    CloseCode.AUTH_TIMEOUT,
    CloseCode.SESSION_EXPIRED,
}
_STOP = {
    # The client sent binary or invalid UTF-8: a bug, and retrying repeats it.
    CloseCode.UNSUPPORTED_DATA,
    CloseCode.INVALID_PAYLOAD,
    CloseCode.SESSION_SUPERSEDED,
    CloseCode.TOO_MANY_CONNECTIONS,
    CloseCode.INVALID_SUBSCRIPTION,
}


def action_for(code: int | None) -> CloseAction:
    """Classifies a close code; unknown codes and a lost TCP connection reconnect."""
    if code in _AUTH:
        return CloseAction.REAUTHENTICATE
    if code in _STOP:
        return CloseAction.STOP
    return CloseAction.RECONNECT

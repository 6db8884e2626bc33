"""Typed errors raised by the client: one class per way a call can fail.

Callers catch `RoomcastError` for everything, or a subclass to react to one cause.
"""

from __future__ import annotations


class RoomcastError(Exception):
    """Base class of every error this package raises."""


class RequestError(RoomcastError):
    """The server answered a request with `{"type":"error"}`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class RequestTimeout(RoomcastError, TimeoutError):
    """No reply arrived within `request_timeout` (the request may still have run)."""


class ConnectionLost(RoomcastError):
    """The connection closed before the request was answered (it may or may not have run)."""


class NotConnected(RoomcastError):
    """A request was made while disconnected and the policy is `fail`, or the queue is full."""


class ClientClosed(RoomcastError):
    """The client was closed, by `close()` or by a close code that means stop."""

    def __init__(self, message: str, code: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


class AuthError(RoomcastError):
    """The authentication flow went wrong on the client side (unexpected message order)."""


class ArenaError(RoomcastError):
    """A REST call to the arena answered with an error body.

    `code` is the server's error code (`invalid_signature`, `not_open`, or for a 422 the
    reject reason); `reason` is set for risk-check rejections.
    """

    def __init__(self, status: int, code: str, message: str, reason: str | None) -> None:
        super().__init__(f"HTTP {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.reason = reason

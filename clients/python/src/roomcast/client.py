"""`RoomcastClient`: one logical session that survives reconnects.

Owns the connection loop (connect, authenticate, resubscribe, read until closed, back off,
again), the request/ack table, per-room recovery (rooms.py) and token refresh. The rules it
follows are docs/PROTOCOL.md's; docs/CLIENTS-python.md says what each close code does.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, urlencode

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from .auth import Ed25519Credentials
from .backoff import Backoff
from .close_codes import CloseAction, action_for
from .errors import (
    AuthError,
    ClientClosed,
    ConnectionLost,
    NotConnected,
    RequestError,
    RequestTimeout,
    RoomcastError,
)
from .rooms import Event, Handler, Position, RoomState, Subscription

_log = logging.getLogger("roomcast")

_STOP_STATUSES = {400, 401, 403, 404}
"""Handshake answers that no retry can fix (bad client id, origin, path); 429/503 retry."""

State = Literal["connecting", "connected", "reconnecting", "disconnected", "closed"]
"""Connection states, in the order a session goes through them."""

TokenSource = Callable[[], Awaitable[str] | str]
"""Returns a fresh JWT; may be a coroutine function."""

Listener = Callable[[Any], None]


@dataclass
class ClientOptions:
    """Tunables; the defaults follow docs/CLIENTS-python.md."""

    backoff_base: float = 0.5
    """Seconds: window of the first retry (full jitter)."""
    backoff_cap: float = 30.0
    """Seconds: largest retry window."""
    max_attempts: int | None = None
    """Consecutive failed attempts before giving up (None: forever)."""
    stable_after: float = 10.0
    """Seconds a connection must live before the backoff starts again from `backoff_base`."""
    heartbeat_timeout: float = 10.0
    """Extra silence tolerated after `welcome.heartbeat_interval` before the link is dead."""
    request_timeout: float = 10.0
    """Seconds to wait for an ack."""
    connect_timeout: float = 10.0
    """Seconds for the TCP + WebSocket handshake and the authentication."""
    offline_policy: Literal["queue", "fail"] = "queue"
    """What requests made while reconnecting do: wait for the connection, or fail at once."""
    offline_queue: int = 1000
    """How many requests may wait for the connection; more fail with `NotConnected`."""
    max_message_bytes: int = 16 * 1024 * 1024
    """Largest inbound frame accepted (a book snapshot can be large)."""


@dataclass
class _Session:
    ws: ClientConnection
    heartbeat_interval: float
    features: list[str] = field(default_factory=list)


class RoomcastClient:
    """An asyncio roomcast client with reconnect, recovery, acks and token refresh.

    `url` is the server's base (`ws://host:port`). The connection path follows from the
    credentials: `/ws/{client_id}`; `/ws/{collective}?auth=ed25519` with `ed25519`; and
    `/ws/{collective}/{stream}` with `stream` (`portfolio`, `orders`, `market`).
    """

    def __init__(
        self,
        url: str,
        *,
        client_id: str | None = None,
        token: str | None = None,
        get_token: TokenSource | None = None,
        ed25519: Ed25519Credentials | None = None,
        stream: str | None = None,
        options: ClientOptions | None = None,
    ) -> None:
        self.options = options or ClientOptions()
        self._base = url.rstrip("/")
        owner = client_id or (ed25519.collective_id if ed25519 else None)
        if owner is None:
            raise ValueError("client_id or ed25519 credentials are required")
        self._owner = owner
        self._token = token
        self._get_token = get_token
        self._ed25519 = ed25519
        self._stream = stream
        self._backoff = Backoff(
            self.options.backoff_base, self.options.backoff_cap, self.options.max_attempts
        )
        self._rooms: dict[str, RoomState] = {}
        self._auto_room = self._server_joined_room()
        if self._auto_room is not None:
            self._rooms[self._auto_room] = RoomState(self._auto_room, joined_by_server=True)
        self._listeners: dict[str, list[Listener]] = {}
        self._pending: dict[int, asyncio.Future[Event]] = {}
        self._ids = itertools.count(1)
        self._session: _Session | None = None
        self._connected = asyncio.Event()
        self._waiting = 0
        self._state: State = "disconnected"
        self._terminal: ClientClosed | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._first: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.features: list[str] = []
        """`welcome.features` of the current connection (e.g. `"refresh"`)."""

    # ---- public API -------------------------------------------------------------------

    @property
    def state(self) -> State:
        """The current connection state."""
        return self._state

    @property
    def closed_error(self) -> ClientClosed | None:
        """Why the client stopped, once it is `closed`."""
        return self._terminal

    def on(self, event: str, listener: Listener) -> Callable[[], None]:
        """Registers a listener; returns a function that removes it.

        Events: `state` (State), `welcome`, `recovery_failed`, `unsubscribed`, `message`
        (server messages outside any followed room), `token_refreshed`, `error`.
        """
        self._listeners.setdefault(event, []).append(listener)
        return lambda: self._listeners.get(event, []).remove(listener)

    async def connect(self) -> None:
        """Starts the connection loop and waits for the first `welcome`.

        Raises `ClientClosed` if the client stops (fatal close code, attempts used up)
        before it ever connected.
        """
        if self._run_task is not None:
            raise RoomcastError("connect() was already called")
        if self._token is None and self._get_token is not None:
            self._token = await _call_token(self._get_token)
        self._first = asyncio.get_running_loop().create_future()
        self._run_task = asyncio.create_task(self._run(), name=f"roomcast:{self._owner}")
        await asyncio.shield(self._first)

    async def close(self) -> None:
        """Closes the connection (1000) and stops reconnecting; idempotent."""
        self._stop(ClientClosed("client closed"))
        session = self._session
        if session is not None:
            await session.ws.close(1000, "client closed")
        if self._run_task is not None:
            self._run_task.cancel()
            await asyncio.gather(self._run_task, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def wait_closed(self) -> ClientClosed | None:
        """Waits until the client stops; returns why."""
        if self._run_task is not None:
            await asyncio.gather(self._run_task, return_exceptions=True)
        return self._terminal

    async def subscribe(
        self, room: str, handler: Handler, *, since: Position | None = None
    ) -> Subscription:
        """Joins `room` and delivers its events to `handler`, each exactly once, in order.

        With `since` the missed events after it are replayed first. Resolves on the ack;
        raises `RequestError` (e.g. `FORBIDDEN`) when the server refuses.
        """
        state = self._rooms.get(room)
        if state is not None:
            state.handlers.append(handler)
            return Subscription(state, handler, self._detach)
        state = RoomState(room, joined_by_server=False, position=since)
        state.handlers.append(handler)
        self._rooms[room] = state
        try:
            await self._join(state)
        except BaseException:
            self._rooms.pop(room, None)
            raise
        return Subscription(state, handler, self._detach)

    def listen(self, room: str, handler: Handler) -> Subscription:
        """Follows a room the server joins by itself (`general`, a stream's room)."""
        state = self._rooms.setdefault(room, RoomState(room, joined_by_server=True))
        state.handlers.append(handler)
        return Subscription(state, handler, self._detach)

    async def publish(self, room: str, content: Any) -> Event:
        """Publishes to a joined room; returns the ack (`sequence`, `epoch`)."""
        return await self.request({"type": "message", "room": room, "content": content})

    async def presence(self, room: str) -> list[str]:
        """The sorted client ids in `room`."""
        ack = await self.request({"type": "presence", "room": room})
        members = ack.get("members")
        return [m for m in members if isinstance(m, str)] if isinstance(members, list) else []

    async def request(self, message: dict[str, Any]) -> Event:
        """Sends `message` with a fresh `id` and returns its ack (or natural reply).

        Waits for the connection when reconnecting (bounded, see `offline_policy`); raises
        `RequestError` on an error reply, `ConnectionLost` if the link drops first and
        `RequestTimeout` after `request_timeout`.
        """
        await self._wait_connected()
        session = self._session
        if session is None:
            raise ConnectionLost("connection lost before sending")
        return await self._await_reply(*await self._send(session, message))

    # ---- connection loop --------------------------------------------------------------

    def _server_joined_room(self) -> str | None:
        if self._stream is None:
            return "general"
        if self._stream in ("portfolio", "orders"):
            return f"{self._stream}:{self._owner}"
        return None

    def _url(self) -> str:
        if self._stream is not None:
            path = f"/ws/{quote(self._owner, safe='')}/{quote(self._stream, safe='')}"
            query: dict[str, str] = {}
        else:
            path = f"/ws/{quote(self._owner, safe='')}"
            query = {"auth": "ed25519"} if self._ed25519 and not self._token else {}
        auto = self._rooms.get(self._auto_room) if self._auto_room else None
        if auto is not None and auto.position is not None:
            query["last_sequence"] = str(auto.position.sequence)
            query["epoch"] = auto.position.epoch
        return self._base + path + ("?" + urlencode(query) if query else "")

    async def _run(self) -> None:
        first = True
        while self._terminal is None:
            self._set_state("connecting" if first else "reconnecting")
            code: int | None = None
            reason = ""
            started = time.monotonic()
            try:
                ws = await connect(
                    self._url(),
                    additional_headers=(
                        {"Authorization": f"Bearer {self._token}"} if self._token else None
                    ),
                    ping_interval=None,
                    open_timeout=self.options.connect_timeout,
                    max_size=self.options.max_message_bytes,
                )
            except InvalidStatus as e:
                self._emit("error", e)
                status = e.response.status_code
                if status in _STOP_STATUSES:
                    self._stop(ClientClosed(f"handshake refused: HTTP {status}"))
                    break
            except (OSError, InvalidHandshake, TimeoutError) as e:
                self._emit("error", e)
            else:
                code, reason, started = await self._serve(ws)
                first = False
            if self._terminal is not None:
                break
            if await self._should_stop(code, reason):
                break
            if time.monotonic() - started >= self.options.stable_after:
                self._backoff.reset()
            delay = self._backoff.next_delay()
            if delay is None:
                self._stop(ClientClosed("reconnect attempts used up", code, reason))
                break
            self._set_state("reconnecting")
            await asyncio.sleep(delay)

    async def _should_stop(self, code: int | None, reason: str) -> bool:
        action = action_for(code)
        if action is CloseAction.STOP:
            self._stop(ClientClosed(f"closed by server: {code} {reason}", code, reason))
            return True
        if action is CloseAction.REAUTHENTICATE:
            fresh = await _call_token(self._get_token) if self._get_token else None
            if fresh is None or fresh == self._token:
                self._stop(ClientClosed(f"authentication refused: {code} {reason}", code, reason))
                return True
            self._token = fresh
        return False

    async def _serve(self, ws: ClientConnection) -> tuple[int | None, str, float]:
        """Runs one connection; returns its close code and reason and when it was up."""
        started = time.monotonic()
        try:
            session = await asyncio.wait_for(self._handshake(ws), self.options.connect_timeout)
            started = time.monotonic()
            self._session = session
            self.features = session.features
            await self._resubscribe(session)
            self._set_state("connected")
            self._connected.set()
            if self._first is not None and not self._first.done():
                self._first.set_result(None)
            await self._read(session)
        except (ConnectionClosed, ConnectionLost):
            pass
        except (TimeoutError, AuthError, ValueError) as e:
            self._emit("error", e)
            ws.transport.abort()
        finally:
            self._session = None
            self._connected.clear()
            self._fail_pending(ConnectionLost("connection lost"))
        if self._terminal is None:
            self._set_state("disconnected")
        rcvd = ws.close_code
        return rcvd, ws.close_reason or "", started

    async def _handshake(self, ws: ClientConnection) -> _Session:
        while True:
            msg = _decode(await ws.recv())
            kind = msg.get("type")
            if kind == "auth_challenge":
                if self._ed25519 is None:
                    raise AuthError("server asked for an Ed25519 challenge; no key configured")
                signature = self._ed25519.sign(str(msg.get("challenge", "")))
                await ws.send(json.dumps({"type": "auth_response", "signature": signature}))
            elif kind == "auth_ok":
                continue
            elif kind == "welcome":
                self._emit("welcome", msg)
                features = msg.get("features")
                interval = msg.get("heartbeat_interval")
                return _Session(
                    ws,
                    float(interval) if isinstance(interval, (int, float)) else 30.0,
                    [f for f in features if isinstance(f, str)]
                    if isinstance(features, list)
                    else [],
                )
            else:
                raise AuthError(f"unexpected {kind!r} before welcome")

    async def _resubscribe(self, session: _Session) -> None:
        """Sends a subscribe (with `since` when known) for every room the client joined.

        The frames go out before `connected` is announced, so queued publishes follow them;
        the acks are awaited in the background.
        """
        for state in list(self._rooms.values()):
            if not state.joined_by_server:
                message = _subscribe_message(state)
                sent = await self._send(session, message)
                self._spawn(self._settle_join(state, message, sent))

    async def _join(self, state: RoomState) -> None:
        message = _subscribe_message(state)
        ack = await self.request(message)
        if "since" not in message:
            state.note_ack(ack)

    async def _settle_join(
        self, state: RoomState, message: Event, sent: tuple[int, asyncio.Future[Event]]
    ) -> None:
        try:
            ack = await self._await_reply(*sent)
        except (RequestError, RequestTimeout) as e:
            self._emit("error", e)
            return
        except ConnectionLost:
            return
        if "since" not in message:
            state.note_ack(ack)

    async def _send(
        self, session: _Session, message: dict[str, Any]
    ) -> tuple[int, asyncio.Future[Event]]:
        rid = next(self._ids)
        future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        try:
            await session.ws.send(json.dumps({**message, "id": rid}))
        except ConnectionClosed as e:
            self._pending.pop(rid, None)
            raise ConnectionLost(str(e)) from e
        return rid, future

    async def _await_reply(self, rid: int, future: asyncio.Future[Event]) -> Event:
        try:
            return await asyncio.wait_for(future, self.options.request_timeout)
        except TimeoutError as e:
            raise RequestTimeout(f"no reply within {self.options.request_timeout} s") from e
        finally:
            self._pending.pop(rid, None)

    async def _read(self, session: _Session) -> None:
        dead_after = session.heartbeat_interval + self.options.heartbeat_timeout
        while True:
            try:
                raw = await asyncio.wait_for(session.ws.recv(), dead_after)
            except TimeoutError:
                self._emit("error", ConnectionLost(f"no traffic for {dead_after:.0f} s"))
                session.ws.transport.abort()
                return
            await self._dispatch(session, _decode(raw))

    async def _dispatch(self, session: _Session, msg: Event) -> None:
        kind = msg.get("type")
        rid = msg.get("id")
        if kind in ("ack", "error", "pong") and isinstance(rid, int) and rid in self._pending:
            future = self._pending[rid]
            if not future.done():
                if kind == "error":
                    future.set_exception(
                        RequestError(str(msg.get("code")), str(msg.get("message", "")))
                    )
                else:
                    future.set_result(msg)
            return
        if kind == "ping":
            await session.ws.send('{"type":"pong"}')
            return
        if kind == "token_expiring":
            self._spawn(self._refresh())
            return
        room = msg.get("room")
        state = self._rooms.get(room) if isinstance(room, str) else None
        if kind == "unsubscribed" and isinstance(room, str):
            self._rooms.pop(room, None)
            self._emit("unsubscribed", msg)
        if state is None:
            self._emit("error" if kind == "error" else "message", msg)
            return
        if not state.accept(msg):
            return
        if kind == "recovery_failed":
            self._emit("recovery_failed", msg)
        try:
            await state.deliver(msg)
        except Exception as e:  # a failing handler must not end the session
            self._emit("error", e)

    async def _refresh(self) -> None:
        if self._get_token is None or "refresh" not in self.features:
            return
        try:
            token = await _call_token(self._get_token)
            if token == self._token:
                return  # the same token cannot extend the session; expiry closes 4003
            ack = await self.request({"type": "refresh", "token": token})
        except RoomcastError as e:
            self._emit("error", e)
            return
        self._token = token
        self._emit("token_refreshed", ack)

    async def _detach(self, sub: Subscription) -> None:
        state = self._rooms.get(sub.room)
        if state is None or sub.handler not in state.handlers:
            return
        state.handlers.remove(sub.handler)
        if state.handlers or state.joined_by_server:
            return
        self._rooms.pop(sub.room, None)
        if self._connected.is_set():
            try:
                await self.request({"type": "unsubscribe", "room": sub.room})
            except ConnectionLost:
                pass  # the room is forgotten: it will not be rejoined

    # ---- helpers ------------------------------------------------------------------------

    async def _wait_connected(self) -> None:
        if self._terminal is not None:
            raise self._terminal
        if self._connected.is_set():
            return
        if self._run_task is None:
            raise NotConnected("call connect() first")
        if self.options.offline_policy == "fail":
            raise NotConnected("not connected")
        if self._waiting >= self.options.offline_queue:
            raise NotConnected("offline queue is full")
        self._waiting += 1
        try:
            await self._connected.wait()
        finally:
            self._waiting -= 1
        if self._terminal is not None:
            raise self._terminal

    def _stop(self, why: ClientClosed) -> None:
        if self._terminal is not None:
            return
        self._terminal = why
        self._fail_pending(why)
        self._connected.set()  # releases waiters, who then see _terminal
        if self._first is not None and not self._first.done():
            self._first.set_exception(why)
        self._set_state("closed")

    def _fail_pending(self, error: RoomcastError) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        self._pending.clear()

    def _set_state(self, state: State) -> None:
        if state != self._state and self._state != "closed":
            self._state = state
            self._emit("state", state)

    def _emit(self, event: str, value: Any) -> None:
        for listener in list(self._listeners.get(event, [])):
            try:
                listener(value)
            except Exception:  # a failing listener must not end the session
                _log.exception("roomcast %s listener failed", event)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _subscribe_message(state: RoomState) -> Event:
    message: Event = {"type": "subscribe", "room": state.name}
    if state.position is not None:
        message["since"] = state.position.as_since()
    return message


def _decode(raw: str | bytes) -> Event:
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("server sent a JSON value that is not an object")
    return value


async def _call_token(source: TokenSource) -> str:
    result = source()
    if inspect.isawaitable(result):
        return await result
    return result

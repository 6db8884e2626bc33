"""Per-room recovery state: the last applied (epoch, sequence), handlers, and dedupe.

The rule (docs/PROTOCOL.md "Recovery"): an (epoch, sequence) pair names one event, so an
event of the room's current epoch at or below the last applied sequence was delivered
already and is dropped. A snapshot or a `recovery_failed` resets the position.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

Event = dict[str, Any]
"""One server message as decoded JSON."""

Handler = Callable[[Event], Awaitable[None] | None]
"""Receives the events of one room; may be a coroutine function (awaited in order)."""


@dataclass(frozen=True)
class Position:
    """The last event of a room that was delivered."""

    sequence: int
    epoch: str

    def as_since(self) -> dict[str, Any]:
        """The `since` object of a resubscribe."""
        return {"sequence": self.sequence, "epoch": self.epoch}


@dataclass
class RoomState:
    """A room the client follows."""

    name: str
    joined_by_server: bool
    """True for `general` and a trading stream's room: recovered via `?last_sequence=`."""
    handlers: list[Handler] = field(default_factory=list)
    position: Position | None = None

    def accept(self, event: Event) -> bool:
        """Updates the position for `event`; False when it is a duplicate to drop."""
        kind = event.get("type")
        seq = event.get("sequence")
        epoch = event.get("epoch")
        if not isinstance(seq, int) or not isinstance(epoch, str):
            return True
        if kind == "recovery_failed" or (isinstance(kind, str) and kind.endswith("_snapshot")):
            self.position = Position(seq, epoch)
            return True
        if kind == "ack":
            return False
        pos = self.position
        if pos is not None and pos.epoch == epoch and seq <= pos.sequence:
            return False
        self.position = Position(seq, epoch)
        return True

    def note_ack(self, ack: Event) -> None:
        """A plain subscribe's ack names the room's head: nothing before it is owed."""
        seq = ack.get("sequence")
        epoch = ack.get("epoch")
        if self.position is None and isinstance(seq, int) and isinstance(epoch, str):
            self.position = Position(seq, epoch)

    async def deliver(self, event: Event) -> None:
        """Calls every handler in registration order, awaiting coroutine handlers."""
        for handler in list(self.handlers):
            result = handler(event)
            if inspect.isawaitable(result):
                await result


class Subscription:
    """A handler attached to a room; `unsubscribe()` detaches it."""

    def __init__(
        self,
        room: RoomState,
        handler: Handler,
        on_unsubscribe: Callable[[Subscription], Awaitable[None]],
    ) -> None:
        self._room = room
        self._handler = handler
        self._on_unsubscribe = on_unsubscribe
        self.active = True

    @property
    def room(self) -> str:
        """The room name."""
        return self._room.name

    @property
    def handler(self) -> Handler:
        """The handler this subscription attached."""
        return self._handler

    @property
    def position(self) -> Position | None:
        """The last delivered (epoch, sequence) of the room."""
        return self._room.position

    async def unsubscribe(self) -> None:
        """Detaches the handler; the room is left when its last handler goes."""
        if self.active:
            self.active = False
            await self._on_unsubscribe(self)

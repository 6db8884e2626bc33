"""Dedupe and position rules of one room, without a server (pure state)."""

from __future__ import annotations

from roomcast import CloseAction, Position, action_for
from roomcast.rooms import RoomState


def ev(seq: int, epoch: str = "e1", kind: str = "message") -> dict[str, object]:
    return {"type": kind, "room": "r", "sequence": seq, "epoch": epoch}


def test_duplicates_and_older_events_of_the_same_epoch_are_dropped() -> None:
    room = RoomState("r", joined_by_server=False)
    assert [room.accept(ev(s)) for s in (1, 2, 2, 1, 3)] == [True, True, False, False, True]
    assert room.position == Position(3, "e1")


def test_a_new_epoch_is_accepted_and_a_snapshot_resets_the_position() -> None:
    room = RoomState("r", joined_by_server=False, position=Position(10, "e1"))
    assert room.accept(ev(4, "e2"))
    assert room.accept(ev(50, "e2", "book_snapshot"))
    assert not room.accept(ev(50, "e2"))  # at or below the snapshot: superseded
    assert room.accept(ev(51, "e2"))
    assert room.accept(ev(7, "e3", "recovery_failed"))
    assert room.position == Position(7, "e3")


def test_a_plain_subscribe_ack_sets_the_position_only_when_unknown() -> None:
    room = RoomState("r", joined_by_server=False)
    room.note_ack({"type": "ack", "sequence": 5, "epoch": "e1"})
    assert room.position == Position(5, "e1")
    room.note_ack({"type": "ack", "sequence": 9, "epoch": "e1"})
    assert room.position == Position(5, "e1")
    assert room.accept({"type": "replay_complete", "room": "r", "replayed_count": 0})


def test_close_codes_map_to_reconnect_reauthenticate_or_stop() -> None:
    for code in (None, 1000, 1001, 1006, 1008, 1009, 1011, 4021, 4032, 4091, 4092):
        assert action_for(code) is CloseAction.RECONNECT, code
    for code in (4001, 4002, 4003, 4004, 4012):
        assert action_for(code) is CloseAction.REAUTHENTICATE, code
    for code in (1003, 1007, 4011, 4022, 4031):
        assert action_for(code) is CloseAction.STOP, code

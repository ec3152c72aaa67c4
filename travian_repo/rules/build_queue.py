"""The build queue's timing: where a new order goes and when it runs, which orders a
cancellation takes with it, and how the rest closes up. Orders run one after another; plain
``BuildOrder`` values in (sorted by position), plain values out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Sequence

from travian_repo.domain.values import BuildOrder


@dataclass(frozen=True, slots=True)
class Place:
    """An order's place in the queue: its position and when it starts and completes."""

    position: int
    started_at: datetime
    completes_at: datetime


def next_place(queue: Sequence[BuildOrder], now: datetime, seconds: int) -> Place:
    """A new order goes last and starts when the last one completes (now when none runs)."""
    starts = max([now, *(o.completes_at for o in queue)])
    position = max((o.position for o in queue), default=0) + 1
    return Place(position, starts, starts + timedelta(seconds=seconds))


def cancelled(queue: Sequence[BuildOrder], position: int) -> list[BuildOrder]:
    """The orders cancelling ``position`` removes: that order, and the later levels of the
    same slot that build on it, by position (the cancelled order first). Empty when no order
    stands at ``position``."""
    order = next((o for o in queue if o.position == position), None)
    if order is None:
        return []
    return sorted((o for o in queue
                   if o.position == order.position
                   or (o.slot == order.slot and o.position > order.position)),
                  key=lambda o: o.position)


def close_up(kept: Sequence[BuildOrder], now: datetime) -> list[tuple[BuildOrder, Place]]:
    """The orders left after a cancellation renumbered 1..n in their order, each waiting
    queued order moved earlier to start when the one before it completes (a started one keeps
    its times). Only the orders whose place changes, lowest position first, so each moves
    into a position already free."""
    moves: list[tuple[BuildOrder, Place]] = []
    cursor = now
    for position, o in enumerate(kept, start=1):
        starts = o.started_at if o.started_at <= now else max(cursor, now)
        place = Place(position, starts, starts + (o.completes_at - o.started_at))
        if (place.position, place.started_at, place.completes_at) != (
            o.position, o.started_at, o.completes_at
        ):
            moves.append((o, place))
        cursor = place.completes_at
    return moves


__all__ = ["Place", "cancelled", "close_up", "next_place"]

"""Finding what is due: every event up to a time, as rows read without locks, in the order
the engine processes them (time, then kind, then id)."""

from __future__ import annotations

import heapq
from datetime import datetime, timedelta
from typing import Any, Mapping, NamedTuple

from sqlalchemy import Connection, or_, select

from travian_repo.sql import schema
from travian_repo.sql.schema import as_utc

_m = schema.movements
_s = schema.shipments
_q = schema.build_queue
_tq = schema.training_queue

# Same time: builds, training, then arrivals (home first), shipments, merchants.
ORDER: Mapping[str, int] = {
    "build": 0,
    "train": 1,
    "return": 2,
    "reinforcement": 3,
    "scout": 4,
    "attack": 5,
    "raid": 5,
    "siege": 5,
    "deliver": 6,
    "merchants": 7,
}
HOSTILE = frozenset({"attack", "raid", "siege"})


class Due(NamedTuple):
    """One thing due: ordered by time, kind order, then id (a tuple, so the heap compares
    natively; ``(at, order, id)`` is unique to an event, so the rest never decides)."""

    at: datetime
    order: int
    id: int
    kind: str
    # The villages involved, as read when it was found (rechecked under lock): the build's
    # or line's village; a movement's or shipment's source and target.
    source: int = 0
    target: int = 0

    @classmethod
    def of(cls, kind: str, at: datetime, id_: int, source: int = 0, target: int = 0) -> Due:
        return cls(as_utc(at), ORDER[kind], int(id_), kind, int(source), int(target))


def collect(conn: Connection, when: datetime) -> list[Due]:
    """Everything due up to ``when``, unordered (the runner makes a heap of it)."""
    due: list[Due] = []
    builds = conn.execute(
        select(_q.c.id, _q.c.completes_at, _q.c.village_id).where(_q.c.completes_at <= when)
    )
    for id_, at, village in builds:
        due.append(Due.of("build", at, id_, village))
    lines = conn.execute(
        select(_tq.c.id, _tq.c.started_at, _tq.c.seconds_each, _tq.c.trained, _tq.c.village_id)
        .where(_tq.c.trained < _tq.c.count, _tq.c.started_at <= when)
    )
    for id_, started, seconds, trained, village in lines:
        at = as_utc(started) + timedelta(seconds=seconds * (trained + 1))
        if at <= when:
            due.append(Due.of("train", at, id_, village))
    moving = conn.execute(
        select(_m.c.id, _m.c.kind, _m.c.arrives_at, _m.c.from_village_id, _m.c.to_village_id)
        .where(_m.c.state == "underway", _m.c.arrives_at <= when)
    )
    for id_, kind, at, source, target in moving:
        due.append(Due.of(kind, at, id_, source, target))
    shipped = conn.execute(
        select(_s.c.id, _s.c.arrives_at, _s.c.from_village_id, _s.c.to_village_id)
        .where(_s.c.state == "underway", _s.c.arrives_at <= when)
    )
    for id_, at, source, target in shipped:
        due.append(Due.of("deliver", at, id_, source, target))
    for id_, at in conn.execute(
        select(_s.c.id, _s.c.returns_at).where(_s.c.state == "returning", _s.c.returns_at <= when)
    ):
        due.append(Due.of("merchants", at, id_))
    return due


def collect_held(conn: Connection, ids: list[int], when: datetime) -> dict[tuple[str, int], tuple[Due, Any]]:
    """Everything due up to ``when`` in the villages ``ids`` (read after their locks: what
    the batch decides on), as (kind, id) -> (due, row)."""
    found: dict[tuple[str, int], tuple[Due, Any]] = {}
    if not ids:
        return found
    for row in conn.execute(select(_q).where(_q.c.village_id.in_(ids), _q.c.completes_at <= when)):
        found["build", row.id] = (Due.of("build", row.completes_at, row.id, row.village_id), row)
    for row in conn.execute(select(_tq).where(_tq.c.village_id.in_(ids), _tq.c.trained < _tq.c.count,
                                              _tq.c.started_at <= when)):
        at = as_utc(row.started_at) + timedelta(seconds=row.seconds_each * (row.trained + 1))
        if at <= when:
            found["train", row.id] = (Due.of("train", at, row.id, row.village_id), row)
    for row in conn.execute(select(_m).where(
            _m.c.state == "underway", _m.c.arrives_at <= when,
            or_(_m.c.from_village_id.in_(ids), _m.c.to_village_id.in_(ids)))):
        found[row.kind, row.id] = (Due.of(row.kind, row.arrives_at, row.id, row.from_village_id,
                                          row.to_village_id), row)
    for row in conn.execute(select(_s).where(_s.c.state == "underway", _s.c.arrives_at <= when,
                                             _s.c.to_village_id.in_(ids))):
        found["deliver", row.id] = (Due.of("deliver", row.arrives_at, row.id, row.from_village_id,
                                           row.to_village_id), row)
    return found


def villages_of(due: Due) -> set[int]:
    """The villages an event changes (a hostile arrival also the homes of troops stationed
    in its target, found under lock)."""
    if due.kind in ("build", "train"):
        return {due.source}
    if due.kind == "deliver":
        return {due.target}
    if due.kind == "merchants":
        return set()
    return {due.source, due.target}


def stationed_homes(targets: list[int]) -> Any:
    """The home villages of troops stationed in ``targets`` (a statement)."""
    return (select(_m.c.from_village_id).distinct()
            .where(_m.c.to_village_id.in_(targets), _m.c.state == "stationed"))


def key(due: Due) -> tuple[str, int]:
    """What an event is, whatever its time (a training line's next unit is the line)."""
    return due.kind, due.id


# Villages are shared among workers in blocks of neighbouring ids: a world's villages made
# together (a player's, a region's) raid, trade and reinforce each other more often.
BLOCK = 32


def owner(due: Due, workers: int) -> int:
    """The worker whose share an event is in: its lowest village's block of ids."""
    return (min(villages_of(due) or {due.id}) // BLOCK) % workers


def take(heap: list[Due], count: int, done: set[tuple[str, int]],
         share: tuple[int, int] | None = None) -> list[Due]:
    """Up to ``count`` first events of the heap not ``done`` (popped; ``done`` ones are
    dropped). With ``share`` = (index, workers), the worker's own events first: those whose
    lowest village falls to ``index`` (``owner``), from the first ``count * workers``."""
    ahead: list[Due] = []
    while heap and len(ahead) < count * (share[1] if share else 1):
        due = heapq.heappop(heap)
        if key(due) not in done:
            ahead.append(due)
    if share is None:
        return ahead
    index, workers = share
    mine = [d for d in ahead if owner(d, workers) == index][:count]
    chosen = mine or ahead[:count]
    picked = set(map(id, chosen))
    for due in ahead:
        if id(due) not in picked:
            heapq.heappush(heap, due)
    return chosen

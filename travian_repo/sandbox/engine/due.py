"""Finding what is due: every event up to a time, as rows read without locks, in the order
the engine processes them (time, then kind, then id)."""

from __future__ import annotations

import heapq
from datetime import datetime, timedelta
from typing import Any, Mapping, NamedTuple

from sqlalchemy import ARRAY, BigInteger, ColumnElement, Connection, any_, bindparam, or_, select

from travian_repo.sql import schema
from travian_repo.sql.pending import SOURCES, due_until, pending_filter
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
    """Everything due up to ``when``, unordered (the runner makes a heap of it), in one
    statement: what is due, and when, is ``sql/pending.py``'s definition."""
    # ``Pending`` is aware UTC and ints already: each Due made as it is, without ``Due.of``.
    return [Due(p.at, ORDER[p.kind], p.id, p.kind, p.source, p.target)
            for p in due_until(conn, when)]


def among(column: ColumnElement[int], dialect: str, name: str = "ids") -> ColumnElement[bool]:
    """``column`` is one of the ids bound as ``name``: one array parameter on PostgreSQL
    (nothing to expand or render per id, one plan whatever the count), an expanding IN on
    SQLite."""
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(BigInteger)))
    return column.in_(bindparam(name, expanding=True))


def _held_statements(dialect: str) -> tuple[Any, ...]:
    # Spelled from ``sql/pending.py``'s sources (what is due, and when), restricted to the
    # held villages, with the whole rows the processors read.
    build, train, moving, deliver = SOURCES[:4]
    return (
        select(_q).where(among(build.source, dialect), build.due_at <= bindparam("when")),
        # A line's due time is checked exactly in Python (SQLite's sum is to the ms).
        select(_tq).where(among(train.source, dialect), *pending_filter(train),
                          train.due_at <= bindparam("when")),
        select(_m).where(*pending_filter(moving), moving.due_at <= bindparam("when"),
                         or_(among(moving.source, dialect), among(moving.target, dialect))),
        select(_s).where(among(deliver.target, dialect), *pending_filter(deliver),
                         deliver.due_at <= bindparam("when")),
    )


_HELD = {name: _held_statements(name) for name in ("postgresql", "sqlite")}


def collect_held(conn: Connection, ids: list[int], when: datetime) -> dict[tuple[str, int], tuple[Due, Any]]:
    """Everything due up to ``when`` in the villages ``ids`` (read after their locks: what
    the batch decides on), as (kind, id) -> (due, row)."""
    found: dict[tuple[str, int], tuple[Due, Any]] = {}
    if not ids:
        return found
    builds, lines, moving, shipped = _HELD[conn.dialect.name]
    params = {"ids": ids, "when": when}
    # The rows' times are aware UTC already (``UTCDateTime``) and their ids ints: each Due
    # is made as it is, without ``Due.of``'s conversions.
    build, train, deliver = ORDER["build"], ORDER["train"], ORDER["deliver"]
    for row in conn.execute(builds, params):
        found["build", row.id] = (Due(row.completes_at, build, row.id, "build", row.village_id),
                                  row)
    for row in conn.execute(lines, params):
        at = row.started_at + timedelta(seconds=row.seconds_each * (row.trained + 1))
        if at <= when:
            found["train", row.id] = (Due(at, train, row.id, "train", row.village_id), row)
    for row in conn.execute(moving, params):
        found[row.kind, row.id] = (Due(row.arrives_at, ORDER[row.kind], row.id, row.kind,
                                       row.from_village_id, row.to_village_id), row)
    for row in conn.execute(shipped, params):
        found["deliver", row.id] = (Due(row.arrives_at, deliver, row.id, "deliver",
                                        row.from_village_id, row.to_village_id), row)
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


def stationed_homes(dialect: str) -> Any:
    """The home villages of troops stationed in the villages bound as ``targets`` (a
    statement)."""
    return (select(_m.c.from_village_id).distinct()
            .where(among(_m.c.to_village_id, dialect, "targets"), _m.c.state == "stationed"))


def key(due: Due) -> tuple[str, int]:
    """What an event is, whatever its time (a training line's next unit is the line)."""
    return due.kind, due.id


# Villages are shared among workers in blocks of neighbouring ids: a world's villages made
# together (a player's, a region's) raid, trade and reinforce each other more often, so an
# event rarely involves two workers' villages.
BLOCK = 32


def owner(due: Due, workers: int) -> int:
    """The worker whose share an event is in: its lowest village's block of ids."""
    return (min(villages_of(due) or {due.id}) // BLOCK) % workers


def mine(due: list[Due], share: tuple[int, int]) -> list[Due]:
    """The events of the share (index, workers), as a heap."""
    index, workers = share
    own = [d for d in due if owner(d, workers) == index]
    heapq.heapify(own)
    return own


def take(heap: list[Due], count: int, done: set[tuple[str, int]],
         settled: set[int] | None = None) -> list[Due]:
    """Up to ``count`` first events of the heap (popped), leaving out those ``done`` and
    those involving a village in ``settled`` (a batch held it and processed all it could)."""
    ahead: list[Due] = []
    while heap and len(ahead) < count:
        due = heapq.heappop(heap)
        if key(due) not in done and not (settled and villages_of(due) & settled):
            ahead.append(due)
    return ahead

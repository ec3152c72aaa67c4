"""What falls due in a world, and when: the one definition that the engine (everything due
up to a time, to process) and the catch-up (when the world next has something to do) read.

Five kinds of rows are pending, each due at a time: a build (``build_queue``, at
``completes_at``), a training line with units left (``training_queue``: its next unit, at
``started_at + seconds_each * (trained + 1)``), troops underway (``movements``, at
``arrives_at``, the movement's kind), a shipment underway (``shipments``, ``deliver`` at
``arrives_at``) and merchants coming home (``shipments`` returning, at ``returns_at``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterator

from sqlalchemy import (
    BigInteger, ColumnElement, Connection, Integer, String, func, literal, select, union_all,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from travian_repo.sql import schema
from travian_repo.sql.schema import UTCDateTime, as_utc

_q, _tq, _m, _s = schema.build_queue, schema.training_queue, schema.movements, schema.shipments


class _Plus(FunctionElement[datetime]):
    """A time plus a number of seconds: the one date arithmetic the dialects spell apart."""

    type = UTCDateTime()
    inherit_cache = True


@compiles(_Plus, "postgresql")
def _plus_postgresql(element: _Plus, compiler: SQLCompiler, **kw: Any) -> str:
    at, seconds = list(element.clauses)
    return (f"({compiler.process(at, **kw)} + make_interval(secs => "
            f"{compiler.process(seconds, **kw)}))")


@compiles(_Plus, "sqlite")
def _plus_sqlite(element: _Plus, compiler: SQLCompiler, **kw: Any) -> str:
    # Millisecond text, at most 1 ms before the exact time: a filter on it keeps every row
    # due and the caller checks the exact time (``Pending.at``).
    at, seconds = list(element.clauses)
    return (f"strftime('%Y-%m-%d %H:%M:%f', {compiler.process(at, **kw)}, "
            f"'+' || ({compiler.process(seconds, **kw)}) || ' seconds')")


@dataclass(frozen=True)
class Source:
    """Rows of one table that are pending, each due ``offset`` seconds after ``start``."""

    kind: ColumnElement[str]
    id: ColumnElement[int]
    start: ColumnElement[datetime]
    offset: ColumnElement[int] | None  # None: due at ``start``
    pending: ColumnElement[bool] | None  # None: every row
    source: ColumnElement[int]
    target: ColumnElement[int]

    @property
    def due_at(self) -> ColumnElement[datetime]:
        """When a row falls due, in SQL."""
        return self.start if self.offset is None else _Plus(self.start, self.offset)


def pending_filter(src: Source) -> list[ColumnElement[bool]]:
    """The condition a source's rows meet while pending (none: every row)."""
    return [] if src.pending is None else [src.pending]


def _kind(name: str) -> ColumnElement[str]:
    return literal(name, String)


_NONE = literal(0, BigInteger)
SOURCES: tuple[Source, ...] = (
    Source(_kind("build"), _q.c.id, _q.c.completes_at, None, None, _q.c.village_id, _NONE),
    Source(_kind("train"), _tq.c.id, _tq.c.started_at, _tq.c.seconds_each * (_tq.c.trained + 1),
           _tq.c.trained < _tq.c.count, _tq.c.village_id, _NONE),
    Source(_m.c.kind, _m.c.id, _m.c.arrives_at, None, _m.c.state == "underway",
           _m.c.from_village_id, _m.c.to_village_id),
    Source(_kind("deliver"), _s.c.id, _s.c.arrives_at, None, _s.c.state == "underway",
           _s.c.from_village_id, _s.c.to_village_id),
    Source(_kind("merchants"), _s.c.id, _s.c.returns_at, None, _s.c.state == "returning",
           _NONE, _NONE),
)


@dataclass(frozen=True)
class Pending:
    """One row due: its kind, id, exact due time and the villages it names (0: none)."""

    kind: str
    id: int
    at: datetime
    source: int
    target: int


def due_until(conn: Connection, when: datetime) -> Iterator[Pending]:
    """Everything due up to ``when``, unordered, in one statement."""
    rows = conn.execute(union_all(*(
        select(src.kind.label("kind"), src.id.label("id"), src.start.label("start"),
               (src.offset if src.offset is not None else literal(0, Integer)).label("offset"),
               src.source.label("source"), src.target.label("target"))
        .where(*pending_filter(src), src.due_at <= when)
        for src in SOURCES)))
    for kind, id_, start, offset, source, target in rows:
        at = as_utc(start) + timedelta(seconds=offset) if offset else as_utc(start)
        if at <= when:
            yield Pending(str(kind), int(id_), at, int(source), int(target))


def next_due_at(conn: Connection) -> datetime | None:
    """When the next row falls due (None: nothing is pending), in one statement. On SQLite
    up to a millisecond early for a training line (see ``_Plus``)."""
    row = conn.execute(select(*(
        select(func.min(src.due_at)).where(*pending_filter(src)).scalar_subquery()
        for src in SOURCES))).one()
    return min((as_utc(value) for value in row if value is not None), default=None)

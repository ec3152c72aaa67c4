"""The runner: ``Engine`` finds what is due, locks the villages of a batch, and hands each
event to the processor of its kind, in small transactions."""

from __future__ import annotations

import functools
import heapq
import threading
from datetime import datetime, timezone
from typing import Callable

import sqlalchemy
from sqlalchemy import Connection

from travian_repo.domain.values import ClockFn
from travian_repo.sandbox.engine.builds import complete_build
from travian_repo.sandbox.engine.due import (
    HOSTILE, Due, collect, peek, stationed_homes, villages_of,
)
from travian_repo.sandbox.engine.movements import arrive
from travian_repo.sandbox.engine.shipments import deliver, merchants_home
from travian_repo.sandbox.engine.step import Later, Outcome, Step
from travian_repo.sandbox.engine.training import train_units
from travian_repo.sql.database import Database, SqlSession, make_engine
from travian_repo.sql.village_state import lock_in_order

# The processor of each kind; every other kind is a movement arriving.
_PROCESSORS: dict[str, Callable[[Step, Due], Outcome]] = {
    "build": complete_build,
    "train": train_units,
    "deliver": deliver,
    "merchants": merchants_home,
}


class Engine:
    """Processes what is due in a world database. See :mod:`travian_repo.sandbox.engine`.

    ``database``: a :class:`Database` (its commit listeners, e.g. a World's event bus, see
    every event), an SQLAlchemy engine, or a database URL (an engine of the engine's own,
    closed by :meth:`close`). ``clock``: what :meth:`run_due` runs up to (default: the
    database's clock).
    """

    def __init__(self, database: Database | sqlalchemy.Engine | str, *,
                 clock: ClockFn | None = None, batch: int = 16) -> None:
        if batch < 1:
            raise ValueError("batch must be at least 1")
        self.batch = batch
        self._owns = False
        if isinstance(database, Database):
            self.database = database
        elif isinstance(database, str):
            self.database = Database(make_engine(database), clock=clock)
            self._owns = True
        else:
            self.database = Database(database, clock=clock)
        self.clock: ClockFn = clock or self.database.clock
        self._run_lock = threading.Lock()
        self._session: SqlSession | None = None

    # -- public ---------------------------------------------------------------------------

    def run_due(self) -> int:
        """Process everything due up to the clock's now."""
        return self.run_until(self.clock())

    def run_until(self, when: datetime) -> int:
        """Process everything due up to ``when`` in time order; the number of events."""
        if when.tzinfo is None:
            raise ValueError("run_until needs an aware datetime")
        when = when.astimezone(timezone.utc)
        processed = 0
        with self._run_lock:
            session = self._session = self.database.session()
            try:
                while True:
                    heap = session.read(lambda conn: collect(conn, when))
                    if not heap:
                        break
                    heapq.heapify(heap)
                    done_this_round = 0
                    while heap:
                        count, heap = session.write(
                            functools.partial(self._process_batch, heap=heap, when=when)
                        )
                        session.commit()
                        done_this_round += count
                    processed += done_this_round
                    if done_this_round == 0:  # all stale (a concurrent engine took them)
                        break
            finally:
                self._session = None
                session.close()
        return processed

    def overdue(self, when: datetime | None = None) -> int:
        """How many events are due at ``when`` (default: the clock's now) and not processed."""
        at = (when or self.clock()).astimezone(timezone.utc)
        session = self.database.session()
        try:
            return len(session.read(lambda conn: collect(conn, at)))
        finally:
            session.close()

    def close(self) -> None:
        if self._owns:
            self.database.dispose()

    def __enter__(self) -> Engine:
        return self

    def __repr__(self) -> str:
        where = self.database.engine.url.render_as_string(hide_password=True)
        state = "running" if self._run_lock.locked() else "idle"
        return f"<Engine on {where} now={self.clock():%Y-%m-%d %H:%M:%S} UTC batch={self.batch} {state}>"

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one batch --------------------------------------------------------------------------

    def _process_batch(self, conn: Connection, *, heap: list[Due], when: datetime
                       ) -> tuple[int, list[Due]]:
        """Up to ``batch`` events in time order, in one transaction. When the step fails the
        heap is put back as it was, so a step run again (serialization failure) starts from
        the same events."""
        assert self._session is not None, "batches run inside run_until only"
        emit = self._session.emit  # domain events, published on commit
        count = 0
        popped: list[Due] = []
        pushed: list[Due] = []
        try:
            # The villages of the next events, locked up front in one statement, lowest id
            # first: an event needing another village waits for the next batch, so a batch
            # never takes a lock out of order (no deadlock with players or another engine).
            held = _lock_ahead(conn, peek(heap, self.batch))
            for _ in range(self.batch):
                if not heap:
                    break
                if popped and not villages_of(heap[0]) <= held:
                    break
                due = heapq.heappop(heap)
                popped.append(due)
                step = Step(conn, when, held, emit, first=len(popped) == 1,
                            after=heap[0] if heap else None)
                try:
                    outcome = _PROCESSORS.get(due.kind, arrive)(step, due)
                except Later:  # raised before the event wrote anything
                    popped.pop()
                    heapq.heappush(heap, due)
                    break
                count += outcome.count
                for follow in outcome.follow:
                    heapq.heappush(heap, follow)
                    pushed.append(follow)
        except BaseException:
            for follow in pushed:
                heap.remove(follow)
            heap.extend(popped)
            heapq.heapify(heap)
            raise
        return count, heap


def _lock_ahead(conn: Connection, ahead: list[Due]) -> set[int]:
    """Lock the villages of the events ``ahead`` (and the homes of troops stationed in the
    targets of hostile ones) in one statement; the set locked."""
    ids: set[int] = set()
    for due in ahead:
        ids |= villages_of(due)
    targets = sorted({due.target for due in ahead if due.kind in HOSTILE})
    if targets:
        ids.update(int(r[0]) for r in conn.execute(stationed_homes(targets)))
    lock_in_order(conn, ids)
    return ids

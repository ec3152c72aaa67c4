"""The runner: ``Engine`` finds what is due, locks the villages of a batch, reads what is
due in them after the locks, hands each event to the processor of its kind in time order,
and writes the batch's changes set-wise (``flush``), in one transaction per batch."""

from __future__ import annotations

import functools
import heapq
import threading
from datetime import datetime, timezone
from typing import Any, Callable

import sqlalchemy
from sqlalchemy import ColumnElement, Connection, or_, select

from travian_repo.domain.values import ClockFn
from travian_repo.sandbox.engine import collector
from travian_repo.sandbox.engine.builds import complete_build
from travian_repo.sandbox.engine.due import (
    HOSTILE, Due, among, collect, collect_held, key, mine, stationed_homes, take,
    villages_of,
)
from travian_repo.sandbox.engine.flush import flush
from travian_repo.sandbox.engine.held import Held
from travian_repo.sandbox.engine.movements import arrive, involved
from travian_repo.sandbox.engine.shipments import deliver
from travian_repo.sandbox.engine.step import Outcome, Step
from travian_repo.sandbox.engine.training import train_units
from travian_repo.sql import schema
from travian_repo.sql.database import Database, SqlSession, make_engine

# The processor of each kind; every other kind is a movement arriving.
_PROCESSORS: dict[str, Callable[[Step, Due, Any], Outcome]] = {
    "build": complete_build,
    "train": train_units,
    "deliver": deliver,
}
_r, _v = schema.village_resources, schema.villages
_SETTINGS = select(schema.world_settings.c.speed, schema.world_settings.c.morale)
# A batch processes up to this many times ``batch`` steps: what else is due in the villages
# of its ``batch`` events comes with them (their state is read once).
_STEPS = 16
# A sharing engine whose round moved fewer than 1 / WAIT_BELOW of the events it started
# from stops skipping what others hold and waits for it instead.
WAIT_BELOW = 2


class Engine:
    """Processes what is due in a world database. See :mod:`travian_repo.sandbox.engine`.

    ``database``: a :class:`Database` (its commit listeners, e.g. a World's event bus, see
    every event), an SQLAlchemy engine, or a database URL (an engine of the engine's own,
    closed by :meth:`close`). ``clock``: what :meth:`run_due` runs up to (default: the
    database's clock). ``batch``: the events a transaction starts from (it also processes
    what else is due in their villages, up to 16 times ``batch`` steps). ``share`` = (index,
    workers): one of several engines sharing the world; it takes batches of its share of
    the villages (``due.owner``), skipping those another holds (``SKIP LOCKED``), and when
    a round moves little, waits for the world's oldest events under a plain lock.
    """

    def __init__(self, database: Database | sqlalchemy.Engine | str, *,
                 clock: ClockFn | None = None, batch: int = 512,
                 share: tuple[int, int] | None = None) -> None:
        if batch < 1:
            raise ValueError("batch must be at least 1")
        if share is not None and not 0 <= share[0] < share[1]:
            raise ValueError("share is (index, workers) with 0 <= index < workers")
        self.batch = batch
        self.share = share
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
        # Set to stop a run between two batches (what is done stays done): a clean stop.
        self.halt = threading.Event()
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
        with self._run_lock:
            session = self._session = self.database.session()
            try:
                return self._shared(when) if self.share else self._alone(when)
            finally:
                self._session = None
                session.close()

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

    # -- the rounds -------------------------------------------------------------------------

    def _alone(self, when: datetime) -> int:
        """Rounds of batches over everything due, earliest first; what waited is tried again
        at once (its batch will hold what it waited for)."""
        processed = 0
        while not self.halt.is_set():
            heap = self._collect(when)
            if not heap:
                break
            done: set[tuple[str, int]] = set()
            moved_on = 0
            while heap and not self.halt.is_set():
                ahead = take(heap, self.batch, done)
                if not ahead:
                    break
                try:
                    count, finished, _ = self._batch(ahead, when, skip=False)
                finally:
                    for due in ahead:
                        heapq.heappush(heap, due)
                done |= finished
                processed += count
                moved_on += len(finished)
                if not finished:
                    break
            if moved_on == 0:
                break  # all stale (a concurrent engine took them)
        return processed

    def _shared(self, when: datetime) -> int:
        """Rounds of batches over this engine's share, skipping villages another holds; a
        round that moves little of its share (``WAIT_BELOW``) waits (a plain lock) for the
        villages of the world's earliest events instead of looking again at once."""
        assert self.share is not None
        processed = 0
        while not self.halt.is_set():
            heap = self._collect(when, ordered=False)
            if not heap:
                break
            own = mine(heap, self.share)
            done: set[tuple[str, int]] = set()
            settled: set[int] = set()
            moved_on = tried = 0
            while own and not self.halt.is_set():
                ahead = take(own, self.batch, done, settled)
                if not ahead:
                    break
                count, finished, seen = self._batch(ahead, when, skip=True)
                done |= finished
                processed += count
                moved_on += len(finished)
                tried += len(ahead)
                # What is left in the villages it held waits on others (or on troops the
                # batch sent home): the next round sees it, not the next batch.
                settled |= seen
            if moved_on and moved_on * WAIT_BELOW >= tried or self.halt.is_set():
                continue
            # Little of its share could move: what it needs, another holds (the events left
            # are chained to other shares' villages). Wait for it in the database (no
            # spinning), on what one engine alone would take next; its earliest event then
            # always moves, whoever's share it is.
            heapq.heapify(heap)
            ahead = take(heap, self.batch, done)
            count, finished, _ = self._batch(ahead, when, skip=False)
            processed += count
        return processed

    def _collect(self, when: datetime, *, ordered: bool = True) -> list[Due]:
        assert self._session is not None
        with collector.paused():
            heap: list[Due] = self._session.read(lambda conn: collect(conn, when))
        if ordered:
            heapq.heapify(heap)
        return heap

    def _batch(self, ahead: list[Due], when: datetime, *, skip: bool
               ) -> tuple[int, set[tuple[str, int]], set[int]]:
        """One batch in its own transaction (see ``_process_batch``)."""
        session = self._session
        assert session is not None
        with collector.paused():
            try:
                result = session.write(functools.partial(
                    self._process_batch, ahead=ahead, when=when, skip=skip))
                session.commit()
            except BaseException:
                session.rollback()
                raise
        return result

    # -- one batch --------------------------------------------------------------------------

    def _process_batch(self, conn: Connection, *, ahead: list[Due], when: datetime,
                       skip: bool) -> tuple[int, set[tuple[str, int]], set[int]]:
        """One transaction: lock the villages of the events ``ahead`` (one statement, lowest
        id first; with ``skip``, leaving out those another transaction holds), read what is
        due in them after the lock, process it in time order in memory, write it set-wise.

        An event needing a village the batch does not hold waits for a later batch, and so
        does everything after it in the villages it involves. Nothing here changes the
        caller's heap, so a step run again (serialization failure) starts afresh. Returns
        the events processed, the (kind, id) of those finished or found gone, and the
        villages held, when everything processable in them was processed (else none)."""
        assert self._session is not None, "batches run inside run_until only"
        ids: set[int] = set()
        for due in ahead:
            ids |= villages_of(due)
        targets = sorted({due.target for due in ahead
                          if due.kind in HOSTILE or due.kind == "scout"})
        locked = _lock(conn, ids, targets, skip=skip)
        ids |= locked
        found = collect_held(conn, sorted(locked), when)
        finished = {key(d) for d in ahead if d.kind != "merchants" and villages_of(d) & locked
                    and key(d) not in found}
        heap = [due for due, _ in found.values()] + [d for d in ahead if d.kind == "merchants"]
        if not heap:  # all gone (another engine was first): nothing to read
            return 0, finished, ids
        if locked:
            speed, morale = conn.execute(_SETTINGS).one()
            held = Held.load(conn, locked, int(speed))
            held.read_populations(conn, bool(morale))
        else:
            held = Held({}, {}, 0)
        senders = {d.source for d, _ in found.values() if d.kind == "deliver"} - held.owners.keys()
        if senders:
            held.owners.update((int(i), int(p)) for i, p in conn.execute(
                select(_v.c.id, _v.c.player_id).where(_v.c.id.in_(sorted(senders)))))
        heapq.heapify(heap)
        rows: dict[tuple[str, int], Any] = {k: row for k, (_, row) in found.items()}
        blocked: dict[int, Due] = {}
        count = steps = 0
        while heap and steps < self.batch * _STEPS:
            due = heapq.heappop(heap)
            if due.kind == "merchants":
                held.merchants.append(due.id)
                finished.add(key(due))
                continue
            step = Step(held, when, after=heap[0] if heap else None)
            need = involved(step, due) if due.kind not in ("build", "train", "deliver") \
                else villages_of(due)
            if not need <= locked or any(v in blocked and blocked[v] <= due for v in need):
                for v in need & locked:
                    blocked[v] = min(blocked.get(v, due), due)
                continue
            outcome = _PROCESSORS.get(due.kind, arrive)(step, due, rows[key(due)])
            steps += 1
            count += outcome.count
            finished.add(key(due))
            for follow in outcome.follow:
                heapq.heappush(heap, follow)
            for made, row in step.made:
                rows[key(made)] = row
                heapq.heappush(heap, made)
        count += flush(conn, held, when, self._session.emit)
        return count, finished, set() if heap else ids


def _lock(conn: Connection, ids: set[int], targets: list[int], *, skip: bool) -> set[int]:
    """Lock the villages' write locks in one statement, lowest id first (no deadlock with
    players or another engine): ``ids`` and the homes of troops stationed in ``targets``
    (a hostile arrival may change them). With ``skip``, those another transaction holds
    are left out. The villages locked (those that exist)."""
    if not ids and not targets:
        return set()
    statement = _LOCKS[conn.dialect.name, bool(targets), skip]
    return {int(r[0]) for r in conn.execute(statement, {"ids": sorted(ids), "targets": targets})}


def _lock_statement(dialect: str, targets: bool, skip: bool) -> Any:
    wanted: ColumnElement[bool] = among(_r.c.village_id, dialect)
    if targets:
        wanted = or_(wanted, _r.c.village_id.in_(stationed_homes(dialect)))
    return (select(_r.c.village_id).where(wanted).order_by(_r.c.village_id)
            .with_for_update(of=_r, skip_locked=skip))


# Built once (no statement compiled or cache-keyed per batch).
_LOCKS = {(dialect, targets, skip): _lock_statement(dialect, targets, skip)
          for dialect in ("postgresql", "sqlite") for targets in (False, True)
          for skip in (False, True)}

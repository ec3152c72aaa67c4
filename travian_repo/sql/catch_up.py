"""The world moving on by itself: before a unit of work first touches the database,
everything due up to the clock's now is processed (as browser games do on a page load).

``CatchUp`` knows when the next event falls due, so the usual answer to "is anything
due?" costs no statement: it reads the database (one statement over the due times) only
when its answer is older than ``RECHECK_S`` of wall time, when the clock has reached it, or
when this process committed an event due earlier (from the commit's domain events). What is
due is handed to a processor (the sandbox engine's ``Engine.run_until``), which claims each
event under the village locks, so catching up beside a running engine or another process
never processes an event twice.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Mapping

from sqlalchemy import Connection

from travian_repo.domain.errors import TravianError
from travian_repo.domain.values import Event
from travian_repo.sql.pending import next_due_at
from travian_repo.sql.schema import as_utc

if TYPE_CHECKING:
    from travian_repo.sql.database import Database

log = logging.getLogger(__name__)

# How long an answer stands for writes of other processes (their commits are not seen here).
RECHECK_S = 1.0
# Keys of a domain event's data that give the time something it created falls due.
DUE_KEYS = ("completes_at", "arrives_at", "next_at")
NEVER = datetime.max.replace(tzinfo=timezone.utc)

Processor = Callable[[datetime], int]


def next_due(conn: Connection) -> datetime:
    """When the next event of the world falls due (``NEVER``: nothing is pending)."""
    return next_due_at(conn) or NEVER


class CatchUp:
    """Runs ``processor(now)`` on ``database`` when something is due; see the module."""

    def __init__(self, database: Database, processor: Processor) -> None:
        self.database = database
        self.processor = processor
        self.processed = 0  # events processed by catching up, for tests and metrics
        self._run_lock = threading.Lock()
        self._cache_lock = threading.Lock()
        self._next_due: datetime | None = None  # None: not known
        self._checked = 0.0  # time.monotonic() of the read behind _next_due
        self._recent = NEVER  # the earliest due time committed here since the last read
        database.add_commit_listener(self._committed)

    def __call__(self) -> None:
        """Process what is due now. A failure to process (the database busy or gone) is
        logged, not raised: the unit of work goes on and meets the failure itself."""
        if self._fresh(self.database.clock()):
            return
        with self._run_lock:
            now = self.database.clock()
            if self._fresh(now):  # another thread caught up while this one waited
                return
            try:
                self._catch_up(now)
            except TravianError as error:
                log.warning("could not catch the world up to %s: %s", now.isoformat(), error)

    def invalidate(self) -> None:
        """Forget the next due time (writes made elsewhere, e.g. through the API)."""
        with self._cache_lock:
            self._next_due = None

    def _fresh(self, now: datetime) -> bool:
        due = self._next_due
        return (due is not None and now < due
                and time.monotonic() - self._checked < RECHECK_S)

    def _catch_up(self, now: datetime) -> None:
        due, checked = self._read()
        if due <= now:
            self.processed += self.processor(now)
            due, checked = self._read()
        with self._cache_lock:
            # A commit of this process after the read may have added an earlier event.
            self._next_due, self._checked = min(due, self._recent), checked

    def _read(self) -> tuple[datetime, float]:
        with self._cache_lock:
            self._recent = NEVER
        checked = time.monotonic()
        session = self.database.session()
        try:
            return session.read(next_due), checked
        finally:
            session.close()

    def _committed(self, events: list[Event]) -> None:
        earliest = NEVER
        for event in events:
            due = _due_time(event.data)
            if due is not None and due < earliest:
                earliest = due
        # Nothing to lower (the usual case): no lock. A read that resets _recent meanwhile
        # queries after this commit, so it sees these events.
        due_known = self._next_due
        if earliest >= self._recent and (due_known is None or earliest >= due_known):
            return
        with self._cache_lock:
            self._recent = min(self._recent, earliest)
            if self._next_due is not None and earliest < self._next_due:
                self._next_due = earliest


def _due_time(data: Mapping[str, Any]) -> datetime | None:
    found = None
    for key in DUE_KEYS:
        value = data.get(key)
        if isinstance(value, str):
            due = as_utc(value)
            if found is None or due < found:
                found = due
    return found

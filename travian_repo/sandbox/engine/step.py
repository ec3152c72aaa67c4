"""What every processor shares: the event's step in its batch (connection, run time, the
villages the batch holds, where domain events go), its outcome, and the row checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from sqlalchemy import Connection, update

from travian_repo.domain.errors import Conflict
from travian_repo.sandbox.engine.due import Due
from travian_repo.sql.village_state import VillageState, lock_in_order, lock_settled


class Later(Exception):
    """The event needs a village its batch did not lock; it waits for the next batch."""


@dataclass
class Outcome:
    """How many events a step processed, and the events it made due (before the run's end)."""

    count: int = 0
    follow: list[Due] = field(default_factory=list)


@dataclass
class Step:
    """One event's place in its batch.

    ``held`` is the batch's set of locked villages, shared by its steps (a step that locks
    more adds them); ``first`` says the event is its batch's first; ``after`` is the next
    event due (a training line stops before it).
    """

    conn: Connection
    when: datetime
    held: set[int]
    emit: Callable[..., None]
    first: bool = True
    after: Due | None = None

    def lock(self, village_id: int, at: datetime) -> VillageState:
        """The village, locked (the batch's lock, taken again), its stock settled to ``at``."""
        return lock_settled(self.conn, village_id, at)

    def need(self, ids: set[int]) -> None:
        """Villages the event needs beyond those its batch locked: the next batch takes them
        in order (``Later``), unless this is the batch's first event (its stations changed
        since the batch began: then they are locked here)."""
        missing = ids - self.held
        if missing:
            if not self.first:
                raise Later()
            lock_in_order(self.conn, missing)
            self.held |= missing


def changed(result: Any, what: str) -> None:
    """A step's delete or update of its own row changed exactly that row, or Conflict (only
    if something bypassed the locks; the step rolls back)."""
    if result.rowcount != 1:
        raise Conflict(f"{what} changed under the engine; the step was undone")


def set_state(conn: Connection, table: Any, row_id: int, was: str, **values: Any) -> None:
    """Move a movement or shipment on from state ``was`` (checked: exactly one row)."""
    changed(conn.execute(update(table).where(table.c.id == row_id, table.c.state == was)
                         .values(**values)), f"{table.name} {row_id} ({was})")

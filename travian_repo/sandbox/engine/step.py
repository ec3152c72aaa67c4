"""What every processor shares: the event's step in its batch (the villages the batch
holds, in memory, and the run's end), and its outcome."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from travian_repo.sandbox.engine.due import Due
from travian_repo.sandbox.engine.held import Held
from travian_repo.sql.village_state import VillageState


@dataclass
class Outcome:
    """How many events a step processed, and the events it made due (before the run's end)
    that the batch processes in turn."""

    count: int = 0
    follow: list[Due] = field(default_factory=list)


@dataclass
class Step:
    """One event's place in its batch.

    ``held`` is what the batch holds (locked, read after the lock) and the changes it
    collects; ``after`` is the next event due in the batch (a training line stops before
    it); ``made`` are the events a step made due with rows not written yet (troops coming
    home), each with its row: the batch processes them in turn.
    """

    held: Held
    when: datetime
    after: Due | None = None
    made: list[tuple[Due, Any]] = field(default_factory=list)

    def lock(self, village_id: int, at: datetime) -> VillageState:
        """The village (locked by the batch), its stock settled to ``at``."""
        return self.held.settle(village_id, at)

    def emit(self, kind: str, player_id: int, /, **data: Any) -> dict[str, Any]:
        return self.held.emit(kind, player_id, **data)

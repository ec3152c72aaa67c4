"""A pytest plugin for testing your own NPC scripts: the ``travian_world`` fixture.

Installed with the package (entry point ``pytest11``), so any test can ask for it::

    def test_my_npc_builds(travian_world):
        npc = travian_world.world.npc(1)
        npc.initialize()
        assert npc.build_in_village(npc.villages[0].id, "woodcutter")
        travian_world.advance(3600)              # an hour of game time; the engine runs
        assert npc.initialize()[0].level("woodcutter") == 4

Each test gets a fresh, small sandbox world in an SQLite file under ``tmp_path`` (6 players
of the developed start, seed 1; time stands still at 2026-01-01 12:00 UTC until the test
moves it). Change that with a marker::

    @pytest.mark.travian_world(players=2, seed=5, start="standard")

(any keyword of :func:`travian_repo.sandbox.create_world` -- ``now`` is where the clock
starts -- plus ``database_url`` for a database of your own, which is replaced).

If the entry point is not active (the package is not installed), load the plugin with
``pytest_plugins = ["travian_repo.testing"]`` in your top-level ``conftest.py``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest

import travian_repo as tr
from travian_repo.npc import NPCGameInterface
from travian_repo.sandbox import Clock, Engine, WorldSummary, create_world

START = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
DEFAULTS: dict[str, Any] = {"players": 6, "seed": 1, "start": "developed"}
MARKER = "travian_world"


class TravianWorld:
    """A fresh sandbox world for one test; see the module docstring.

    ``world``: a connected :class:`travian_repo.World` acting as player 1 (no cache: it
    sees the engine's changes at once); ``clock``: the :class:`Clock` both the world and the
    engine read; ``tokens``: player id -> API token; ``url``: the database URL;
    ``summary``: what ``create_world`` answered; ``engine``: the world's engine.
    """

    def __init__(self, url: str, *, now: datetime = START, **options: Any) -> None:
        self.url = url
        self.clock = Clock(now)
        settings = {**DEFAULTS, **options}
        self.summary: WorldSummary = create_world(url, replace=True, now=now, **settings)
        self.tokens: dict[int, str] = dict(self.summary.tokens)
        self.world: tr.World = tr.connect(url, player_id=1, clock=self.clock, cache=False)
        self.engine = Engine(self.world.database, clock=self.clock)
        self._others: list[tr.World] = []

    @property
    def now(self) -> datetime:
        return self.clock()

    def advance(self, seconds: float) -> int:
        """Move the clock on by ``seconds`` and run the engine up to it: builds complete,
        troops are trained, armies arrive and fight, merchants deliver. Returns how many
        events were processed."""
        self.clock.advance(seconds)
        return self.engine.run_until(self.clock())

    def run_due(self) -> int:
        """Run the engine up to the clock's now without moving it."""
        return self.engine.run_until(self.clock())

    def overdue(self) -> int:
        """Events due by now and not processed (0 after ``advance``)."""
        return self.engine.overdue()

    def as_player(self, player_id: int) -> tr.World:
        """Another connected World on the same database and clock, acting as ``player_id``
        (closed with the fixture)."""
        other = tr.connect(self.url, player_id=player_id, clock=self.clock, cache=False)
        self._others.append(other)
        return other

    def npc(self, player_id: int) -> NPCGameInterface:
        """``world.npc(player_id)``, initialized."""
        npc = self.world.npc(player_id)
        npc.initialize()
        return npc

    def close(self) -> None:
        for other in self._others:
            other.close()
        self._others.clear()
        self.engine.close()
        self.world.close()

    def __repr__(self) -> str:
        return (f"<TravianWorld {self.url} players={self.summary.players} "
                f"now={self.clock().isoformat()}>")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**options): options for the travian_world fixture's world "
        "(create_world keywords: players, seed, start, speed ...; database_url)",
    )


@pytest.fixture
def travian_world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TravianWorld]:
    """A fresh small sandbox world with a clock the test drives (see travian_repo.testing)."""
    options: dict[str, Any] = {}
    for marker in reversed(list(request.node.iter_markers(MARKER))):  # the closest wins
        options.update(marker.kwargs)
    url = options.pop("database_url", None) or f"sqlite:///{tmp_path / 'travian_world.db'}"
    sandbox = TravianWorld(str(url), **options)
    try:
        yield sandbox
    finally:
        sandbox.close()


__all__ = ["START", "TravianWorld", "travian_world"]

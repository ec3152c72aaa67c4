"""What is due, and when, has one definition (``sql/pending.py``): the catch-up's next due
time is exactly the first time the engine finds something due, at every stage of a busy
world (training lines part-trained, troops underway and coming home, merchants returning)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from tests.integration.test_engine_workers import busy_world
from travian_repo.sandbox import Engine
from travian_repo.sandbox.engine.due import collect
from travian_repo.sql.catch_up import NEVER, next_due

# SQLite's date arithmetic keeps milliseconds: its next unit of a training line may read
# up to this much before the exact time (the engine checks the exact one).
SQLITE_EARLY = timedelta(milliseconds=1)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_catch_up_wakes_when_the_engine_first_finds_something_due(
        database_url: str) -> None:
    busy_world(database_url, 6)
    early = SQLITE_EARLY if database_url.startswith("sqlite") else timedelta(0)
    kinds: Counter[str] = Counter()
    with Engine(database_url) as engine:
        session = engine.database.session()
        try:
            for _ in range(200):
                wake = session.read(next_due)
                if wake == NEVER:
                    break
                first = min(session.read(lambda conn: collect(conn, NEVER)))
                kinds[first.kind] += 1
                assert wake <= first.at <= wake + early, (wake, first)
                assert session.read(lambda conn: collect(conn, first.at - timedelta(
                    microseconds=1))) == []
                engine.run_until(first.at)
            assert session.read(lambda conn: collect(conn, NEVER)) == []
        finally:
            session.close()
    # Every kind of row that falls due met on the way.
    assert {"build", "train", "raid", "scout", "reinforcement", "return", "deliver",
            "merchants"} <= set(kinds), kinds

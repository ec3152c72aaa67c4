"""intel.mark_report_read raced by 2 and 32 threads on PostgreSQL, through the SQL side and
the server: every call of the report's player succeeds with the report read, the flag
changes once (one ``report_read`` event per report), and another player's threads racing
the same report get Forbidden and change nothing.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa

import travian_repo as tr
from travian_repo.domain import events as ev
from travian_repo.domain.values import Event
from travian_repo.sandbox.server import app_world
from travian_repo.sql import schema
from tests.integration.race_arena import (  # noqa: F401 - arena, side, threads: fixtures
    Act, Arena, arena, errors, only_errors, side, threads, winners,
)

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("backend", ["postgresql"])]

ROUNDS = 3


def committed_report_reads(arena: Arena) -> list[Event]:
    """The ``report_read`` events committed from here on, on the side under test."""
    seen: list[Event] = []
    guard = threading.Lock()

    def listen(events: list[Event]) -> None:
        with guard:
            seen.extend(e for e in events if e.kind == ev.REPORT_READ)

    database = (arena.sql_world.database if arena.server is None
                else app_world(arena.server.app).database)
    database.add_commit_listener(listen)
    return seen


def test_marking_one_report_read_at_once(arena: Arena, threads: int) -> None:
    r = schema.reports
    seen = committed_report_reads(arena)
    for round_ in range(ROUNDS):
        arena.execute(sa.delete(r))
        with arena.raw.begin() as conn:
            report_id = int(conn.execute(r.insert().values(
                player_id=1, kind="attack", subject=f"round {round_}", village_id=2,
                payload={}, read=False, created_at=arena.clock()).returning(r.c.id)
            ).scalar_one())
        seen.clear()

        def mark(index: int, act: Act) -> Any:
            player = 1 if index % 2 == 0 else 2  # the report's player and an intruder
            with act(player) as uow:
                return uow.intel.mark_report_read(report_id)

        outcomes = arena.race(threads, mark)
        only_errors(outcomes, tr.Forbidden)
        assert len(errors(outcomes)) == threads // 2
        marked = winners(outcomes)
        assert len(marked) == threads - threads // 2
        assert {(m.id, m.player_id, m.read) for m in marked} == {(report_id, 1, True)}
        [row] = arena.rows(r)
        assert (row.id, row.player_id, row.read) == (report_id, 1, True)
        assert [(e.player_id, e.data["report_id"]) for e in seen] == [(1, report_id)]

"""Reports the engine writes are seen by the next read, with the cache on, on both backends:
the engine may commit them in another process (or on the server), where no invalidation of
the reader's cache follows."""

from __future__ import annotations

from datetime import timedelta
from typing import Iterator

import pytest

import travian_repo as tr
from travian_repo.sandbox import Clock
from travian_repo.sandbox.server import ServerThread, app_world, create_app

from tests.conftest import MakeWorld


@pytest.fixture(params=["sql", "http"])
def cached(request: pytest.FixtureRequest, make_world: MakeWorld, database_url: str,
           clock: Clock) -> Iterator[tr.World]:
    """Player 1 with an in-process cache, on the database or over a loopback server."""
    summary = make_world()
    if request.param == "sql":
        with tr.connect(database_url, player_id=1, clock=clock, cache=True) as world:
            yield world
        return
    app = create_app(database_url, clock=clock, rate_limit=None)
    try:
        with ServerThread(app) as server, \
                tr.connect(api_url=server.url, token=summary.tokens[1], cache=True) as world:
            yield world
    finally:
        app_world(app).close()


def test_a_scout_report_the_engine_writes_is_in_the_next_read(cached: tr.World,
                                                              clock: Clock) -> None:
    scouts = cached.intel.send_scouts(1, 3, 5)
    clock.set(scouts.arrives_at - timedelta(seconds=5))
    assert cached.intel.scout_reports(1) == []  # read (and cached, if it were) just before
    clock.set(scouts.arrives_at)  # the next call's unit of work catches the world up
    [report] = cached.intel.scout_reports(1)
    assert report.kind == "scout" and report.payload["success"] is True
    assert [r.id for r in cached.intel.reports(1, kind="scout")] == [report.id]

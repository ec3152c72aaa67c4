"""Reports the engine writes, seen by the next read on both backends (with the cache on: the
engine may commit them in another process, or on the server, where no invalidation of the
reader's cache follows): scout reports, and the trade reports of merchants delivering."""

from __future__ import annotations

from datetime import timedelta
from typing import Iterator

import pytest

import travian_repo as tr
from travian_repo.domain.values import Resources
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


def test_merchants_delivering_write_a_trade_report_for_both_players(
        cached: tr.World, database_url: str, clock: Clock) -> None:
    shipment = cached.trade.send_resources(1, 4, Resources(wood=100, clay=20))
    clock.set(shipment.arrives_at)
    [mine] = cached.intel.reports(1, kind="trade")
    assert cached.intel.reports(1, limit=1) == [mine]  # among every kind, newest first
    assert (mine.kind, mine.village_id, mine.read) == ("trade", 4, False)
    assert mine.payload == {
        "kind": "trade", "shipment_id": shipment.id, "at": shipment.arrives_at.isoformat(),
        "from_village_id": 1, "from_player_id": 1, "to_village_id": 4, "to_player_id": 4,
        "resources": {"wood": 100, "clay": 20, "iron": 0, "wheat": 0}}
    with tr.connect(database_url, player_id=4, clock=clock) as recipient:
        [theirs] = recipient.intel.reports(4, kind="trade")
    assert (theirs.payload, theirs.subject) == (mine.payload, mine.subject)
    # the merchants' way home (as long as the way out) writes nothing more
    clock.set(shipment.arrives_at + (shipment.arrives_at - shipment.departed_at))
    assert cached.intel.reports(1, kind="trade") == [mine]

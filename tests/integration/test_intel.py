"""The SQL intel repository on SQLite and PostgreSQL: sending scouts and reading scout
reports. These tests insert the reports themselves (the engine's are in test_engine.py).

Player 1 (romans, scout: equites_legati), player 2 (teutons, scout), player 3 (gauls,
pathfinder); 5 scouts at home each; the clock stands still at START.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import pytest
import sqlalchemy as sa

import travian_repo as tr
from travian_repo.domain.values import Report, Troops
from travian_repo.repositories import validation
from travian_repo.rules import travel, units
from travian_repo.sandbox import Clock
from travian_repo.sql import schema

START = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def _clock_at_start(clock: Clock) -> None:
    assert clock() == START, "conftest's START moved; update START here"


def snapshot(world: tr.World) -> dict[str, Any]:
    with world.database.engine.connect() as conn:
        return {
            name: sorted(tuple(r) for r in conn.execute(sa.select(table)))
            for name, table in (("troops", schema.troops),
                                ("resources", schema.village_resources),
                                ("movements", schema.movements))
        }


def expect_nothing_written(
    world: tr.World, error: type[Exception], *calls: Callable[[], Any]
) -> list[Any]:
    before = snapshot(world)
    raised = []
    for call in calls:
        with pytest.raises(error) as info:
            call()
        raised.append(info.value)
    assert snapshot(world) == before
    return raised


def scout_seconds(world: tr.World, tribe: str, source: int, target: int) -> int:
    a, b = world.villages.get(source), world.villages.get(target)
    s = world.database.settings
    return travel.travel_seconds(
        travel.distance(a.x, a.y, b.x, b.y, radius=s.map_radius),
        units.scout_unit(tribe).speed,
        server_speed=s.speed,
        tournament_square_bonus_percent=s.tournament_square_bonus_percent,
    )


# -- send_scouts -------------------------------------------------------------------------


def test_send_scouts_moves_the_tribes_scouts(world: tr.World) -> None:
    movement = world.intel.send_scouts(1, 2, 2)
    assert movement.kind == "scout"
    assert (movement.from_village_id, movement.to_village_id) == (1, 2)
    assert movement.troops == Troops(equites_legati=2)
    assert movement.departed_at == START
    assert movement.arrives_at == START + timedelta(
        seconds=scout_seconds(world, "romans", 1, 2)
    )
    assert world.military.troops(1) == Troops(legionnaire=20, equites_legati=3)
    assert world.military.outgoing(1) == [movement]
    assert world.intel.send_scouts(1, 3).troops == Troops(equites_legati=1)  # count=1

    with world.unit_of_work(player_id=3) as uow:
        gauls = uow.intel.send_scouts(3, 1, 5)
        assert gauls.troops == Troops(pathfinder=5)
        assert uow.military.troops(3) == Troops(phalanx=20)  # the last scouts left
    assert world.military.incoming(1) == [gauls]
    with world.unit_of_work(player_id=2) as uow:
        assert uow.intel.send_scouts(2, 1).troops == Troops(scout=1)
        assert uow.military.incoming(2) == [movement]


def test_send_scouts_errors_write_nothing(world: tr.World, database_url: str) -> None:
    with world.database.engine.begin() as conn:
        own = int(conn.execute(
            schema.villages.insert()
            .values(name="outpost", player_id=1, x=60, y=60, population=2, is_capital=False,
                    created_at=START)
            .returning(schema.villages.c.id)
        ).scalar_one())
    intel: Any = world.intel  # bad arguments on purpose
    expect_nothing_written(
        world, tr.InvalidRequest,
        lambda: intel.send_scouts(1, 1),
        lambda: intel.send_scouts(1, 2, 0),
        lambda: intel.send_scouts(1, 2, -1),
        lambda: intel.send_scouts(1, 2, 10**9),
        lambda: intel.send_scouts(1, 2, validation.MAX_COUNT + 1),
        lambda: intel.send_scouts(1, 2, 1.5),
        lambda: intel.send_scouts(1, 2, True),
        lambda: intel.send_scouts(1, 2, "1"),
        lambda: intel.send_scouts("1", 2),
        lambda: intel.send_scouts(1, "2; DROP TABLE movements"),
        lambda: intel.send_scouts(1, 0),
    )
    expect_nothing_written(
        world, tr.NotFound,
        lambda: intel.send_scouts(1, 999),
        lambda: intel.send_scouts(999, 1),
    )
    expect_nothing_written(world, tr.Forbidden, lambda: intel.send_scouts(2, 1))
    own_village, short = expect_nothing_written(
        world, tr.RuleViolation,
        lambda: intel.send_scouts(1, own),
        lambda: intel.send_scouts(1, 2, 6),
    )
    assert "own" in str(own_village)
    assert "not enough troops" in str(short)
    assert short.details == {
        "requested": {"equites_legati": 6},
        "available": {"equites_legati": 5},
        "missing": {"equites_legati": 1},
    }
    with tr.connect(database_url) as anonymous:  # acting as nobody
        expect_nothing_written(world, tr.Forbidden, lambda: anonymous.intel.send_scouts(1, 2))
    assert world.military.troops(1) == Troops(legionnaire=20, equites_legati=5)


# -- scout_reports -----------------------------------------------------------------------


def add_report(world: tr.World, player_id: int, kind: str, minutes: int, **extra: Any) -> int:
    values: dict[str, Any] = dict(
        player_id=player_id, kind=kind, subject=f"{kind} report at +{minutes} min",
        village_id=2, payload={"troops": {"clubswinger": 20}, "resources": [1, 2, 3, 4]},
        read=False, created_at=START + timedelta(minutes=minutes),
    )
    values.update(extra)
    with world.database.engine.begin() as conn:
        return int(conn.execute(
            schema.reports.insert().values(values).returning(schema.reports.c.id)
        ).scalar_one())


def test_scout_reports_newest_first(world: tr.World) -> None:
    assert world.intel.scout_reports(1) == []
    old = add_report(world, 1, "scout", 1)
    newest = add_report(world, 1, "scout", 30, read=True, village_id=None, payload={})
    tie_a = add_report(world, 1, "scout", 10)
    tie_b = add_report(world, 1, "scout", 10)
    add_report(world, 1, "attack", 40)  # another kind
    add_report(world, 2, "scout", 50)  # another player's

    reports = world.intel.scout_reports(1)
    assert [r.id for r in reports] == [newest, tie_b, tie_a, old]
    assert reports[0] == Report(newest, 1, "scout", "scout report at +30 min", None,
                                START + timedelta(minutes=30), {}, True)
    assert reports[-1].payload == {"troops": {"clubswinger": 20}, "resources": [1, 2, 3, 4]}
    assert reports[-1].village_id == 2 and reports[-1].read is False
    assert reports[-1].created_at.tzinfo is not None
    assert [r.id for r in world.intel.scout_reports(1, limit=2)] == [newest, tie_b]
    assert [r.id for r in world.intel.scout_reports(1, limit=1)] == [newest]
    assert len(world.intel.scout_reports(1, limit=validation.MAX_LIMIT)) == 4
    with world.unit_of_work(player_id=2) as uow:
        assert [r.player_id for r in uow.intel.scout_reports(2)] == [2]


def test_scout_reports_are_private_and_checked(world: tr.World, database_url: str) -> None:
    add_report(world, 2, "scout", 5)
    with pytest.raises(tr.Forbidden):
        world.intel.scout_reports(2)
    with pytest.raises(tr.Forbidden):
        world.intel.scout_reports(999)  # no leak of whether the player exists
    intel: Any = world.intel  # bad arguments on purpose
    for bad_limit in (0, -1, validation.MAX_LIMIT + 1, 1.5, True, "20", None):
        with pytest.raises(tr.InvalidRequest):
            intel.scout_reports(1, limit=bad_limit)
    for bad_id in ("1", 0, -1, 2.0, False):
        with pytest.raises(tr.InvalidRequest):
            intel.scout_reports(bad_id)
    with tr.connect(database_url) as anonymous:
        with pytest.raises(tr.Forbidden):
            anonymous.intel.scout_reports(1)

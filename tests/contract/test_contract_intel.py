"""Intel: the contract on prefer="sql" and prefer="http" (sqlite and postgresql).

Player 1 (romans, scout: equites_legati), 2 (teutons, scout), 3 (gauls, pathfinder); five
scouts at home each. Reports are written by the engine; these tests insert them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa

import travian_repo as tr
from travian_repo.domain.values import Report, Troops
from travian_repo.repositories import validation
from travian_repo.rules import travel, units
from travian_repo.sql import schema

from tests.conftest import START
from tests.contract.conftest import AsPlayer, execute, refuses


def add_report(raw: sa.Engine, player_id: int, kind: str, minutes: int, **extra: Any) -> int:
    values: dict[str, Any] = dict(
        player_id=player_id, kind=kind, subject=f"{kind} report at +{minutes} min",
        village_id=2, payload={"troops": {"clubswinger": 20}, "resources": [1, 2, 3, 4]},
        read=False, created_at=START + timedelta(minutes=minutes))
    values.update(extra)
    with raw.begin() as conn:
        return int(conn.execute(
            schema.reports.insert().values(values).returning(schema.reports.c.id)).scalar_one())


def test_send_scouts_moves_the_tribes_scouts(world: tr.World, as_player: AsPlayer) -> None:
    a, b = world.villages.get(1), world.villages.get(2)
    movement = world.intel.send_scouts(1, 2, 2)
    walk = travel.travel_seconds(travel.distance(a.x, a.y, b.x, b.y, radius=200),
                                 units.scout_unit("romans").speed, server_speed=1)
    assert (movement.kind, movement.from_village_id, movement.to_village_id) == ("scout", 1, 2)
    assert movement.troops == Troops(equites_legati=2)
    assert (movement.departed_at, movement.arrives_at) == (START, START + timedelta(seconds=walk))
    assert world.military.troops(1) == Troops(legionnaire=20, equites_legati=3)
    assert world.military.outgoing(1) == [movement]
    assert world.intel.send_scouts(1, 3).troops == Troops(equites_legati=1)
    gauls = as_player(3)
    pathfinders = gauls.intel.send_scouts(3, 1, 5)
    assert pathfinders.troops == Troops(pathfinder=5)
    assert gauls.military.troops(3) == Troops(phalanx=20)
    assert world.military.incoming(1) == [pathfinders]
    assert as_player(2).military.incoming(2) == [movement]


def test_send_scouts_errors(world: tr.World, as_player: AsPlayer, raw: sa.Engine) -> None:
    execute(raw, schema.villages.insert().values(
        id=100, name="outpost", player_id=1, x=60, y=60, population=2, is_capital=False,
        created_at=START))
    intel: Any = world.intel
    refuses(raw, tr.InvalidRequest,
            lambda: intel.send_scouts(1, 1),
            *[(lambda c=c: intel.send_scouts(1, 2, c))
              for c in (0, -1, 10**9, validation.MAX_COUNT + 1, 1.5, True, "1", None)],
            lambda: intel.send_scouts("1", 2),
            lambda: intel.send_scouts(1, "2; DROP TABLE movements"),
            lambda: intel.send_scouts(1, 0))
    refuses(raw, tr.NotFound, lambda: intel.send_scouts(1, 999), lambda: intel.send_scouts(999, 1))
    refuses(raw, tr.Forbidden, lambda: intel.send_scouts(2, 1))
    refuses(raw, tr.Unauthorized, lambda: as_player(None).intel.send_scouts(1, 2))
    own, short = refuses(raw, tr.RuleViolation, lambda: intel.send_scouts(1, 100),
                         lambda: intel.send_scouts(1, 2, 6))
    assert "own" in str(own) and "not enough troops" in str(short)
    assert short.details == {"requested": {"equites_legati": 6},
                             "available": {"equites_legati": 5},
                             "missing": {"equites_legati": 1}}


def test_scout_reports_newest_first(world: tr.World, as_player: AsPlayer, raw: sa.Engine) -> None:
    assert world.intel.scout_reports(1) == []
    old = add_report(raw, 1, "scout", 1)
    newest = add_report(raw, 1, "scout", 30, read=True, village_id=None, payload={})
    tie_a = add_report(raw, 1, "scout", 10)
    tie_b = add_report(raw, 1, "scout", 10)
    add_report(raw, 1, "attack", 40)
    add_report(raw, 2, "scout", 50)
    reports = world.intel.scout_reports(1)
    assert [r.id for r in reports] == [newest, tie_b, tie_a, old]
    assert reports[0] == Report(newest, 1, "scout", "scout report at +30 min", None,
                                START + timedelta(minutes=30), {}, True)
    assert reports[-1].payload == {"troops": {"clubswinger": 20}, "resources": [1, 2, 3, 4]}
    assert [r.id for r in world.intel.scout_reports(1, limit=2)] == [newest, tie_b]
    assert len(world.intel.scout_reports(1, limit=validation.MAX_LIMIT)) == 4
    assert [r.player_id for r in as_player(2).intel.scout_reports(2)] == [2]


def test_scout_reports_are_private_and_checked(world: tr.World, as_player: AsPlayer,
                                               raw: sa.Engine) -> None:
    add_report(raw, 2, "scout", 5)
    intel: Any = world.intel
    refuses(raw, tr.Forbidden, lambda: intel.scout_reports(2), lambda: intel.scout_reports(999))
    refuses(raw, tr.Unauthorized, lambda: as_player(None).intel.scout_reports(1))
    refuses(raw, tr.InvalidRequest,
            *[(lambda b=b: intel.scout_reports(1, limit=b))
              for b in (0, -1, validation.MAX_LIMIT + 1, 1.5, True, "20", None)],
            *[(lambda b=b: intel.scout_reports(b)) for b in ("1", 0, -1, 2.0, False)])

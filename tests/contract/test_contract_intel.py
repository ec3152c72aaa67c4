"""Intel: the contract on prefer="sql" and prefer="http" (sqlite and postgresql).

Player 1 (romans, scout: equites_legati), 2 (teutons, scout), 3 (gauls, pathfinder); five
scouts at home each. Reports are written by the engine: the raid test runs it, the others
insert reports.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa

import travian_repo as tr
from travian_repo.domain.values import BattleSide, LevelChange, Movement, Report, Resources, Troops
from travian_repo.repositories import validation
from travian_repo.rules import battle, economy, travel, units
from travian_repo.sandbox import Engine
from travian_repo.sql import schema

from tests.conftest import START
from tests.contract.conftest import AsPlayer, Contract, execute, refuses


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


# -- intel.reports and intel.mark_report_read ----------------------------------------------


def raid_village_2(contract: Contract, world: tr.World) -> tuple[battle.BattleResult, Movement]:
    """Player 1's 20 legionnaires raid player 2's village (20 clubswingers, 5 scouts, a
    full 4000 stock, cranny 3); the engine fights it at its arrival."""
    raid = world.military.attack(1, 2, {"legionnaire": 20}, kind="raid")
    expected = battle.fight(battle.Army("romans", {"legionnaire": 20}),
                            [battle.Army("teutons", {"clubswinger": 20, "scout": 5})],
                            kind=battle.RAID)
    contract.clock.set(raid.arrives_at)
    with Engine(contract.database_url, clock=contract.clock) as engine:
        engine.run_until(raid.arrives_at)
    return expected, raid


def test_a_raid_reports_to_both_sides_with_the_battles_numbers(
    contract: Contract, world: tr.World, as_player: AsPlayer
) -> None:
    expected, raid = raid_village_2(contract, world)
    teutons = as_player(2)

    [mine] = world.intel.reports(1)
    [theirs] = teutons.intel.reports(2)
    assert (mine.kind, theirs.kind) == ("attack", "defense")
    assert mine.created_at == theirs.created_at == raid.arrives_at
    assert mine.village_id == theirs.village_id == 2
    assert not mine.read and not theirs.read
    for report in (mine, theirs):
        fought = report.battle
        assert fought is not None
        assert (fought.movement_kind, fought.movement_id) == ("raid", raid.id)
        assert (fought.target_village_id, fought.target_player_id) == (2, 2)
        assert fought.attacker == BattleSide(1, 1, "romans", Troops(legionnaire=20),
                                             Troops(expected.attacker.lost),
                                             Troops(expected.attacker.survivors))
        assert fought.attacker_won is True
        assert fought.wall == LevelChange("earth_wall", 0, 0)
        # The catapults' aim (the highest building but the wall): no catapult, no damage.
        assert fought.target is not None and fought.target.before == fought.target.after
        assert fought.target.before == max(
            b.level for b in teutons.villages.get(2).buildings or () if b.name != "earth_wall")
    assert mine.battle is not None and theirs.battle is not None
    assert (mine.battle.role, theirs.battle.role) == ("attacker", "defender")
    assert mine.battle.defenders == theirs.battle.defenders == (
        BattleSide(2, 2, "teutons", Troops(clubswinger=20, scout=5),
                   Troops(expected.defenders[0].lost), Troops(expected.defenders[0].survivors)),
    )

    # What the engine did agrees with the report: the defender's troops at home, the
    # survivors on their way back, the bounty out of the defender's stock.
    fought = mine.battle
    assert fought is not None and 0 < fought.attacker.lost.total < 20
    assert teutons.military.troops(2) == fought.defenders[0].survivors
    [back] = [m for m in world.military.incoming(1) if m.kind == "return"]
    assert back.troops == fought.attacker.survivors
    hidden = economy.cranny_capacity([3], tribe="teutons")
    loot = battle.bounty(units.carry_capacity("romans", fought.attacker.survivors),
                         Resources(4000, 4000, 4000, 4000), hidden).taken
    assert fought.bounty == loot and loot.total > 0
    assert fought.carry == units.carry_capacity("romans", fought.attacker.survivors)
    assert teutons.villages.get(2).resources == Resources(4000, 4000, 4000, 4000) - loot
    # The stored payload is still there, as scout_reports has always given it.
    assert mine.payload["attacker"]["lost"] == fought.attacker.lost.as_dict()
    assert world.intel.scout_reports(1) == []


def test_reports_kind_limit_and_order(world: tr.World, as_player: AsPlayer,
                                      raw: sa.Engine) -> None:
    assert world.intel.reports(1) == []
    scout = add_report(raw, 1, "scout", 1)
    attack = add_report(raw, 1, "attack", 20)
    defense = add_report(raw, 1, "defense", 10, read=True)
    scouted = add_report(raw, 1, "scouted", 30)
    add_report(raw, 2, "attack", 40)
    everything = world.intel.reports(1)
    assert [r.id for r in everything] == [scouted, attack, defense, scout]
    assert [r.kind for r in everything] == ["scouted", "attack", "defense", "scout"]
    assert [r.read for r in everything] == [False, False, True, False]
    # A hand-written payload is no battle: the typed battle is None, the payload as stored.
    assert all(r.battle is None for r in everything)
    assert everything[1].payload == {"troops": {"clubswinger": 20}, "resources": [1, 2, 3, 4]}
    for kind, ids in (("attack", [attack]), ("defense", [defense]), ("scout", [scout]),
                      ("scouted", [scouted])):
        assert [r.id for r in world.intel.reports(1, kind=kind)] == ids
    assert [r.id for r in world.intel.reports(1, limit=2)] == [scouted, attack]
    assert [r.id for r in world.intel.reports(1, kind=None, limit=1)] == [scouted]
    assert len(world.intel.reports(1, limit=validation.MAX_LIMIT)) == 4
    assert world.intel.scout_reports(1) == world.intel.reports(1, kind="scout")
    assert [r.player_id for r in as_player(2).intel.reports(2)] == [2]


def test_reports_are_private_and_checked(world: tr.World, as_player: AsPlayer,
                                         raw: sa.Engine) -> None:
    add_report(raw, 2, "attack", 5)
    intel: Any = world.intel
    refuses(raw, tr.Forbidden, lambda: intel.reports(2), lambda: intel.reports(999),
            lambda: intel.reports(2, kind="attack"))
    refuses(raw, tr.Unauthorized, lambda: as_player(None).intel.reports(1))
    refuses(raw, tr.InvalidRequest,
            *[(lambda b=b: intel.reports(1, limit=b))
              for b in (0, -1, validation.MAX_LIMIT + 1, 1.5, True, "20", None)],
            *[(lambda k=k: intel.reports(1, kind=k))
              for k in ("battle", "", "ATTACK", "attack ", 1, True, ["attack"])],
            *[(lambda b=b: intel.reports(b)) for b in ("1", 0, -1, 2.0, False)],
            lambda: intel.reports(2, kind="bogus"))


def test_mark_report_read_own_only_twice_is_fine(world: tr.World, as_player: AsPlayer,
                                                 raw: sa.Engine) -> None:
    mine = add_report(raw, 1, "attack", 5)
    other = add_report(raw, 1, "scout", 6)
    theirs = add_report(raw, 2, "defense", 5)
    marked = world.intel.mark_report_read(mine)
    assert (marked.id, marked.player_id, marked.kind, marked.read) == (mine, 1, "attack", True)
    assert {r.id: r.read for r in world.intel.reports(1)} == {mine: True, other: False}
    [state] = refuses(raw, tr.Forbidden, lambda: world.intel.mark_report_read(theirs))
    assert str(theirs) in str(state)
    assert world.intel.mark_report_read(mine) == marked  # again: no error, nothing changes
    assert [r.read for r in as_player(2).intel.reports(2)] == [False]
    assert as_player(2).intel.mark_report_read(theirs).read is True
    intel: Any = world.intel
    refuses(raw, tr.NotFound, lambda: intel.mark_report_read(10**6))
    refuses(raw, tr.Unauthorized, lambda: as_player(None).intel.mark_report_read(other))
    refuses(raw, tr.InvalidRequest,
            *[(lambda b=b: intel.mark_report_read(b)) for b in ("1", 0, -1, 2.0, True, None)])
    assert world.intel.reports(1, kind="scout")[0].read is False

"""The SQL military repository on SQLite and PostgreSQL (the ``world`` fixture runs each test
on both): troops at home, training, attacks, reinforcements, incoming and outgoing.

The world is the developed 6-player sandbox acting as player 1 (romans, village 1);
player 2 (teutons) owns village 2, player 3 (gauls) village 3. Each village starts with
20 of its tribe's first unit and 5 scouts, 4000 of each resource, barracks 3, academy 5,
smithy 3, stable 1; the clock stands still at START.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import pytest
import sqlalchemy as sa

import travian_repo as tr
from travian_repo.domain.values import Movement, Resources, Troops
from travian_repo.rules import travel, units
from travian_repo.sql import schema
from travian_repo.sandbox import Clock

LEGIONNAIRE = units.unit_spec("romans", "legionnaire")
EQUITES = units.unit_spec("romans", "equites_legati")
START = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def _clock_at_start(clock: Clock) -> None:
    assert clock() == START, "conftest's START moved; update START here"


# -- helpers -----------------------------------------------------------------------------


def snapshot(world: tr.World) -> dict[str, Any]:
    """Everything a military write may touch, straight from the database."""
    with world.database.engine.connect() as conn:
        def rows(table: sa.Table) -> list[tuple[Any, ...]]:
            return sorted(tuple(r) for r in conn.execute(sa.select(table)))

        return {
            "troops": rows(schema.troops),
            "resources": rows(schema.village_resources),
            "movements": rows(schema.movements),
            "orders": rows(schema.training_orders),
            "queue": rows(schema.training_queue),
        }


def execute(world: tr.World, statement: Any) -> None:
    with world.database.engine.begin() as conn:
        conn.execute(statement)


def add_village(world: tr.World, player_id: int, x: int, y: int) -> int:
    """A second village (no buildings, no troops, 1000 of each resource)."""
    with world.database.engine.begin() as conn:
        vid = int(conn.execute(
            schema.villages.insert()
            .values(name=f"outpost {x}|{y}", player_id=player_id, x=x, y=y, population=2,
                    is_capital=False, created_at=START)
            .returning(schema.villages.c.id)
        ).scalar_one())
        conn.execute(schema.village_resources.insert().values(
            village_id=vid, wood=1000, clay=1000, iron=1000, wheat=1000,
            wood_production=10, clay_production=10, iron_production=10, wheat_production=10,
            warehouse_capacity=800 * 5, granary_capacity=800 * 5, updated_at=START,
        ))
    return vid


def set_building(world: tr.World, village_id: int, slot: int, name: str, level: int) -> None:
    b = schema.village_buildings
    with world.database.engine.begin() as conn:
        conn.execute(sa.delete(b).where(b.c.village_id == village_id, b.c.slot == slot))
        conn.execute(b.insert().values(village_id=village_id, slot=slot, building_name=name,
                                       level=level))


def set_troops(world: tr.World, village_id: int, unit: str, count: int) -> None:
    t = schema.troops
    with world.database.engine.begin() as conn:
        conn.execute(sa.delete(t).where(t.c.village_id == village_id, t.c.unit == unit))
        conn.execute(t.insert().values(village_id=village_id, unit=unit, count=count))


def travel_time(world: tr.World, source: int, target: int, speed: int, square: int = 0) -> int:
    a, b = world.villages.get(source), world.villages.get(target)
    s = world.database.settings
    return travel.travel_seconds(
        travel.distance(a.x, a.y, b.x, b.y, radius=s.map_radius),
        speed,
        server_speed=s.speed,
        tournament_square_level=square,
        tournament_square_bonus_percent=s.tournament_square_bonus_percent,
    )


def expect_nothing_written(
    world: tr.World, error: type[Exception], *calls: Callable[[], Any]
) -> list[Any]:
    """Each call raises ``error`` and leaves the database as it was."""
    before = snapshot(world)
    raised = []
    for call in calls:
        with pytest.raises(error) as info:
            call()
        raised.append(info.value)
    assert snapshot(world) == before
    return raised


# -- troops ------------------------------------------------------------------------------


def test_troops_at_home_owner_only(world: tr.World, database_url: str) -> None:
    assert world.military.troops(1) == Troops(legionnaire=20, equites_legati=5)
    assert dict(world.military.troops(1)) == {"equites_legati": 5, "legionnaire": 20}
    with world.unit_of_work(player_id=2) as uow:
        assert uow.military.troops(2) == Troops(clubswinger=20, scout=5)
    with pytest.raises(tr.Forbidden):
        world.military.troops(2)
    with pytest.raises(tr.NotFound):
        world.military.troops(999)
    military: Any = world.military  # bad arguments on purpose
    for bad in ("1", 0, -1, True, 1.5, None, 2**63):
        with pytest.raises(tr.InvalidRequest):
            military.troops(bad)
    with tr.connect(database_url) as anonymous:  # acting as nobody
        with pytest.raises(tr.Forbidden):
            anonymous.military.troops(1)


def test_troops_leave_out_zero_counts(world: tr.World) -> None:
    set_troops(world, 1, "praetorian", 0)
    assert "praetorian" not in world.military.troops(1)
    assert world.military.troops(1) == {"legionnaire": 20, "equites_legati": 5}


# -- train -------------------------------------------------------------------------------


def test_train_spends_the_cost_and_queues_lines_per_building(world: tr.World) -> None:
    before = world.villages.get(1).resources
    assert before is not None
    barracks_each = units.training_time("romans", "legionnaire", building_level=3)
    stable_each = units.training_time("romans", "equites_legati", building_level=1)

    order = world.military.train(1, {"legionnaire": 2, "Equites Legati": 1})
    cost = LEGIONNAIRE.cost * 2 + EQUITES.cost
    assert order.village_id == 1
    assert order.troops == Troops(legionnaire=2, equites_legati=1)
    assert order.cost == cost
    assert order.started_at == START
    # barracks and stable train in parallel; the order completes with its longest line
    assert order.completes_at == START + timedelta(seconds=max(2 * barracks_each, stable_each))
    assert world.villages.get(1).resources == before - cost

    # a second barracks line starts when the first one ends; the stable's is its own queue
    second = world.military.train(1, {"legionnaire": 3})
    assert second.started_at == START + timedelta(seconds=2 * barracks_each)
    assert second.completes_at == second.started_at + timedelta(seconds=3 * barracks_each)
    third = world.military.train(1, {"equites_legati": 1})
    assert third.started_at == START + timedelta(seconds=stable_each)
    assert world.villages.get(1).resources == before - cost - second.cost - third.cost
    assert second.id != order.id != third.id

    # units in training are not at home
    assert world.military.troops(1) == Troops(legionnaire=20, equites_legati=5)
    state = snapshot(world)
    assert len(state["orders"]) == 3
    lines = {(r[3], r[4], r[6]) for r in state["queue"]}  # unit, count, building
    assert lines == {("legionnaire", 2, "barracks"), ("equites_legati", 1, "stable"),
                     ("legionnaire", 3, "barracks"), ("equites_legati", 1, "stable")}


def test_train_research_is_the_prerequisite_buildings(world: tr.World) -> None:
    # praetorian: academy 1 + smithy 1, imperian: academy 5 + smithy 1 -> both stand
    order = world.military.train(1, {"praetorian": 1, "imperian": 1})
    assert order.troops == Troops(praetorian=1, imperian=1)


def test_train_bad_input_is_invalid_and_writes_nothing(world: tr.World) -> None:
    m: Any = world.military  # bad arguments on purpose
    expect_nothing_written(
        world,
        tr.InvalidRequest,
        lambda: m.train(1, {"dragon": 1}),
        lambda: m.train(1, {"clubswinger": 1}),  # a teuton unit
        lambda: m.train(1, {"legionnaire": 1, "phalanx": 1}),  # one bad name spoils the order
        lambda: m.train(1, {"legionnaire": 0}),
        lambda: m.train(1, {"legionnaire": -1}),
        lambda: m.train(1, {"legionnaire": 10**9}),
        lambda: m.train(1, {"legionnaire": 1.5}),
        lambda: m.train(1, {"legionnaire": True}),
        lambda: m.train(1, {"legionnaire": "3"}),
        lambda: m.train(1, {}),
        lambda: m.train(1, [("legionnaire", 1)]),
        lambda: m.train(1, {"'; DROP TABLE troops; --": 1}),
        lambda: m.train("1", {"legionnaire": 1}),
        lambda: m.train(0, {"legionnaire": 1}),
    )
    assert issubclass(tr.InvalidRequest, ValueError)


def test_train_rules_and_ownership(world: tr.World) -> None:
    m = world.military
    no_workshop, not_researched, no_residence, not_yours, missing = expect_nothing_written(
        world,
        tr.TravianError,
        lambda: m.train(1, {"battering_ram": 1}),
        lambda: m.train(1, {"equites_imperatoris": 1}),  # needs stable 5
        lambda: m.train(1, {"settler": 1}),
        lambda: m.train(2, {"clubswinger": 1}),
        lambda: m.train(999, {"legionnaire": 1}),
    )
    assert type(no_workshop) is tr.RuleViolation and "workshop" in str(no_workshop)
    assert type(not_researched) is tr.RuleViolation and "stable level 5" in str(not_researched)
    assert type(no_residence) is tr.RuleViolation and "residence" in str(no_residence)
    assert type(not_yours) is tr.Forbidden
    assert type(missing) is tr.NotFound

    # a settler needs its residence at level 10
    set_building(world, 1, 29, "residence", 1)
    (low,) = expect_nothing_written(world, tr.RuleViolation, lambda: m.train(1, {"settler": 1}))
    assert "level 10" in str(low) and type(low) is tr.RuleViolation
    set_building(world, 1, 29, "residence", 10)
    # now the rule holds and only the stock says no (a settler costs 4600 wood)
    (poor,) = expect_nothing_written(
        world, tr.InsufficientResources, lambda: m.train(1, {"settler": 1})
    )
    assert isinstance(poor, tr.InsufficientResources)
    assert poor.required == units.unit_cost("romans", "settler")


def test_train_insufficient_resources(world: tr.World) -> None:
    # 27 legionnaires cost 27 * 150 = 4050 iron; the stock is 4000
    (error,) = expect_nothing_written(
        world, tr.InsufficientResources,
        lambda: world.military.train(1, {"legionnaire": 27}),
    )
    assert isinstance(error, tr.InsufficientResources) and isinstance(error, tr.RuleViolation)
    assert error.required == LEGIONNAIRE.cost * 27
    assert error.available == Resources(4000, 4000, 4000, 4000)
    assert error.details["required"]["iron"] == 4050
    assert world.villages.get(1).resources == Resources(4000, 4000, 4000, 4000)
    # 26 fit
    assert world.military.train(1, {"legionnaire": 26}).cost == LEGIONNAIRE.cost * 26


# -- attack ------------------------------------------------------------------------------


def test_attack_sends_troops_out_and_arrives_after_the_travel_time(world: tr.World) -> None:
    movement = world.military.attack(1, 2, {"legionnaire": 5, "equites_legati": 1})
    expected = travel_time(world, 1, 2, speed=LEGIONNAIRE.speed)  # the slower unit
    assert movement == Movement(
        movement.id, "attack", 1, 2, Troops(legionnaire=5, equites_legati=1),
        START, START + timedelta(seconds=expected),
    )
    assert world.military.troops(1) == Troops(legionnaire=15, equites_legati=4)
    assert world.military.outgoing(1) == [movement]
    with world.unit_of_work(player_id=2) as uow:
        assert uow.military.incoming(2) == [movement]
    row = snapshot(world)["movements"][0]
    assert row[2] == 1 and row[11] == "underway"  # player_id, state

    raid = world.military.attack(1, 3, {"legionnaire": 15}, kind="raid")
    assert raid.kind == "raid"
    assert raid.arrives_at == START + timedelta(seconds=travel_time(world, 1, 3, 6))
    # the last legionnaires left: no zero row stays behind
    assert world.military.troops(1) == Troops(equites_legati=4)
    assert ("legionnaire" not in {r[1] for r in snapshot(world)["troops"] if r[0] == 1})


def test_siege_needs_a_ram(world: tr.World) -> None:
    (error,) = expect_nothing_written(
        world, tr.RuleViolation,
        lambda: world.military.attack(1, 2, {"legionnaire": 5}, kind="siege"),
    )
    assert "ram" in str(error)
    set_troops(world, 1, "battering_ram", 2)
    siege = world.military.attack(1, 2, {"legionnaire": 5, "battering_ram": 1}, kind="siege")
    assert siege.kind == "siege"
    ram = units.unit_spec("romans", "battering_ram")
    assert siege.arrives_at == START + timedelta(seconds=travel_time(world, 1, 2, ram.speed))
    assert world.military.troops(1) == Troops(legionnaire=15, equites_legati=5, battering_ram=1)


def test_tournament_square_speeds_up_long_marches(world: tr.World) -> None:
    far = add_village(world, 2, 120, -150)
    set_building(world, 1, 30, "tournament_square", 10)
    movement = world.military.attack(1, far, {"legionnaire": 1})
    with_square = travel_time(world, 1, far, LEGIONNAIRE.speed, square=10)
    assert movement.arrives_at == START + timedelta(seconds=with_square)
    assert with_square < travel_time(world, 1, far, LEGIONNAIRE.speed, square=0)


def test_attack_errors_write_nothing(world: tr.World) -> None:
    own = add_village(world, 1, 50, 50)
    set_troops(world, 1, "settler", 1)
    m: Any = world.military  # bad arguments on purpose
    invalid = expect_nothing_written(
        world, tr.InvalidRequest,
        lambda: m.attack(1, 1, {"legionnaire": 1}),
        lambda: m.attack(1, 2, {"legionnaire": 1}, kind="pillage"),
        lambda: m.attack(1, 2, {"legionnaire": 1}, kind=None),
        lambda: m.attack(1, 2, {"clubswinger": 1}),
        lambda: m.attack(1, 2, {"dragon": 1}),
        lambda: m.attack(1, 2, {"legionnaire": 0}),
        lambda: m.attack(1, 2, {"legionnaire": -3}),
        lambda: m.attack(1, 2, {"legionnaire": 10**9}),
        lambda: m.attack(1, 2, {"legionnaire": 2.0}),
        lambda: m.attack(1, 2, {"legionnaire": False}),
        lambda: m.attack("1", 2, {"legionnaire": 1}),
        lambda: m.attack(1, "2", {"legionnaire": 1}),
        lambda: m.attack(1, 2, "legionnaire"),
    )
    assert "pillage" in str(invalid[1])
    expect_nothing_written(
        world, tr.NotFound,
        lambda: m.attack(1, 999, {"legionnaire": 1}),
        lambda: m.attack(999, 1, {"legionnaire": 1}),
    )
    expect_nothing_written(world, tr.Forbidden, lambda: m.attack(2, 1, {"clubswinger": 1}))
    own_village, settlers, scouts_only, short, absent = expect_nothing_written(
        world, tr.RuleViolation,
        lambda: m.attack(1, own, {"legionnaire": 1}),
        lambda: m.attack(1, 2, {"legionnaire": 1, "settler": 1}),
        lambda: m.attack(1, 2, {"equites_legati": 2}, kind="raid"),
        lambda: m.attack(1, 2, {"legionnaire": 21, "equites_legati": 1}),
        lambda: m.attack(1, 2, {"praetorian": 1}),
    )
    assert "own" in str(own_village)
    assert "settler" in str(settlers)
    assert "send_scouts" in str(scouts_only)
    assert "not enough troops" in str(short)
    assert short.details == {
        "requested": {"equites_legati": 1, "legionnaire": 21},
        "available": {"equites_legati": 5, "legionnaire": 20},
        "missing": {"legionnaire": 1},
    }
    assert absent.details["available"] == {"praetorian": 0}
    assert not isinstance(short, tr.InsufficientResources)


def test_a_failed_write_keeps_the_earlier_writes_of_the_unit_of_work(world: tr.World) -> None:
    with world.unit_of_work() as uow:
        first = uow.military.attack(1, 2, {"legionnaire": 4})
        with pytest.raises(tr.RuleViolation):
            uow.military.attack(1, 3, {"legionnaire": 17})  # 16 left
        second = uow.military.attack(1, 3, {"legionnaire": 16})
    assert world.military.outgoing(1) == sorted([first, second],
                                                key=lambda m: (m.arrives_at, m.id))
    assert world.military.troops(1) == Troops(equites_legati=5)


# -- reinforce ---------------------------------------------------------------------------


def test_reinforce_anyone_including_yourself(world: tr.World) -> None:
    own = add_village(world, 1, 3, -40)
    movement = world.military.reinforce(1, 2, {"legionnaire": 3, "equites_legati": 1})
    assert movement.kind == "reinforcement"
    assert movement.troops == Troops(legionnaire=3, equites_legati=1)
    assert movement.arrives_at == START + timedelta(seconds=travel_time(world, 1, 2, 6))
    home = world.military.reinforce(1, own, {"equites_legati": 2})  # scouts alone may go
    assert home.arrives_at == START + timedelta(
        seconds=travel_time(world, 1, own, EQUITES.speed)
    )
    assert world.military.troops(1) == Troops(legionnaire=17, equites_legati=2)
    assert world.military.incoming(own) == [home]


def test_reinforce_errors_write_nothing(world: tr.World) -> None:
    set_troops(world, 1, "settler", 3)
    m: Any = world.military  # bad arguments on purpose
    expect_nothing_written(
        world, tr.InvalidRequest,
        lambda: m.reinforce(1, 1, {"legionnaire": 1}),
        lambda: m.reinforce(1, 2, {"axeman": 1}),
        lambda: m.reinforce(1, 2, {"legionnaire": 0}),
        lambda: m.reinforce(1, 2, {"legionnaire": 10**9}),
        lambda: m.reinforce(1, None, {"legionnaire": 1}),
    )
    expect_nothing_written(world, tr.NotFound, lambda: m.reinforce(1, 999, {"legionnaire": 1}))
    expect_nothing_written(world, tr.Forbidden, lambda: m.reinforce(3, 1, {"phalanx": 1}))
    settlers, short = expect_nothing_written(
        world, tr.RuleViolation,
        lambda: m.reinforce(1, 2, {"settler": 1}),
        lambda: m.reinforce(1, 2, {"legionnaire": 25}),
    )
    assert "settler" in str(settlers)
    assert short.details["missing"] == {"legionnaire": 5}


# -- incoming / outgoing -----------------------------------------------------------------


def test_incoming_and_outgoing_order_and_visibility(world: tr.World) -> None:
    slow = world.military.attack(1, 2, {"legionnaire": 2})
    fast = world.military.reinforce(1, 2, {"equites_legati": 1})
    other = world.military.attack(1, 3, {"legionnaire": 1})
    assert fast.arrives_at < slow.arrives_at
    expected = sorted([slow, fast, other], key=lambda m: (m.arrives_at, m.id))
    assert world.military.outgoing(1) == expected
    assert world.military.incoming(1) == []

    with world.unit_of_work(player_id=2) as uow:
        assert uow.military.incoming(2) == [fast, slow]
        counter = uow.military.attack(2, 1, {"clubswinger": 3})
        assert uow.military.outgoing(2) == [counter]
    assert world.military.incoming(1) == [counter]
    assert counter not in world.military.outgoing(1)

    # troops coming home are incoming, not outgoing; finished movements are neither
    m = schema.movements
    returning = dict(kind="return", player_id=1, from_village_id=3, to_village_id=1,
                     troops={"legionnaire": 1}, state="underway", departed_at=START,
                     arrives_at=START + timedelta(seconds=1))
    execute(world, m.insert().values(returning))
    execute(world, m.insert().values(dict(returning, kind="attack", from_village_id=1,
                                          to_village_id=2, state="done")))
    incoming = world.military.incoming(1)
    assert [x.kind for x in incoming] == ["return", "attack"]
    assert incoming[0].troops == Troops(legionnaire=1)
    assert world.military.outgoing(1) == expected

    calls: tuple[Callable[[Any], Any], ...] = (world.military.incoming, world.military.outgoing)
    for call in calls:
        with pytest.raises(tr.Forbidden):
            call(2)
        with pytest.raises(tr.NotFound):
            call(999)
        with pytest.raises(tr.InvalidRequest):
            call("1")
        with pytest.raises(tr.InvalidRequest):
            call(-5)


def test_outgoing_ties_are_ordered_by_id(world: tr.World) -> None:
    a = world.military.attack(1, 2, {"legionnaire": 1})
    b = world.military.attack(1, 2, {"legionnaire": 1})
    assert a.arrives_at == b.arrives_at and a.id < b.id
    assert world.military.outgoing(1) == [a, b]

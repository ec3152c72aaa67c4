"""Military: the contract on prefer="sql" and prefer="http" (sqlite and postgresql).

Player 1 (romans, village 1), 2 (teutons, village 2), 3 (gauls, village 3); each village
starts with 20 of its tribe's first unit and 5 scouts, 4000 of each resource, barracks 3,
academy 5, smithy 3, stable 1; the clock stands still at START until a test moves it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

import travian_repo as tr
from travian_repo.domain.values import Movement, Resources, Troops
from travian_repo.rules import travel, units
from travian_repo.sql import schema

from tests.conftest import START
from tests.contract.conftest import AsPlayer, execute, refuses

LEGIONNAIRE = units.unit_spec("romans", "legionnaire")
EQUITES = units.unit_spec("romans", "equites_legati")
BAD_IDS: tuple[Any, ...] = ("1", 0, -1, True, 1.5, None, 2**63)


def seconds(world: tr.World, source: int, target: int, speed: int) -> timedelta:
    """Travel time on the default world (speed 1, radius 200, no tournament square)."""
    a, b = world.villages.get(source), world.villages.get(target)
    return timedelta(seconds=travel.travel_seconds(
        travel.distance(a.x, a.y, b.x, b.y, radius=200), speed, server_speed=1))


def set_troops(raw: sa.Engine, village_id: int, unit: str, count: int) -> None:
    t = schema.troops
    execute(raw, sa.delete(t).where(t.c.village_id == village_id, t.c.unit == unit),
            t.insert().values(village_id=village_id, unit=unit, count=count))


def add_village(raw: sa.Engine, player_id: int, village_id: int, x: int, y: int) -> None:
    execute(
        raw,
        schema.villages.insert().values(id=village_id, name=f"outpost {x}|{y}",
                                        player_id=player_id, x=x, y=y, population=2,
                                        is_capital=False, created_at=START),
        schema.village_resources.insert().values(
            village_id=village_id, wood=1000, clay=1000, iron=1000, wheat=1000,
            wood_production=10, clay_production=10, iron_production=10, wheat_production=10,
            warehouse_capacity=4000, granary_capacity=4000, updated_at=START),
    )


# ---- troops -------------------------------------------------------------------------------

def test_troops_at_home_owner_only(world: tr.World, as_player: AsPlayer, raw: sa.Engine) -> None:
    assert world.military.troops(1) == Troops(legionnaire=20, equites_legati=5)
    assert dict(world.military.troops(1)) == {"equites_legati": 5, "legionnaire": 20}
    assert as_player(2).military.troops(2) == Troops(clubswinger=20, scout=5)
    military: Any = world.military
    refuses(raw, tr.Forbidden, lambda: military.troops(2))
    refuses(raw, tr.NotFound, lambda: military.troops(999))
    refuses(raw, tr.InvalidRequest, *[(lambda b=b: military.troops(b)) for b in BAD_IDS])


def test_troops_leave_out_zero_counts(world: tr.World, raw: sa.Engine) -> None:
    set_troops(raw, 1, "praetorian", 0)
    assert world.military.troops(1) == {"legionnaire": 20, "equites_legati": 5}


# ---- train --------------------------------------------------------------------------------

def test_train_spends_the_cost_and_queues(world: tr.World) -> None:
    barracks_each = units.training_time("romans", "legionnaire", building_level=3)
    stable_each = units.training_time("romans", "equites_legati", building_level=1)
    order = world.military.train(1, {"legionnaire": 2, "Equites Legati": 1})
    cost = LEGIONNAIRE.cost * 2 + EQUITES.cost
    assert (order.village_id, order.troops, order.cost) == (
        1, Troops(legionnaire=2, equites_legati=1), cost)
    assert order.started_at == START
    assert order.completes_at == START + timedelta(seconds=max(2 * barracks_each, stable_each))
    second = world.military.train(1, {"legionnaire": 3})
    assert second.started_at == START + timedelta(seconds=2 * barracks_each)
    assert second.id != order.id
    assert world.villages.get(1).resources == Resources(4000, 4000, 4000, 4000) - cost - second.cost
    assert world.military.troops(1) == Troops(legionnaire=20, equites_legati=5)


def test_train_bad_input(world: tr.World, raw: sa.Engine) -> None:
    m: Any = world.military
    refuses(raw, tr.InvalidRequest, *[
        (lambda t=t: m.train(1, t)) for t in (
            {"dragon": 1}, {"clubswinger": 1}, {"legionnaire": 1, "phalanx": 1},
            {"legionnaire": 0}, {"legionnaire": -1}, {"legionnaire": 10**9},
            {"legionnaire": 1.5}, {"legionnaire": True}, {"legionnaire": "3"}, {},
            [("legionnaire", 1)], {"'; DROP TABLE troops; --": 1}, None, "legionnaire",
        )
    ], *[(lambda b=b: m.train(b, {"legionnaire": 1})) for b in BAD_IDS])


def test_train_rules_and_ownership(world: tr.World, raw: sa.Engine) -> None:
    m = world.military
    workshop, stable, residence = refuses(
        raw, tr.RuleViolation,
        lambda: m.train(1, {"battering_ram": 1}),
        lambda: m.train(1, {"equites_imperatoris": 1}),
        lambda: m.train(1, {"settler": 1}),
    )
    assert "workshop" in str(workshop) and "stable level 5" in str(stable)
    assert "residence" in str(residence)
    refuses(raw, tr.Forbidden, lambda: m.train(2, {"clubswinger": 1}))
    refuses(raw, tr.NotFound, lambda: m.train(999, {"legionnaire": 1}))


def test_train_insufficient_resources(world: tr.World, raw: sa.Engine) -> None:
    (poor,) = refuses(raw, tr.InsufficientResources,
                      lambda: world.military.train(1, {"legionnaire": 27}))
    assert poor.required == LEGIONNAIRE.cost * 27
    assert poor.available == Resources(4000, 4000, 4000, 4000)
    assert poor.details["required"]["iron"] == 4050
    assert world.military.train(1, {"legionnaire": 26}).cost == LEGIONNAIRE.cost * 26


# ---- attack -------------------------------------------------------------------------------

def test_attack_sends_troops_out(world: tr.World, as_player: AsPlayer) -> None:
    movement = world.military.attack(1, 2, {"legionnaire": 5, "equites_legati": 1})
    assert movement == Movement(movement.id, "attack", 1, 2,
                                Troops(legionnaire=5, equites_legati=1), START,
                                START + seconds(world, 1, 2, LEGIONNAIRE.speed))
    assert world.military.troops(1) == Troops(legionnaire=15, equites_legati=4)
    assert world.military.outgoing(1) == [movement]
    assert as_player(2).military.incoming(2) == [movement]
    raid = world.military.attack(1, 3, {"legionnaire": 15}, kind="raid")
    assert raid.kind == "raid" and raid.arrives_at == START + seconds(world, 1, 3, 6)
    assert world.military.troops(1) == Troops(equites_legati=4)


def test_siege_needs_a_ram(world: tr.World, raw: sa.Engine) -> None:
    (error,) = refuses(raw, tr.RuleViolation,
                       lambda: world.military.attack(1, 2, {"legionnaire": 5}, kind="siege"))
    assert "ram" in str(error)
    set_troops(raw, 1, "battering_ram", 2)
    siege = world.military.attack(1, 2, {"legionnaire": 5, "battering_ram": 1}, kind="siege")
    ram = units.unit_spec("romans", "battering_ram")
    assert siege.kind == "siege" and siege.arrives_at == START + seconds(world, 1, 2, ram.speed)


def test_attack_errors(world: tr.World, raw: sa.Engine) -> None:
    add_village(raw, 1, 100, 50, 50)
    set_troops(raw, 1, "settler", 1)
    m: Any = world.military
    invalid = refuses(raw, tr.InvalidRequest, *[
        (lambda a=a, k=k: m.attack(*a, kind=k)) for a, k in (
            ((1, 1, {"legionnaire": 1}), "normal"),
            ((1, 2, {"legionnaire": 1}), "pillage"),
            ((1, 2, {"legionnaire": 1}), None),
            ((1, 2, {"clubswinger": 1}), "normal"),
            ((1, 2, {"dragon": 1}), "normal"),
            ((1, 2, {"legionnaire": 0}), "normal"),
            ((1, 2, {"legionnaire": -3}), "normal"),
            ((1, 2, {"legionnaire": 10**9}), "normal"),
            ((1, 2, {"legionnaire": 2.0}), "normal"),
            ((1, 2, {"legionnaire": False}), "normal"),
            (("1", 2, {"legionnaire": 1}), "normal"),
            ((1, "2", {"legionnaire": 1}), "normal"),
            ((1, 2, "legionnaire"), "normal"),
            ((1, 2, {}), "normal"),
        )
    ])
    assert "pillage" in str(invalid[1])
    refuses(raw, tr.NotFound, lambda: m.attack(1, 999, {"legionnaire": 1}),
            lambda: m.attack(999, 1, {"legionnaire": 1}))
    refuses(raw, tr.Forbidden, lambda: m.attack(2, 1, {"clubswinger": 1}))
    own, settlers, scouts_only, short, absent = refuses(
        raw, tr.RuleViolation,
        lambda: m.attack(1, 100, {"legionnaire": 1}),
        lambda: m.attack(1, 2, {"legionnaire": 1, "settler": 1}),
        lambda: m.attack(1, 2, {"equites_legati": 2}, kind="raid"),
        lambda: m.attack(1, 2, {"legionnaire": 21, "equites_legati": 1}),
        lambda: m.attack(1, 2, {"praetorian": 1}),
    )
    assert "own" in str(own) and "settler" in str(settlers)
    assert "send_scouts" in str(scouts_only) and "not enough troops" in str(short)
    assert short.details == {
        "requested": {"equites_legati": 1, "legionnaire": 21},
        "available": {"equites_legati": 5, "legionnaire": 20},
        "missing": {"legionnaire": 1},
    }
    assert absent.details["available"] == {"praetorian": 0}


# ---- reinforce ----------------------------------------------------------------------------

def test_reinforce_anyone_including_yourself(world: tr.World, raw: sa.Engine) -> None:
    add_village(raw, 1, 100, 3, -40)
    movement = world.military.reinforce(1, 2, {"legionnaire": 3, "equites_legati": 1})
    assert (movement.kind, movement.troops) == (
        "reinforcement", Troops(legionnaire=3, equites_legati=1))
    assert movement.arrives_at == START + seconds(world, 1, 2, 6)
    home = world.military.reinforce(1, 100, {"equites_legati": 2})
    assert home.arrives_at == START + seconds(world, 1, 100, EQUITES.speed)
    assert world.military.troops(1) == Troops(legionnaire=17, equites_legati=2)
    assert world.military.incoming(100) == [home]


def test_reinforce_errors(world: tr.World, raw: sa.Engine) -> None:
    set_troops(raw, 1, "settler", 3)
    m: Any = world.military
    refuses(raw, tr.InvalidRequest,
            lambda: m.reinforce(1, 1, {"legionnaire": 1}),
            lambda: m.reinforce(1, 2, {"axeman": 1}),
            lambda: m.reinforce(1, 2, {"legionnaire": 0}),
            lambda: m.reinforce(1, 2, {"legionnaire": 10**9}),
            lambda: m.reinforce(1, None, {"legionnaire": 1}),
            lambda: m.reinforce(1, 2, {"legionnaire": 1.0}))
    refuses(raw, tr.NotFound, lambda: m.reinforce(1, 999, {"legionnaire": 1}))
    refuses(raw, tr.Forbidden, lambda: m.reinforce(3, 1, {"phalanx": 1}))
    settlers, short = refuses(raw, tr.RuleViolation,
                              lambda: m.reinforce(1, 2, {"settler": 1}),
                              lambda: m.reinforce(1, 2, {"legionnaire": 25}))
    assert "settler" in str(settlers) and short.details["missing"] == {"legionnaire": 5}


# ---- incoming / outgoing ------------------------------------------------------------------

def test_incoming_and_outgoing(world: tr.World, as_player: AsPlayer, raw: sa.Engine) -> None:
    slow = world.military.attack(1, 2, {"legionnaire": 2})
    fast = world.military.reinforce(1, 2, {"equites_legati": 1})
    other = world.military.attack(1, 3, {"legionnaire": 1})
    tie = world.military.attack(1, 2, {"legionnaire": 2})
    expected = sorted([slow, fast, other, tie], key=lambda x: (x.arrives_at, x.id))
    assert world.military.outgoing(1) == expected
    assert world.military.incoming(1) == []
    two = as_player(2)
    assert two.military.incoming(2) == sorted([slow, fast, tie], key=lambda x: (x.arrives_at, x.id))
    counter = two.military.attack(2, 1, {"clubswinger": 3})
    assert two.military.outgoing(2) == [counter]
    assert world.military.incoming(1) == [counter]
    m = schema.movements
    execute(raw, m.insert().values(kind="return", player_id=1, from_village_id=3,
                                   to_village_id=1, troops={"legionnaire": 1}, state="underway",
                                   departed_at=START, arrives_at=START + timedelta(seconds=1)))
    incoming = world.military.incoming(1)
    assert [x.kind for x in incoming] == ["return", "attack"]
    assert incoming[0].troops == Troops(legionnaire=1)


@pytest.mark.parametrize("direction", ["incoming", "outgoing"])
def test_incoming_and_outgoing_errors(world: tr.World, raw: sa.Engine, direction: str) -> None:
    call: Any = getattr(world.military, direction)
    refuses(raw, tr.Forbidden, lambda: call(2))
    refuses(raw, tr.NotFound, lambda: call(999))
    refuses(raw, tr.InvalidRequest, *[(lambda b=b: call(b)) for b in BAD_IDS])


def test_military_acting_as_nobody(world: tr.World, as_player: AsPlayer, raw: sa.Engine) -> None:
    anonymous = as_player(None)
    refuses(raw, tr.Unauthorized,  # a Forbidden: nobody acting
            lambda: anonymous.military.troops(1),
            lambda: anonymous.military.incoming(1),
            lambda: anonymous.military.outgoing(1),
            lambda: anonymous.military.train(1, {"legionnaire": 1}),
            lambda: anonymous.military.attack(1, 2, {"legionnaire": 1}),
            lambda: anonymous.military.reinforce(1, 2, {"legionnaire": 1}))
    # bad arguments are bad whoever asks; the client checks them before any request
    refuses(raw, tr.InvalidRequest, lambda: anonymous.military.train(1, {"legionnaire": 0}))

"""Villages: the contract on prefer="sql" and prefer="http" (sqlite and postgresql).

The developed 6-player world: player N owns village N (capital), tribes cycle romans,
teutons, gauls; 4000 of each resource, main building 5, build queue limit 2; acting as 1.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

import travian_repo as tr
from travian_repo.domain.values import Resources
from travian_repo.rules import buildings as rules
from travian_repo.sandbox import Clock
from travian_repo.sql import schema

from tests.conftest import START
from tests.contract.conftest import AsPlayer, execute, refuses

FULL = Resources(4000, 4000, 4000, 4000)
BAD_IDS: tuple[Any, ...] = (0, -1, 2**70, "1", 1.0, True, None, [1], float("nan"))
RADIUS = 200


def mb_time(name: str, level: int) -> timedelta:
    return timedelta(seconds=rules.build_time(name, level, main_building_level=5, server_speed=1))


def stock(world: tr.World, village_id: int = 1) -> Resources:
    resources = world.villages.get(village_id).resources
    assert resources is not None
    return resources


def set_stock(raw: sa.Engine, village_id: int, amount: int) -> None:
    r = schema.village_resources
    execute(raw, r.update().where(r.c.village_id == village_id).values(
        wood=amount, clay=amount, iron=amount, wheat=amount, updated_at=START))


def set_level(raw: sa.Engine, village_id: int, slot: int, level: int) -> None:
    b = schema.village_buildings
    execute(raw, b.update().where((b.c.village_id == village_id) & (b.c.slot == slot))
            .values(level=level))


def add_village(raw: sa.Engine, player_id: int, village_id: int, x: int, y: int) -> None:
    """A copy of village 1's resources and buildings for ``player_id``, not a capital."""
    v, r, b = schema.villages, schema.village_resources, schema.village_buildings
    with raw.begin() as conn:
        res = conn.execute(sa.select(r).where(r.c.village_id == 1)).mappings().one()
        blds = conn.execute(sa.select(b).where(b.c.village_id == 1)).mappings().all()
        conn.execute(v.insert().values(id=village_id, name=f"extra {village_id}",
                                       player_id=player_id, x=x, y=y, population=50,
                                       is_capital=False, created_at=START))
        conn.execute(r.insert().values({**res, "village_id": village_id}))
        conn.execute(b.insert(), [{**row, "village_id": village_id} for row in blds])


# ---- get ---------------------------------------------------------------------------------

def test_get_own_village_is_private(world: tr.World) -> None:
    v = world.villages.get(1)
    assert (v.id, v.player_id, v.tribe, v.is_capital) == (1, 1, "romans", True)
    assert v.is_private_view and v.resources == FULL
    assert v.warehouse_capacity == 4000 and v.granary_capacity == 4000
    assert v.production is not None and all(p > 0 for p in list(v.production)[:3])
    assert v.buildings is not None and len(v.buildings) == 29
    assert v.level("main_building") == 5 and v.level("woodcutter") == 3
    assert v.build_queue == () and v.population > 0
    assert v.name


def test_get_someone_elses_village_is_the_public_face(world: tr.World, as_player: AsPlayer) -> None:
    v = world.villages.get(2)
    assert (v.id, v.player_id, v.tribe, v.is_capital) == (2, 2, "teutons", True)
    for name in tr.Village.PRIVATE_FIELDS:
        assert getattr(v, name) is None, name
    own = as_player(2).villages.get(2)
    assert own.is_private_view
    # the public face is the owner's view with the private fields blanked
    assert [getattr(own, f) for f in ("id", "name", "player_id", "x", "y", "population",
                                      "is_capital", "tribe")] == \
           [getattr(v, f) for f in ("id", "name", "player_id", "x", "y", "population",
                                    "is_capital", "tribe")]


def test_get_missing_and_bad_ids(world: tr.World, raw: sa.Engine) -> None:
    villages: Any = world.villages
    refuses(raw, tr.NotFound, lambda: villages.get(7), lambda: villages.get(999),
            lambda: villages.get(2**62))
    refuses(raw, tr.InvalidRequest, *[(lambda b=b: villages.get(b)) for b in BAD_IDS])


def test_acting_as_nobody_reads_public_faces_only(
    request: pytest.FixtureRequest, prefer: str, world: tr.World, as_player: AsPlayer,
    raw: sa.Engine,
) -> None:
    anonymous = as_player(None)
    refuses(raw, tr.Unauthorized,
            lambda: anonymous.villages.build_queue(1),
            lambda: anonymous.villages.queue_building(1, "main_building"),
            lambda: anonymous.villages.cancel_building(1, 1))
    public = anonymous.villages.get(1)
    assert public.resources is None and public.player_id == 1
    assert anonymous.villages.list_by_player(1) == [public]


def test_get_many_in_the_order_asked_each_as_get(world: tr.World) -> None:
    got = world.villages.get_many([2, 1, 2, 5])
    assert got == [world.villages.get(i) for i in (2, 1, 2, 5)]
    assert [v.is_private_view for v in got] == [False, True, False, False]
    assert world.villages.get_many((1,)) == [world.villages.get(1)]


def test_get_many_missing_and_bad_ids(world: tr.World, raw: sa.Engine) -> None:
    villages: Any = world.villages
    refuses(raw, tr.NotFound, lambda: villages.get_many([1, 7]), lambda: villages.get_many([999]))
    refuses(raw, tr.InvalidRequest, lambda: villages.get_many([]),
            lambda: villages.get_many(list(range(1, 1002))), lambda: villages.get_many(1),
            lambda: villages.get_many({1, 2}), lambda: villages.get_many("1,x"),
            *[(lambda b=b: villages.get_many([1, b])) for b in BAD_IDS])


# ---- list_by_player and at -----------------------------------------------------------------

def test_list_by_player_capital_first_private_for_the_owner(world: tr.World, raw: sa.Engine) -> None:
    add_village(raw, 1, 100, 150, -90)
    add_village(raw, 3, 101, 151, -90)
    own = world.villages.list_by_player(1)
    assert [v.id for v in own] == [1, 100] and own[0].is_capital
    assert all(v.is_private_view for v in own)
    assert own[0] == world.villages.get(1) and own[1] == world.villages.get(100)
    other = world.villages.list_by_player(3)
    assert [v.id for v in other] == [3, 101]
    assert all(not v.is_private_view for v in other)
    assert other == [world.villages.get(3), world.villages.get(101)]


def test_list_by_player_errors(world: tr.World, raw: sa.Engine) -> None:
    villages: Any = world.villages
    refuses(raw, tr.NotFound, lambda: villages.list_by_player(999))
    refuses(raw, tr.InvalidRequest, *[(lambda b=b: villages.list_by_player(b)) for b in BAD_IDS])


def test_at_finds_the_village_or_none(world: tr.World) -> None:
    own, other = world.villages.get(1), world.villages.get(2)
    assert world.villages.at(own.x, own.y) == own
    assert world.villages.at(other.x, other.y) == other
    taken = {(world.villages.get(i).x, world.villages.get(i).y) for i in range(1, 7)}
    empty = next((x, 0) for x in range(-RADIUS, RADIUS) if (x, 0) not in taken)
    assert world.villages.at(*empty) is None
    assert world.villages.at(RADIUS, -RADIUS) is None


def test_at_off_the_map_or_not_a_number(world: tr.World, raw: sa.Engine) -> None:
    villages: Any = world.villages
    refuses(raw, tr.InvalidRequest, *[
        (lambda xy=xy: villages.at(*xy))
        for xy in [(RADIUS + 1, 0), (0, -RADIUS - 1), (2**70, 0), ("1", 0), (0, 1.5),
                   (None, 0), (True, 0)]
    ])


# ---- queue_building ------------------------------------------------------------------------

def test_queue_building_spends_the_cost_and_queues_in_order(world: tr.World, clock: Clock) -> None:
    first = world.villages.queue_building(1, "main_building")
    cost = rules.building_cost("main_building", 6)
    assert (first.village_id, first.position, first.slot, first.building, first.target_level) \
        == (1, 1, 26, "main_building", 6)
    assert first.cost == cost and stock(world) == FULL - cost
    assert first.started_at == START and first.completes_at == START + mb_time("main_building", 6)
    clock.advance(60)
    second = world.villages.queue_building(1, "Woodcutter")
    assert (second.position, second.building, second.target_level) == (2, "woodcutter", 4)
    assert second.started_at == first.completes_at
    assert second.completes_at == first.completes_at + mb_time("woodcutter", 4)
    assert world.villages.build_queue(1) == [first, second]
    assert world.villages.get(1).build_queue == (first, second)


def test_queue_building_with_a_slot(world: tr.World, raw: sa.Engine) -> None:
    set_level(raw, 1, 28, 9)  # cranny, max 10
    order = world.villages.queue_building(1, "cranny", slot=28)
    assert (order.slot, order.target_level) == (28, 10)
    (top,) = refuses(raw, tr.RuleViolation,
                     lambda: world.villages.queue_building(1, "cranny", slot=28))
    assert "highest level" in str(top)


def test_queue_building_bad_arguments(world: tr.World, raw: sa.Engine) -> None:
    villages: Any = world.villages
    names = ["castle", "", " ", "x" * 41, "main_building; DROP TABLE villages; --", 26, None,
             b"main_building", "main\x00building"]
    refuses(raw, tr.InvalidRequest,
            *[(lambda n=n: villages.queue_building(1, n)) for n in names],
            *[(lambda s=s: villages.queue_building(1, "cranny", slot=s))
              for s in (0, 41, -1, "28", 1.5, True)],
            *[(lambda i=i: villages.queue_building(1, "cranny", instant=i))
              for i in ("yes", 1, None)],
            *[(lambda b=b: villages.queue_building(b, "cranny")) for b in BAD_IDS])


def test_queue_building_rules(world: tr.World, raw: sa.Engine) -> None:
    villages = world.villages
    errors = refuses(raw, tr.RuleViolation,
                     *[(lambda n=n: villages.queue_building(1, n))
                       for n in ("workshop", "town_hall", "sawmill", "trade_office",
                                 "great_warehouse", "wonder_of_the_world")])
    assert all("needs" in str(e) for e in errors[:4]), [str(e) for e in errors]
    set_level(raw, 1, 26, 20)
    (top,) = refuses(raw, tr.RuleViolation, lambda: villages.queue_building(1, "main_building"))
    assert "highest level" in str(top)


def test_another_tribes_building(world: tr.World, raw: sa.Engine) -> None:
    villages = world.villages
    refuses(raw, tr.RuleViolation,
            *[(lambda n=n: villages.queue_building(1, n))
              for n in ("earth_wall", "palisade", "brewery")])


def test_a_full_queue_is_a_rule_violation(world: tr.World, raw: sa.Engine) -> None:
    world.villages.queue_building(1, "main_building")
    world.villages.queue_building(1, "woodcutter")
    (full,) = refuses(raw, tr.RuleViolation, lambda: world.villages.queue_building(1, "clay_pit"))
    assert "full" in str(full)


def test_queue_building_insufficient_resources(world: tr.World, raw: sa.Engine) -> None:
    set_stock(raw, 1, 100)
    (poor,) = refuses(raw, tr.InsufficientResources,
                      lambda: world.villages.queue_building(1, "main_building"))
    assert poor.required == rules.building_cost("main_building", 6)
    assert poor.available == Resources(100, 100, 100, 100)
    assert poor.details["required"] == rules.building_cost("main_building", 6).as_dict()


def test_queue_building_in_someone_elses_village(world: tr.World, raw: sa.Engine) -> None:
    refuses(raw, tr.Forbidden, lambda: world.villages.queue_building(2, "main_building"))
    refuses(raw, tr.NotFound, lambda: world.villages.queue_building(999, "main_building"))


def test_instant_builds_and_slots_follow_the_rules(world: tr.World, raw: sa.Engine) -> None:
    villages = world.villages
    off, embassy, second = refuses(
        raw, tr.RuleViolation,
        lambda: villages.queue_building(1, "main_building", instant=True),
        lambda: villages.queue_building(1, "cranny", slot=27),
        lambda: villages.queue_building(1, "warehouse", slot=33),
    )
    assert "instant builds are turned off" in str(off)
    assert "embassy" in str(embassy) and "level 20" in str(second)
    (field,) = refuses(raw, tr.InvalidRequest, lambda: villages.queue_building(1, "cranny", slot=5))
    assert "slot 5" in str(field)


# ---- build_queue -------------------------------------------------------------------------

def test_build_queue_owner_only(world: tr.World, as_player: AsPlayer, raw: sa.Engine) -> None:
    assert world.villages.build_queue(1) == []
    mine = as_player(2).villages.queue_building(2, "main_building")
    assert as_player(2).villages.build_queue(2) == [mine]
    villages: Any = world.villages
    refuses(raw, tr.Forbidden, lambda: villages.build_queue(2))
    refuses(raw, tr.NotFound, lambda: villages.build_queue(999))
    refuses(raw, tr.InvalidRequest, *[(lambda b=b: villages.build_queue(b)) for b in BAD_IDS])


# ---- cancel_building -----------------------------------------------------------------------

def test_cancel_refunds_and_closes_up_the_queue(world: tr.World, clock: Clock) -> None:
    first = world.villages.queue_building(1, "main_building")
    second = world.villages.queue_building(1, "woodcutter")
    clock.advance(100)
    before = stock(world)
    assert world.villages.cancel_building(1, 1) == first
    assert stock(world) == before + first.cost
    (remaining,) = world.villages.build_queue(1)
    assert (remaining.id, remaining.position) == (second.id, 1)
    assert remaining.started_at == START + timedelta(seconds=100)
    assert remaining.completes_at == remaining.started_at + mb_time("woodcutter", 4)
    assert world.villages.cancel_building(1, 1) == remaining
    assert world.villages.build_queue(1) == [] and stock(world) == FULL


def test_cancel_takes_later_levels_of_the_same_slot(world: tr.World) -> None:
    world.villages.queue_building(1, "main_building")
    world.villages.queue_building(1, "main_building")
    world.villages.cancel_building(1, 1)
    assert world.villages.build_queue(1) == [] and stock(world) == FULL


def test_cancel_errors(world: tr.World, as_player: AsPlayer, raw: sa.Engine) -> None:
    world.villages.queue_building(1, "main_building")
    as_player(2).villages.queue_building(2, "main_building")
    villages: Any = world.villages
    refuses(raw, tr.NotFound, lambda: villages.cancel_building(1, 2),
            lambda: villages.cancel_building(999, 1))
    refuses(raw, tr.Forbidden, lambda: villages.cancel_building(2, 1))
    refuses(raw, tr.InvalidRequest,
            *[(lambda b=b: villages.cancel_building(1, b))
              for b in (0, -1, 2**70, "1", 1.0, True, None)],
            *[(lambda b=b: villages.cancel_building(b, 1)) for b in BAD_IDS])


def test_the_world_is_served_as_asked(prefer: str, world: tr.World) -> None:
    """The fixture's promise: prefer="http" really goes over the wire."""
    assert world.prefer == prefer and world.player_id == 1
    world.villages.get(1)
    requests = world.metrics["total_requests"]
    if prefer == "http":
        assert requests >= 2  # session.me at connect, then the read
        with pytest.raises(tr.ConfigurationError):
            world.database  # noqa: B018 - no database behind an HTTP world
    else:
        assert world.database is not None

"""Villages on both SQL backends: reads, visibility, builds, queue, cancel, round trips."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Iterator

import pytest
import sqlalchemy as sa

import travian_repo as tr
from travian_repo.domain.values import Resources
from travian_repo.rules import buildings as rules
from travian_repo.sandbox import Clock
from travian_repo.sql import schema

from tests.conftest import START

RADIUS = 200  # create_world's default map radius


# ---- helpers ----------------------------------------------------------------------------

def stock(world: tr.World, village_id: int = 1) -> Resources:
    resources = world.villages.get(village_id).resources
    assert resources is not None
    return resources


def set_stock(world: tr.World, village_id: int, amount: float, wheat: float | None = None) -> None:
    r = schema.village_resources
    with world.database.engine.begin() as conn:
        conn.execute(
            r.update().where(r.c.village_id == village_id).values(
                wood=amount, clay=amount, iron=amount,
                wheat=amount if wheat is None else wheat, updated_at=START,
            )
        )


def set_level(world: tr.World, village_id: int, slot: int, level: int) -> None:
    b = schema.village_buildings
    with world.database.engine.begin() as conn:
        conn.execute(
            b.update().where((b.c.village_id == village_id) & (b.c.slot == slot)).values(level=level)
        )


def table_rows(world: tr.World, table: sa.Table) -> list[Any]:
    with world.database.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(table).order_by(*table.primary_key.columns))]


def queue_rows(world: tr.World) -> list[Any]:
    return table_rows(world, schema.build_queue)


def mb_time(name: str, level: int, mb: int = 5) -> timedelta:
    return timedelta(seconds=rules.build_time(name, level, main_building_level=mb, server_speed=1))


# ---- get ---------------------------------------------------------------------------------

def test_get_own_village_has_the_private_state(world: tr.World) -> None:
    v = world.villages.get(1)
    assert (v.id, v.player_id, v.tribe, v.is_capital) == (1, 1, "romans", True)
    assert v.is_private_view
    assert v.resources == Resources(4000, 4000, 4000, 4000)
    # net wheat is crop minus population and troop upkeep: it may be negative
    assert v.production is not None and all(p > 0 for p in list(v.production)[:3])
    assert v.warehouse_capacity == 4000 and v.granary_capacity == 4000
    assert v.buildings is not None and len(v.buildings) == 18 + 11
    assert v.level("main_building") == 5 and v.level("woodcutter") == 3
    assert [b.slot for b in v.buildings] == sorted(b.slot for b in v.buildings)
    assert v.build_queue == ()
    assert v.population > 0


def test_get_someone_elses_village_is_the_public_face(world: tr.World) -> None:
    v = world.villages.get(2)
    assert (v.id, v.player_id, v.tribe) == (2, 2, "teutons")
    assert v.name and v.population > 0
    for name in tr.Village.PRIVATE_FIELDS:
        assert getattr(v, name) is None, name
    assert not v.is_private_view


def test_get_as_the_owner_of_that_village_is_private(world: tr.World) -> None:
    with world.unit_of_work(player_id=2) as uow:
        assert uow.villages.get(2).resources is not None
        assert uow.villages.get(1).resources is None


def test_get_acting_as_nobody_is_the_public_face(world: tr.World, database_url: str, clock: Clock) -> None:
    with tr.connect(database_url, clock=clock) as anonymous:
        v = anonymous.villages.get(1)
    assert v.resources is None and v.buildings is None and v.player_id == 1


def test_get_a_missing_village_is_not_found(world: tr.World) -> None:
    for missing in (7, 999, 2**62):
        with pytest.raises(tr.NotFound):
            world.villages.get(missing)


BAD_IDS: list[Any] = [0, -1, 2**70, "1", 1.0, True, None, [1], float("nan")]


def test_get_with_a_bad_id_is_invalid_request(world: tr.World) -> None:
    for bad in BAD_IDS:
        with pytest.raises(tr.InvalidRequest):
            world.villages.get(bad)


# ---- the stock settles with the clock -----------------------------------------------------

def test_stock_grows_by_production_with_the_clock(world: tr.World, clock: Clock) -> None:
    set_stock(world, 1, 1000)
    v = world.villages.get(1)
    assert v.resources == Resources(1000, 1000, 1000, 1000) and v.production is not None
    clock.advance(3600)
    assert stock(world) == Resources(1000, 1000, 1000, 1000) + v.production
    clock.advance(1800)  # half an hour more: whole units, rounded down
    half = Resources(*(int(1000 + p * 1.5) for p in v.production))
    assert stock(world) == half


def test_stock_never_goes_above_storage(world: tr.World, clock: Clock) -> None:
    set_stock(world, 1, 3990, wheat=3000)
    v = world.villages.get(1)
    assert v.production is not None and v.production.wood > 10
    clock.advance(3600)
    after = stock(world)
    assert after.wood == after.clay == after.iron == v.warehouse_capacity == 4000
    assert after.wheat == min(3000 + v.production.wheat, v.granary_capacity or 0)
    clock.advance(3600 * 1000)
    wheat = 0 if v.production.wheat < 0 else 4000  # net wheat may be negative: never below 0
    assert stock(world) == Resources(4000, 4000, 4000, wheat)


def test_stock_above_storage_is_cut_to_storage(world: tr.World) -> None:
    set_stock(world, 1, 99999)
    assert stock(world) == Resources(4000, 4000, 4000, 4000)


# ---- list_by_player and at -----------------------------------------------------------------

def insert_villages(world: tr.World, player_id: int, count: int, *, first_id: int = 100) -> list[int]:
    """Copies of village 1 (resources, buildings) for ``player_id``, not capitals."""
    v, r, b = schema.villages, schema.village_resources, schema.village_buildings
    ids = list(range(first_id, first_id + count))
    with world.database.engine.begin() as conn:
        res = conn.execute(sa.select(r).where(r.c.village_id == 1)).mappings().one()
        blds = conn.execute(sa.select(b).where(b.c.village_id == 1)).mappings().all()
        conn.execute(v.insert(), [
            dict(id=i, name=f"extra {i}", player_id=player_id, x=150, y=i - 190,
                 population=10 + i, is_capital=False, created_at=START)
            for i in ids
        ])
        conn.execute(r.insert(), [{**res, "village_id": i} for i in ids])
        conn.execute(b.insert(), [{**row, "village_id": i} for i in ids for row in blds])
    return ids


def test_list_by_player_own_is_private_capital_first(world: tr.World) -> None:
    extra = insert_villages(world, 1, 3)
    villages = world.villages.list_by_player(1)
    assert [v.id for v in villages][0] == 1 and villages[0].is_capital
    assert sorted(v.id for v in villages) == sorted([1, *extra])
    assert all(v.player_id == 1 and v.is_private_view for v in villages)
    assert villages[0] == world.villages.get(1)


def test_list_by_player_other_is_public(world: tr.World) -> None:
    extra = insert_villages(world, 3, 2)
    villages = world.villages.list_by_player(3)
    assert villages[0].id == 3 and villages[0].is_capital
    assert sorted(v.id for v in villages) == sorted([3, *extra])
    assert all(not v.is_private_view and v.buildings is None for v in villages)


def test_list_by_player_every_player_has_a_village(world: tr.World) -> None:
    for player_id in range(1, 7):
        villages = world.villages.list_by_player(player_id)
        assert [v.id for v in villages] == [player_id]


def test_list_by_player_missing_player_is_not_found(world: tr.World) -> None:
    with pytest.raises(tr.NotFound):
        world.villages.list_by_player(999)
    with pytest.raises(tr.InvalidRequest):
        world.villages.list_by_player(0)


def test_at_finds_the_village_on_its_square(world: tr.World) -> None:
    own, other = world.villages.get(1), world.villages.get(2)
    found = world.villages.at(own.x, own.y)
    assert found == own and found is not None and found.is_private_view
    assert world.villages.at(other.x, other.y) == other


def test_at_an_empty_square_is_none(world: tr.World) -> None:
    taken = {(world.villages.get(i).x, world.villages.get(i).y) for i in range(1, 7)}
    empty = next((x, 0) for x in range(-RADIUS, RADIUS) if (x, 0) not in taken)
    assert world.villages.at(*empty) is None
    assert world.villages.at(RADIUS, -RADIUS) is None


def test_at_off_the_map_or_not_a_number_is_invalid_request(world: tr.World) -> None:
    for xy in [(RADIUS + 1, 0), (0, -RADIUS - 1), (2**70, 0), ("1", 0), (0, 1.5), (None, 0), (True, 0)]:
        with pytest.raises(tr.InvalidRequest):
            world.villages.at(*xy)


# ---- round trips --------------------------------------------------------------------------

@pytest.fixture
def statements(world: tr.World) -> Iterator[list[str]]:
    executed: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        executed.append(statement)

    world.villages.get(1)  # warm the pool and the settings
    world.database.settings  # noqa: B018
    sa.event.listen(world.database.engine, "before_cursor_execute", count)
    yield executed
    sa.event.remove(world.database.engine, "before_cursor_execute", count)


def test_get_is_one_round_trip(world: tr.World, statements: list[str]) -> None:
    world.villages.get(1)
    assert len(statements) == 1, statements
    statements.clear()
    world.villages.get(2)
    assert len(statements) == 1, statements


def test_list_by_player_round_trips_do_not_grow_with_villages(
    world: tr.World, statements: list[str]
) -> None:
    def trips(player_id: int) -> int:
        statements.clear()
        world.villages.list_by_player(player_id)
        return len(statements)

    one_own, one_other = trips(1), trips(4)
    assert one_own <= 2 and one_other <= 2
    insert_villages(world, 1, 25, first_id=100)
    insert_villages(world, 4, 40, first_id=200)
    assert len(world.villages.list_by_player(1)) == 26
    assert trips(1) == one_own
    assert trips(4) == one_other


# ---- queue_building ------------------------------------------------------------------------

def test_queue_building_spends_exactly_the_rules_cost(world: tr.World) -> None:
    before = stock(world)
    order = world.villages.queue_building(1, "main_building")
    expected_cost = rules.building_cost("main_building", 6)
    assert order.cost == expected_cost
    assert stock(world) == before - expected_cost
    assert (order.village_id, order.position, order.slot, order.building, order.target_level) == (
        1, 1, 26, "main_building", 6
    )


def test_queue_building_times_follow_the_rules_and_the_queue(world: tr.World, clock: Clock) -> None:
    first = world.villages.queue_building(1, "main_building")
    assert first.started_at == START
    assert first.completes_at == START + mb_time("main_building", 6)
    clock.advance(60)
    second = world.villages.queue_building(1, "woodcutter")
    assert second.position == 2
    assert second.started_at == first.completes_at  # starts when the first completes
    assert second.completes_at == first.completes_at + mb_time("woodcutter", 4)
    assert second.building == "woodcutter" and second.target_level == 4
    assert world.villages.build_queue(1) == [first, second]
    assert world.villages.get(1).build_queue == (first, second)


def test_queue_building_twice_on_one_slot_plans_the_next_level(world: tr.World) -> None:
    a = world.villages.queue_building(1, "main_building")
    b = world.villages.queue_building(1, "main_building")
    assert (a.target_level, b.target_level) == (6, 7)
    assert b.cost == rules.building_cost("main_building", 7)
    assert b.slot == a.slot == 26


def test_queue_building_picks_the_lowest_field_of_the_kind(world: tr.World) -> None:
    set_level(world, 1, 1, 5)  # slot 1 is a woodcutter
    order = world.villages.queue_building(1, "woodcutter")
    assert order.slot in (3, 14, 17) and order.slot == 3 and order.target_level == 4


def test_queue_building_accepts_names_in_other_spellings(world: tr.World) -> None:
    order = world.villages.queue_building(1, "Main Building")
    assert order.building == "main_building"


def test_a_full_queue_is_a_rule_violation_and_writes_nothing(world: tr.World) -> None:
    world.villages.queue_building(1, "main_building")
    world.villages.queue_building(1, "woodcutter")
    before, rows = stock(world), queue_rows(world)
    with pytest.raises(tr.RuleViolation, match="full"):
        world.villages.queue_building(1, "clay_pit")
    assert stock(world) == before and queue_rows(world) == rows


def test_an_unknown_building_is_invalid_request(world: tr.World) -> None:
    before = stock(world)
    for name in ["castle", "", " ", "x" * 41, "main_building; DROP TABLE villages; --", 26, None,
                 b"main_building", "main\x00building"]:
        with pytest.raises(tr.InvalidRequest):
            world.villages.queue_building(1, name)  # type: ignore[arg-type]
    assert stock(world) == before and queue_rows(world) == []


def test_another_tribes_building_is_refused(world: tr.World) -> None:
    before = stock(world)
    for name in ["earth_wall", "palisade", "brewery", "stone_wall", "makeshift_wall"]:
        with pytest.raises((tr.RuleViolation, tr.InvalidRequest)):
            world.villages.queue_building(1, name)  # player 1 is roman
    assert stock(world) == before and queue_rows(world) == []


def test_own_wall_is_built_in_the_wall_slot(world: tr.World) -> None:
    order = world.villages.queue_building(1, "city_wall")
    assert (order.slot, order.target_level) == (40, 1)


def test_missing_prerequisites_are_a_rule_violation(world: tr.World) -> None:
    before = stock(world)
    for name in ["workshop", "town_hall", "sawmill", "trade_office", "tournament_square"]:
        with pytest.raises(tr.RuleViolation, match="needs"):
            world.villages.queue_building(1, name)
    assert stock(world) == before and queue_rows(world) == []


def test_special_buildings_are_a_rule_violation(world: tr.World) -> None:
    for name in ["great_warehouse", "wonder_of_the_world"]:
        with pytest.raises(tr.RuleViolation):
            world.villages.queue_building(1, name)
    assert queue_rows(world) == []


def test_max_level_is_a_rule_violation(world: tr.World) -> None:
    set_level(world, 1, 26, 20)
    before = stock(world)
    with pytest.raises(tr.RuleViolation, match="highest level"):
        world.villages.queue_building(1, "main_building")
    assert stock(world) == before and queue_rows(world) == []


def test_a_queued_level_counts_toward_max_level(world: tr.World) -> None:
    set_level(world, 1, 28, 9)  # cranny, max 10
    assert world.villages.queue_building(1, "cranny", slot=28).target_level == 10
    with pytest.raises(tr.RuleViolation, match="highest level"):
        world.villages.queue_building(1, "cranny", slot=28)
    assert len(queue_rows(world)) == 1


def test_a_building_at_max_in_an_explicit_slot_is_a_rule_violation(world: tr.World) -> None:
    set_level(world, 1, 28, 10)  # cranny, max 10
    with pytest.raises(tr.RuleViolation):
        world.villages.queue_building(1, "cranny", slot=28)
    # without a slot a full cranny lets a second one go up in a free slot
    order = world.villages.queue_building(1, "cranny")
    assert order.slot not in (28,) and 19 <= order.slot <= 38 and order.target_level == 1


def test_a_slot_the_building_cannot_stand_in_is_invalid_request(world: tr.World) -> None:
    for name, slot in [("woodcutter", 20), ("main_building", 1), ("barracks", 39),
                       ("rally_point", 30), ("city_wall", 25), ("warehouse", 40)]:
        with pytest.raises(tr.InvalidRequest):
            world.villages.queue_building(1, name, slot=slot)
    assert queue_rows(world) == []


def test_a_slot_out_of_range_or_not_an_int_is_invalid_request(world: tr.World) -> None:
    for slot in [0, -1, 41, 2**70, "26", 26.0, True]:
        with pytest.raises(tr.InvalidRequest):
            world.villages.queue_building(1, "main_building", slot=slot)  # type: ignore[arg-type]
    assert queue_rows(world) == []


def test_slot_rules(world: tr.World) -> None:
    with pytest.raises(tr.RuleViolation, match="holds"):
        world.villages.queue_building(1, "barracks", slot=19)  # the warehouse's slot
    with pytest.raises(tr.RuleViolation, match="already"):
        world.villages.queue_building(1, "barracks", slot=29)  # a second barracks
    with pytest.raises(tr.RuleViolation, match="level 20"):
        world.villages.queue_building(1, "warehouse", slot=29)  # a second warehouse too soon
    with pytest.raises(tr.RuleViolation, match="holds"):
        world.villages.queue_building(1, "clay_pit", slot=1)  # a woodcutter's field
    assert queue_rows(world) == []
    order = world.villages.queue_building(1, "barracks", slot=21)
    assert (order.slot, order.target_level) == (21, 4)
    order = world.villages.queue_building(1, "woodcutter", slot=17)
    assert (order.slot, order.target_level) == (17, 4)


def test_a_second_warehouse_once_the_first_is_full_grown(world: tr.World) -> None:
    set_level(world, 1, 19, 20)
    order = world.villages.queue_building(1, "warehouse", slot=29)
    assert (order.slot, order.target_level) == (29, 1)


def test_a_queued_building_holds_its_slot(world: tr.World) -> None:
    world.villages.queue_building(1, "residence", slot=29)
    with pytest.raises(tr.RuleViolation):
        world.villages.queue_building(1, "treasury", slot=29)


def test_residence_and_palace_exclude_each_other(world: tr.World) -> None:
    world.villages.queue_building(1, "residence")  # queued only: it still excludes a palace
    before = stock(world)
    with pytest.raises(tr.RuleViolation):
        world.villages.queue_building(1, "palace")
    assert stock(world) == before and len(queue_rows(world)) == 1


def test_no_free_slot_is_a_rule_violation(world: tr.World) -> None:
    b = schema.village_buildings
    with world.database.engine.begin() as conn:
        conn.execute(b.insert(), [dict(village_id=1, slot=s, building_name="cranny", level=10)
                                  for s in range(29, 39)])
    with pytest.raises(tr.RuleViolation, match="free"):
        world.villages.queue_building(1, "residence")


def test_someone_elses_village_is_forbidden_and_writes_nothing(world: tr.World) -> None:
    with world.unit_of_work(player_id=2) as uow:
        before = uow.villages.get(2).resources
    with pytest.raises(tr.Forbidden):
        world.villages.queue_building(2, "main_building")
    with world.unit_of_work(player_id=2) as uow:
        assert uow.villages.get(2).resources == before
    assert queue_rows(world) == []


def test_a_missing_village_is_not_found(world: tr.World) -> None:
    with pytest.raises(tr.NotFound):
        world.villages.queue_building(999, "main_building")
    with pytest.raises(tr.NotFound):
        world.villages.cancel_building(999, 1)
    assert queue_rows(world) == []


def test_not_enough_resources_carries_required_and_available(make_world: Any, database_url: str, clock: Clock) -> None:
    make_world(start="standard")
    with tr.connect(database_url, player_id=1, clock=clock) as world:
        have = stock(world)
        assert have == Resources(750, 750, 750, 750)
        set_level(world, 1, 26, 10)  # main building 10: warehouse prerequisites are met
        need = rules.building_cost("main_building", 11)
        assert not have.covers(need)
        with pytest.raises(tr.InsufficientResources) as info:
            world.villages.queue_building(1, "main_building")
        assert info.value.required == need
        assert info.value.available == have
        assert isinstance(info.value, tr.RuleViolation)
        assert stock(world) == have and queue_rows(world) == []


def test_exactly_enough_resources_is_enough(world: tr.World) -> None:
    cost = rules.building_cost("main_building", 6)
    r = schema.village_resources
    with world.database.engine.begin() as conn:
        conn.execute(r.update().where(r.c.village_id == 1).values(
            wood=cost.wood, clay=cost.clay, iron=cost.iron, wheat=cost.wheat, updated_at=START))
    world.villages.queue_building(1, "main_building")
    assert stock(world) == Resources()


def test_one_short_is_insufficient(world: tr.World) -> None:
    cost = rules.building_cost("main_building", 6)
    r = schema.village_resources
    with world.database.engine.begin() as conn:
        conn.execute(r.update().where(r.c.village_id == 1).values(
            wood=cost.wood, clay=cost.clay, iron=cost.iron - 0.5, wheat=cost.wheat, updated_at=START))
    with pytest.raises(tr.InsufficientResources) as info:
        world.villages.queue_building(1, "main_building")
    assert info.value.available == Resources(cost.wood, cost.clay, cost.iron - 1, cost.wheat)


def test_instant_is_refused_when_the_world_does_not_allow_it(world: tr.World) -> None:
    before = stock(world)
    with pytest.raises(tr.RuleViolation, match="instant"):
        world.villages.queue_building(1, "main_building", instant=True)
    assert stock(world) == before and world.villages.get(1).level("main_building") == 5


def test_instant_must_be_a_bool(world: tr.World) -> None:
    for bad in [1, "yes", None]:
        with pytest.raises(tr.InvalidRequest):
            world.villages.queue_building(1, "main_building", instant=bad)


def test_instant_builds_apply_at_once(make_world: Any, database_url: str, clock: Clock) -> None:
    make_world(instant_builds=True)
    with tr.connect(database_url, player_id=1, clock=clock) as world:
        before = world.villages.get(1)
        assert before.production is not None and before.resources is not None
        order = world.villages.queue_building(1, "woodcutter", instant=True)
        assert order.completes_at == START and order.target_level == 4
        after = world.villages.get(1)
        assert after.resources == before.resources - rules.building_cost("woodcutter", 4)
        assert next(b.level for b in after.buildings or () if b.slot == order.slot) == 4
        assert after.build_queue == ()
        assert after.population == before.population + rules.population_added("woodcutter", 4)
        assert after.production is not None and after.production.wood > before.production.wood
        assert (after.production.clay, after.production.iron) == (
            before.production.clay, before.production.iron)
        # a bigger warehouse at once
        world.villages.queue_building(1, "warehouse", instant=True)
        assert (world.villages.get(1).warehouse_capacity or 0) > (before.warehouse_capacity or 0)
        with world.database.engine.connect() as conn:
            pop = conn.execute(sa.select(schema.players.c.population).where(schema.players.c.id == 1)).scalar()
        assert pop == world.villages.get(1).population


# ---- build_queue ---------------------------------------------------------------------------

def test_build_queue_is_for_the_owner_only(world: tr.World, database_url: str, clock: Clock) -> None:
    assert world.villages.build_queue(1) == []
    with pytest.raises(tr.Forbidden):
        world.villages.build_queue(2)
    with tr.connect(database_url, clock=clock) as anonymous:
        with pytest.raises(tr.Forbidden):
            anonymous.villages.build_queue(1)
    with pytest.raises(tr.NotFound):
        world.villages.build_queue(999)


# ---- cancel_building -----------------------------------------------------------------------

def test_cancel_refunds_in_full(world: tr.World) -> None:
    before = stock(world)
    order = world.villages.queue_building(1, "main_building")
    cancelled = world.villages.cancel_building(1, 1)
    assert cancelled == order
    assert stock(world) == before
    assert world.villages.build_queue(1) == [] and queue_rows(world) == []


def test_cancel_refund_is_capped_by_storage(world: tr.World, clock: Clock) -> None:
    order = world.villages.queue_building(1, "main_building")
    set_stock(world, 1, 3990)  # the warehouse refilled meanwhile
    world.villages.cancel_building(1, 1)
    assert order.cost.wood > 10
    assert stock(world) == Resources(4000, 4000, 4000, 4000)
    r = schema.village_resources
    with world.database.engine.connect() as conn:
        row = conn.execute(sa.select(r).where(r.c.village_id == 1)).mappings().one()
    assert max(row["wood"], row["clay"], row["iron"]) <= row["warehouse_capacity"]
    assert row["wheat"] <= row["granary_capacity"]


def test_cancel_takes_later_levels_of_the_same_slot_and_refunds_them(world: tr.World) -> None:
    before = stock(world)
    world.villages.queue_building(1, "main_building")
    world.villages.queue_building(1, "main_building")
    world.villages.cancel_building(1, 1)
    assert world.villages.build_queue(1) == []
    assert stock(world) == before


def test_cancel_closes_up_the_queue(world: tr.World, clock: Clock) -> None:
    first = world.villages.queue_building(1, "main_building")
    second = world.villages.queue_building(1, "woodcutter")
    clock.advance(100)
    before = stock(world)
    world.villages.cancel_building(1, 1)
    assert stock(world) == before + first.cost
    (remaining,) = world.villages.build_queue(1)
    assert remaining.id == second.id and remaining.position == 1
    assert remaining.started_at == START + timedelta(seconds=100)
    assert remaining.completes_at == remaining.started_at + mb_time("woodcutter", 4)
    # the next order queues after it, at position 2
    nxt = world.villages.queue_building(1, "clay_pit")
    assert nxt.position == 2 and nxt.started_at == remaining.completes_at


def test_cancel_the_last_order_keeps_the_first(world: tr.World) -> None:
    first = world.villages.queue_building(1, "main_building")
    world.villages.queue_building(1, "woodcutter")
    world.villages.cancel_building(1, 2)
    assert world.villages.build_queue(1) == [first]


def test_cancel_a_missing_position_is_not_found(world: tr.World) -> None:
    world.villages.queue_building(1, "main_building")
    before = stock(world)
    with pytest.raises(tr.NotFound):
        world.villages.cancel_building(1, 2)
    assert stock(world) == before and len(world.villages.build_queue(1)) == 1


def test_cancel_a_bad_position_is_invalid_request(world: tr.World) -> None:
    world.villages.queue_building(1, "main_building")
    rows = queue_rows(world)
    for bad in [0, -1, 2**70, "1", 1.0, True, None]:
        with pytest.raises(tr.InvalidRequest):
            world.villages.cancel_building(1, bad)
    for bad in BAD_IDS:
        with pytest.raises(tr.InvalidRequest):
            world.villages.cancel_building(bad, 1)
    assert queue_rows(world) == rows


def test_cancel_in_someone_elses_village_is_forbidden(world: tr.World) -> None:
    with world.unit_of_work(player_id=2) as uow:
        uow.villages.queue_building(2, "main_building")
    rows = queue_rows(world)
    with pytest.raises(tr.Forbidden):
        world.villages.cancel_building(2, 1)
    assert queue_rows(world) == rows

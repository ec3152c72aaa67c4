"""Building placement as a pure rule: worked villages in, a slot and a level (or the typed
error) out, with no database anywhere."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

import pytest

from travian_repo.domain.errors import InvalidRequest, RuleViolation
from travian_repo.domain.values import Building, BuildOrder, Resources
from travian_repo.repositories import validation as v
from travian_repo.rules import placement
from travian_repo.rules.placement import plan_build

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)

# The classic 4-4-4-6 layout of slots 1..18.
FIELDS = (
    "woodcutter", "cropland", "woodcutter", "iron_mine", "clay_pit", "clay_pit",
    "iron_mine", "cropland", "cropland", "iron_mine", "iron_mine", "cropland",
    "cropland", "woodcutter", "cropland", "clay_pit", "woodcutter", "clay_pit",
)


@dataclass
class Village:
    """The smallest thing placement reads: tribe, capital, buildings, queue."""

    tribe: str = "romans"
    is_capital: bool = False
    buildings: list[Building] = field(default_factory=list)
    queue: list[BuildOrder] = field(default_factory=list)


def village(*extra: tuple[int, str, int], field_level: int = 0, **kwargs: object) -> Village:
    """A village with the 18 fields at ``field_level`` plus ``extra`` (slot, name, level)."""
    built = [Building(slot, name, field_level) for slot, name in enumerate(FIELDS, start=1)]
    built += [Building(slot, name, level) for slot, name, level in extra]
    return Village(buildings=sorted(built, key=lambda b: b.slot), **kwargs)  # type: ignore[arg-type]


def order(position: int, slot: int, name: str, level: int) -> BuildOrder:
    return BuildOrder(position, 1, position, slot, name, level, Resources(), T0, T0)


def with_level(v: Village, slot: int, level: int) -> Village:
    v.buildings = [Building(b.slot, b.name, level) if b.slot == slot else b for b in v.buildings]
    return v


# ---- choosing a slot ---------------------------------------------------------------------------

def test_a_field_goes_to_the_lowest_field_of_its_kind_lowest_slot_on_a_tie() -> None:
    home = village()
    assert plan_build(home, "woodcutter", None, 5) == (1, 1)  # woodcutters: 1, 3, 14, 17
    with_level(home, 1, 2)
    assert plan_build(home, "woodcutter", None, 5) == (3, 1)


def test_queued_levels_count_when_choosing_a_field() -> None:
    home = village(queue=[order(1, 3, "woodcutter", 1)])
    with_level(home, 1, 1)
    # Slot 1 is built to 1, slot 3 queued to 1: the next lowest is slot 14.
    assert plan_build(home, "woodcutter", None, 5) == (14, 1)
    # Naming slot 3 builds on top of its queued order.
    assert plan_build(home, "woodcutter", 3, 5) == (3, 2)


def test_a_new_building_takes_the_first_free_building_slot() -> None:
    home = village((19, "warehouse", 1), (20, "granary", 1), (26, "main_building", 3),
                   (39, "rally_point", 1))
    assert plan_build(home, "barracks", None, 5) == (21, 1)


def test_a_standing_building_is_upgraded_where_it_stands() -> None:
    home = village((26, "main_building", 3))
    assert plan_build(home, "main_building", None, 5) == (26, 4)


def test_rally_point_and_wall_have_their_own_slots() -> None:
    home = village()
    assert plan_build(home, "rally_point", None, 5) == (placement.RALLY_POINT_SLOT, 1) == (39, 1)
    assert plan_build(home, "city_wall", None, 5) == (placement.WALL_SLOT, 1) == (40, 1)
    gauls = village(tribe="gauls")
    assert plan_build(gauls, "palisade", None, 5) == (40, 1)


def test_a_building_allowed_twice_grows_its_lowest_instance_before_taking_a_free_slot() -> None:
    home = village((19, "cranny", 10), (20, "cranny", 4), (21, "cranny", 2))
    assert plan_build(home, "cranny", None, 5) == (21, 3)
    with_level(home, 20, 10)
    with_level(home, 21, 10)
    # Every cranny at its top (10): a new one in the first free slot.
    assert plan_build(home, "cranny", None, 5) == (22, 1)


def test_no_free_slot_is_a_rule_violation() -> None:
    full = village(*((slot, "cranny", 10) for slot in placement.BUILDING_SLOTS),
                   (26, "main_building", 5))
    full.buildings = [b for b in full.buildings if not (b.slot == 26 and b.name == "cranny")]
    with pytest.raises(RuleViolation, match="no free building slot for barracks"):
        plan_build(full, "barracks", None, 5)


# ---- checking a named slot ----------------------------------------------------------------------

def test_a_building_cannot_stand_in_a_slot_of_another_kind() -> None:
    home = village((26, "main_building", 1))
    with pytest.raises(InvalidRequest, match="woodcutter cannot stand in slot 19"):
        plan_build(home, "woodcutter", 19, 5)
    with pytest.raises(InvalidRequest, match="main_building cannot stand in slot 40"):
        plan_build(home, "main_building", 40, 5)
    with pytest.raises(InvalidRequest, match="cannot stand in slot 39"):
        plan_build(home, "city_wall", 39, 5)


def test_a_taken_slot_and_a_second_unique_building_are_refused() -> None:
    home = village((19, "warehouse", 1), (26, "main_building", 3))
    with pytest.raises(RuleViolation, match="slot 19 holds warehouse, not main_building"):
        plan_build(home, "main_building", 19, 5)
    with pytest.raises(RuleViolation, match="already has a main_building"):
        plan_build(home, "main_building", 20, 5)
    # Queued counts as taken: a slot with a queued barracks holds a barracks.
    home.queue = [order(1, 21, "barracks", 1)]
    with pytest.raises(RuleViolation, match="slot 21 holds barracks"):
        plan_build(home, "granary", 21, 5)


def test_check_slot_alone() -> None:
    occupied = {1: "woodcutter", 19: "warehouse"}
    placement.check_slot("woodcutter", 1, occupied)  # its own field
    placement.check_slot("warehouse", 20, occupied)  # a second warehouse may go elsewhere
    with pytest.raises(RuleViolation, match="slot 1 holds woodcutter, not clay_pit"):
        placement.check_slot("clay_pit", 1, occupied)
    with pytest.raises(InvalidRequest):
        placement.check_slot("warehouse", 1, occupied)


# ---- the rules a building order breaks ----------------------------------------------------------

def test_a_full_queue_is_refused_before_the_slot_is_looked_at() -> None:
    home = village(queue=[order(1, 1, "woodcutter", 1), order(2, 2, "cropland", 1)])
    with pytest.raises(RuleViolation, match=r"the build queue is full \(2 orders\)"):
        plan_build(home, "woodcutter", 19, 2)  # slot 19 would be InvalidRequest
    assert plan_build(home, "woodcutter", None, 3) == (3, 1)


def test_prerequisites_are_listed() -> None:
    home = village((26, "main_building", 2))
    with pytest.raises(RuleViolation, match="barracks needs main_building level 3, rally_point level 1"):
        plan_build(home, "barracks", None, 5)
    home = village((26, "main_building", 3), (39, "rally_point", 1))
    assert plan_build(home, "barracks", None, 5) == (19, 1)


def test_queued_levels_do_not_meet_a_prerequisite() -> None:
    home = village((26, "main_building", 2), (39, "rally_point", 1),
                   queue=[order(1, 26, "main_building", 3)])
    with pytest.raises(RuleViolation, match="needs main_building level 3"):
        plan_build(home, "barracks", None, 5)


def test_excluded_buildings_cannot_stand_together() -> None:
    home = village((26, "main_building", 5), (27, "embassy", 1), (25, "residence", 1))
    with pytest.raises(RuleViolation, match="palace cannot stand in a village that has a residence"):
        plan_build(home, "palace", None, 5)
    # A queued residence excludes a palace just the same.
    queued = village((26, "main_building", 5), (27, "embassy", 1),
                     queue=[order(1, 25, "residence", 1)])
    with pytest.raises(RuleViolation, match="has a residence"):
        plan_build(queued, "palace", None, 5)


def test_tribe_capital_and_special_conditions() -> None:
    home = village(tribe="gauls")
    with pytest.raises(RuleViolation, match="city_wall cannot be built by the gauls"):
        plan_build(home, "city_wall", None, 5)
    with pytest.raises(RuleViolation, match="stonemason can only be built in a capital"):
        plan_build(village((26, "main_building", 5)), "stonemason", None, 5)
    with pytest.raises(RuleViolation, match="great_barracks cannot be built in a capital"):
        plan_build(village(is_capital=True), "great_barracks", None, 5)
    with pytest.raises(RuleViolation, match="great_warehouse is not available in this world"):
        plan_build(village((26, "main_building", 10)), "great_warehouse", None, 5)


def test_max_level_depends_on_the_capital() -> None:
    fields_at_ten = village(field_level=10)
    with pytest.raises(RuleViolation, match=r"woodcutter in slot 1 is at its highest level \(10\)"):
        plan_build(fields_at_ten, "woodcutter", 1, 5)
    capital = village(field_level=10, is_capital=True)
    assert plan_build(capital, "woodcutter", 1, 5) == (1, 11)
    # A queued order to the top counts: nothing more may be queued on that slot.
    queued = village(field_level=9, queue=[order(1, 1, "woodcutter", 10)])
    with pytest.raises(RuleViolation, match="highest level"):
        plan_build(queued, "woodcutter", 1, 5)


def test_a_second_instance_needs_the_first_at_its_level() -> None:
    home = village((19, "warehouse", 5), (26, "main_building", 1))
    with pytest.raises(RuleViolation, match="another warehouse needs the first one at level 20"):
        plan_build(home, "warehouse", 20, 5)
    assert plan_build(home, "warehouse", 19, 5) == (19, 6)
    top = village((19, "warehouse", 20), (26, "main_building", 1))
    assert plan_build(top, "warehouse", None, 5) == (20, 1)


def test_an_instant_build_cannot_jump_orders_of_its_slot() -> None:
    queue = [order(1, 3, "woodcutter", 1)]
    placement.check_instant(queue, 1)
    with pytest.raises(RuleViolation, match="slot 3 has queued orders"):
        placement.check_instant(queue, 3)


def test_planned_and_highest_levels() -> None:
    standing = [Building(1, "woodcutter", 2), Building(19, "cranny", 4), Building(20, "cranny", 7)]
    queue = [order(1, 1, "woodcutter", 3), order(2, 1, "woodcutter", 4)]
    assert placement.planned_level(standing, queue, 1) == 4
    assert placement.planned_level(standing, queue, 19) == 4
    assert placement.planned_level(standing, queue, 30) == 0
    assert placement.highest_levels(standing) == {"woodcutter": 2, "cranny": 7}
    assert placement.occupants(standing, [order(1, 21, "barracks", 1)]) == {
        1: "woodcutter", 19: "cranny", 20: "cranny", 21: "barracks"}


# ---- the argument checks both backends share take their bounds from here ------------------------

def test_the_slot_argument_is_bounded_by_the_village_slots() -> None:
    assert v.check_slot(None) is None
    assert v.check_slot(1) == 1
    assert v.check_slot(placement.WALL_SLOT) == 40
    for bad in (0, 41, True, "3", 2.0):
        with pytest.raises(InvalidRequest, match="slot"):
            v.check_slot(bad)


def test_the_building_and_point_arguments() -> None:
    assert v.check_building("Blacksmith") == "smithy"  # an alias, any case
    with pytest.raises(InvalidRequest):
        v.check_building("spaceport")
    assert v.check_point(200, -200, radius=200) == (200, -200)
    with pytest.raises(InvalidRequest, match="x must be between -200 and 200, got 201"):
        v.check_point(201, 0, radius=200)
    with pytest.raises(InvalidRequest, match="y must be between"):
        v.check_point(0, -201, radius=200)
    # Without the world's radius only the type is the client's to check.
    assert v.check_point(500, 0, radius=None) == (500, 0)
    with pytest.raises(InvalidRequest, match="x must be an integer"):
        v.check_point(True, 0, radius=None)
    assert v.check_queue_position(1000) == 1000
    with pytest.raises(InvalidRequest):
        v.check_queue_position(1001)

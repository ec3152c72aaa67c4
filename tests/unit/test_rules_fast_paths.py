"""The rules' fast paths (what the engine calls per event) answer exactly as the checked,
general paths do: the same numbers, the same errors for bad input."""

from __future__ import annotations

import math
import random
from decimal import ROUND_HALF_UP, Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from travian_repo.domain.errors import InvalidRequest
from travian_repo.domain.values import Building
from travian_repo.rules import cranny_capacity, units
from travian_repo.rules.data_file import round_half_up
from travian_repo.rules.morale import morale
from travian_repo.rules.siege import wall
from travian_repo.sandbox.engine.battles import catapult_target
from travian_repo.sandbox.engine.combat import wall_of


def _decimal_half_up(value: float) -> int:
    return int(Decimal(value).quantize(Decimal(1), rounding=ROUND_HALF_UP))


@pytest.mark.parametrize("value, expected", [
    (0.49999999999999994, 0),  # the float just below 0.5: adding 0.5 would round it up
    (0.5, 1), (1.5, 2), (2.5, 3), (1.4999999999999998, 1),
    (4503599627370495.5, 4503599627370496), (2.0**52, 2**52), (0.0, 0),
])
def test_round_half_up_is_exact_at_the_halves(value: float, expected: int) -> None:
    assert round_half_up(value) == expected


def test_round_half_up_agrees_with_decimal_on_floats_near_halves() -> None:
    rng = random.Random(7)
    for _ in range(20000):
        base = math.floor(rng.random() * 10 ** rng.randint(0, 15)) + 0.5
        for value in (base, math.nextafter(base, 0), math.nextafter(base, math.inf),
                      rng.random() * 1000, -base):
            assert round_half_up(value) == _decimal_half_up(value), value


@pytest.mark.parametrize("tribe, name", [
    (["romans"], "legionnaire"), ({"romans": 1}, "legionnaire"), (None, "legionnaire"),
    ("romans", ["legionnaire"]), ("romans", None), ("romans", "no_such_unit"),
    ("no_such_tribe", "legionnaire"),
])
def test_bad_unit_lookups_are_typed_errors(tribe: Any, name: Any) -> None:
    units.unit_spec("romans", "legionnaire")  # the canonical spelling looked up (and kept)
    with pytest.raises(InvalidRequest):
        units.unit_spec(tribe, name)
    with pytest.raises(InvalidRequest):
        units.upkeep(tribe, {name: 1} if isinstance(name, str) else {"legionnaire": name})


def test_any_spelling_finds_the_same_unit() -> None:
    spec = units.unit_spec("romans", "equites_legati")
    assert units.unit_spec("Romans", "Equites Legati") is spec
    assert units.unit_spec(" romans ", "equites-legati") is spec
    assert units.unit_spec("romans", "equites_legati") is spec


@pytest.mark.parametrize("count", [True, -1, 1.0, "2"])
def test_bad_counts_are_refused_by_upkeep_and_carry(count: Any) -> None:
    with pytest.raises(InvalidRequest):
        units.upkeep("romans", {"legionnaire": count})
    with pytest.raises(InvalidRequest):
        units.carry_capacity("romans", {"legionnaire": count})


def test_upkeep_and_carry_sum_every_unit() -> None:
    troops = {"legionnaire": 3, "equites_imperatoris": 2}
    assert units.upkeep("romans", troops) == 3 * 1 + 2 * 3
    assert units.carry_capacity("romans", troops) == 3 * 50 + 2 * 100


@pytest.mark.parametrize("levels", [[True], [-1], [11], ["3"]])
def test_bad_cranny_levels_are_refused_every_time(levels: list[Any]) -> None:
    for _ in range(2):  # the second call would be the kept one
        with pytest.raises(InvalidRequest):
            cranny_capacity(levels, tribe="gauls")


def test_a_kept_cranny_is_the_computed_one() -> None:
    assert cranny_capacity([10, 10], tribe="gauls") == cranny_capacity(
        iter([10, 10]), tribe="Gauls")
    assert cranny_capacity((), tribe="romans") == 0


@pytest.mark.parametrize("populations", [(True, 3), (3, -1), (3.0, 2), (None, 2)])
def test_bad_populations_are_refused(populations: tuple[Any, Any]) -> None:
    with pytest.raises(InvalidRequest):
        morale(*populations)


def test_a_kept_wall_is_the_computed_one() -> None:
    assert wall("romans", 3) == wall("Romans", 3)
    assert wall("romans", 3).multiplier == 1.093
    with pytest.raises(InvalidRequest):
        wall(["romans"], 3)  # type: ignore[arg-type]


def _village(*buildings: tuple[int, str, int], tribe: str = "romans") -> Any:
    return SimpleNamespace(tribe=tribe, buildings=[Building(*b) for b in buildings])


def test_the_catapults_aim_at_the_highest_building_lowest_slot_on_a_tie() -> None:
    village = _village((19, "barracks", 5), (20, "city_wall", 9), (21, "cranny", 5),
                       (22, "granary", 4), (23, "stable", 0))
    assert catapult_target(village, None, "city_wall") == Building(19, "barracks", 5)
    assert catapult_target(village, "granary", "city_wall") == Building(22, "granary", 4)
    assert catapult_target(village, "stable", "city_wall") == Building(19, "barracks", 5)
    assert catapult_target(village, "city_wall", "city_wall") == Building(19, "barracks", 5)
    assert catapult_target(_village((20, "city_wall", 3)), None, "city_wall") is None


def test_the_wall_found_is_the_first_standing_slot_at_the_highest_level() -> None:
    village = _village((19, "city_wall", 0), (40, "city_wall", 4), (41, "city_wall", 6))
    assert wall_of(village) == ("city_wall", 40, 6)
    assert wall_of(_village((19, "city_wall", 0))) == ("city_wall", None, 0)
    assert wall_of(_village((40, "palisade", 2), tribe="gauls")) == ("palisade", 40, 2)

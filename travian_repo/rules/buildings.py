"""Buildings: specs, costs, build times, population, culture points, prerequisites.

Levels are the level being reached: ``building_cost("barracks", 1)`` is the price of
building it from nothing. Names are snake_case; the data file's ``meta.aliases``
(``blacksmith`` -> ``smithy`` ...) are accepted everywhere a building name is taken.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from fractions import Fraction
from types import MappingProxyType
from typing import Any, Mapping

from travian_repo.domain.values import Resources
from travian_repo.rules.data_file import (
    check_int,
    normalize_name,
    round_half_up,
    round_to_5,
    round_to_10,
    rules_data,
    unknown,
)

# Written out (not read from the data) so that importing reads no file; a test checks
# they equal the data file's keys.
BUILDING_NAMES: frozenset[str] = frozenset({
    "woodcutter", "clay_pit", "iron_mine", "cropland", "sawmill", "brickyard",
    "iron_foundry", "grain_mill", "bakery", "warehouse", "granary", "smithy",
    "tournament_square", "main_building", "rally_point", "marketplace", "embassy",
    "barracks", "stable", "workshop", "academy", "cranny", "town_hall", "residence",
    "palace", "treasury", "trade_office", "great_barracks", "great_stable", "city_wall",
    "earth_wall", "palisade", "stonemason", "brewery", "trapper", "heros_mansion",
    "great_warehouse", "great_granary", "wonder_of_the_world", "horse_drinking_trough",
    "stone_wall", "makeshift_wall", "command_center", "waterworks",
})

RESOURCE_FIELDS: Mapping[str, str] = MappingProxyType({
    "woodcutter": "wood", "clay_pit": "clay", "iron_mine": "iron", "cropland": "wheat",
})

WALLS: Mapping[str, str] = MappingProxyType({
    "romans": "city_wall", "teutons": "earth_wall", "gauls": "palisade",
    "egyptians": "stone_wall", "huns": "makeshift_wall",
})


@dataclass(frozen=True, slots=True)
class BuildingSpec:
    name: str
    gid: int
    category: str
    max_level: int                       # in a non-capital village
    max_level_capital: int
    prerequisites: tuple[tuple[str, int], ...]
    tribes: frozenset[str] | None        # None: every tribe may build it
    capital_only: bool
    forbidden_in_capital: bool
    multiple_allowed: bool
    additional_instance_requires_level: int | None
    special_condition: str | None
    # Extensions beyond the contract's fields.
    display_name: str = ""
    excludes: frozenset[str] = frozenset()   # cannot stand in the same village
    one_per_account: bool = False


# Each spelling seen, by its canonical name: the rules look names up many times a call.
_RESOLVED: dict[str, str] = {}


def _resolve(name: object) -> str:
    if type(name) is str and (hit := _RESOLVED.get(name)) is not None:
        return hit
    key = normalize_name(name, "building")
    key = str(rules_data()["meta"]["aliases"].get(key, key))
    if key not in BUILDING_NAMES:
        raise unknown("building", name, BUILDING_NAMES)
    if type(name) is str and len(_RESOLVED) < 1024:  # bounded: callers may pass any text
        _RESOLVED[name] = key
    return key


def _raw(name: str) -> dict[str, Any]:
    raw: dict[str, Any] = rules_data()["buildings"][name]
    return raw


@functools.cache
def _spec(name: str) -> BuildingSpec:
    raw = _raw(name)
    levels = raw["max_level"]
    if isinstance(levels, dict):
        max_plain, max_capital = int(levels["non_capital"]), int(levels["capital"])
    else:
        max_plain = max_capital = int(levels)
    tribes = raw.get("tribes")
    extra = raw.get("additional_instance_requires_level")
    return BuildingSpec(
        name=name,
        gid=int(raw["gid"]),
        category=str(raw["category"]),
        max_level=max_plain,
        max_level_capital=max_capital,
        prerequisites=tuple((str(p["building"]), int(p["level"])) for p in raw["prerequisites"]),
        tribes=None if tribes is None else frozenset(tribes),
        capital_only=raw.get("capital") == "only",
        forbidden_in_capital=raw.get("capital") == "forbidden",
        multiple_allowed=bool(raw.get("multiple_allowed", False)),
        additional_instance_requires_level=None if extra is None else int(extra),
        special_condition=raw.get("special_condition"),
        display_name=str(raw["name"]),
        excludes=frozenset(raw.get("excludes") or ()),
        one_per_account=bool(raw.get("one_per_account", False)),
    )


def building_spec(name: str) -> BuildingSpec:
    return _spec(_resolve(name))


def max_level(name: str, *, is_capital: bool) -> int:
    spec = building_spec(name)
    return spec.max_level_capital if is_capital else spec.max_level


@functools.lru_cache(maxsize=256)  # read on every training and troop movement
def top_level(name: str) -> int:
    """The highest level ``name`` reaches in any village, capital or not."""
    return _top(building_spec(name))


def _top(spec: BuildingSpec) -> int:
    return max(spec.max_level, spec.max_level_capital)


def capped_level(name: str, level: int) -> int:
    """``level`` held to ``name``'s highest level: what a rule that reads the level of a
    standing building (a tournament square, a barracks) may count on."""
    return min(level, top_level(name))


def _level(spec: BuildingSpec, level: object, *, minimum: int = 1) -> int:
    # Any village's ceiling is accepted here; whether this village may go that high is
    # max_level(..., is_capital=...)'s question.
    return check_int(level, f"{spec.name} level", minimum=minimum, maximum=_top(spec))


def _per_level(name: str, column: str, level: int) -> Any:
    table = _raw(name).get("per_level")
    if table is None or level not in table["levels"]:
        return None
    return table[column][table["levels"].index(level)]


def building_cost(name: str, level: int) -> Resources:
    """Cost of upgrading to ``level``."""
    spec = building_spec(name)
    level = _level(spec, level)
    row = _per_level(spec.name, "cost", level)
    if row is None:
        raw = _raw(spec.name)
        if level == spec.max_level_capital and "level100_cost" in raw:
            row = raw["level100_cost"]
        else:
            k = float(raw["cost_multiplier"])
            cap = raw.get("cost_cap")
            row = [round_to_5(base * k ** (level - 1)) for base in raw["base_cost"]]
            if cap is not None:  # the Wonder of the World stops at 1,000,000 per resource
                row = [min(int(cap), amount) for amount in row]
    return Resources(*(int(amount) for amount in row))


@functools.cache
def _thirds(value: float) -> float:
    # The file prints a = 1780/3 as 593.3333; use the exact third, or clay pit L20 comes
    # out 10 s short of the table.
    exact = Fraction(value).limit_denominator(3)
    return float(exact) if abs(float(exact) - value) < 1e-3 else value


def build_time(name: str, level: int, *, main_building_level: int, server_speed: int = 1) -> int:
    """Seconds to upgrade to ``level``: round_to_10((a*k**(L-1) - b) * mb_factor / speed)."""
    spec = building_spec(name)
    level = _level(spec, level)
    mb = check_int(main_building_level, "main_building_level", minimum=0,
                   maximum=top_level("main_building"))
    speed = check_int(server_speed, "server_speed", minimum=1)
    params = _raw(spec.name)["build_time"]
    a, k, b = _thirds(float(params["a"])), float(params["k"]), _thirds(float(params["b"]))
    return round_to_10((a * k ** (level - 1) - b) * main_building_factor(mb) / speed)


MAIN_BUILDING_TIME_BASE = 0.964
MAIN_BUILDING_DESTROYED_FACTOR = 5.0


def main_building_factor(level: int) -> float:
    """The build time factor of a main building at ``level``: ``0.964**(L-1)``, computed
    exactly (the data file's table is rounded to 6 decimals, which moves some times by 10 s);
    5.0 at level 0 (destroyed)."""
    if level <= 0:
        return MAIN_BUILDING_DESTROYED_FACTOR
    return float(MAIN_BUILDING_TIME_BASE ** (level - 1))


def population_added(name: str, level: int) -> int:
    spec = building_spec(name)
    level = _level(spec, level)
    u = int(_raw(spec.name)["population_level1"])
    return u if level == 1 else round_half_up(Fraction(5 * u + level - 1, 10))


@functools.lru_cache(maxsize=4096)  # summed on every change of a village's buildings
def population_total(name: str, level: int) -> int:
    spec = building_spec(name)
    level = _level(spec, level, minimum=0)
    return sum(population_added(spec.name, lv) for lv in range(1, level + 1))


def culture_points(name: str, level: int) -> int:
    """Culture points per day a building at ``level`` produces (0 when not built)."""
    spec = building_spec(name)
    level = _level(spec, level, minimum=0)
    if level == 0:
        return 0
    return round_half_up(float(_raw(spec.name)["culture_points_base"]) * 1.2 ** level)


def missing_prerequisites(name: str, levels: Mapping[str, int]) -> list[tuple[str, int]]:
    """The (building, level) pairs of ``name``'s prerequisites that ``levels`` does not meet.

    ``levels`` maps building name -> the highest level of it in the village (missing = 0).
    Tribe, capital and exclusion rules are not prerequisites; see ``building_spec``.
    """
    spec = building_spec(name)
    have: dict[str, int] = {}
    for key, value in levels.items():
        resolved = _resolve(key)
        # A plain int >= 0 passes the check as it is: skip the call (many per build).
        level = value if type(value) is int and value >= 0 else check_int(
            value, f"{resolved} level", minimum=0)
        have[resolved] = max(have.get(resolved, 0), level)
    return [(req, lv) for req, lv in spec.prerequisites if have.get(req, 0) < lv]


__all__ = [
    "BUILDING_NAMES",
    "RESOURCE_FIELDS",
    "WALLS",
    "BuildingSpec",
    "build_time",
    "building_cost",
    "building_spec",
    "capped_level",
    "culture_points",
    "max_level",
    "missing_prerequisites",
    "population_added",
    "population_total",
    "top_level",
]

"""Units: specs per tribe, costs, training times, and sums over a group of troops.

Unit names repeat across tribes (teutons and gauls both have ``ram`` and ``settler``),
so every lookup takes the tribe. Names come from the data's display names:
lowercase, spaces -> ``_``, apostrophes dropped (``Theutates Thunder`` -> ``theutates_thunder``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Mapping

from travian_repo.domain.errors import InvalidRequest
from travian_repo.domain.values import Resources
from travian_repo.rules.buildings import top_level
from travian_repo.rules.data_file import (
    check_int,
    normalize_name,
    round_half_up,
    rules_data,
    unknown,
)

# The tribes this library's worlds use; lookups also take the T4.6 tribes.
TRIBES: tuple[str, ...] = ("romans", "teutons", "gauls")
# Every tribe with trainable units; nature (animals) and natars are not playable.
PLAYABLE_TRIBES: tuple[str, ...] = ("romans", "teutons", "gauls", "egyptians", "huns")
_PLAYABLE = frozenset(PLAYABLE_TRIBES)


@dataclass(frozen=True, slots=True)
class UnitSpec:
    name: str
    tribe: str
    attack: int
    def_infantry: int
    def_cavalry: int
    speed: int                # fields per hour at x1
    carry: int
    cost: Resources
    upkeep: int               # wheat per hour
    training_time_s: int      # at building level 1, x1
    category: str             # "infantry" or "cavalry"
    role: str                 # regular, scout, ram, catapult, chief, settler
    trained_in: tuple[str, ...]
    research_prerequisites: tuple[tuple[str, int], ...]
    # Extensions beyond the contract's fields.
    display_name: str = ""
    research_required: bool = False
    min_trainer_level: int = 1  # settlers and chiefs need residence/palace 10


def unit_key(display_name: str) -> str:
    """The snake_case name of a unit from its display name."""
    return normalize_name(display_name, "unit")


def check_tribe(tribe: object) -> str:
    if type(tribe) is str and tribe in _PLAYABLE:  # already a key: nothing to normalize
        return tribe
    key = normalize_name(tribe, "tribe")
    if key not in PLAYABLE_TRIBES:
        raise unknown("tribe", tribe, PLAYABLE_TRIBES)
    return key


def _build(tribe: str, raw: dict[str, Any]) -> UnitSpec:
    return UnitSpec(
        name=unit_key(str(raw["name"])),
        tribe=tribe,
        attack=int(raw["attack"]),
        def_infantry=int(raw["def_infantry"]),
        def_cavalry=int(raw["def_cavalry"]),
        speed=int(raw["speed"]),
        carry=int(raw["carry"]),
        cost=Resources(*(int(x) for x in raw["cost"])),
        upkeep=int(raw["upkeep"]),
        training_time_s=int(raw["training_time_s"]),
        category=str(raw["category"]),
        role=str(raw["role"]),
        trained_in=tuple(str(b) for b in raw["trained_in"]),
        research_prerequisites=tuple(
            (str(p["building"]), int(p["level"])) for p in raw["research_prerequisites"]
        ),
        display_name=str(raw["name"]),
        research_required=bool(raw.get("research_required", False)),
        min_trainer_level=int(raw.get("min_trainer_level", 1)),
    )


@functools.cache
def _tribe_units(tribe: str) -> tuple[tuple[UnitSpec, ...], dict[str, UnitSpec]]:
    raws = rules_data()["units"][tribe]
    specs = tuple(_build(tribe, raw) for raw in raws)
    by_name = {spec.name: spec for spec in specs}
    # Old names in the data's "alias" field ("Maceman (kirilloid)") are accepted too.
    for raw, spec in zip(raws, specs):
        alias = raw.get("alias")
        if isinstance(alias, str):
            by_name.setdefault(unit_key(alias.split("(")[0]), spec)
    return specs, by_name


def units_of(tribe: str) -> tuple[UnitSpec, ...]:
    """The tribe's ten units in game order (unit 1 .. settler)."""
    return _tribe_units(check_tribe(tribe))[0]


# (tribe, unit) keys as the rules spell them -> their spec: the engine's and the battle
# calculator's lookups skip normalizing names that need none (at most every unit once).
_SPECS: dict[tuple[str, str], UnitSpec] = {}


def unit_spec(tribe: str, name: str) -> UnitSpec:
    if type(tribe) is str and type(name) is str:
        found = _SPECS.get((tribe, name))
        if found is not None:
            return found
    key = check_tribe(tribe)
    specs, by_name = _tribe_units(key)
    spec = by_name.get(normalize_name(name, "unit"))
    if spec is None:
        raise unknown(f"{key} unit", name, (s.name for s in specs))
    if tribe == key and name == spec.name:
        _SPECS[key, name] = spec
    return spec


def unit_cost(tribe: str, name: str, count: int = 1) -> Resources:
    count = check_int(count, "count", minimum=0)
    return unit_spec(tribe, name).cost * count


def training_time(tribe: str, name: str, *, building_level: int, server_speed: int = 1) -> int:
    """Seconds per unit: t * 0.9**(L-1) / speed, rounded half up (computed exactly, so a
    time that is mathematically x.5 always goes up; never below 1 s)."""
    spec = unit_spec(tribe, name)
    level = check_int(building_level, "building_level", minimum=1,
                      maximum=max(map(top_level, spec.trained_in), default=1))
    speed = check_int(server_speed, "server_speed", minimum=1)
    return _training_seconds(spec.training_time_s, level, speed)


@functools.lru_cache(maxsize=4096)
def _training_seconds(base: int, level: int, speed: int) -> int:
    exact = Fraction(base) * Fraction(9, 10) ** (level - 1) / speed
    return max(1, round_half_up(exact))


def scout_unit(tribe: str) -> UnitSpec:
    for spec in units_of(tribe):
        if spec.role == "scout":
            return spec
    raise InvalidRequest(f"tribe {tribe!r} has no scout unit")  # pragma: no cover - data has one


def _counted(tribe: str, troops: Mapping[str, int]) -> list[tuple[UnitSpec, int]]:
    key = check_tribe(tribe)
    counted: list[tuple[UnitSpec, int]] = []
    for name, count in troops.items():
        spec = unit_spec(key, name)
        if type(count) is not int or count < 0:  # the common case checked without a call
            count = check_int(count, f"count of {spec.name}", minimum=0)
        counted.append((spec, count))
    return counted


def slowest_speed(tribe: str, troops: Mapping[str, int]) -> int:
    """Fields/hour of the slowest unit with a count > 0 (a group moves at that speed)."""
    speeds = [spec.speed for spec, count in _counted(tribe, troops) if count > 0]
    if not speeds:
        raise InvalidRequest("no troops given: every count is 0", details={"field": "troops"})
    return min(speeds)


def carry_capacity(tribe: str, troops: Mapping[str, int]) -> int:
    total = 0
    for spec, count in _counted(tribe, troops):
        total += spec.carry * count
    return total


def upkeep(tribe: str, troops: Mapping[str, int]) -> int:
    """Wheat per hour the troops eat (``_counted``'s checks, inline: the engine's hot path)."""
    key = check_tribe(tribe)
    total = 0
    for name, count in troops.items():
        spec = unit_spec(key, name)
        if type(count) is not int or count < 0:
            count = check_int(count, f"count of {spec.name}", minimum=0)
        total += spec.upkeep * count
    return total


__all__ = [
    "PLAYABLE_TRIBES",
    "TRIBES",
    "UnitSpec",
    "carry_capacity",
    "scout_unit",
    "slowest_speed",
    "training_time",
    "unit_cost",
    "unit_spec",
    "units_of",
    "upkeep",
]

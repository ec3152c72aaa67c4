"""Economy: field production, village production, storage, crannies, merchants (how many a
village has, what one carries, how many a load takes)."""

from __future__ import annotations

import functools
from fractions import Fraction
from typing import Iterable, Mapping

from travian_repo.domain.errors import InvalidRequest, RuleViolation
from travian_repo.domain.values import Resources
from travian_repo.rules.buildings import RESOURCE_FIELDS, top_level
from travian_repo.rules.data_file import (
    check_int,
    normalize_name,
    round_half_up,
    rules_data,
    unknown,
)
from travian_repo.rules.units import check_tribe

# Bonus building -> the resource it raises by 5 % per level.
_BONUS_BUILDINGS: Mapping[str, str] = {
    "sawmill": "wood", "brickyard": "clay", "iron_foundry": "iron",
    "grain_mill": "wheat", "bakery": "wheat",
}
_BONUS_PERCENT_PER_LEVEL = 5
_BONUS_MAX_LEVEL = 5
_STORAGE_KINDS = ("warehouse", "granary", "great_warehouse", "great_granary")


def field_production(level: int, *, server_speed: int = 1) -> int:
    """Resources per hour of one field at ``level`` (0..21).

    Disputed: level 5 is 46 (kirilloid rounds 33*1.4) vs 47 (the T4.6 clone uses ceil);
    we use the data table, i.e. 46.
    """
    table = rules_data()["resource_field_production"]
    levels: list[int] = table["levels"]
    level = check_int(level, "field level", minimum=levels[0], maximum=levels[-1])
    speed = check_int(server_speed, "server_speed", minimum=1)
    return int(table["per_hour"][levels.index(level)]) * speed


def village_production(
    fields: Iterable[tuple[str, int]],
    *,
    bonus_levels: Mapping[str, int] | None = None,
    population: int = 0,
    troop_upkeep: int = 0,
    server_speed: int = 1,
) -> Resources:
    """Production per hour; wheat is net of population and troop upkeep (may be negative).

    Bonus buildings add 5 %/level to the sum of their resource's fields (grain mill and
    bakery add up for wheat); each resource is rounded half up once, after the bonus.
    """
    gross = {"wood": 0, "clay": 0, "iron": 0, "wheat": 0}
    for entry in fields:
        try:
            name, level = entry
        except (TypeError, ValueError):
            raise InvalidRequest(f"fields must be (name, level) pairs, got {entry!r}") from None
        key = normalize_name(name, "field")
        if key not in RESOURCE_FIELDS:
            raise unknown("resource field", name, RESOURCE_FIELDS)
        gross[RESOURCE_FIELDS[key]] += field_production(level, server_speed=server_speed)

    percent = {"wood": 100, "clay": 100, "iron": 100, "wheat": 100}
    for name, level in (bonus_levels or {}).items():
        key = normalize_name(name, "bonus building")
        if key not in _BONUS_BUILDINGS:
            raise unknown("bonus building", name, _BONUS_BUILDINGS)
        level = check_int(level, f"{key} level", minimum=0, maximum=_BONUS_MAX_LEVEL)
        percent[_BONUS_BUILDINGS[key]] += _BONUS_PERCENT_PER_LEVEL * level

    population = check_int(population, "population", minimum=0)
    troop_upkeep = check_int(troop_upkeep, "troop_upkeep", minimum=0)
    net = {r: round_half_up(Fraction(gross[r] * percent[r], 100)) for r in gross}
    net["wheat"] -= population + troop_upkeep
    return Resources(**net)


def storage_capacity(kind: str, levels: Iterable[int]) -> int:
    """Capacity of all warehouses (or granaries, or great_*) of a village; 800 when none."""
    key = normalize_name(kind, "storage kind")
    if key not in _STORAGE_KINDS:
        raise unknown("storage kind", kind, _STORAGE_KINDS)
    data = rules_data()["storage_capacity"]
    table: list[int] = data[key]
    top = len(table) - 1
    built = [check_int(lv, f"{key} level", minimum=0, maximum=top) for lv in levels]
    total = sum(int(table[lv]) for lv in built if lv > 0)
    # The base 800 is what a village holds with no storage at all; it does not add on top.
    return total if total else int(data["base_capacity_without_building"])


def cranny_capacity(levels: Iterable[int], *, tribe: str) -> int:
    """Resources hidden per resource type by all crannies; gauls hide 1.5x."""
    key = check_tribe(tribe)
    built = tuple(levels)
    if all(type(lv) is int for lv in built):
        return _cranny(built, key)  # plain levels: every raid's cranny is kept
    return _cranny_capacity(built, key)


@functools.lru_cache(maxsize=1024)
def _cranny(levels: tuple[int, ...], key: str) -> int:
    return _cranny_capacity(levels, key)


def _cranny_capacity(levels: tuple[int, ...], key: str) -> int:
    data = rules_data()["cranny_capacity"]
    table: list[int] = data["per_resource"]
    top = len(table) - 1
    total = sum(int(table[check_int(lv, "cranny level", minimum=0, maximum=top)])
                for lv in levels)
    if key == "gauls":
        return round_half_up(Fraction(total) * Fraction(str(data["gauls_multiplier"])))
    return total


def _merchant(tribe: str) -> dict[str, int]:
    entry: dict[str, int] = rules_data()["merchants"]["per_tribe"][check_tribe(tribe)]
    return entry


def merchant_capacity(tribe: str, *, trade_office_level: int = 0) -> int:
    """What one merchant carries: capacity * (1 + 10 % per trade office level).

    Not scaled by server speed: the data file found no official source for that.
    """
    level = check_int(trade_office_level, "trade_office_level", minimum=0,
                      maximum=top_level("trade_office"))
    return round_half_up(Fraction(int(_merchant(tribe)["capacity"]) * (10 + level), 10))


def merchant_speed(tribe: str) -> int:
    """Fields per hour at x1 (merchants ignore the tournament square)."""
    return int(_merchant(tribe)["speed"])


def merchants_needed(tribe: str, amount: int, *, trade_office_level: int = 0) -> int:
    amount = check_int(amount, "amount", minimum=0)
    capacity = merchant_capacity(tribe, trade_office_level=trade_office_level)
    return -(-amount // capacity)


def merchants_of(marketplace_level: int) -> int:
    """How many merchants a village has: one per marketplace level."""
    return check_int(marketplace_level, "marketplace level", minimum=0)


def merchants_at_home(marketplace_level: int, busy: int) -> int:
    """Merchants free now: the village's merchants less ``busy`` (held by its open offers and
    out with its shipments), never below 0."""
    return max(0, merchants_of(marketplace_level) - check_int(busy, "busy merchants", minimum=0))


def check_marketplace(marketplace_level: int, *, village_id: int) -> None:
    """Trade needs a marketplace (RuleViolation naming village ``village_id`` otherwise)."""
    if merchants_of(marketplace_level) < 1:
        raise RuleViolation(f"village {village_id} has no marketplace")


def reserve_merchants(
    tribe: str,
    amount: int,
    *,
    marketplace_level: int,
    trade_office_level: int,
    busy: int,
    village_id: int,
) -> int:
    """How many merchants carrying ``amount`` takes from village ``village_id`` (named in the
    error), or the RuleViolation why it cannot: no marketplace, or too few free merchants
    (``details``: ``needed``, ``free``)."""
    check_marketplace(marketplace_level, village_id=village_id)
    needed = merchants_needed(tribe, amount, trade_office_level=trade_office_level)
    free = merchants_at_home(marketplace_level, busy)
    if needed > free:
        raise RuleViolation(
            f"not enough merchants: {amount} resources need {needed}, {free} are free",
            details={"needed": needed, "free": free},
        )
    return needed


__all__ = [
    "check_marketplace",
    "cranny_capacity",
    "field_production",
    "merchant_capacity",
    "merchant_speed",
    "merchants_at_home",
    "merchants_needed",
    "merchants_of",
    "reserve_merchants",
    "storage_capacity",
    "village_production",
]

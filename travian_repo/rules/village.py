"""A village's economy from its buildings: production, storage and population."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from travian_repo.domain.values import Resources
from travian_repo.rules import buildings, economy

_BONUS_BUILDINGS = ("sawmill", "brickyard", "iron_foundry", "grain_mill", "bakery")


@dataclass(frozen=True)
class VillageEconomy:
    production: Resources  # per hour; wheat is net of population and troop upkeep
    warehouse_capacity: int
    granary_capacity: int
    population: int


def village_economy(
    built: Iterable[tuple[str, int]], *, troop_upkeep: int = 0, server_speed: int = 1
) -> VillageEconomy:
    """``built``: (building name, level) for every slot of the village."""
    built = [(name, level) for name, level in built if level > 0 or name in buildings.RESOURCE_FIELDS]
    population = sum(buildings.population_total(name, level) for name, level in built if level > 0)
    fields = [(name, level) for name, level in built if name in buildings.RESOURCE_FIELDS]
    bonus = {name: level for name, level in built if name in _BONUS_BUILDINGS}
    production = economy.village_production(
        fields,
        bonus_levels=bonus,
        population=population,
        troop_upkeep=troop_upkeep,
        server_speed=server_speed,
    )
    return VillageEconomy(
        production=production,
        warehouse_capacity=economy.storage_capacity(
            "warehouse", [level for name, level in built if name == "warehouse"]
        ),
        granary_capacity=economy.storage_capacity(
            "granary", [level for name, level in built if name == "granary"]
        ),
        population=population,
    )

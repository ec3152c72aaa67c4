"""Keeping a village's derived columns (production, storage, population) true to its
buildings and troops, whenever either changes."""

from __future__ import annotations

from sqlalchemy import Connection, delete, select, update

from travian_repo.domain.errors import Conflict
from travian_repo.domain.values import Building, Resources
from travian_repo.rules import units
from travian_repo.rules.buildings import RESOURCE_FIELDS
from travian_repo.rules.village import village_economy
from travian_repo.sql import schema
from travian_repo.sql.village_state import VillageState, movements_home_filter
from travian_repo.sql.village_writes import store

_b = schema.village_buildings


def apply_level(conn: Connection, state: VillageState, slot: int, name: str, level: int) -> None:
    """Set a building's level now (stock first settled to now at the old rates)."""
    exists = any(b.slot == slot for b in state.buildings)
    if exists:
        changed = conn.execute(
            update(_b).where((_b.c.village_id == state.id) & (_b.c.slot == slot)).values(level=level)
        ).rowcount
        if changed != 1:  # only if something bypassed the village lock
            raise Conflict(f"village {state.id} slot {slot} changed under the write; try again")
    else:
        conn.execute(_b.insert().values(village_id=state.id, slot=slot, building_name=name, level=level))
    state.buildings = sorted(
        [b for b in state.buildings if b.slot != slot] + [Building(slot, name, level)],
        key=lambda b: b.slot,
    )
    refresh(conn, state)


def set_damaged_level(
    conn: Connection, state: VillageState, slot: int, name: str, level: int
) -> None:
    """A building's level after damage; at 0 a building goes (a resource field stays, at 0)."""
    if level > 0 or name in RESOURCE_FIELDS:
        apply_level(conn, state, slot, name, level)
        return
    changed = conn.execute(
        delete(_b).where((_b.c.village_id == state.id) & (_b.c.slot == slot))
    ).rowcount
    if changed != 1:  # only if something bypassed the village lock
        raise Conflict(f"village {state.id} slot {slot} changed under the write; try again")
    state.buildings = [b for b in state.buildings if b.slot != slot]
    refresh(conn, state)


def upkeep_changed(conn: Connection, state: VillageState, wheat_per_hour: int) -> None:
    """The village's troops eat ``wheat_per_hour`` more (less when negative) from now on.

    Net wheat production is gross production minus population minus troop upkeep, so a
    change of troops moves it by exactly their upkeep; the stock is banked at the old rate
    first. ``refresh`` recomputes everything; this is the same result in two statements,
    for the engine's most frequent events (units trained, troops killed).
    """
    if not wheat_per_hour:
        return
    store(conn, state, state.stock)
    r = schema.village_resources
    conn.execute(
        update(r)
        .where(r.c.village_id == state.id)
        .values(wheat_production=r.c.wheat_production - wheat_per_hour)
    )
    p = state.production
    state.production = Resources(p.wood, p.clay, p.iron, p.wheat - wheat_per_hour)


def troop_upkeep(conn: Connection, village_id: int, tribe: str) -> int:
    """Wheat per hour eaten by the village's own troops, at home and away."""
    t, m = schema.troops, schema.movements
    total: dict[str, int] = {}
    for unit, count in conn.execute(select(t.c.unit, t.c.count).where(t.c.village_id == village_id)):
        total[unit] = total.get(unit, 0) + count
    for (moving,) in conn.execute(select(m.c.troops).where(movements_home_filter(village_id))):
        for unit, count in moving.items():
            total[unit] = total.get(unit, 0) + count
    return units.upkeep(tribe, total)


def refresh(conn: Connection, state: VillageState) -> None:
    """Recompute and store production, capacities and population (stock settled first)."""
    store(conn, state, state.stock)  # bank what the old rates produced until now
    econ = village_economy(
        ((b.name, b.level) for b in state.buildings),
        troop_upkeep=troop_upkeep(conn, state.id, state.tribe),
        server_speed=conn_speed(conn),
    )
    r, v, p = schema.village_resources, schema.villages, schema.players
    conn.execute(
        update(r)
        .where(r.c.village_id == state.id)
        .values(
            wood_production=econ.production.wood,
            clay_production=econ.production.clay,
            iron_production=econ.production.iron,
            wheat_production=econ.production.wheat,
            warehouse_capacity=econ.warehouse_capacity,
            granary_capacity=econ.granary_capacity,
        )
    )
    delta = econ.population - state.population
    if delta:
        conn.execute(update(v).where(v.c.id == state.id).values(population=econ.population))
        conn.execute(
            update(p).where(p.c.id == state.player_id).values(population=p.c.population + delta)
        )
    state.production = econ.production
    state.warehouse_capacity = econ.warehouse_capacity
    state.granary_capacity = econ.granary_capacity
    state.population = econ.population


def conn_speed(conn: Connection) -> int:
    return int(conn.execute(select(schema.world_settings.c.speed)).scalar_one())

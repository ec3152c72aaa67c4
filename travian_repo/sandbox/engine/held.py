"""The villages a batch holds, in memory: read in a few statements after the batch's locks,
changed by the processors event by event, written back by ``flush`` set-wise.

Each village keeps its stock as stored (and the time it was stored at): an event settles
it from there to its own time, exactly as a read of the row would, so a batch computes what
one transaction per event would have computed.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable

from sqlalchemy import Connection, func, select

from travian_repo.domain.errors import Conflict
from travian_repo.domain.values import Building, Resources
from travian_repo.rules.buildings import RESOURCE_FIELDS
from travian_repo.rules.stock import Stock, settle_stock
from travian_repo.rules.village import VillageEconomy, village_economy
from travian_repo.sandbox.engine.due import among
from travian_repo.sql import schema
from travian_repo.sql.village_state import VillageState, load_stored

_v = schema.villages
_t = schema.troops
_m = schema.movements

# The ids of movements a batch made and processes before writing them: above every real id,
# in the order they were made, as the ids their rows get when written.
UNSAVED = 1 << 62


class Unsaved:
    """A movement a batch made, read as a row before it is written (``UNSAVED`` id)."""

    __slots__ = ("id", "values")

    def __init__(self, id_: int, values: dict[str, Any]) -> None:
        self.id = id_
        self.values = values

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass
class Village:
    """One held village: its state, its stock as stored, its troops at home."""

    state: VillageState
    stock: Stock
    stored_at: datetime
    troops: dict[str, int]
    population: int  # as stored
    dirty: bool = False


@dataclass
class Stationed:
    """Troops standing in a village they do not belong to (a reinforcement)."""

    id: int
    player_id: int
    home: int
    troops: dict[str, int]


@dataclass
class Held:
    """What a batch holds and what its events changed."""

    villages: dict[int, Village]
    stationed: dict[int, list[Stationed]]  # target -> groups, by movement id
    speed: int
    morale: bool = False  # the world plays with morale: battles need the populations
    populations: dict[int, int] = field(default_factory=dict)  # player -> as read
    owners: dict[int, int] = field(default_factory=dict)  # village -> player (any village)
    troops_changed: set[tuple[int, str]] = field(default_factory=set)
    moved: dict[int, tuple[str, dict[str, Any]]] = field(default_factory=dict)  # id -> (was, values)
    new_movements: list[dict[str, Any]] = field(default_factory=list)
    # The events naming an ``Unsaved`` movement: their ids are set when the rows are written.
    renumber: list[dict[str, Any]] = field(default_factory=list)
    reports: list[dict[str, Any]] = field(default_factory=list)  # rows, in order
    report_events: list[dict[str, Any]] = field(default_factory=list)  # their events' data
    # The domain events in the order they happened: (kind, player) and, alongside, the data.
    # Kept apart: a tuple holding a dict stays in the cyclic collector's sight, and a batch
    # holds thousands until it ends.
    events: list[tuple[str, int]] = field(default_factory=list)
    event_data: list[dict[str, Any]] = field(default_factory=list)
    builds_done: list[int] = field(default_factory=list)
    queue_closed: set[int] = field(default_factory=set)
    lines: dict[int, tuple[int, int, bool]] = field(default_factory=dict)  # id -> (was, now, gone)
    orders: set[int] = field(default_factory=set)
    # The buildings as stored (slot -> (name, level)) of the villages whose buildings changed.
    built: dict[int, dict[int, tuple[str, int]]] = field(default_factory=dict)
    shipped: list[int] = field(default_factory=list)  # underway -> returning
    merchants: list[int] = field(default_factory=list)  # returning -> done

    # -- reading --------------------------------------------------------------------------

    @classmethod
    def load(cls, conn: Connection, ids: Iterable[int], speed: int) -> Held:
        ids = sorted(ids)
        villages: dict[int, Village] = {}
        troops: dict[int, dict[str, int]] = {i: {} for i in ids}
        stationed: dict[int, list[Stationed]] = {i: [] for i in ids}
        if ids:
            for state, stock in load_stored(conn, ids):
                villages[state.id] = Village(state, stock, state.now, troops[state.id],
                                             state.population)
            at_home, standing = _READS[conn.dialect.name]
            for vid, unit, count in conn.execute(at_home, {"ids": ids}):
                troops[vid][unit] = count
            for row in conn.execute(standing, {"ids": ids}):
                stationed[int(row.to_village_id)].append(Stationed(
                    int(row.id), int(row.player_id), int(row.from_village_id),
                    {str(u): int(n) for u, n in sorted(row.troops.items()) if int(n) > 0}))
        held = cls(villages, stationed, speed)
        held.owners = {vid: v.state.player_id for vid, v in villages.items()}
        return held

    def read_populations(self, conn: Connection, morale: bool) -> None:
        """With ``morale`` (the world's setting), the held villages' players' populations
        (the sum of their villages, those not held read without a lock as last committed)."""
        self.morale = morale
        players = sorted({v.state.player_id for v in self.villages.values()})
        if morale and players:
            self.populations = dict(conn.execute(
                _POPULATIONS[conn.dialect.name], {"ids": players}).all())

    def population_of(self, player_id: int) -> int:
        """The player's population now: as read, with the batch's changes to its villages."""
        return self.populations.get(player_id, 0) + sum(
            v.state.population - v.population for v in self._of_player.get(player_id, ()))

    @functools.cached_property
    def _of_player(self) -> dict[int, list[Village]]:
        """The held villages by player (a batch's villages keep their owner)."""
        by: dict[int, list[Village]] = {}
        for v in self.villages.values():
            by.setdefault(v.state.player_id, []).append(v)
        return by

    def homes_in(self, target: int) -> set[int]:
        return {g.home for g in self.stationed.get(target, ())}

    # -- a village's stock and economy ------------------------------------------------------

    def settle(self, village_id: int, at: datetime) -> VillageState:
        """The village with its stock settled to ``at``, or to its last write when later."""
        v = self.villages[village_id]
        s = v.state
        now = max(at, v.stored_at)
        s.stock = settle_stock(v.stock, s.production, warehouse_capacity=s.warehouse_capacity,
                               granary_capacity=s.granary_capacity,
                               elapsed_seconds=(now - v.stored_at).total_seconds())
        s.now = now
        return s

    def store(self, state: VillageState, stock: Stock) -> None:
        v = self.villages[state.id]
        v.stock, v.stored_at, v.dirty = stock, state.now, True
        state.stock = stock

    def add_stock(self, state: VillageState, amount: Resources) -> None:
        caps = (state.warehouse_capacity,) * 3 + (state.granary_capacity,)
        self.store(state, tuple(  # type: ignore[arg-type]
            min(float(cap), s + a) for s, a, cap in zip(state.stock, amount, caps)))

    def upkeep_changed(self, state: VillageState, wheat_per_hour: int) -> None:
        """Its troops eat ``wheat_per_hour`` more from now on (stock banked first)."""
        if not wheat_per_hour:
            return
        self.store(state, state.stock)
        p = state.production
        state.production = Resources(p.wood, p.clay, p.iron, p.wheat - wheat_per_hour)

    def set_level(self, state: VillageState, slot: int, name: str, level: int) -> None:
        """A building's level now (at 0 a building goes; a resource field stays at 0), and
        the economy recomputed: the troops' upkeep is what the stored wheat says it is."""
        if state.id not in self.built:
            self.built[state.id] = {b.slot: (b.name, b.level) for b in state.buildings}
        old = _economy(tuple((b.name, b.level) for b in state.buildings), self.speed)
        upkeep = old.production.wheat - state.production.wheat
        if level > 0 or name in RESOURCE_FIELDS:
            rest = [b for b in state.buildings if b.slot != slot] + [Building(slot, name, level)]
        else:
            if not any(b.slot == slot for b in state.buildings):
                raise Conflict(f"village {state.id} slot {slot} changed under the write")
            rest = [b for b in state.buildings if b.slot != slot]
        state.buildings = sorted(rest, key=lambda b: b.slot)
        self.store(state, state.stock)  # bank what the old rates produced until now
        econ = _economy(tuple((b.name, b.level) for b in state.buildings), self.speed)
        p = econ.production  # net wheat is less the troops' upkeep, exactly
        state.production = Resources(p.wood, p.clay, p.iron, p.wheat - upkeep)
        state.warehouse_capacity = econ.warehouse_capacity
        state.granary_capacity = econ.granary_capacity
        state.population = econ.population

    # -- troops -----------------------------------------------------------------------------

    def add_troops(self, village_id: int, troops: dict[str, int]) -> None:
        home = self.villages[village_id].troops
        for unit, n in troops.items():
            if n > 0:
                home[unit] = home.get(unit, 0) + n
                self.troops_changed.add((village_id, unit))

    def remove_troops(self, village_id: int, troops: dict[str, int]) -> None:
        home = self.villages[village_id].troops
        for unit, n in troops.items():
            if n <= 0:
                continue
            if home.get(unit, 0) < n:
                raise Conflict(f"village {village_id}'s {unit} changed under the engine; "
                               "the step was undone")
            home[unit] -= n
            if not home[unit]:
                del home[unit]
            self.troops_changed.add((village_id, unit))

    # -- rows -------------------------------------------------------------------------------

    def move(self, movement_id: int, was: str, **values: Any) -> None:
        """A movement moves on from state ``was`` (checked when written); one the batch made
        is written as it ends."""
        if movement_id >= UNSAVED:
            self.new_movements[movement_id - UNSAVED].update(values)
            return
        first, before = self.moved.get(movement_id, (was, {}))
        self.moved[movement_id] = (first, {**before, **values})

    def emit(self, kind: str, player_id: int, /, **data: Any) -> dict[str, Any]:
        """Record a domain event (handed on after the batch's writes); its data, which the
        writes may still fill in (a new row's id)."""
        self.events.append((kind, player_id))
        self.event_data.append(data)
        return data


def _reads(dialect: str) -> tuple[Any, Any]:
    """The troops at home and the troops stationed in the villages ``ids`` (built once)."""
    return (select(_t.c.village_id, _t.c.unit, _t.c.count)
            .where(among(_t.c.village_id, dialect), _t.c.count > 0),
            select(_m.c.id, _m.c.player_id, _m.c.from_village_id, _m.c.to_village_id,
                   _m.c.troops)
            .where(among(_m.c.to_village_id, dialect), _m.c.state == "stationed")
            .order_by(_m.c.id))


_READS = {name: _reads(name) for name in ("postgresql", "sqlite")}
_POPULATIONS = {name: select(_v.c.player_id, func.sum(_v.c.population))
                .where(among(_v.c.player_id, name)).group_by(_v.c.player_id)
                for name in ("postgresql", "sqlite")}


@functools.lru_cache(maxsize=4096)
def _economy(built: tuple[tuple[str, int], ...], speed: int) -> VillageEconomy:
    """A village's economy without troops (villages alike share it)."""
    return village_economy(built, server_speed=speed)

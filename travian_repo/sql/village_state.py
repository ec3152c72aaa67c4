"""A village's whole state in one query, brought up to now: the statements that read it
(and the lock statements ``village_writes`` sends before its reads), ``VillageState``, and
the reads of one village, several, a player's, or a batch's stored rows.

Every SQL operation that reads or changes a village reads it through here, so the stock a
read shows and the stock a write spends are computed the same way.
"""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Sequence

from sqlalchemy import (ARRAY, BigInteger, Connection, Select, and_, any_,
                        bindparam, func, insert, literal_column, or_, select)
from sqlalchemy.types import NullType

from travian_repo.domain.errors import NotFound
from travian_repo.domain.values import Building, BuildOrder, Resources, Village
from travian_repo.rules.placement import highest_levels
from travian_repo.rules.stock import Stock, settle_stock, whole
from travian_repo.sql import prepared, schema
from travian_repo.sql.dialect import json_columns, json_row, json_rows
from travian_repo.sql.schema import as_utc

_v = schema.villages
_r = schema.village_resources
_p = schema.players
_b = schema.village_buildings
_q = schema.build_queue
_tq = schema.training_queue


def _village_select() -> Select[Any]:
    # The buildings as three arrays (slots, names, levels): three lists to decode, not one
    # per building.
    buildings = (
        select(json_columns(_b.c.slot, _b.c.building_name, _b.c.level))
        .where(_b.c.village_id == _v.c.id)
        .scalar_subquery()
    )
    queue = (
        select(json_rows(*_QUEUE_COLUMNS))
        .where(_q.c.village_id == _v.c.id)
        .scalar_subquery()
    )
    # One JSON column: the driver names and converts one value, not 21 (a third of a
    # quick read's client time); ``state_from_row`` takes the values by position.
    return (
        select(json_row(*_COLUMNS, buildings, queue).label("village"))
        .select_from(_v.join(_p, _p.c.id == _v.c.player_id).join(_r, _r.c.village_id == _v.c.id))
    )


_COLUMNS = (
    _v.c.id, _v.c.name, _v.c.player_id, _v.c.x, _v.c.y, _v.c.population, _v.c.is_capital,
    _p.c.tribe, _r.c.wood, _r.c.clay, _r.c.iron, _r.c.wheat, _r.c.wood_production,
    _r.c.clay_production, _r.c.iron_production, _r.c.wheat_production,
    _r.c.warehouse_capacity, _r.c.granary_capacity, _r.c.updated_at,
)
# Where each of _COLUMNS' values is in a village's JSON row; its buildings and queue follow.
_UPDATED_AT = 18
_BUILDINGS, _QUEUE = 19, 20
_QUEUE_COLUMNS = (
    _q.c.id, _q.c.queue_position, _q.c.slot, _q.c.building_name, _q.c.target_level,
    _q.c.wood, _q.c.clay, _q.c.iron, _q.c.wheat, _q.c.started_at, _q.c.completes_at,
)


def _many_select_pg() -> Select[Any]:
    """Many villages at once on PostgreSQL (the engine's batches): the buildings as three
    arrays and the queue from one grouped scan each, not an aggregate per village, which
    costs less to run and to decode, and stays below the planner's JIT threshold."""
    ids = bindparam("ids", type_=ARRAY(BigInteger))
    # One pass aggregates them all: the three arrays list a village's buildings alike (an
    # ORDER BY in each would sort every village's three times).
    # The arrays come as psycopg2 makes them (lists): no result processing per row.
    built = (
        select(_b.c.village_id, func.array_agg(_b.c.slot, type_=NullType()).label("slots"),
               func.array_agg(_b.c.building_name, type_=NullType()).label("names"),
               func.array_agg(_b.c.level, type_=NullType()).label("levels"))
        .where(_b.c.village_id == any_(ids)).group_by(_b.c.village_id).subquery()
    )
    queued = (
        select(_q.c.village_id, json_rows(*_QUEUE_COLUMNS).label("queue"))
        .where(_q.c.village_id == any_(ids)).group_by(_q.c.village_id).subquery()
    )
    return (
        select(*_COLUMNS, built.c.slots, built.c.names, built.c.levels, queued.c.queue)
        .select_from(_v.join(_p, _p.c.id == _v.c.player_id).join(_r, _r.c.village_id == _v.c.id)
                     .outerjoin(built, built.c.village_id == _v.c.id)
                     .outerjoin(queued, queued.c.village_id == _v.c.id))
        .where(_v.c.id == any_(ids))
    )


def _training_ends() -> Any:
    """Per training building, when its last queued line completes (what ``train`` plans on)."""
    last = (
        select(_tq.c.building_name, func.max(_tq.c.completes_at).label("last"))
        .where(_tq.c.village_id == _v.c.id)
        .group_by(_tq.c.building_name)
        .correlate(_v)
        .subquery()
    )
    return select(json_rows(last.c.building_name, last.c.last)).scalar_subquery()


VILLAGE_SELECT = _village_select()
_MANY_PG = _many_select_pg()
# Built once: compiling and cache-keying the statement per call costs more than the query;
# on PostgreSQL they are prepared statements (``sql/prepared.py``).
BY_ID = prepared.prepare(
    "tr_village", VILLAGE_SELECT.where(_v.c.id == bindparam("village_id")))
BY_ID_TRAINING = prepared.prepare(
    "tr_village_training",
    VILLAGE_SELECT.add_columns(_training_ends().label("training"))
    .where(_v.c.id == bindparam("village_id")),
)
# The lock is its own statement: on PostgreSQL a ``SELECT ... FOR UPDATE`` that waited for
# the lock re-reads only the locked row, while its subqueries (the queue, the buildings) keep
# the snapshot from before the wait. Reading after the lock sees every write committed before.
_LOCK_SELECT = (
    select(_r.c.village_id).where(_r.c.village_id == bindparam("village_id")).with_for_update())
LOCK = prepared.prepare("tr_village_lock", _LOCK_SELECT)
# The same lock carrying the transaction's outcome key (``ahead.fold_outcome_key``) when
# it is the transaction's first statement: the key's insert is a statement fewer.
LOCK_KEYED = prepared.prepare(
    "tr_village_lock_keyed",
    _LOCK_SELECT.add_cte(insert(schema.idempotency_keys).values(
        player_id=bindparam("key_player"), key=bindparam("key_value"),
        request_hash=literal_column("''"),
        created_at=bindparam("key_at", type_=schema.UTCDateTime())).cte("outcome_key")),
)
BY_PLAYER = prepared.prepare(
    "tr_villages_of",
    VILLAGE_SELECT.where(_v.c.player_id == bindparam("player_id")).order_by(
        _v.c.is_capital.desc(), _v.c.population.desc(), _v.c.id),
)
_BY_IDS = prepared.prepare(
    "tr_villages_by_ids", VILLAGE_SELECT.where(_v.c.id == any_(bindparam("village_ids"))))
AT = prepared.prepare(
    "tr_village_at", VILLAGE_SELECT.where((_v.c.x == bindparam("x")) & (_v.c.y == bindparam("y"))))


@dataclass
class VillageState:
    """The stored state of a village with its stock settled to ``now``."""

    id: int
    name: str
    player_id: int
    x: int
    y: int
    population: int
    is_capital: bool
    tribe: str
    stock: Stock
    production: Resources
    warehouse_capacity: int
    granary_capacity: int
    buildings: Sequence[Building]  # as read, a tuple shared by reads of the same buildings
    queue: list[BuildOrder]
    now: datetime
    # Training building -> when its last queued line completes (read for ``train`` only).
    training_ends: dict[str, datetime] = field(default_factory=dict)
    training_read: bool = False  # whether training_ends was read

    @property
    def available(self) -> Resources:
        return whole(self.stock)

    def levels(self) -> dict[str, int]:
        """Building name -> highest level built (queued levels not counted)."""
        return highest_levels(self.buildings)

    def level(self, building: str) -> int:
        return max((b.level for b in self.buildings if b.name == building), default=0)

    def to_village(self, *, private: bool) -> Village:
        if not private:
            return Village(
                self.id, self.name, self.player_id, self.x, self.y, self.population,
                self.is_capital, self.tribe,
            )
        return Village(
            id=self.id,
            name=self.name,
            player_id=self.player_id,
            x=self.x,
            y=self.y,
            population=self.population,
            is_capital=self.is_capital,
            tribe=self.tribe,
            resources=self.available,
            production=self.production,
            warehouse_capacity=self.warehouse_capacity,
            granary_capacity=self.granary_capacity,
            buildings=tuple(self.buildings),
            build_queue=tuple(self.queue),
        )


@functools.lru_cache(maxsize=1 << 14)
def _building(slot: Any, name: Any, level: Any) -> Building:
    """A building as read (a frozen value: villages built alike share them)."""
    return Building(int(slot), str(name), int(level))


_slot = operator.attrgetter("slot")

# The buildings of villages read lately, by id: as read, and as values. A village read again
# with the same buildings (an NPC's own, each turn) reuses its values; the comparison with
# what was read keeps the reuse right whatever changed, in whichever world.
_BUILT: dict[int, tuple[list[Any], tuple[Building, ...]]] = {}
_BUILT_MAX = 1 << 13


def _buildings(village_id: int, read: list[Any]) -> tuple[Building, ...]:
    """``read``: the slots, names and levels (``json_columns``), as the village read has them."""
    seen = _BUILT.get(village_id)
    if seen is not None and seen[0] == read:
        return seen[1]
    slots, names, levels = read
    built = tuple(sorted(map(_building, slots or (), names or (), levels or ()), key=_slot))
    if len(_BUILT) >= _BUILT_MAX:
        _BUILT.clear()
    _BUILT[village_id] = (read, built)
    return built


def _order(q: Any, village_id: int) -> BuildOrder:
    return BuildOrder(id=int(q[0]), village_id=village_id, position=int(q[1]), slot=int(q[2]),
                      building=str(q[3]), target_level=int(q[4]),
                      cost=Resources(int(q[5]), int(q[6]), int(q[7]), int(q[8])),
                      started_at=as_utc(q[9]), completes_at=as_utc(q[10]))


def state_from_row(row: Any, now: datetime) -> VillageState:
    """The village of a row of ``VILLAGE_SELECT`` (or of its statements), settled to ``now``."""
    values = row.village
    buildings = _buildings(int(values[0]), values[_BUILDINGS])
    training = (row.training or ()) if "training" in row._fields else None
    return _state(values, buildings, values[_QUEUE], now, training)


def stored_at(row: Any) -> datetime:
    """When the village of a ``VILLAGE_SELECT`` row was last written."""
    return as_utc(row.village[_UPDATED_AT])


def _state(v: Sequence[Any], buildings: Sequence[Building], queued: Any, now: datetime,
           training: Any = None) -> VillageState:
    """``v``: the values of _COLUMNS, in order."""
    village_id = int(v[0])
    queue: list[BuildOrder] = []
    if queued:
        queue = sorted((_order(q, village_id) for q in queued), key=lambda o: o.position)
    production = Resources(v[12], v[13], v[14], v[15])
    warehouse, granary = v[16], v[17]
    stock = settle_stock(
        (float(v[8]), float(v[9]), float(v[10]), float(v[11])),
        production,
        warehouse_capacity=warehouse,
        granary_capacity=granary,
        elapsed_seconds=(now - as_utc(v[_UPDATED_AT])).total_seconds(),
    )
    return VillageState(
        id=village_id,
        name=v[1],
        player_id=int(v[2]),
        x=v[3],
        y=v[4],
        population=v[5],
        is_capital=bool(v[6]),
        tribe=v[7],
        stock=stock,
        production=production,
        warehouse_capacity=warehouse,
        granary_capacity=granary,
        buildings=buildings,
        queue=queue,
        now=now,
        training_ends={str(b): as_utc(t) for b, t in training or () if t is not None},
        training_read=training is not None,
    )


def load_stored(conn: Connection, ids: list[int]) -> list[tuple[VillageState, Stock]]:
    """Many villages as stored, for the engine (the caller holds their locks): each state
    settled to its own last write, and its stock as stored."""
    if not ids:
        return []
    pg = conn.dialect.name == "postgresql"
    if pg:
        rows = conn.execute(_MANY_PG, {"ids": ids})
    else:
        rows = conn.execute(VILLAGE_SELECT.where(_v.c.id.in_(ids)))
    out = []
    for row in rows:
        if pg:
            at = as_utc(row.updated_at)
            built = tuple(sorted(
                map(_building, row.slots or (), row.names or (), row.levels or ()), key=_slot))
            state = _state(row, built, row.queue, at)
            stock = (row.wood, row.clay, row.iron, row.wheat)
        else:
            state = state_from_row(row, stored_at(row))
            wood, clay, iron, wheat = row.village[8:12]
            stock = (float(wood), float(clay), float(iron), float(wheat))
        out.append((state, stock))
    return out


def load_village(conn: Connection, village_id: int, now: datetime) -> VillageState:
    return village_from(prepared.run(conn, BY_ID, params={"village_id": village_id}),
                        village_id, now)


def village_from(rows: prepared.Rows, village_id: int, now: datetime) -> VillageState:
    """The village of ``BY_ID``'s rows; NotFound when there is none."""
    row = rows.first()
    if row is None:
        raise NotFound(f"village {village_id} does not exist")
    return state_from_row(row, now)


def load_villages(
    conn: Connection, village_ids: Sequence[int], now: datetime
) -> dict[int, VillageState]:
    """Several villages in one statement, by id (those that exist)."""
    if conn.dialect.name == "postgresql":
        rows: Iterable[Any] = prepared.run(conn, _BY_IDS, params={"village_ids": list(village_ids)})
    else:
        rows = conn.execute(VILLAGE_SELECT.where(_v.c.id.in_(sorted(set(village_ids)))))
    states = (state_from_row(row, now) for row in rows)
    return {state.id: state for state in states}


def movements_home_filter(village_id: int) -> Any:
    """Movements whose troops belong to ``village_id`` (sent from it, or coming home to it)."""
    m = schema.movements
    return and_(
        m.c.state != "done",
        or_(
            and_(m.c.kind != "return", m.c.from_village_id == village_id),
            and_(m.c.kind == "return", m.c.to_village_id == village_id),
        ),
    )

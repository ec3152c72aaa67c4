"""A village's whole state in one query, brought up to now; locking and spending it.

Every SQL operation that reads or changes a village goes through here, so the stock a read
shows and the stock a write spends are computed the same way.
"""

from __future__ import annotations

import copy
import functools
import operator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Sequence

from sqlalchemy import (ARRAY, BigInteger, Connection, Select, and_, any_,
                        bindparam, func, insert, literal_column, or_, select, update)
from sqlalchemy.sql.dml import Insert
from sqlalchemy.types import NullType

from travian_repo.domain.errors import Conflict, Forbidden, InsufficientResources, NotFound
from travian_repo.domain.values import Building, BuildOrder, Resources, Village
from travian_repo.rules.placement import highest_levels
from travian_repo.rules.stock import Stock, settle_stock, whole
from travian_repo.sql import prepared, schema
from travian_repo.sql.session import KEPT, fold_outcome_key, held_locks
from travian_repo.sql.dialect import json_rows
from travian_repo.sql.schema import as_utc

_v = schema.villages
_r = schema.village_resources
_p = schema.players
_b = schema.village_buildings
_q = schema.build_queue
_tq = schema.training_queue


def _village_select() -> Select[Any]:
    buildings = (
        select(json_rows(_b.c.slot, _b.c.building_name, _b.c.level))
        .where(_b.c.village_id == _v.c.id)
        .scalar_subquery()
    )
    queue = (
        select(json_rows(*_QUEUE_COLUMNS))
        .where(_q.c.village_id == _v.c.id)
        .scalar_subquery()
    )
    return (
        select(*_COLUMNS, buildings.label("buildings"), queue.label("queue"))
        .select_from(_v.join(_p, _p.c.id == _v.c.player_id).join(_r, _r.c.village_id == _v.c.id))
    )


_COLUMNS = (
    _v.c.id, _v.c.name, _v.c.player_id, _v.c.x, _v.c.y, _v.c.population, _v.c.is_capital,
    _p.c.tribe, _r.c.wood, _r.c.clay, _r.c.iron, _r.c.wheat, _r.c.wood_production,
    _r.c.clay_production, _r.c.iron_production, _r.c.wheat_production,
    _r.c.warehouse_capacity, _r.c.granary_capacity, _r.c.updated_at,
)
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
_BY_ID = prepared.prepare(
    "tr_village", VILLAGE_SELECT.where(_v.c.id == bindparam("village_id")))
_BY_ID_TRAINING = prepared.prepare(
    "tr_village_training",
    VILLAGE_SELECT.add_columns(_training_ends().label("training"))
    .where(_v.c.id == bindparam("village_id")),
)
# The lock is its own statement: on PostgreSQL a ``SELECT ... FOR UPDATE`` that waited for
# the lock re-reads only the locked row, while its subqueries (the queue, the buildings) keep
# the snapshot from before the wait. Reading after the lock sees every write committed before.
_LOCK_SELECT = (
    select(_r.c.village_id).where(_r.c.village_id == bindparam("village_id")).with_for_update())
_LOCK = prepared.prepare("tr_village_lock", _LOCK_SELECT)
# The same lock carrying the transaction's outcome key (``session.fold_outcome_key``) when
# it is the transaction's first statement: the key's insert is a statement fewer.
_LOCK_KEYED = prepared.prepare(
    "tr_village_lock_keyed",
    _LOCK_SELECT.add_cte(insert(schema.idempotency_keys).values(
        player_id=bindparam("key_player"), key=bindparam("key_value"),
        request_hash=literal_column("''"),
        created_at=bindparam("key_at", type_=schema.UTCDateTime())).cte("outcome_key")),
)
_BY_PLAYER = prepared.prepare(
    "tr_villages_of",
    VILLAGE_SELECT.where(_v.c.player_id == bindparam("player_id")).order_by(
        _v.c.is_capital.desc(), _v.c.population.desc(), _v.c.id),
)
_BY_IDS = prepared.prepare(
    "tr_villages_by_ids", VILLAGE_SELECT.where(_v.c.id == any_(bindparam("village_ids"))))
_AT = prepared.prepare(
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
    buildings: list[Building]
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


def _order(q: Any, village_id: int) -> BuildOrder:
    return BuildOrder(id=int(q[0]), village_id=village_id, position=int(q[1]), slot=int(q[2]),
                      building=str(q[3]), target_level=int(q[4]),
                      cost=Resources(int(q[5]), int(q[6]), int(q[7]), int(q[8])),
                      started_at=as_utc(q[9]), completes_at=as_utc(q[10]))


def state_from_row(row: Any, now: datetime) -> VillageState:
    buildings = sorted([_building(*b) for b in row.buildings or ()], key=_slot)
    training = (row.training or ()) if "training" in row._fields else None
    return _state(row, buildings, now, training)


def _state(row: Any, buildings: list[Building], now: datetime, training: Any = None
           ) -> VillageState:
    queue: list[BuildOrder] = []
    if row.queue:
        village_id = int(row.id)
        queue = sorted((_order(q, village_id) for q in row.queue), key=lambda o: o.position)
    production = Resources(
        row.wood_production, row.clay_production, row.iron_production, row.wheat_production
    )
    updated_at: datetime = row.updated_at
    stock = settle_stock(
        (row.wood, row.clay, row.iron, row.wheat),
        production,
        warehouse_capacity=row.warehouse_capacity,
        granary_capacity=row.granary_capacity,
        elapsed_seconds=(now - updated_at).total_seconds(),
    )
    return VillageState(
        id=int(row.id),
        name=row.name,
        player_id=int(row.player_id),
        x=row.x,
        y=row.y,
        population=row.population,
        is_capital=bool(row.is_capital),
        tribe=row.tribe,
        stock=stock,
        production=production,
        warehouse_capacity=row.warehouse_capacity,
        granary_capacity=row.granary_capacity,
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
        at = as_utc(row.updated_at)
        if pg:
            built = sorted(map(_building, row.slots or (), row.names or (), row.levels or ()),
                           key=_slot)
            state = _state(row, built, at)
        else:
            state = state_from_row(row, at)
        out.append((state, (row.wood, row.clay, row.iron, row.wheat)))
    return out


def load_village(conn: Connection, village_id: int, now: datetime) -> VillageState:
    return state_from_row(_village_row(conn, village_id), now)


def _village_row(conn: Connection, village_id: int) -> Any:
    row = prepared.run(conn, _BY_ID, params={"village_id": village_id}).first()
    if row is None:
        raise NotFound(f"village {village_id} does not exist")
    return row


def _locked_row(conn: Connection, village_id: int, *, training: bool = False) -> Any:
    """Take the village's write lock, then read it: NotFound when it does not exist.

    PostgreSQL: ``SELECT ... FOR UPDATE`` on the resources row, then the read, as two
    statements in one round trip; a village whose lock the transaction already holds (an
    earlier step took it) is only read. SQLite: the session already holds the database
    write lock (``BEGIN IMMEDIATE``), so the read is all.
    """
    read = _BY_ID_TRAINING if training else _BY_ID
    params: dict[str, Any] = {"village_id": village_id}
    held = None
    if conn.dialect.name != "postgresql":
        steps: tuple[prepared.Prepared, ...] = (read,)
    elif (held := held_locks(conn)) is not None and village_id in held:
        steps = (read,)
    else:
        key = fold_outcome_key(conn)
        if key is not None:
            params.update(key)
        steps = (_LOCK if key is None else _LOCK_KEYED, read)
    row = prepared.run(conn, *steps, params=params).first()
    if row is None:
        raise NotFound(f"village {village_id} does not exist")
    if held is not None:
        held.add(village_id)
    return row


def lock_village(
    conn: Connection, village_id: int, actor: int, now: datetime, *, action: str,
    training: bool = False, step: int | None = None,
) -> VillageState:
    """Load the village for a write, holding its row lock until the transaction ends
    (``training``: with ``training_ends`` read too). ``step``: the session's write step
    (``SqlRepository._step``), to start from the state the step before left (``keep_state``)."""
    state = None if step is None else _kept(conn, village_id, now, step, training)
    if state is None:
        state = state_from_row(_locked_row(conn, village_id, training=training), now)
    check_owner(state.player_id, actor, village_id, action)
    return state


# conn.info[KEPT]: (state, the transaction's held-locks set, step) of the village a write
# step left behind (``keep_state``).


def keep_state(conn: Connection, state: VillageState, step: int) -> None:
    """Remember ``state`` (read under its lock, with ``training_ends``, and brought up to date
    by the caller with what its step wrote) for the next write step of the same transaction:
    it is what that step would read back, so it need not send the read.

    Only a village whose lock this transaction holds (PostgreSQL). The next step uses it
    when it is the very next write step of the same transaction (every write runs as a
    session step, which counts it) and no step was undone since (an undone step replaces
    the held-locks set); any other step drops it unused."""
    held = held_locks(conn)
    if held is not None and state.id in held:
        conn.info[KEPT] = (state, held, step)


def _kept(conn: Connection, village_id: int, now: datetime, step: int, training: bool
          ) -> VillageState | None:
    kept: tuple[VillageState, set[int], int] | None = conn.info.pop(KEPT, None)
    if kept is None:
        return None
    state, held, at_step = kept
    if (state.id != village_id or step != at_step + 1 or held is not held_locks(conn)
            or village_id not in held or not state.training_read and training):
        return None
    # Settled from its last write to now, as a read of the stored row is.
    state = copy.copy(state)
    state.stock = settle_stock(
        state.stock, state.production, warehouse_capacity=state.warehouse_capacity,
        granary_capacity=state.granary_capacity,
        elapsed_seconds=(now - state.now).total_seconds())
    state.now = now
    return state


def lock_settled(conn: Connection, village_id: int, at: datetime) -> VillageState:
    """Lock a village, whoever owns it, and load it with its stock settled to ``at``, or to
    its last write when that is later (an event due before a player's write happens on the
    stock as that write left it)."""
    row = _locked_row(conn, village_id)
    return state_from_row(row, max(at, as_utc(row.updated_at)))


def take_lock(conn: Connection, village_id: int) -> None:
    """Lock one village's resources row (its write lock), or NotFound."""
    if prepared.run(conn, _LOCK, params={"village_id": village_id}).first() is None:
        raise NotFound(f"village {village_id} does not exist")


def check_owner(owner: int, actor: int, village_id: int, action: str) -> None:
    """Forbidden unless the acting player owns the village (the one wording everywhere)."""
    if owner != actor:
        raise Forbidden(f"village {village_id} is not yours (player {actor}); {action} denied")


def spend(conn: Connection, state: VillageState, cost: Resources) -> None:
    """Take ``cost`` from the settled stock, or raise InsufficientResources (nothing written)."""
    store(conn, state, _after_paying(state, cost))


def spend_with(
    conn: Connection, state: VillageState, cost: Resources, insert: Insert,
    params: dict[str, Any],
) -> prepared.Rows:
    """``spend``, and run ``insert`` with ``params`` (what was paid for); its rows.

    ``insert`` is built once, with bind parameters named ``p_...`` (no column's name), and
    ``stock_village`` / ``stock_at`` for the village and the time (the stock update's: each
    value is sent once); ``params`` gets the stock update's added. On PostgreSQL the stock
    update rides in it as a data-modifying CTE (``paid_with``): one statement, not two,
    prepared when the caller registered it.
    """
    stock = _after_paying(state, cost)
    params.update(_stock_params(state, stock))
    if conn.dialect.name != "postgresql":
        store(conn, state, stock)
        return conn.execute(insert, params)
    result = prepared.execute(conn, paid_with(insert), params)
    state.stock = stock
    return result


def _after_paying(state: VillageState, cost: Resources) -> Stock:
    available = state.available
    if not available.covers(cost):
        raise InsufficientResources(required=cost, available=available)
    return tuple(s - c for s, c in zip(state.stock, cost))  # type: ignore[return-value]


# The stock update, built once (building a statement per call costs more than sending it).
_STORE = (
    update(_r)
    .where(_r.c.village_id == bindparam("stock_village"))
    .values(wood=bindparam("stock_wood"), clay=bindparam("stock_clay"),
            iron=bindparam("stock_iron"), wheat=bindparam("stock_wheat"),
            updated_at=bindparam("stock_at", type_=schema.UTCDateTime()))
)


@functools.cache
def paid_with(insert: Insert) -> Insert:
    return insert.add_cte(_STORE.cte("spent"))


def _stock_params(state: VillageState, stock: Stock) -> dict[str, Any]:
    return {"stock_village": state.id, "stock_wood": stock[0], "stock_clay": stock[1],
            "stock_iron": stock[2], "stock_wheat": stock[3], "stock_at": state.now}


def store(conn: Connection, state: VillageState, stock: Stock) -> None:
    """Write the stock as of ``state.now`` (the caller holds the lock)."""
    conn.execute(_STORE, _stock_params(state, stock))
    state.stock = stock


def add_stock(conn: Connection, state: VillageState, amount: Resources) -> None:
    """Add resources (a refund, a delivery, loot brought home), capped by storage.

    A stock above its cap (storage lost since it was settled) is cut to the cap, as
    ``settle_stock`` does on every read: the game keeps no stock beyond storage.
    """
    caps = (state.warehouse_capacity,) * 3 + (state.granary_capacity,)
    stock = tuple(min(float(cap), s + a) for s, a, cap in zip(state.stock, amount, caps))
    store(conn, state, stock)  # type: ignore[arg-type]


def load_player_villages(conn: Connection, player_id: int, now: datetime) -> list[VillageState]:
    """The player's villages, capital first, then by population."""
    rows = prepared.run(conn, _BY_PLAYER, params={"player_id": player_id})
    return [state_from_row(row, now) for row in rows]


def load_villages(
    conn: Connection, village_ids: Sequence[int], now: datetime
) -> dict[int, VillageState]:
    """Several villages in one statement, by id (those that exist)."""
    if conn.dialect.name == "postgresql":
        rows: Iterable[Any] = prepared.run(conn, _BY_IDS, params={"village_ids": list(village_ids)})
    else:
        rows = conn.execute(VILLAGE_SELECT.where(_v.c.id.in_(sorted(set(village_ids)))))
    return {int(row.id): state_from_row(row, now) for row in rows}


def load_village_at(conn: Connection, x: int, y: int, now: datetime) -> VillageState | None:
    row = prepared.run(conn, _AT, params={"x": x, "y": y}).first()
    return None if row is None else state_from_row(row, now)


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


def lock_villages(
    conn: Connection, village_ids: Iterable[int], now: datetime
) -> dict[int, VillageState]:
    """Lock several villages for one write, whoever owns them: lowest id first, always, so
    two writers locking the same pair on PostgreSQL cannot deadlock. NotFound for a missing
    one. The caller checks ownership (``VillageState.player_id``)."""
    ordered = sorted(set(village_ids))
    for village_id in ordered:
        take_lock(conn, village_id)
    return {village_id: load_village(conn, village_id, now) for village_id in ordered}


def lock_in_order(conn: Connection, village_ids: Iterable[int]) -> None:
    """Lock several villages' write locks in one statement, lowest id first (PostgreSQL
    locks the rows in the sorted order), so writers locking overlapping sets cannot
    deadlock. Villages that do not exist are skipped; nothing is read."""
    ordered = sorted(set(village_ids))
    if ordered:
        conn.execute(
            select(_r.c.village_id)
            .where(_r.c.village_id.in_(ordered))
            .order_by(_r.c.village_id)
            .with_for_update()
        ).all()


def close_up_queue(conn: Connection, village_id: int) -> None:
    """Renumber a village's build orders 1..n in their order, after an order left (the
    caller holds the village lock).

    One row at a time, lowest position first, each into a position already free: a unique
    (village, position) constraint checked row by row never sees two orders at one position.
    """
    rows = conn.execute(
        select(_q.c.id, _q.c.queue_position)
        .where(_q.c.village_id == village_id)
        .order_by(_q.c.queue_position)
    ).all()
    for position, row in enumerate(rows, start=1):
        if row.queue_position != position:
            move_order(conn, int(row.id), int(row.queue_position), queue_position=position)


def move_order(conn: Connection, order_id: int, position: int, **values: Any) -> None:
    """Update one build order still at ``position``; Conflict when it is gone or moved (only
    when something bypassed the village lock)."""
    changed = conn.execute(
        update(_q).where(_q.c.id == order_id, _q.c.queue_position == position).values(**values)
    ).rowcount
    if changed != 1:
        raise Conflict(f"build order {order_id} changed under a write; try again")

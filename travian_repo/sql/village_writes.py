"""A village written: its write lock taken, then read; its stock spent or added to; its
build queue renumbered.

Lock, then read: every write here takes the village's row lock in its own statement and
reads what it decides on after the lock (``village_state`` holds the statements and the
read itself, so a read and a write compute the stock the same way).
"""

from __future__ import annotations

import copy
import functools
from datetime import datetime
from typing import Any, Iterable

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.sql.dml import Insert

from travian_repo.domain.errors import Conflict, Forbidden, InsufficientResources, NotFound
from travian_repo.domain.values import Resources
from travian_repo.rules.stock import Stock, settle_stock
from travian_repo.sql import prepared, schema
from travian_repo.sql.ahead import KEPT, fold_outcome_key, held_locks
from travian_repo.sql.village_state import (
    BY_ID, BY_ID_TRAINING, LOCK, LOCK_KEYED, VillageState, load_village, state_from_row,
    stored_at,
)

_r = schema.village_resources
_q = schema.build_queue


def _locked_row(conn: Connection, village_id: int, *, training: bool = False) -> Any:
    """Take the village's write lock, then read it: NotFound when it does not exist.

    PostgreSQL: ``SELECT ... FOR UPDATE`` on the resources row, then the read, as two
    statements in one round trip; a village whose lock the transaction already holds (an
    earlier step took it) is only read. SQLite: the session already holds the database
    write lock (``BEGIN IMMEDIATE``), so the read is all.
    """
    read = BY_ID_TRAINING if training else BY_ID
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
        steps = (LOCK if key is None else LOCK_KEYED, read)
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
    return state_from_row(row, max(at, stored_at(row)))


def take_lock(conn: Connection, village_id: int) -> None:
    """Lock one village's resources row (its write lock), or NotFound."""
    if prepared.run(conn, LOCK, params={"village_id": village_id}).first() is None:
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

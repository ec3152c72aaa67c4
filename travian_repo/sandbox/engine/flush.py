"""Writing a batch's changes back: one statement per kind of change, each checking that it
changed exactly the rows it meant to (else Conflict: something bypassed the locks, and the
batch rolls back)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

from sqlalchemy import Connection, delete, exists, select, update

from travian_repo.domain.errors import Conflict
from travian_repo.sandbox.engine.due import among
from travian_repo.sandbox.engine.held import UNSAVED, Held
from travian_repo.sql import schema
from travian_repo.sql.bulk import delete_rows, insert_rows, update_rows, upsert_rows
from travian_repo.sql.village_writes import close_up_queue

_r, _v, _p = schema.village_resources, schema.villages, schema.players
_b, _t, _m, _s = schema.village_buildings, schema.troops, schema.movements, schema.shipments
_q, _tq, _to, _rep = schema.build_queue, schema.training_queue, schema.training_orders, schema.reports

_RESOURCES = ["wood", "clay", "iron", "wheat", "updated_at", "wood_production",
              "clay_production", "iron_production", "wheat_production", "warehouse_capacity",
              "granary_capacity"]


def expect(done: int, wanted: int, what: str) -> None:
    if done != wanted:
        raise Conflict(f"{what} changed under the engine ({done} of {wanted} rows); "
                       "the batch was undone")


def flush(conn: Connection, held: Held, when: datetime, emit: Callable[..., None]) -> int:
    """Write everything; then hand the batch's domain events on, in the order they
    happened. The number of merchants that came home."""
    _villages(conn, held)
    _buildings(conn, held)
    _troops(conn, held)
    _queues(conn, held)
    _movements(conn, held)
    home = _shipments(conn, held, when)
    _reports(conn, held)
    for (kind, player), data in zip(held.events, held.event_data):
        emit(kind, player, **data)
    return home


def _villages(conn: Connection, held: Held) -> None:
    rows = []
    pop: list[tuple[int, int]] = []
    players: dict[int, int] = {}
    for vid, v in sorted(held.villages.items()):
        s = v.state
        if v.dirty:
            p = s.production
            rows.append((vid, *v.stock, v.stored_at, p.wood, p.clay, p.iron, p.wheat,
                         s.warehouse_capacity, s.granary_capacity))
        if s.population != v.population:
            pop.append((vid, s.population))
            players[s.player_id] = players.get(s.player_id, 0) + s.population - v.population
    expect(update_rows(conn, _r, ["village_id"], _RESOURCES, rows), len(rows), "village stock")
    expect(update_rows(conn, _v, ["id"], ["population"], pop), len(pop), "village population")
    deltas = [(p, d) for p, d in sorted(players.items()) if d]
    expect(update_rows(conn, _p, ["id"], ["population"], deltas, add=True), len(deltas),
           "player population")


def _buildings(conn: Connection, held: Held) -> None:
    changed: list[tuple[int, int, str, int]] = []
    added: list[dict[str, Any]] = []
    gone: list[tuple[int, int]] = []
    for vid, was in sorted(held.built.items()):
        now = {b.slot: (b.name, b.level) for b in held.villages[vid].state.buildings}
        for slot, (name, level) in sorted(now.items()):
            if slot not in was:
                added.append(dict(village_id=vid, slot=slot, building_name=name, level=level))
            elif was[slot] != (name, level):
                changed.append((vid, slot, name, level))
        gone += [(vid, slot) for slot in sorted(was.keys() - now.keys())]
    expect(update_rows(conn, _b, ["village_id", "slot"], ["building_name", "level"], changed),
           len(changed), "a building")
    expect(delete_rows(conn, _b, ["village_id", "slot"], gone), len(gone), "a building")
    insert_rows(conn, _b, added)


def _troops(conn: Connection, held: Held) -> None:
    keep, drop = [], []
    for vid, unit in sorted(held.troops_changed):
        n = held.villages[vid].troops.get(unit, 0)
        if n > 0:
            keep.append(dict(village_id=vid, unit=unit, count=n))
        else:
            drop.append((vid, unit))
    upsert_rows(conn, _t, ["village_id", "unit"], keep)
    delete_rows(conn, _t, ["village_id", "unit"], drop)


def _queues(conn: Connection, held: Held) -> None:
    done = sorted(held.builds_done)
    expect(delete_rows(conn, _q, ["id"], [(i,) for i in done]), len(done), "a build order")
    for vid in sorted(held.queue_closed):
        close_up_queue(conn, vid)
    gone = [(i, was) for i, (was, _, out) in sorted(held.lines.items()) if out]
    moved = [(i, now, was) for i, (was, now, out) in sorted(held.lines.items()) if not out]
    expect(delete_rows(conn, _tq, ["id", "trained"], gone), len(gone), "a training line")
    expect(update_rows(conn, _tq, ["id"], ["trained"], moved, match=["trained"]), len(moved),
           "a training line")
    if held.orders:  # an order goes with its last line
        conn.execute(_ORDERS_DONE[conn.dialect.name], {"ids": sorted(held.orders)})


# Built once (no statement compiled or cache-keyed per batch).
_ORDERS_DONE = {dialect: delete(_to).where(
    among(_to.c.id, dialect), ~exists(select(_tq.c.id).where(_tq.c.order_id == _to.c.id)))
    for dialect in ("postgresql", "sqlite")}


def _movements(conn: Connection, held: Held) -> None:
    simple: dict[tuple[str, str], list[int]] = {}
    for mid, (was, values) in sorted(held.moved.items()):
        if set(values) == {"state"}:
            simple.setdefault((was, values["state"]), []).append(mid)
        else:
            expect(conn.execute(update(_m).where(_m.c.id == mid, _m.c.state == was)
                                .values(**values)).rowcount, 1, f"movement {mid}")
    for (was, state), ids in sorted(simple.items()):
        expect(update_rows(conn, _m, ["id"], ["state"], [(i, state, was) for i in ids],
                           match=["state"]), len(ids), f"a movement ({was})")
    ids = insert_rows(conn, _m, held.new_movements, _m.c.id if held.renumber else None)
    for data in held.renumber:
        data["movement_id"] = int(ids[data["movement_id"] - UNSAVED])


def _shipments(conn: Connection, held: Held, when: datetime) -> int:
    """Deliveries (underway -> returning) and merchants home (returning -> done); a shipment
    both delivered and home in the batch goes from underway to done in the one statement."""
    home = set(held.merchants)
    shipped = [(i, "done" if i in home else "returning", "underway") for i in held.shipped]
    expect(update_rows(conn, _s, ["id"], ["state"], shipped, match=["state"]), len(shipped),
           "a shipment (underway)")
    back = sorted(home.difference(held.shipped))
    # Merchants found without a lock (they name no village): one gone is not counted.
    came = int(update_rows(conn, _s, ["id"], ["state"], [(i, "done", "returning") for i in back],
                           match=["state"]) or 0)
    return len(home) - len(back) + came


def _reports(conn: Connection, held: Held) -> None:
    ids = insert_rows(conn, _rep, held.reports, _rep.c.id, encoded=True)
    for event, report_id in zip(held.report_events, ids):
        event["report_id"] = int(report_id)

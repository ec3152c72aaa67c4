"""Shipments arriving (resources added to the target's stock) and merchants coming home."""

from __future__ import annotations

from sqlalchemy import select, update

from travian_repo.domain import events
from travian_repo.domain.values import Resources
from travian_repo.sandbox.engine.due import Due
from travian_repo.sandbox.engine.step import Outcome, Step, set_state
from travian_repo.sql import schema
from travian_repo.sql.schema import as_utc
from travian_repo.sql.village_state import add_stock

_v = schema.villages
_s = schema.shipments


def deliver(step: Step, due: Due) -> Outcome:
    conn, when = step.conn, step.when
    state = step.lock(due.target, due.at)
    row = conn.execute(
        select(_s)
        .where(_s.c.id == due.id, _s.c.state == "underway", _s.c.arrives_at <= when)
        .with_for_update()
    ).first()
    if row is None:
        return Outcome()
    add_stock(conn, state, Resources(row.wood, row.clay, row.iron, row.wheat))
    set_state(conn, _s, row.id, "underway", state="returning")
    sender = conn.execute(select(_v.c.player_id).where(_v.c.id == due.source)).scalar_one()
    data = dict(shipment_id=int(row.id), from_village_id=int(row.from_village_id),
                to_village_id=int(row.to_village_id))
    step.emit(events.RESOURCES_ARRIVED, state.player_id, **data)
    if int(sender) != state.player_id:
        step.emit(events.RESOURCES_ARRIVED, int(sender), **data)
    follow = []
    if as_utc(row.returns_at) <= when:
        follow.append(Due.of("merchants", row.returns_at, row.id))
    return Outcome(1, follow)


def merchants_home(step: Step, due: Due) -> Outcome:
    changed = step.conn.execute(
        update(_s)
        .where(_s.c.id == due.id, _s.c.state == "returning", _s.c.returns_at <= step.when)
        .values(state="done")
    ).rowcount
    return Outcome(1 if changed == 1 else 0)

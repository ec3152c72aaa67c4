"""A build order completing: the building gets the level it was ordered for."""

from __future__ import annotations

from sqlalchemy import delete, select

from travian_repo.domain import events
from travian_repo.sandbox.engine.due import Due
from travian_repo.sandbox.engine.step import Outcome, Step, changed
from travian_repo.sql import schema
from travian_repo.sql.derived import apply_level
from travian_repo.sql.village_state import close_up_queue

_q = schema.build_queue


def complete_build(step: Step, due: Due) -> Outcome:
    conn = step.conn
    state = step.lock(due.source, due.at)
    order = conn.execute(
        select(_q).where(_q.c.id == due.id, _q.c.completes_at <= step.when).with_for_update()
    ).first()  # None: cancelled meanwhile
    if order is None:
        return Outcome()
    apply_level(conn, state, order.slot, order.building_name, order.target_level)
    changed(conn.execute(delete(_q).where(_q.c.id == order.id)), f"build order {order.id}")
    close_up_queue(conn, state.id)
    step.emit(events.BUILD_COMPLETED, state.player_id, village_id=state.id,
              building=order.building_name, level=order.target_level)
    return Outcome(1)

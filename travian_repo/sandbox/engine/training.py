"""Units finishing training, one by one: a run of units of one line with nothing else due
in between is one step that counts one event per unit."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from travian_repo.domain import events
from travian_repo.rules.units import upkeep
from travian_repo.sandbox.engine.due import Due
from travian_repo.sandbox.engine.step import Outcome, Step, changed
from travian_repo.sql import schema
from travian_repo.sql.derived import upkeep_changed
from travian_repo.sql.schema import as_utc
from travian_repo.sql.troops import add_troops

_tq = schema.training_queue
_to = schema.training_orders


def train_units(step: Step, due: Due) -> Outcome:
    conn, when, after = step.conn, step.when, step.after
    state = step.lock(due.source, due.at)
    line = conn.execute(select(_tq).where(_tq.c.id == due.id).with_for_update()).first()
    if line is None:
        return Outcome()
    started = as_utc(line.started_at)

    def unit_time(k: int) -> datetime:  # the k-th unit (1-based) is ready
        return started + timedelta(seconds=line.seconds_each * k)

    done = line.trained
    while done < line.count:
        at = unit_time(done + 1)
        if at > when or (after is not None and Due.of("train", at, line.id) > after):
            break
        done += 1
    new = done - line.trained
    if new == 0:
        return Outcome()
    add_troops(conn, state.id, {line.unit: new})
    if done >= line.count:
        changed(conn.execute(delete(_tq).where(_tq.c.id == line.id, _tq.c.trained == line.trained)),
                f"training line {line.id}")
        left = conn.execute(
            select(_tq.c.id).where(_tq.c.order_id == line.order_id).limit(1)
        ).first()
        if left is None:
            changed(conn.execute(delete(_to).where(_to.c.id == line.order_id)),
                    f"training order {line.order_id}")
    else:
        changed(conn.execute(update(_tq).where(_tq.c.id == line.id, _tq.c.trained == line.trained)
                             .values(trained=done)), f"training line {line.id}")
    state.now = max(state.now, unit_time(done))
    upkeep_changed(conn, state, upkeep(state.tribe, {line.unit: new}))
    step.emit(events.TROOPS_TRAINED, state.player_id, village_id=state.id,
              unit=line.unit, count=new)
    follow = []
    if done < line.count and unit_time(done + 1) <= when:
        follow.append(Due.of("train", unit_time(done + 1), line.id, state.id))
    return Outcome(new, follow)

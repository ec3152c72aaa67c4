"""Units finishing training, one by one: a run of units of one line with nothing else due
in between is one step that counts one event per unit."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from travian_repo.domain import events
from travian_repo.rules.units import upkeep
from travian_repo.sandbox.engine.due import ORDER, Due
from travian_repo.sandbox.engine.step import Outcome, Step
from travian_repo.sql.schema import as_utc

_TRAIN = ORDER["train"]


def train_units(step: Step, due: Due, line: Any) -> Outcome:
    held, when, after = step.held, step.when, step.after
    state = step.lock(due.source, due.at)
    line_id, count, each, unit = int(line.id), line.count, line.seconds_each, line.unit
    was, trained, _ = held.lines.get(line_id, (line.trained, line.trained, False))
    started = as_utc(line.started_at)

    def unit_time(k: int) -> datetime:  # the k-th unit (1-based) is ready
        return started + timedelta(seconds=each * k)

    # A unit waits when the batch's next event comes first: compared as Due orders them.
    stop = None if after is None else (after.at, after.order, after.id)
    done, last, at = trained, state.now, unit_time(trained + 1)  # ``at``: the next unit's
    while done < count:
        if at > when or (stop is not None and (at, _TRAIN, line_id) > stop):
            break
        done += 1
        last, at = at, unit_time(done + 1)
    new = done - trained
    if new == 0:
        return Outcome()
    held.add_troops(state.id, {unit: new})
    held.lines[line_id] = (was, done, done >= count)
    if done >= count:
        held.orders.add(int(line.order_id))
    state.now = max(state.now, last)
    held.upkeep_changed(state, upkeep(state.tribe, {unit: new}))
    step.emit(events.TROOPS_TRAINED, state.player_id, village_id=state.id,
              unit=unit, count=new)
    follow = []
    if done < count and at <= when:
        follow.append(Due.of("train", at, line_id, state.id))
    return Outcome(new, follow)

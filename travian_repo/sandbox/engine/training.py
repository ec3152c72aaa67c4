"""Units finishing training, one by one: a run of units of one line with nothing else due
in between is one step that counts one event per unit."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from travian_repo.domain import events
from travian_repo.rules.units import upkeep
from travian_repo.sandbox.engine.due import Due
from travian_repo.sandbox.engine.step import Outcome, Step
from travian_repo.sql.schema import as_utc


def train_units(step: Step, due: Due, line: Any) -> Outcome:
    held, when, after = step.held, step.when, step.after
    state = step.lock(due.source, due.at)
    was, trained, _ = held.lines.get(int(line.id), (line.trained, line.trained, False))
    started = as_utc(line.started_at)

    def unit_time(k: int) -> datetime:  # the k-th unit (1-based) is ready
        return started + timedelta(seconds=line.seconds_each * k)

    done = trained
    while done < line.count:
        at = unit_time(done + 1)
        if at > when or (after is not None and Due.of("train", at, line.id) > after):
            break
        done += 1
    new = done - trained
    if new == 0:
        return Outcome()
    held.add_troops(state.id, {line.unit: new})
    held.lines[int(line.id)] = (was, done, done >= line.count)
    if done >= line.count:
        held.orders.add(int(line.order_id))
    state.now = max(state.now, unit_time(done))
    held.upkeep_changed(state, upkeep(state.tribe, {line.unit: new}))
    step.emit(events.TROOPS_TRAINED, state.player_id, village_id=state.id,
              unit=line.unit, count=new)
    follow = []
    if done < line.count and unit_time(done + 1) <= when:
        follow.append(Due.of("train", unit_time(done + 1), line.id, state.id))
    return Outcome(new, follow)

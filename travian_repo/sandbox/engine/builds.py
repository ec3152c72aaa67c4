"""A build order completing: the building gets the level it was ordered for."""

from __future__ import annotations

from typing import Any

from travian_repo.domain import events
from travian_repo.sandbox.engine.due import Due
from travian_repo.sandbox.engine.step import Outcome, Step


def complete_build(step: Step, due: Due, order: Any) -> Outcome:
    held = step.held
    state = step.lock(due.source, due.at)
    held.set_level(state, order.slot, order.building_name, order.target_level)
    held.builds_done.append(int(order.id))
    state.queue = [o for o in state.queue if o.id != order.id]
    if state.queue:  # the rest moves up
        held.queue_closed.add(state.id)
    step.emit(events.BUILD_COMPLETED, state.player_id, village_id=state.id,
              building=order.building_name, level=order.target_level)
    return Outcome(1)

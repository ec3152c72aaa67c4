"""Shipments arriving (resources added to the target's stock); merchants coming home are
the batch's one statement (``Held.merchants``)."""

from __future__ import annotations

from typing import Any

from travian_repo.domain import events
from travian_repo.domain.values import Resources
from travian_repo.sandbox.engine.due import Due
from travian_repo.sandbox.engine.reports import trade_reports
from travian_repo.sandbox.engine.step import Outcome, Step
from travian_repo.sql.schema import as_utc


def deliver(step: Step, due: Due, row: Any) -> Outcome:
    held = step.held
    state = step.lock(due.target, due.at)
    held.add_stock(state, Resources(row.wood, row.clay, row.iron, row.wheat))
    held.shipped.append(int(row.id))
    sender = held.owners[due.source]
    data = dict(shipment_id=int(row.id), from_village_id=int(row.from_village_id),
                to_village_id=int(row.to_village_id))
    step.emit(events.RESOURCES_ARRIVED, state.player_id, **data)
    if int(sender) != state.player_id:
        step.emit(events.RESOURCES_ARRIVED, int(sender), **data)
    trade_reports(step, row, int(sender), state, due.at)
    follow = []
    if as_utc(row.returns_at) <= step.when:
        follow.append(Due.of("merchants", row.returns_at, row.id))
    return Outcome(1, follow)

"""Movements arriving: troops coming home, reinforcements taking their station, and
hostile arrivals (scouting, battles) handed to their processors."""

from __future__ import annotations

from typing import Any

from travian_repo.domain import events
from travian_repo.domain.values import Resources
from travian_repo.sandbox.engine.battles import resolve_battle
from travian_repo.sandbox.engine.combat import counts
from travian_repo.sandbox.engine.due import HOSTILE, Due
from travian_repo.sandbox.engine.held import Stationed, Unsaved
from travian_repo.sandbox.engine.scouts import scout
from travian_repo.sandbox.engine.step import Outcome, Step
from travian_repo.sql.schema import as_utc


def involved(step: Step, due: Due) -> set[int]:
    """The villages an arrival changes: a hostile one (or scouts) also the homes of the
    troops standing in its target (they may lose some; scouts see their tribe)."""
    ids = {due.source, due.target}
    if due.kind in HOSTILE or due.kind == "scout":
        ids |= step.held.homes_in(due.target)
    return ids


def arrive(step: Step, due: Due, mv: Any) -> Outcome:
    held = step.held
    states = {vid: step.lock(vid, due.at) for vid in sorted(involved(step, due))}
    at = as_utc(mv.arrives_at)
    arrived = dict(movement_id=int(mv.id), kind=str(mv.kind),
                   from_village_id=int(mv.from_village_id),
                   to_village_id=int(mv.to_village_id))
    if mv.kind == "return":
        home = states[int(mv.to_village_id)]
        held.add_troops(home.id, counts(mv.troops))
        loot = Resources(mv.wood, mv.clay, mv.iron, mv.wheat)
        if loot.total:
            held.add_stock(home, loot)
        held.move(int(mv.id), "underway", state="done")
        data = step.emit(events.MOVEMENT_ARRIVED, int(mv.player_id), **arrived)
        if isinstance(mv, Unsaved):
            held.renumber.append(data)
        return Outcome(1)
    if mv.kind == "reinforcement":
        held.move(int(mv.id), "underway", state="stationed")
        groups = held.stationed.setdefault(int(mv.to_village_id), [])
        groups.append(Stationed(int(mv.id), int(mv.player_id), int(mv.from_village_id),
                                counts(mv.troops)))
        groups.sort(key=lambda g: g.id)
        target = states[int(mv.to_village_id)]
        step.emit(events.MOVEMENT_ARRIVED, int(mv.player_id), **arrived)
        if target.player_id != int(mv.player_id):
            step.emit(events.MOVEMENT_ARRIVED, target.player_id, **arrived)
        return Outcome(1)
    if mv.kind == "scout":
        scout(step, mv, states, at)
    else:
        resolve_battle(step, mv, states, at)
    step.emit(events.MOVEMENT_ARRIVED, int(mv.player_id), **arrived)
    return Outcome(1)

"""Movements arriving: troops coming home, reinforcements taking their station, and
hostile arrivals (scouting, battles) handed to their processors."""

from __future__ import annotations

from sqlalchemy import select

from travian_repo.domain import events
from travian_repo.domain.values import Resources
from travian_repo.sandbox.engine.battles import resolve_battle
from travian_repo.sandbox.engine.combat import counts
from travian_repo.sandbox.engine.due import HOSTILE, Due, stationed_homes
from travian_repo.sandbox.engine.scouts import scout
from travian_repo.sandbox.engine.step import Outcome, Step, set_state
from travian_repo.sql import schema
from travian_repo.sql.schema import as_utc
from travian_repo.sql.troops import add_troops
from travian_repo.sql.village_state import add_stock

_m = schema.movements


def arrive(step: Step, due: Due) -> Outcome:
    conn, when = step.conn, step.when
    ids = {due.source, due.target}
    if due.kind in HOSTILE:  # the homes of troops standing in the target may lose some
        # Read with the target locked: no reinforcement can be stationed there meanwhile.
        ids.update(int(r[0]) for r in conn.execute(stationed_homes([due.target])))
    step.need(ids)
    states = {vid: step.lock(vid, due.at) for vid in sorted(ids)}
    mv = conn.execute(
        select(_m)
        .where(_m.c.id == due.id, _m.c.state == "underway", _m.c.arrives_at <= when)
        .with_for_update()
    ).first()
    if mv is None:
        return Outcome()
    at = as_utc(mv.arrives_at)
    arrived = dict(movement_id=int(mv.id), kind=str(mv.kind),
                   from_village_id=int(mv.from_village_id),
                   to_village_id=int(mv.to_village_id))
    if mv.kind == "return":
        home = states[int(mv.to_village_id)]
        add_troops(conn, home.id, counts(mv.troops))
        loot = Resources(mv.wood, mv.clay, mv.iron, mv.wheat)
        if loot.total:
            add_stock(conn, home, loot)
        set_state(conn, _m, mv.id, "underway", state="done")
        step.emit(events.MOVEMENT_ARRIVED, int(mv.player_id), **arrived)
        return Outcome(1)
    if mv.kind == "reinforcement":
        set_state(conn, _m, mv.id, "underway", state="stationed")
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

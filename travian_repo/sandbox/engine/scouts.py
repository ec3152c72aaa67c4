"""Scouts arriving: the scouting fight, the survivors' way home and the reports."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from travian_repo.domain.values import Resources
from travian_repo.rules import battle
from travian_repo.rules.units import upkeep
from travian_repo.sandbox.engine import reports
from travian_repo.sandbox.engine.combat import (
    counts, defenders, morale_populations, send_back, wall_of,
)
from travian_repo.sandbox.engine.step import Step
from travian_repo.sql.village_state import VillageState


def scout(step: Step, mv: Any, states: dict[int, VillageState], at: datetime) -> None:
    held = step.held
    home = states[int(mv.from_village_id)]
    target = states[int(mv.to_village_id)]
    sent = counts(mv.troops)
    groups, armies = defenders(step, target, states)
    wall_name, _, wall_level = wall_of(target)
    result = battle.scout(battle.Army(home.tribe, sent), armies,
                          battle.wall(target.tribe, wall_level),
                          **morale_populations(step, home, target))
    survivors = {u: n for u, n in result.attacker.survivors.items() if n}
    lost = {u: n for u, n in result.attacker.lost.items() if n}
    if survivors:
        send_back(step, mv, survivors, Resources(), at)
    held.move(int(mv.id), "underway", state="done")
    if lost:
        held.upkeep_changed(home, -upkeep(home.tribe, lost))
    reports.scout_reports(
        step, mv, home, target, at, sent=sent, lost=lost, survivors=survivors,
        result=result, groups=groups, armies=armies, wall_name=wall_name,
        wall_level=wall_level,
    )

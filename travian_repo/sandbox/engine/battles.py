"""An attack, raid or siege arriving: the battle, the defenders' losses, wall and building
damage, the bounty carried home, and the reports.

A catapult target that is not given (or not standing) is the village's highest building
other than the wall (lowest slot on a tie), since the game's random target would make runs
unrepeatable; a building knocked to 0 is removed (a resource field stays at 0).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from travian_repo.domain.values import Building, Resources
from travian_repo.rules import battle
from travian_repo.rules.economy import cranny_capacity
from travian_repo.rules.units import upkeep
from travian_repo.sandbox.engine import reports
from travian_repo.sandbox.engine.combat import (
    counts, defenders, morale_populations, send_back, stationed_losses, wall_of,
)
from travian_repo.sandbox.engine.step import Step
from travian_repo.sql.village_state import VillageState


def resolve_battle(step: Step, mv: Any, states: dict[int, VillageState], at: datetime) -> None:
    held = step.held
    home = states[int(mv.from_village_id)]
    target = states[int(mv.to_village_id)]
    sent = counts(mv.troops)
    groups, armies = defenders(step, target, states)
    wall_name, wall_slot, wall_level = wall_of(target)
    aimed = catapult_target(target, mv.catapult_target, wall_name)
    result = battle.fight(
        battle.Army(home.tribe, sent),
        armies,
        kind=battle.RAID if mv.kind == "raid" else battle.NORMAL,
        wall_effect=battle.wall(target.tribe, wall_level),
        target_level=aimed.level if aimed else None,
        **morale_populations(step, home, target),
    )

    # Defenders' losses: troops at home, then each stationed group.
    eaten: dict[int, int] = {}  # village -> wheat per hour its dead troops no longer eat
    for group, cas in zip(groups, result.defenders):
        if not any(cas.lost.values()):
            continue
        eaten[group.village_id] = eaten.get(group.village_id, 0) + upkeep(
            group.tribe, cas.lost)
        if group.movement_id is None:
            held.remove_troops(target.id, cas.lost)
        else:
            stationed_losses(step, target, group.movement_id, cas.survivors)

    # Wall and building damage (the target's economy recomputed: population, production).
    if wall_slot is not None and result.wall_after != wall_level:
        held.set_level(target, wall_slot, wall_name, result.wall_after)
    building: dict[str, Any] | None = None
    if aimed is not None and result.target_after is not None:
        building = dict(name=aimed.name, slot=aimed.slot, before=aimed.level,
                        after=result.target_after)
        if result.target_after != aimed.level:
            held.set_level(target, aimed.slot, aimed.name, result.target_after)

    # Bounty, carried home by the survivors.
    survivors = {u: n for u, n in result.attacker.survivors.items() if n}
    loot = Resources()
    capacity = 0
    if survivors:
        capacity = battle.carry_capacity(battle.Army(home.tribe, survivors))
        hidden = battle.hidden_by_cranny(
            cranny_capacity(
                [b.level for b in target.buildings if b.name == "cranny"], tribe=target.tribe
            ),
            attacker_tribe=home.tribe,
        )
        loot = battle.bounty(capacity, target.available, hidden).taken
        if loot.total:
            left = tuple(s - n for s, n in zip(target.stock, loot))
            held.store(target, left)  # type: ignore[arg-type]
        send_back(step, mv, survivors, loot, at)
    held.move(int(mv.id), "underway", state="done")

    lost = {u: n for u, n in result.attacker.lost.items() if n}
    # Upkeep of every village whose troops died (a damaged target's economy was recomputed
    # with the upkeep it had before the battle).
    eaten[home.id] = eaten.get(home.id, 0) + upkeep(home.tribe, lost)
    for vid, wheat in sorted(eaten.items()):
        held.upkeep_changed(states[vid], -wheat)
    reports.battle_reports(
        step, mv, home, target, at,
        sent=sent, lost=lost, survivors=survivors, result=result, groups=groups,
        wall=dict(building=wall_name, before=wall_level, after=result.wall_after),
        building=building, loot=loot, capacity=capacity,
    )


def catapult_target(state: VillageState, wanted: str | None, wall_name: str) -> Building | None:
    """The building the catapults aim at: ``wanted`` if it stands, else the highest one other
    than the wall (lowest slot on a tie); None when nothing stands."""
    best: Building | None = None
    named: Building | None = None
    for b in state.buildings:  # one pass: the highest level, then the lowest slot, wins
        if b.level > 0 and b.name != wall_name:
            if best is None or (b.level, -b.slot) > (best.level, -best.slot):
                best = b
            if wanted and b.name == wanted and (
                    named is None or (b.level, -b.slot) > (named.level, -named.slot)):
                named = b
    return named if named is not None else best

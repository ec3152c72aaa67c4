"""What battles and scouting share: the groups defending a village, the players'
populations for morale, and the survivors' way home."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping

from travian_repo.domain.values import Resources
from travian_repo.rules import battle
from travian_repo.rules.buildings import WALLS
from travian_repo.sandbox.engine.due import ORDER, Due
from travian_repo.sandbox.engine.held import UNSAVED, Unsaved
from travian_repo.sandbox.engine.step import Step
from travian_repo.sql.schema import as_utc
from travian_repo.sql.village_state import VillageState

_RETURN = ORDER["return"]


@dataclass
class Group:
    """A defending group: the village's own troops at home, or a stationed movement's."""

    player_id: int
    village_id: int  # the troops' home
    tribe: str
    troops: dict[str, int]
    movement_id: int | None = None

    def payload(self, lost: Mapping[str, int] | None = None) -> dict[str, Any]:
        data: dict[str, Any] = dict(player_id=self.player_id, village_id=self.village_id,
                                    tribe=self.tribe, troops=self.troops)
        if lost is not None:
            data["lost"] = {u: n for u, n in lost.items() if n}
        return data


def counts(troops: Mapping[str, Any] | None) -> dict[str, int]:
    """A movement's stored troops as unit -> count, in name order, counts of 0 left out."""
    return {str(u): int(n) for u, n in sorted((troops or {}).items()) if int(n) > 0}


def defenders(
    step: Step, target: VillageState, states: dict[int, VillageState]
) -> tuple[list[Group], list[battle.Army]]:
    """The groups defending ``target``: its own troops at home, then each stationed
    movement (their home villages held, in ``states``)."""
    held = step.held
    home = dict(sorted(held.villages[target.id].troops.items()))
    groups = [Group(target.player_id, target.id, target.tribe, home)]
    for g in held.stationed.get(target.id, ()):
        groups.append(Group(g.player_id, g.home, states[g.home].tribe, dict(g.troops), g.id))
    return groups, [battle.Army(g.tribe, g.troops) for g in groups]


def wall_of(target: VillageState) -> tuple[str, int | None, int]:
    """The target's wall: its name, the slot of the first one standing (None: none stands)
    and its level (the highest), found in one pass over the buildings."""
    name = WALLS[target.tribe]
    slot: int | None = None
    level = 0
    for b in target.buildings:
        if b.name == name:
            if b.level > level:
                level = b.level
            if slot is None and b.level:
                slot = b.slot
    return name, slot, level


def stationed_losses(step: Step, target: VillageState, movement_id: int,
                     survivors: Mapping[str, int]) -> None:
    """A stationed group's survivors stay (or the movement ends when none is left)."""
    held = step.held
    alive = {u: n for u, n in survivors.items() if n}
    held.move(movement_id, "stationed", **({"troops": alive} if alive else {"state": "done"}))
    groups = held.stationed[target.id]
    for g in list(groups):
        if g.id == movement_id:
            if alive:
                g.troops = dict(sorted(alive.items()))
            else:
                groups.remove(g)


def morale_populations(step: Step, attacker: VillageState, target: VillageState
                       ) -> dict[str, int]:
    """The two players' total populations (their villages' sum), as the keyword arguments
    of ``battle.fight`` and ``battle.scout``; none when the world plays without morale.
    The batch read the sums when it began (the players' villages it does not hold, without
    a lock: their last committed population counts) and follows its own villages' changes."""
    held = step.held
    if not held.morale:
        return {}
    return dict(attacker_population=held.population_of(attacker.player_id),
                defender_population=held.population_of(target.player_id))


def send_back(step: Step, mv: Any, troops: Mapping[str, int], loot: Resources,
              at: datetime) -> None:
    """The survivors' way home: a ``return`` movement taking as long as the way out. When it
    is due before the run's end, the batch processes its arrival in turn (``Step.made``),
    before its row is written."""
    trip = as_utc(mv.arrives_at) - as_utc(mv.departed_at)
    held = step.held
    row: dict[str, Any] = dict(
        kind="return", player_id=int(mv.player_id), from_village_id=int(mv.to_village_id),
        to_village_id=int(mv.from_village_id), troops=dict(sorted(troops.items())),
        wood=loot.wood, clay=loot.clay, iron=loot.iron, wheat=loot.wheat, state="underway",
        departed_at=at, arrives_at=at + trip, catapult_target=None)
    held.new_movements.append(row)
    if at + trip <= step.when:
        unsaved = Unsaved(UNSAVED + len(held.new_movements) - 1, row)
        step.made.append((Due(at + trip, _RETURN, unsaved.id, "return", row["from_village_id"],
                              row["to_village_id"]), unsaved))

"""What battles and scouting share: the groups defending a village, the players'
populations for morale, and the survivors' way home."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping

from sqlalchemy import func, select, true

from travian_repo.domain.values import Resources
from travian_repo.rules import battle
from travian_repo.sandbox.engine.step import Step
from travian_repo.sql import schema
from travian_repo.sql.schema import as_utc
from travian_repo.sql.troops import home_troops, insert_movement
from travian_repo.sql.village_state import VillageState

_m = schema.movements
_v = schema.villages
_ws = schema.world_settings


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
    movement (their home villages locked, in ``states``)."""
    conn = step.conn
    stationed = list(conn.execute(
        select(_m.c.id, _m.c.player_id, _m.c.from_village_id, _m.c.troops)
        .where(_m.c.to_village_id == target.id, _m.c.state == "stationed")
        .order_by(_m.c.id)
        .with_for_update()
    ))
    for row in stationed:  # read with the target locked, so none is new; a guard only
        home_id = int(row.from_village_id)
        if home_id not in states:
            states[home_id] = step.lock(home_id, target.now)
    groups = [Group(target.player_id, target.id, target.tribe, home_troops(conn, target.id))]
    for row in stationed:
        home = states[int(row.from_village_id)]
        groups.append(Group(int(row.player_id), home.id, home.tribe, counts(row.troops),
                            int(row.id)))
    return groups, [battle.Army(g.tribe, g.troops) for g in groups]


def morale_populations(step: Step, attacker: VillageState, target: VillageState
                       ) -> dict[str, int]:
    """The two players' total populations (their villages' sum), as the keyword arguments
    of ``battle.fight`` and ``battle.scout``; none when the world plays without morale.
    The players' other villages are read without a lock (locking them here would break
    the batch's lock order): their last committed population counts."""
    players = {attacker.player_id, target.player_id}
    rows = step.conn.execute(
        select(_ws.c.morale, _v.c.player_id, func.sum(_v.c.population).label("population"))
        .select_from(_v.join(_ws, true()))
        .where(_v.c.player_id.in_(sorted(players)))
        .group_by(_ws.c.morale, _v.c.player_id)
    ).all()
    if not rows or not rows[0].morale:
        return {}
    total = {int(r.player_id): int(r.population) for r in rows}
    return dict(attacker_population=total.get(attacker.player_id, 0),
                defender_population=total.get(target.player_id, 0))


def send_back(step: Step, mv: Any, troops: Mapping[str, int], loot: Resources,
              at: datetime) -> None:
    """The survivors' way home: a ``return`` movement taking as long as the way out."""
    trip = as_utc(mv.arrives_at) - as_utc(mv.departed_at)
    insert_movement(
        step.conn, kind="return", player_id=mv.player_id, from_village_id=mv.to_village_id,
        to_village_id=mv.from_village_id, troops=troops, departed_at=at, arrives_at=at + trip,
        loot=loot,
    )

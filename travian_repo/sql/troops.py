"""Troops in the database: the statements that move them home and away, shared by the
military repository (sending troops out, calling them home) and the sandbox engine
(training, battles, troops coming home).

Every function runs inside a write step whose caller already holds the village locks.
"""

from __future__ import annotations

from datetime import datetime
from typing import Callable, Mapping

from sqlalchemy import Connection, delete, insert, select, update

from travian_repo.domain.values import Resources
from travian_repo.sql import schema

_t = schema.troops
_m = schema.movements


def home_troops(conn: Connection, village_id: int) -> dict[str, int]:
    """Unit -> count standing at home in the village (counts of 0 left out), by unit name."""
    return {
        str(u): int(n)
        for u, n in conn.execute(
            select(_t.c.unit, _t.c.count)
            .where(_t.c.village_id == village_id, _t.c.count > 0)
            .order_by(_t.c.unit)
        )
    }


def add_troops(conn: Connection, village_id: int, troops: Mapping[str, int]) -> None:
    """Put troops at home in the village (units in name order; counts of 0 or less skipped)."""
    for unit, count in sorted(troops.items()):
        if count <= 0:
            continue
        changed = conn.execute(
            update(_t)
            .where(_t.c.village_id == village_id, _t.c.unit == unit)
            .values(count=_t.c.count + count)
        ).rowcount
        if changed == 0:
            conn.execute(insert(_t).values(village_id=village_id, unit=unit, count=count))


def remove_troops(
    conn: Connection,
    village_id: int,
    troops: Mapping[str, int],
    *,
    short: Callable[[str], Exception],
) -> None:
    """Take troops from home, each count guarded so that it never goes below 0, then drop
    the rows left at 0.

    ``short(unit)`` is the error raised when a unit's count was too small; the caller checked
    the counts under the village lock, so that happens only when something bypassed the lock,
    and the step rolls back.
    """
    for unit, count in sorted(troops.items()):
        if count <= 0:
            continue
        changed = conn.execute(
            update(_t)
            .where(_t.c.village_id == village_id, _t.c.unit == unit, _t.c.count >= count)
            .values(count=_t.c.count - count)
        ).rowcount
        if changed != 1:
            raise short(unit)
    conn.execute(delete(_t).where(_t.c.village_id == village_id, _t.c.count <= 0))


def insert_movement(
    conn: Connection,
    *,
    kind: str,
    player_id: int,
    from_village_id: int,
    to_village_id: int,
    troops: Mapping[str, int],
    departed_at: datetime,
    arrives_at: datetime,
    loot: Resources | None = None,
) -> int:
    """A movement under way (troops stored in unit-name order, with the resources they
    carry); its id."""
    carried = loot or Resources()
    return int(
        conn.execute(
            insert(_m)
            .values(kind=kind, player_id=player_id, from_village_id=from_village_id,
                    to_village_id=to_village_id, troops=dict(sorted(troops.items())),
                    wood=carried.wood, clay=carried.clay, iron=carried.iron,
                    wheat=carried.wheat, state="underway", departed_at=departed_at,
                    arrives_at=arrives_at)
            .returning(_m.c.id)
        ).scalar_one()
    )


__all__ = ["add_troops", "home_troops", "insert_movement", "remove_troops"]

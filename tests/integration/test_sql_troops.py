"""The statements the military repository and the sandbox engine share (sql/troops.py,
village_writes.lock_settled / add_stock), on SQLite and PostgreSQL.

The developed sandbox: village 1 (player 1, romans) has 20 legionnaires and 5
equites_legati at home, 4000 of each resource, warehouse and granary 4000.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Callable, TypeVar

import pytest
import sqlalchemy as sa

import travian_repo as tr
from travian_repo.domain.errors import Conflict
from travian_repo.domain.values import Resources
from travian_repo.sql import schema
from travian_repo.sql.troops import add_troops, home_troops, insert_movement, remove_troops
from travian_repo.sql.village_writes import add_stock, lock_settled

START = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
T = TypeVar("T")


def write(world: tr.World, fn: Callable[[sa.Connection], T]) -> T:
    """One write step in the library's own session (its transaction on either database),
    committed; an error rolls it back."""
    session = world.database.session()
    try:
        result = session.write(fn)
        session.commit()
        return result
    finally:
        session.close()


def read(world: tr.World, statement: Any) -> list[Any]:
    with world.database.engine.connect() as conn:
        return list(conn.execute(statement))


def at_home(world: tr.World, village_id: int) -> dict[str, int]:
    with world.database.engine.connect() as conn:
        return home_troops(conn, village_id)


def test_home_troops_add_and_remove(world: tr.World) -> None:
    before = at_home(world, 1)
    assert before == {"equites_legati": 5, "legionnaire": 20}
    def run(conn: sa.Connection) -> None:
        add_troops(conn, 1, {"legionnaire": 3, "praetorian": 2, "imperian": 0})
        remove_troops(conn, 1, {"equites_legati": 5, "legionnaire": 1},
                      short=lambda unit: Conflict(unit))

    write(world, run)
    assert at_home(world, 1) == {"legionnaire": 22, "praetorian": 2}
    t = schema.troops
    # A count taken to 0 leaves no row behind.
    assert read(world, sa.select(t).where(t.c.village_id == 1, t.c.count <= 0)) == []


def test_remove_troops_short_raises_the_callers_error_and_the_step_rolls_back(
    world: tr.World,
) -> None:
    with pytest.raises(Conflict, match="legionnaire short"):
        write(world, lambda conn: remove_troops(
            conn, 1, {"equites_legati": 1, "legionnaire": 21},
            short=lambda unit: Conflict(f"{unit} short")))
    assert at_home(world, 1) == {"equites_legati": 5, "legionnaire": 20}


def test_insert_movement_stores_troops_in_name_order_with_their_loot(world: tr.World) -> None:
    movement_id = write(world, lambda conn: insert_movement(
        conn, kind="return", player_id=2, from_village_id=1, to_village_id=2,
        troops={"clubswinger": 4, "axeman": 1}, departed_at=START,
        arrives_at=START + timedelta(hours=1), loot=Resources(10, 20, 30, 40),
    ))
    m = schema.movements
    (row,) = read(world, sa.select(m).where(m.c.id == movement_id))
    assert list(row.troops.items()) == [("axeman", 1), ("clubswinger", 4)]
    assert (row.wood, row.clay, row.iron, row.wheat) == (10, 20, 30, 40)
    assert (row.kind, row.state, row.player_id) == ("return", "underway", 2)


def test_lock_settled_settles_to_the_later_of_the_event_and_the_last_write(
    world: tr.World,
) -> None:
    r = schema.village_resources
    written = START + timedelta(hours=2)
    def run(conn: sa.Connection) -> tuple[Any, Any]:
        conn.execute(sa.update(r).where(r.c.village_id == 1).values(
            wood=100, clay=100, iron=100, wheat=100, updated_at=written))
        return (lock_settled(conn, 1, START + timedelta(hours=1)),
                lock_settled(conn, 1, written + timedelta(hours=1)))

    early, late = write(world, run)
    assert early.now == written and early.stock[0] == 100
    assert late.now == written + timedelta(hours=1)
    assert late.stock[0] == pytest.approx(100 + late.production.wood)


def test_add_stock_cuts_a_stock_above_a_lowered_cap(world: tr.World) -> None:
    """Storage lost after the stock was settled (a warehouse damaged in a battle): resources
    added then leave the stock at the cap, as every read does, never above it."""
    def run(conn: sa.Connection) -> None:
        state = lock_settled(conn, 1, START)
        assert state.stock[0] == 4000
        state.warehouse_capacity = state.granary_capacity = 3000  # storage lost since
        add_stock(conn, state, Resources(10, 10, 10, 10))

    write(world, run)
    r = schema.village_resources
    (row,) = read(world, sa.select(r).where(r.c.village_id == 1))
    assert (row.wood, row.clay, row.iron, row.wheat) == (3000, 3000, 3000, 3000)

"""A village read (one JSON row) gives back what is stored, on both databases: the stock to
its last bit, the time of its last write, a village with no buildings."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

import travian_repo as tr
from travian_repo.sql import prepared
from travian_repo.sql.village_state import BY_ID, load_village, stored_at
from tests.conftest import START, MakeWorld

# Doubles that 15 significant digits do not give back.
STOCK = (1000 + 1 / 3, 2 / 7 * 1000, 3141.592653589793, 0.1 + 0.2)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def behind_the_library(database_url: str, sql: str, params: dict[str, Any]) -> None:
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(sql), params)
    finally:
        engine.dispose()


def test_a_village_read_keeps_its_stock_to_the_last_bit(
    make_world: MakeWorld, database_url: str
) -> None:
    make_world()
    behind_the_library(database_url, "UPDATE village_resources SET wood = :w, clay = :c, "
                       "iron = :i, wheat = :h WHERE village_id = 1", dict(zip("wcih", STOCK)))
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            row = prepared.run(conn, BY_ID, params={"village_id": 1}).first()
            at = stored_at(row)
            state = load_village(conn, 1, at)  # no time passed: the stock as stored
    finally:
        engine.dispose()
    assert at == START
    assert state.stock == STOCK


def test_a_village_without_buildings_reads_as_one(
    make_world: MakeWorld, database_url: str
) -> None:
    make_world()
    behind_the_library(database_url, "DELETE FROM village_buildings WHERE village_id = 1", {})
    with tr.connect(database_url, player_id=1) as world:
        village = world.villages.get(1)
    assert village.buildings == ()
    assert village.resources is not None

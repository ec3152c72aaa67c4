"""The engine's reads and writes of many rows at once: the batch read of villages gives what
the one-village read gives, and a set-wise insert keeps every value and returns each row's
id in the rows' order."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

import travian_repo as tr
from travian_repo.sandbox import Clock, create_world
from travian_repo.sql import schema
from travian_repo.sql.bulk import insert_rows
from travian_repo.sql.village_state import load_stored, load_village

START = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_batch_read_of_villages_is_the_one_village_read(database_url: str) -> None:
    create_world(database_url, replace=True, players=3, seed=5, start="developed", now=START)
    with tr.connect(database_url, player_id=1, clock=Clock(START), prefer="sql",
                    cache=False) as world:
        with world.unit_of_work(player_id=1) as uow:
            uow.villages.queue_building(1, "woodcutter")
            uow.villages.queue_building(1, "cropland")
    b = schema.village_buildings
    raw = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    try:
        with raw.begin() as conn:
            # A low slot rewritten last: stored after the others, read back in slot order.
            conn.execute(sa.update(b).where(b.c.village_id == 2, b.c.slot == 1)
                         .values(level=b.c.level + 1))
        with raw.connect() as conn:
            read = load_stored(conn, [3, 1, 2])
            assert sorted(state.id for state, _ in read) == [1, 2, 3]
            for state, stock in read:
                alone = load_village(conn, state.id, state.now)
                assert state == alone
                assert [x.slot for x in state.buildings] == sorted(x.slot for x in state.buildings)
                row = conn.execute(sa.select(schema.village_resources).where(
                    schema.village_resources.c.village_id == state.id)).one()
                assert stock == (row.wood, row.clay, row.iron, row.wheat)
            assert len(dict((s.id, s) for s, _ in read)[1].queue) == 2
            assert load_stored(conn, []) == []
    finally:
        raw.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_set_wise_insert_keeps_every_value_and_returns_ids_in_order(database_url: str
                                                                      ) -> None:
    create_world(database_url, replace=True, players=2, seed=5, start="developed", now=START)
    r = schema.reports
    rows = [dict(player_id=1 + i % 2, kind="attack", subject=f"report {i} é", village_id=2 - i % 2,
                 payload={"z": i, "a": [0.1, 1e-7, 12345.678, None, True], "nested": {"ü": "✓"},
                          "at": "2026-01-01T12:00:00+00:00"},
                 read=False, created_at=START + timedelta(seconds=37 * (7 - i)))
            for i in range(7)]
    raw = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    try:
        with raw.begin() as conn:
            ids = insert_rows(conn, r, rows, r.c.id)
            assert len(set(ids)) == len(rows)
            for report_id, row in zip(ids, rows):
                got = conn.execute(sa.select(r).where(r.c.id == report_id)).one()
                assert {k: getattr(got, k) for k in row} == row
                assert list(got.payload) == list(row["payload"])  # key order kept
            assert insert_rows(conn, r, []) == []
            insert_rows(conn, r, rows[:2])
            assert conn.execute(sa.select(sa.func.count()).select_from(r)).scalar_one() == 9
            # A payload given as its JSON text is stored as the same value, the same text.
            texts = [dict(row, payload=json.dumps(row["payload"])) for row in rows]
            for report_id, row in zip(insert_rows(conn, r, texts, r.c.id, encoded=True), rows):
                got = conn.execute(sa.select(r).where(r.c.id == report_id)).one()
                assert {k: getattr(got, k) for k in row} == row
                assert list(got.payload) == list(row["payload"])
            as_text = sa.cast(r.c.payload, sa.Text)
            stored = conn.execute(sa.select(as_text).order_by(r.c.id)).scalars().all()
            assert stored[-7:] == stored[:7]
    finally:
        raw.dispose()


def test_a_report_text_extended_is_the_text_of_the_merged_payload() -> None:
    """Reports sharing a payload but for a few keys encode it once and append the keys: the
    text is byte for byte what ``json.dumps`` gives for the merged dict."""
    from travian_repo.sandbox.engine.reports import _extended

    common = {"kind": "raid", "at": START.isoformat(), "losses": {"attacker": 0.25},
              "name": "Dörfli ✓", "building": None}
    for more in ({"role": "attacker", "defenders": []},
                 {"role": "défenseur", "defenders": [{"troops": {"phalanx": 3}, "lost": {}}]}):
        assert _extended(json.dumps(common), **more) == json.dumps(dict(common, **more))

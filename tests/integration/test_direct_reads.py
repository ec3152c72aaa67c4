"""Reads straight on the pooled driver connection (``SqlSession.fetch``, PostgreSQL).

A quick read skips SQLAlchemy's Connection when nobody but the library listens to the
engine's statement execution. What must hold: a listener or a statement log of the user's
still sees every read; a read and a write of one unit of work share one pooled connection;
prepared statements lost on the server fall back to plain ones; a driver error is typed and
leaves the connection usable; an interrupt mid-statement invalidates the connection.
"""

from __future__ import annotations

import logging
from typing import Any, Iterator

import pytest
import sqlalchemy as sa

import travian_repo as tr
from travian_repo.sql import prepared
from travian_repo.sql.database import make_engine
from travian_repo.sql.village_state import BY_ID
from tests.conftest import MakeWorld

TRAIN = {"legionnaire": 1}  # player 1 (romans) has barracks in the developed world


@pytest.fixture
def backend() -> str:
    return "postgresql"


@pytest.fixture
def one_connection(make_world: MakeWorld, database_url: str) -> Iterator[tr.World]:
    """Player 1's world on a pool of one connection and no overflow."""
    make_world()
    engine = make_engine(database_url, pool_size=1, max_overflow=0, pool_timeout=2)
    try:
        with tr.connect(engine, player_id=1) as connected:
            yield connected
    finally:
        engine.dispose()


class DirectRuns:
    """Counts the reads that went straight to the driver connection."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = prepared.run_direct

        def counted(*args: Any, **kwargs: Any) -> prepared.Rows:
            self.count += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(prepared, "run_direct", counted)


def test_a_quick_read_goes_straight_to_the_driver_when_nobody_listens(
    one_connection: tr.World, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = DirectRuns(monkeypatch)
    village = one_connection.villages.get(1)
    assert village.id == 1 and village.buildings
    assert [v.id for v in one_connection.villages.list_by_player(1)] == [village.id]
    assert one_connection.villages.at(village.x, village.y) == village
    assert runs.count == 3
    assert one_connection.database.engine.pool.checkedout() == 0  # each went back


def test_a_listener_of_the_user_sees_every_read(
    one_connection: tr.World, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = one_connection.database.engine
    runs = DirectRuns(monkeypatch)
    seen: list[str] = []

    def listener(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    for event in ("before_cursor_execute", "after_cursor_execute"):
        sa.event.listen(engine, event, listener)
        one_connection.villages.get(1)
        assert seen and "EXECUTE tr_village(" in seen[-1], seen
        sa.event.remove(engine, event, listener)

    def on_error(_context: Any) -> None:
        pass  # a user's handler of errors: it must meet every statement's error

    sa.event.listen(engine, "handle_error", on_error)
    one_connection.villages.get(1)
    sa.event.remove(engine, "handle_error", on_error)
    assert runs.count == 0
    one_connection.villages.get(1)  # nobody listens again
    assert runs.count == 1


def test_a_statement_log_sees_every_read(
    one_connection: tr.World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    runs = DirectRuns(monkeypatch)
    with caplog.at_level(logging.INFO, logger="sqlalchemy.engine"):
        one_connection.villages.get(1)
    assert any("EXECUTE tr_village(" in r.getMessage() for r in caplog.records)
    assert runs.count == 0


def test_a_read_then_writes_in_one_unit_share_its_one_connection(
    one_connection: tr.World, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = DirectRuns(monkeypatch)
    pool = one_connection.database.engine.pool
    with one_connection.unit_of_work() as uow:
        before = uow.villages.get(1)
        assert pool.checkedout() == 1
        uow.military.train(1, TRAIN)  # the pool has no second connection to give
        uow.villages.queue_building(1, "woodcutter")
        after = uow.villages.get(1)  # inside the transaction: sees its writes
        assert pool.checkedout() == 1
    assert runs.count == 1
    assert after.resources is not None and before.resources is not None
    assert after.resources.wood < before.resources.wood
    assert len(after.build_queue or ()) == len(before.build_queue or ()) + 1
    assert pool.checkedout() == 0
    assert one_connection.villages.get(1).build_queue == after.build_queue


def test_lost_prepared_statements_fall_back_to_plain_reads(one_connection: tr.World) -> None:
    expected = one_connection.villages.get(1)
    with one_connection.database.engine.connect() as conn:  # the pool's one connection
        assert conn.info.get(prepared.DEFINED) is True
        conn.exec_driver_sql("DEALLOCATE ALL")  # what a DISCARD ALL or a pooler would do
    assert one_connection.villages.get(1) == expected
    with one_connection.database.engine.connect() as conn:
        assert conn.info.get(prepared.DEFINED) is False  # plain from now on
    assert one_connection.villages.get(1) == expected


def test_a_driver_error_is_typed_and_leaves_the_connection_usable(
    one_connection: tr.World,
) -> None:
    database = one_connection.database
    session = database.session()
    try:
        with pytest.raises(tr.TravianError) as caught:
            session.fetch(BY_ID, {"village_id": 2**70})  # out of bigint's range
        assert "out of range" in caught.value.message
        assert not isinstance(caught.value, tr.BackendUnavailable)
        assert session.fetch(BY_ID, {"village_id": 1}).first().village[0] == 1
    finally:
        session.close()
    assert database.engine.pool.checkedout() == 0


def test_an_interrupt_mid_statement_invalidates_the_connection(
    one_connection: tr.World,
) -> None:
    engine = one_connection.database.engine
    fairy = prepared.checkout(engine)
    driver_connection = fairy.dbapi_connection
    interrupt = KeyboardInterrupt()
    assert prepared._driver_error(fairy, engine, interrupt, None, "SELECT 1", None) is interrupt
    assert not fairy.is_valid  # its state is unknown: not handed out again
    assert engine.pool.checkedout() == 0
    assert driver_connection is not None and driver_connection.closed
    assert one_connection.villages.get(1).id == 1  # a fresh connection


def test_a_village_read_again_shows_its_buildings_as_they_are_now(
    one_connection: tr.World, database_url: str
) -> None:
    first = one_connection.villages.get(1)
    assert one_connection.villages.get(1).buildings == first.buildings  # reused, equal
    assert first.buildings
    slot = first.buildings[0].slot
    raw = sa.create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        with raw.connect() as conn:  # changed behind the library's back
            conn.execute(sa.text("UPDATE village_buildings SET level = level + 1 "
                                 "WHERE village_id = 1 AND slot = :slot"), {"slot": slot})
    finally:
        raw.dispose()
    again = one_connection.villages.get(1)
    assert again.buildings is not None
    assert again.buildings[0].level == first.buildings[0].level + 1
    assert again.buildings[1:] == first.buildings[1:]

"""What a quick call (``world.villages.get``: a unit of work and a pooled connection per
call) leaves behind and asks of the driver: it runs thousands of times a second on many
threads, so garbage left for the collector and driver calls that do nothing count."""

from __future__ import annotations

import gc
import threading
import weakref
from typing import Any, Iterator

import psycopg2.extensions
import pytest
import sqlalchemy as sa

import travian_repo as tr
from travian_repo.repositories.base import UnitOfWorkEnded
from travian_repo.sql.database import make_engine
from travian_repo.sql.deadline import ReplyDeadline


@pytest.fixture
def no_collector() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def test_an_ended_unit_of_work_is_freed_without_the_garbage_collector(
        world: tr.World, no_collector: None) -> None:
    unit = world.unit_of_work()
    with unit:
        village_id = unit.villages.list_by_player(1)[0].id
        unit.villages.get(village_id)
        unit.military.troops(village_id)
    gone = weakref.ref(unit)
    del unit
    assert gone() is None
    # A repository the caller kept still refuses to run: it holds its unit, not the other
    # way round.
    kept = world.unit_of_work()
    with kept:
        villages = kept.villages
    with pytest.raises(UnitOfWorkEnded):
        villages.get(village_id)


def test_a_quick_call_leaves_nothing_for_the_garbage_collector(
        world: tr.World, no_collector: None) -> None:
    village_id = world.villages.list_by_player(1)[0].id
    world.villages.get(village_id)
    gc.collect()
    for _ in range(20):
        world.villages.get(village_id)
    assert gc.collect() == 0


class _CountingConnection(psycopg2.extensions.connection):
    rollbacks = 0

    def rollback(self) -> None:
        type(self).rollbacks += 1
        super().rollback()


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_connection_back_to_the_pool_makes_no_driver_rollback(
        postgres_url: str, make_world: Any) -> None:
    make_world()
    engine = make_engine(postgres_url, connect_args={"connection_factory": _CountingConnection})
    try:
        with tr.connect(engine, player_id=1, catch_up=False) as world:
            village_id = world.villages.list_by_player(1)[0].id
            _CountingConnection.rollbacks = 0
            for _ in range(5):
                world.villages.get(village_id)
            assert _CountingConnection.rollbacks == 0
            # A transaction left open is still ended on the way back (by a ROLLBACK
            # statement: the driver's rollback does nothing in autocommit).
            with engine.connect() as conn:
                conn.exec_driver_sql("BEGIN")
                dbapi = conn.connection.dbapi_connection
            assert dbapi is not None
            assert dbapi.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_IDLE
    finally:
        engine.dispose()


class _CountingLock:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.taken = 0

    def __enter__(self) -> None:
        self.taken += 1
        self._lock.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self._lock.__exit__(*exc)


def test_the_reply_deadline_takes_its_lock_only_around_statements(postgres_url: str) -> None:
    # Its lock is shared by every thread of the engine: a connection going back to the pool
    # with nothing armed takes it not at all.
    engine = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    deadline = ReplyDeadline(30.0)
    counting = _CountingLock()
    deadline._lock = counting  # type: ignore[assignment]
    deadline.install(engine)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        assert counting.taken == 2  # armed before the statement, disarmed after it
        assert deadline._armed == {}
    finally:
        engine.dispose()

"""The world moves on by itself on the SQL side: what is due is processed before a unit of
work reads or writes, once, beside a running engine, and cheaply when nothing is due."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import event

import travian_repo as tr
from travian_repo.domain import events
from travian_repo.domain.values import Event
from travian_repo.sandbox import Clock, EngineThread


def woodcutter_slot(village: tr.Village) -> int:
    return min(b.slot for b in village.buildings or () if b.name == "woodcutter")


def test_a_build_completes_when_its_time_has_come(world: tr.World, clock: Clock) -> None:
    order = world.villages.queue_building(1, "woodcutter")
    before = world.villages.get(1)
    assert [o.id for o in before.build_queue or ()] == [order.id]
    clock.set(order.completes_at)
    after = world.villages.get(1)
    assert after.build_queue == ()
    level = {b.slot: b.level for b in after.buildings or ()}[order.slot]
    assert level == order.target_level


def test_training_completes_when_its_time_has_come(world: tr.World, clock: Clock) -> None:
    unit = _first_unit(world)
    before = world.military.troops(1).get(unit, 0)
    order = world.military.train(1, {unit: 2})
    clock.set(order.completes_at)
    assert world.military.troops(1).get(unit, 0) == before + 2


def _first_unit(world: tr.World) -> str:
    tribe = world.villages.get(1).tribe
    return {"romans": "legionnaire", "teutons": "clubswinger", "gauls": "phalanx"}[tribe]


def test_catch_up_false_leaves_time_to_an_engine(make_world: Any, database_url: str,
                                                 clock: Clock) -> None:
    make_world()
    with tr.connect(database_url, player_id=1, clock=clock, catch_up=False) as world:
        order = world.villages.queue_building(1, "woodcutter")
        clock.set(order.completes_at)
        assert [o.id for o in world.villages.get(1).build_queue or ()] == [order.id]


def test_no_event_is_processed_twice_beside_a_running_engine(
    world: tr.World, clock: Clock
) -> None:
    seen: list[Event] = []
    world.database.add_commit_listener(seen.extend)
    orders = []
    with EngineThread(world.database, clock=clock, interval=0.005):
        for village in range(1, 7):
            with world.unit_of_work(village) as uow:
                orders.append(uow.villages.queue_building(village, "woodcutter"))
        clock.advance(max(o.completes_at for o in orders).timestamp() - clock().timestamp())
        readers = [threading.Thread(target=world.villages.get, args=(v,)) for v in range(1, 7)]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join()
    completed = [e for e in seen if e.kind == events.BUILD_COMPLETED]
    assert sorted(e.data["village_id"] for e in completed) == list(range(1, 7))
    for village in range(1, 7):
        with world.unit_of_work(village) as uow:
            assert uow.villages.get(village).build_queue == ()


def test_nothing_due_costs_no_statement(world: tr.World, clock: Clock) -> None:
    world.villages.queue_building(1, "woodcutter")  # due in minutes, not now
    world.villages.get(1)
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    engine = world.database.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        for _ in range(20):
            world.villages.get(1)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    checks = [s for s in statements if "training_queue" in s and "min(" in s]
    assert len(checks) <= 1, checks  # at most one re-read of the next due time
    assert len(statements) <= 20 + 1


def test_a_write_of_this_process_due_sooner_is_seen_at_once(world: tr.World,
                                                            clock: Clock) -> None:
    """No wait for the re-read: the commit's event tells the next due time."""
    world.villages.get(1)  # the next due time is known and fresh (nothing queued: never)
    with world.unit_of_work(2) as uow:
        order = uow.villages.queue_building(2, "woodcutter")
    clock.set(order.completes_at)
    with world.unit_of_work(2) as uow:
        assert uow.villages.get(2).build_queue == ()


@pytest.mark.parametrize("engine", [True, False], ids=["engine", "no-engine"])
def test_serve_runs_its_engine_by_default(tmp_path: Any, engine: bool) -> None:
    """`travian-repo serve` moves the world on with no request at all; --no-engine does not."""
    import subprocess
    import sys
    import time

    from travian_repo.sandbox import create_world
    from tests.conftest import free_port

    url = f"sqlite:///{tmp_path / 'served.db'}"
    create_world(url, players=2, seed=3, start="developed", speed=1000)
    with tr.connect(url, player_id=1, catch_up=False) as world:
        order = world.villages.queue_building(1, "woodcutter")  # due within a second
        command = [sys.executable, "-m", "travian_repo", "serve", "--database-url", url,
                   "--port", str(free_port())] + ([] if engine else ["--no-engine"])
        server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                queue = world.villages.build_queue(1)  # this world never catches up itself
                if not queue or not engine and time.monotonic() > deadline - 12:
                    break
                time.sleep(0.2)
        finally:
            server.terminate()
            server.wait(10)
        assert order.completes_at < world.settings.server_time
        assert [o.id for o in queue] == ([] if engine else [order.id])


def test_a_quick_call_inside_an_open_unit_does_not_wait_on_its_own_locks(
    world: tr.World, clock: Clock
) -> None:
    """Catching up from a thread that holds a transaction would wait on that thread's own
    locks (SQLite's write lock, PostgreSQL's row locks): it is left to the next call."""
    import time

    order = world.villages.queue_building(1, "woodcutter")
    with world.unit_of_work(1) as uow:
        uow.villages.queue_building(1, "cropland")  # holds village 1 until the block ends
        clock.set(order.completes_at)  # the woodcutter falls due meanwhile
        started = time.monotonic()
        world.villages.get(2)
        assert time.monotonic() - started < 2
    assert [o.building for o in world.villages.build_queue(1)] == ["cropland"]

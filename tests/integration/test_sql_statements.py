"""Statements (not only round trips) on PostgreSQL: what an NPC turn sends, and the locks a
transaction's later steps rely on instead of locking again."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

import travian_repo as tr

TRAIN = {"legionnaire": 1}  # player 1 (romans) has barracks in the developed world


@pytest.fixture
def backend() -> str:
    return "postgresql"


def statements_in(sql: str) -> list[str]:
    """The statements of one message: split at each ';' outside quotes and parentheses."""
    parts, depth, start, quote = [], 0, 0, ""
    for i, c in enumerate(sql):
        if quote:
            quote = "" if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c in "()":
            depth += 1 if c == "(" else -1
        elif c == ";" and depth == 0:
            parts.append(sql[start:i])
            start = i + 1
    parts.append(sql[start:])
    return [p.strip() for p in parts if p.strip()]


class Sent:
    """Every statement the engine hands the driver, in order."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.statements: list[str] = []

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.statements += statements_in(statement)

    def __enter__(self) -> Sent:
        sa.event.listen(self.engine, "after_cursor_execute", self._seen)
        return self

    def __exit__(self, *_exc: Any) -> None:
        sa.event.remove(self.engine, "after_cursor_execute", self._seen)


def keys(world: tr.World) -> int:
    with world.database.engine.connect() as conn:
        return int(conn.exec_driver_sql(
            "SELECT count(*) FROM idempotency_keys WHERE player_id = 0").scalar_one())


def test_an_npc_turn_sends_at_most_eight_statements(world: tr.World) -> None:
    def turn() -> None:
        with world.unit_of_work(player_id=1) as uow:
            village = uow.villages.list_by_player(1)[0]
            uow.villages.queue_building(village.id, "woodcutter")
            uow.military.train(village.id, TRAIN)

    turn()  # warm: the pooled connection has its prepared statements
    before = keys(world)
    with Sent(world.database.engine) as sent:
        turn()
    assert len(sent.statements) <= 8, "\n".join(sent.statements)
    # The transaction still records its outcome key, and locks before it reads.
    assert keys(world) == before + 1
    first_lock = next(i for i, s in enumerate(sent.statements) if "tr_village_lock" in s)
    assert sent.statements[first_lock + 1].startswith("EXECUTE tr_village_training("), \
        sent.statements


def test_an_npc_turn_s_writes_run_as_prepared_statements(world: tr.World) -> None:
    def turn() -> tuple[tr.BuildOrder, tr.TrainingOrder]:
        with world.unit_of_work(player_id=1) as uow:
            order = uow.villages.queue_building(1, "woodcutter")
            return order, uow.military.train(1, TRAIN)

    turn()  # warm: the pooled connection has its prepared statements
    with Sent(world.database.engine) as sent:
        order, training = turn()
    assert not [s for s in sent.statements if "INSERT" in s.upper()], sent.statements
    runs = [s.split("(")[0] for s in sent.statements if s.startswith("EXECUTE")]
    assert {"EXECUTE tr_build_order", "EXECUTE tr_training_order"} <= set(runs), runs
    # What they wrote reads back as the calls returned it.
    assert world.villages.build_queue(1)[-1] == order
    with world.database.engine.connect() as conn:
        row = conn.exec_driver_sql(
            "SELECT o.wood, o.clay, o.iron, o.wheat, max(q.completes_at) FROM training_orders o"
            " JOIN training_queue q ON q.order_id = o.id WHERE o.id = %(id)s GROUP BY o.id",
            {"id": training.id}).one()
    assert (tr.Resources(*row[:4]), row[4]) == (training.cost, training.completes_at)


def locked_elsewhere(world: tr.World, village_id: int) -> bool:
    """Whether another connection finds the village's write lock taken."""
    with world.database.engine.connect() as conn:
        try:
            conn.exec_driver_sql(
                "SELECT 1 FROM village_resources WHERE village_id = %(v)s FOR UPDATE NOWAIT",
                {"v": village_id})
        except sa.exc.OperationalError as exc:
            assert getattr(exc.orig, "pgcode", None) == "55P03", exc
            return True
        return False


def test_a_step_undone_gives_its_locks_back_and_the_next_step_locks_again(
        world: tr.World) -> None:
    def elsewhere(conn: sa.Connection) -> None:
        conn.exec_driver_sql("UPDATE villages SET population = population + 1 WHERE id = 2")

    with world.unit_of_work(player_id=1) as uow:
        uow.session.write(elsewhere)  # the transaction's first step: village 1 not locked
        with pytest.raises(tr.InsufficientResources):
            uow.military.train(1, {"legionnaire": 5000})  # locks village 1, then is undone
        assert not locked_elsewhere(world, 1)  # its savepoint's rollback let the lock go
        with Sent(world.database.engine) as build:
            uow.villages.queue_building(1, "woodcutter")  # so this step must take it again
        with Sent(world.database.engine) as train:
            uow.military.train(1, TRAIN)  # held since the step before: only read
        assert locked_elsewhere(world, 1)
    assert [s for s in build.statements if "tr_village_lock" in s], build.statements
    assert not [s for s in train.statements if "tr_village_lock" in s], train.statements
    assert not locked_elsewhere(world, 1)


def test_get_many_is_one_statement_however_many_villages(world: tr.World) -> None:
    world.villages.get_many([1, 2])  # warm: the pooled connection has its prepared statements
    for ids in ([1], [3, 1, 2, 6]):
        with Sent(world.database.engine) as sent:
            got = world.villages.get_many(ids)
        assert [v.id for v in got] == ids
        assert len(sent.statements) == 1, sent.statements


def stored(world: tr.World, village_id: int) -> tuple[Any, ...]:
    """The village's stock row as stored (floats and time, not rounded)."""
    with world.database.engine.connect() as conn:
        return tuple(conn.exec_driver_sql(
            "SELECT wood, clay, iron, wheat, updated_at FROM village_resources"
            " WHERE village_id = %(v)s", {"v": village_id}).one())


def build_then_train(world: tr.World, clock: Any, between: Any = None
                     ) -> tuple[tr.BuildOrder, tr.TrainingOrder, list[str]]:
    """Queue a build, let time pass, train: one unit of work; what the train step sent."""
    with world.unit_of_work(player_id=1) as uow:
        order = uow.villages.queue_building(1, "woodcutter")
        clock.advance(1234.5)
        if between is not None:
            between(uow)
        with Sent(world.database.engine) as sent:
            training = uow.military.train(1, TRAIN)
    return order, training, sent.statements


def test_train_after_a_build_starts_from_the_state_the_build_left(
        make_world: Any, world: tr.World, clock: Any) -> None:
    build_then_train(world, clock)  # warm: the pooled connection has its prepared statements
    make_world()
    clock.set(clock() + timedelta(days=1))
    start = clock()
    order, training, sent = build_then_train(world, clock)
    # The step sends its savepoint and its write, nothing else: no read of the village.
    assert [s.split("(")[0] for s in sent] == ["SAVEPOINT tr_step_1",
                                                "EXECUTE tr_training_order"], sent
    kept = (order, training, stored(world, 1))

    # The same turn with a failed write step between: the train step reads the village back.
    def refused(uow: tr.UnitOfWork) -> None:
        with pytest.raises(tr.InsufficientResources):
            uow.military.train(1, {"legionnaire": 5000})

    make_world()
    clock.set(start)
    order, training, sent = build_then_train(world, clock, refused)
    assert [s for s in sent if s.startswith("EXECUTE tr_village_training(")], sent
    # Both give the same orders and leave the very same stock (floats, time) stored.
    assert (order, training, stored(world, 1)) == kept
    assert kept[2][4] == start + timedelta(seconds=1234.5)


def test_a_write_step_between_a_build_and_a_train_makes_the_train_read_again(
        world: tr.World, clock: Any) -> None:
    def emptied(uow: tr.UnitOfWork) -> None:
        uow.session.write(lambda conn: conn.exec_driver_sql(  # type: ignore[attr-defined]
            "UPDATE village_resources SET wood = 0 WHERE village_id = 1"))

    with pytest.raises(tr.InsufficientResources):  # it sees the wood the step took away
        build_then_train(world, clock, emptied)

    def cancelled(uow: tr.UnitOfWork) -> None:
        uow.villages.cancel_building(1, uow.villages.build_queue(1)[-1].position)

    before = stored(world, 1)
    _, training, sent = build_then_train(world, clock, cancelled)
    assert [s for s in sent if s.startswith("EXECUTE tr_village_training(")], sent
    # The build was refunded, so only the training was paid.
    elapsed = (clock() - before[4]).total_seconds()
    village = world.villages.get(1)
    caps = (village.warehouse_capacity,) * 3 + (village.granary_capacity,)
    expected = [min(cap, s + p * elapsed / 3600) - c
                for s, p, cap, c in zip(before[:4], village.production, caps, training.cost)]
    assert stored(world, 1)[:4] == pytest.approx(expected)


def test_a_second_build_in_a_transaction_starts_from_the_state_the_first_left(
        world: tr.World, clock: Any) -> None:
    with world.unit_of_work(player_id=1) as uow:
        first = uow.villages.queue_building(1, "woodcutter")
        clock.advance(60)
        with Sent(world.database.engine) as sent:
            second = uow.villages.queue_building(1, "cropland")
    assert [s.split("(")[0] for s in sent.statements] == ["SAVEPOINT tr_step_1",
                                                          "EXECUTE tr_build_order"], sent
    # Planned on the queue with the first order in it, as a read would give it.
    assert (second.position, second.started_at) == (first.position + 1, first.completes_at)
    assert world.villages.build_queue(1)[-2:] == [first, second]

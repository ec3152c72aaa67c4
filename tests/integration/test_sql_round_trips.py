"""Round trips on PostgreSQL: what an NPC turn sends, statements riding along, prepared reads."""

from __future__ import annotations

from typing import Any, Iterator

import pytest
import sqlalchemy as sa

import travian_repo as tr
from travian_repo.domain.errors import RuleViolation
from travian_repo.sql import prepared

TRAIN = {"legionnaire": 1}  # player 1 (romans) has barracks in the developed world


@pytest.fixture
def backend() -> str:
    return "postgresql"


class Sent:
    """What the engine hands the driver: one entry per round trip."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.queries: list[str] = []

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.queries.append(statement)

    def __enter__(self) -> Sent:
        sa.event.listen(self.engine, "after_cursor_execute", self._seen)
        return self

    def __exit__(self, *_exc: Any) -> None:
        sa.event.remove(self.engine, "after_cursor_execute", self._seen)

    def alone(self, word: str) -> list[str]:
        """Round trips that carry nothing but a ``word`` statement (BEGIN, SAVEPOINT, ...)."""
        return [q for q in self.queries if q.strip().upper().startswith(word) and ";" not in q]


def npc_turn(world: tr.World) -> None:
    with world.unit_of_work(player_id=1) as uow:
        village = uow.villages.list_by_player(1)[0]
        uow.villages.queue_building(village.id, "woodcutter")
        uow.military.train(village.id, TRAIN)


def test_an_npc_turn_takes_at_most_five_round_trips(world: tr.World) -> None:
    npc_turn(world)  # warm: the pooled connection has its prepared statements
    with Sent(world.database.engine) as sent:
        npc_turn(world)
    # The list; BEGIN, lock, read; the build; SAVEPOINT, the training; COMMIT.
    assert len(sent.queries) <= 5, "\n".join(sent.queries)
    for word in ("BEGIN", "SAVEPOINT", "RELEASE"):
        assert not sent.alone(word), f"{word} went on its own: {sent.alone(word)}"
    assert sent.queries[-1].strip() == "COMMIT"


def test_a_step_that_fails_before_any_statement_sends_nothing(world: tr.World) -> None:
    session = world.database.session()

    def refused(_conn: sa.Connection) -> None:
        raise RuleViolation("refused before any statement")

    def mark(conn: sa.Connection) -> None:
        conn.exec_driver_sql("UPDATE villages SET population = population + 1 WHERE id = 2")

    def population() -> int:
        with world.database.engine.connect() as conn:
            return int(conn.exec_driver_sql("SELECT population FROM villages WHERE id = 2").scalar_one())

    before = population()
    try:
        with Sent(world.database.engine) as sent:
            with pytest.raises(RuleViolation):
                session.write(refused)  # a first step: its BEGIN is never sent
            session.write(mark)
            with pytest.raises(RuleViolation):
                session.write(refused)  # a later step: no SAVEPOINT, no ROLLBACK TO
            session.write(mark)
            assert session.commit()
    finally:
        session.close()
    assert population() == before + 2
    assert not [q for q in sent.queries if "ROLLBACK" in q.upper()], sent.queries
    assert len(sent.queries) == 3, sent.queries  # BEGIN + mark; SAVEPOINT + mark; COMMIT


def test_a_failed_later_step_leaves_the_earlier_one_to_commit(world: tr.World) -> None:
    before = len(world.villages.build_queue(1))
    with world.unit_of_work() as uow:
        uow.villages.queue_building(1, "woodcutter")
        with pytest.raises(tr.InsufficientResources):
            uow.military.train(1, {"legionnaire": 5000})
        uow.villages.queue_building(1, "cropland")
    assert len(world.villages.build_queue(1)) == before + 2


@pytest.fixture
def one_connection(make_world: Any, database_url: str) -> Iterator[tr.World]:
    make_world()
    with tr.connect(database_url, player_id=1, pool_size=1) as connected:
        yield connected


def test_reads_are_prepared_once_per_connection(one_connection: tr.World) -> None:
    one_connection.villages.get(1)
    with Sent(one_connection.database.engine) as sent:
        one_connection.villages.get(1)
        one_connection.villages.list_by_player(1)
    assert [q.split("(")[0] for q in sent.queries] == ["EXECUTE tr_village", "EXECUTE tr_villages_of"]


def test_prepared_statements_lost_on_the_server_fall_back_to_plain_reads(
    one_connection: tr.World,
) -> None:
    expected = one_connection.villages.get(1)
    with one_connection.database.engine.connect() as conn:  # the pool's one connection
        assert conn.info.get(prepared.DEFINED) is True
        conn.exec_driver_sql("DEALLOCATE ALL")  # what a DISCARD ALL or a pooler would do
    assert one_connection.villages.get(1).buildings == expected.buildings
    with Sent(one_connection.database.engine) as sent:
        one_connection.villages.get(1)
    assert not sent.queries[0].startswith("EXECUTE"), sent.queries

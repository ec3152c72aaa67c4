"""The unit of work on both SQL backends: commit, rollback, early commit, failed steps, acting player."""

from __future__ import annotations

from typing import Any, Iterator

import pytest
import sqlalchemy as sa

import travian_repo as tr
from travian_repo.domain.values import Resources
from travian_repo.rules import buildings as rules
from travian_repo.sandbox import Clock
from travian_repo.sql import schema


class Boom(Exception):
    pass


def stock(world: tr.World, village_id: int = 1) -> Resources:
    with world.unit_of_work(player_id=world.villages.get(village_id).player_id) as uow:
        resources = uow.villages.get(village_id).resources
    assert resources is not None
    return resources


def queue_rows(world: tr.World) -> list[Any]:
    q = schema.build_queue
    with world.database.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(q).order_by(q.c.id))]


@pytest.fixture
def anonymous(world: tr.World, database_url: str, clock: Clock) -> Iterator[tr.World]:
    with tr.connect(database_url, clock=clock) as connected:
        yield connected


def test_a_clean_exit_commits(world: tr.World) -> None:
    before = stock(world)
    with world.unit_of_work() as uow:
        order = uow.villages.queue_building(1, "main_building")
    assert world.villages.build_queue(1) == [order]
    assert stock(world) == before - order.cost


def test_an_exception_rolls_back(world: tr.World) -> None:
    before = stock(world)
    with pytest.raises(Boom):
        with world.unit_of_work() as uow:
            uow.villages.queue_building(1, "main_building")
            uow.villages.queue_building(1, "woodcutter")
            raise Boom()
    assert world.villages.build_queue(1) == []
    assert queue_rows(world) == []
    assert stock(world) == before


def test_a_travian_error_escaping_the_block_rolls_back_everything(world: tr.World) -> None:
    before = stock(world)
    with pytest.raises(tr.RuleViolation):
        with world.unit_of_work() as uow:
            uow.villages.queue_building(1, "main_building")
            uow.villages.queue_building(1, "woodcutter")
            uow.villages.queue_building(1, "clay_pit")  # the queue is full
    assert queue_rows(world) == [] and stock(world) == before


def test_commit_commits_early(world: tr.World) -> None:
    before = stock(world)
    with pytest.raises(Boom):
        with world.unit_of_work() as uow:
            kept = uow.villages.queue_building(1, "main_building")
            uow.commit()
            uow.villages.queue_building(1, "woodcutter")
            raise Boom()
    assert world.villages.build_queue(1) == [kept]
    assert stock(world) == before - kept.cost


def test_commit_twice_and_with_nothing_written_is_harmless(world: tr.World) -> None:
    with world.unit_of_work() as uow:
        uow.commit()
        uow.villages.get(1)
        uow.commit()
        uow.commit()
    assert queue_rows(world) == []


def test_writes_are_not_visible_to_others_before_commit(world: tr.World) -> None:
    with world.unit_of_work() as uow:
        uow.villages.queue_building(1, "main_building")
        if world.database.dialect == "postgresql":  # SQLite holds the write lock: readers would wait
            assert queue_rows(world) == []
    assert len(queue_rows(world)) == 1


def test_a_failed_write_leaves_the_earlier_write_of_the_unit_intact(world: tr.World) -> None:
    before = stock(world)
    with world.unit_of_work() as uow:
        first = uow.villages.queue_building(1, "main_building")
        with pytest.raises(tr.RuleViolation):
            uow.villages.queue_building(1, "workshop")  # prerequisites missing
        with pytest.raises(tr.Forbidden):
            uow.villages.queue_building(2, "main_building")
        with pytest.raises(tr.InvalidRequest):
            uow.villages.queue_building(1, "castle")
        second = uow.villages.queue_building(1, "woodcutter")
        with pytest.raises(tr.RuleViolation):
            uow.villages.queue_building(1, "clay_pit")  # full
    assert world.villages.build_queue(1) == [first, second]
    assert stock(world) == before - first.cost - second.cost


def test_a_failed_first_write_leaves_the_unit_usable(world: tr.World) -> None:
    before = stock(world)
    with world.unit_of_work() as uow:
        with pytest.raises(tr.RuleViolation):
            uow.villages.queue_building(1, "workshop")
        order = uow.villages.queue_building(1, "main_building")
        with pytest.raises(tr.NotFound):
            uow.villages.cancel_building(1, 5)
    assert world.villages.build_queue(1) == [order]
    assert stock(world) == before - order.cost


def test_insufficient_resources_inside_a_unit_spends_nothing_more(world: tr.World) -> None:
    r = schema.village_resources
    cost = rules.building_cost("main_building", 6)
    with world.database.engine.begin() as conn:
        conn.execute(r.update().where(r.c.village_id == 1).values(
            wood=cost.wood, clay=cost.clay, iron=cost.iron, wheat=cost.wheat))
    with world.unit_of_work() as uow:
        uow.villages.queue_building(1, "main_building")
        with pytest.raises(tr.InsufficientResources):
            uow.villages.queue_building(1, "woodcutter")
    assert stock(world) == Resources()
    assert [o.building for o in world.villages.build_queue(1)] == ["main_building"]


def test_reads_see_the_units_own_writes(world: tr.World) -> None:
    before = stock(world)
    with world.unit_of_work() as uow:
        order = uow.villages.queue_building(1, "main_building")
        v = uow.villages.get(1)
        assert v.build_queue == (order,)
        assert v.resources == before - order.cost
        assert uow.villages.build_queue(1) == [order]
        assert uow.villages.list_by_player(1)[0].build_queue == (order,)
        cancelled = uow.villages.cancel_building(1, 1)
        assert cancelled == order
        assert uow.villages.get(1).resources == before
    assert queue_rows(world) == []


def test_acting_as_another_player(world: tr.World) -> None:
    with world.unit_of_work(player_id=2) as uow:
        assert uow.player_id == 2
        order = uow.villages.queue_building(2, "main_building")
        with pytest.raises(tr.Forbidden):
            uow.villages.queue_building(1, "main_building")
        assert uow.villages.get(2).build_queue == (order,)
        assert uow.villages.get(1).resources is None
    with pytest.raises(tr.Forbidden):
        world.villages.build_queue(2)


def test_unit_of_work_player_id_is_checked(world: tr.World) -> None:
    for bad in (0, -3, "2", 2.0, True):
        with pytest.raises(tr.InvalidRequest):
            world.unit_of_work(player_id=bad)  # type: ignore[arg-type]


def test_acting_as_nobody_reads_public_data(anonymous: tr.World) -> None:
    assert anonymous.player_id is None
    with anonymous.unit_of_work() as uow:
        assert uow.player_id is None
        v = uow.villages.get(1)
        assert v.player_id == 1 and v.resources is None and v.build_queue is None
        villages = uow.villages.list_by_player(1)
        assert [x.id for x in villages] == [1] and villages[0].resources is None
        assert uow.villages.at(v.x, v.y) == v


def test_acting_as_nobody_cannot_write_or_read_private_data(anonymous: tr.World, world: tr.World) -> None:
    before = stock(world)
    with anonymous.unit_of_work() as uow:
        with pytest.raises(tr.Forbidden):
            uow.villages.queue_building(1, "main_building")
        with pytest.raises(tr.Forbidden):
            uow.villages.cancel_building(1, 1)
        with pytest.raises(tr.Forbidden):
            uow.villages.build_queue(1)
    with pytest.raises(tr.Forbidden):
        anonymous.villages.queue_building(1, "main_building")
    assert queue_rows(world) == [] and stock(world) == before


def test_a_unit_of_work_exposes_the_six_repositories(world: tr.World) -> None:
    with world.unit_of_work() as uow:
        for name in ("villages", "military", "trade", "intel", "diplomacy", "players"):
            assert getattr(uow, name) is not None


def test_quick_calls_each_commit_on_their_own(world: tr.World) -> None:
    first = world.villages.queue_building(1, "main_building")
    with pytest.raises(tr.RuleViolation):
        world.villages.queue_building(1, "workshop")
    assert world.villages.build_queue(1) == [first]


def test_metrics_count_calls_and_errors(world: tr.World) -> None:
    world.villages.get(1)
    with pytest.raises(tr.NotFound):
        world.villages.get(999)
    metrics = world.metrics
    assert metrics["total_requests"] >= 2
    assert metrics["errors"] >= 1

"""Concurrent writers never spend the same wheat twice.

32 threads spend from one village at once (builds, training, shipments). The clock stands
still, so nothing is produced meanwhile: the final stock must equal the start minus exactly
what the successful writes cost, and no write may see the stock below zero.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import pytest
import sqlalchemy as sa

import travian_repo as tr
from travian_repo.domain.values import Resources
from travian_repo.rules import units
from travian_repo.sandbox import Clock
from travian_repo.sql import schema
from tests.conftest import MakeWorld

THREADS = 32
ROUNDS = 3


def _operations(world: tr.World, tribe: str) -> list[Callable[[], Resources]]:
    first_unit = units.units_of(tribe)[0].name

    def build(building: str) -> Callable[[], Resources]:
        return lambda: world.villages.queue_building(1, building).cost

    def train() -> Resources:
        return world.military.train(1, {first_unit: 3}).cost

    def ship() -> Resources:
        return world.trade.send_resources(1, 2, {"wood": 90, "wheat": 60}).resources

    return [build("woodcutter"), build("cropland"), build("main_building"), train, ship]


@pytest.mark.slow  # a race of threads
@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_parallel_spending_is_exact(make_world: MakeWorld, database_url: str, clock: Clock) -> None:
    make_world(build_queue_limit=1000)
    with tr.connect(database_url, player_id=1, clock=clock, pool_size=THREADS) as world:
        start = world.villages.get(1).resources
        assert start is not None
        ops = _operations(world, world.villages.get(1).tribe)
        barrier = threading.Barrier(THREADS)
        spent: list[Resources] = []
        refusals: list[str] = []
        lock = threading.Lock()

        def worker(index: int) -> None:
            barrier.wait()
            for round_ in range(ROUNDS):
                op = ops[(index + round_) % len(ops)]
                try:
                    cost = op()
                except (tr.InsufficientResources, tr.RuleViolation) as exc:
                    with lock:
                        refusals.append(type(exc).__name__)
                    continue
                with lock:
                    spent.append(cost)

        with ThreadPoolExecutor(THREADS) as pool:
            for future in [pool.submit(worker, i) for i in range(THREADS)]:
                future.result()

        final = world.villages.get(1).resources
        assert final is not None
        total = sum(spent, Resources())
        assert final == start - total, (start, total, final)
        assert all(amount >= 0 for amount in final)
        # The start stock cannot pay for everything: the race really happened.
        assert refusals, "every write succeeded; the test did not reach the stock's limit"
        assert len(spent) + len(refusals) == THREADS * ROUNDS
        # What the queues and the road hold is exactly what the successful writes paid.
        assert _recorded_spending(world) == total


def _recorded_spending(world: tr.World) -> Resources:
    names = ("wood", "clay", "iron", "wheat")
    total = Resources()
    with world.database.engine.connect() as conn:
        for table in (schema.build_queue, schema.training_orders, schema.shipments):
            row = conn.execute(sa.select(*(sa.func.coalesce(sa.func.sum(table.c[n]), 0) for n in names))).one()
            total = total + Resources(*(int(x) for x in row))
    return total

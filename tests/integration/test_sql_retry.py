"""Serialization failures on PostgreSQL are retried with the retry policy, not reported.

Under SERIALIZABLE isolation, writers that lock the same village collide with
"could not serialize access due to concurrent update" (SQLSTATE 40001). The session undoes
the step and runs it again in a fresh snapshot; every write lands exactly once.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

import travian_repo as tr
from travian_repo.domain.values import Resources
from travian_repo.sandbox import Clock
from travian_repo.sql import error_mapping
from tests.conftest import MakeWorld

WRITERS = 8


@pytest.mark.parametrize("backend", ["postgresql"])
def test_serialization_failures_are_retried(
    make_world: MakeWorld, database_url: str, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_world()  # player 1: romans, barracks 3
    seen: list[str] = []
    original = error_mapping.is_retryable

    def counting(exc: sa.exc.DBAPIError) -> bool:
        retry = original(exc)
        if retry:
            seen.append(getattr(exc.orig, "pgcode", ""))
        return retry

    monkeypatch.setattr(error_mapping, "is_retryable", counting)
    url = sa.make_url(database_url)
    options = url.query.get("options", "")
    serializable = url.update_query_dict(
        {"options": f"{options} -c default_transaction_isolation=serializable".strip()}
    ).render_as_string(hide_password=False)
    policy = tr.RetryPolicy(attempts=50, deadline_s=60, base_delay_s=0.001, max_delay_s=0.02)
    with tr.connect(serializable, player_id=1, clock=clock, retry=policy, pool_size=WRITERS) as world:
        start = world.villages.get(1).resources
        assert start is not None
        barrier = threading.Barrier(WRITERS)

        def write(_: int) -> Resources:
            barrier.wait()
            return world.military.train(1, {"legionnaire": 1}).cost

        with ThreadPoolExecutor(WRITERS) as pool:
            costs = list(pool.map(write, range(WRITERS)))
        final = world.villages.get(1).resources
        assert final == start - sum(costs, Resources())
        with world.database.engine.connect() as conn:
            lines = conn.execute(sa.text("SELECT count(*) FROM training_queue")).scalar_one()
        assert lines == WRITERS
    assert seen and set(seen) == {"40001"}, "the writers never collided: nothing was retried"

"""The read cache against a real Redis, on SQLite and PostgreSQL (and over HTTP).

Each test uses a world id of its own, so its keys (``travian_repo:{version}:{world_id}:...``)
never meet another test's or another run's in the shared Redis database; they are deleted
by prefix at the end, never with FLUSHDB.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
import redis
import sqlalchemy as sa

import travian_repo as tr
from tests.conftest import PrivateRedis
from travian_repo.infra.cache import CACHE_FORMAT_VERSION, KEY_PREFIX, REDIS_RETRY_S
from travian_repo.rules.units import unit_spec
from travian_repo.sandbox import Clock
from travian_repo.sandbox.server import ServerThread, app_world, create_app

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def world_id(redis_url: str) -> Iterator[str]:
    wid = f"cache{uuid.uuid4().hex[:10]}"
    yield wid
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(f"{KEY_PREFIX}:{CACHE_FORMAT_VERSION}:{wid}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def cached_world(make_world: Any, database_url: str, redis_url: str, world_id: str,
                 clock: Clock) -> Iterator[tr.World]:
    make_world(world_id=world_id)
    with tr.connect(database_url, player_id=1, redis_url=redis_url, world_id=world_id,
                    clock=clock) as world:
        yield world


def first_village(world: tr.World, player_id: int) -> int:
    with world.unit_of_work(player_id) as uow:
        return uow.villages.list_by_player(player_id)[0].id


def counts(world: tr.World) -> tuple[int, int, int]:
    m = world.metrics
    return m["cache_hits"], m["cache_misses"], m["cache_bypassed"]


def uncached(database_url: str, world_id: str, clock: Clock, player_id: int = 1) -> tr.World:
    return tr.connect(database_url, player_id=player_id, world_id=world_id, clock=clock,
                      cache=False)


# ---- hits, misses, TTL, bad entries ----------------------------------------------------------

def test_hits_and_misses_are_counted(cached_world: tr.World) -> None:
    vid = first_village(cached_world, 1)
    before = counts(cached_world)
    first = cached_world.villages.get(vid)
    second = cached_world.villages.get(vid)
    assert first == second and first.is_private_view
    hits, misses, bypassed = counts(cached_world)
    assert (hits - before[0], misses - before[1], bypassed) == (1, 1, 0)
    # Different arguments, different keys; default and explicit arguments, one key.
    cached_world.players.ranking()
    cached_world.players.ranking("population", 100)
    cached_world.players.ranking(metric="population", limit=100)
    cached_world.players.ranking("villages")
    hits2, misses2, _ = counts(cached_world)
    assert (hits2 - hits, misses2 - misses) == (2, 2)


def test_ttl_expiry(make_world: Any, database_url: str, redis_url: str, world_id: str,
                    clock: Clock) -> None:
    make_world(world_id=world_id)
    with tr.connect(database_url, player_id=1, redis_url=redis_url, world_id=world_id,
                    clock=clock, cache_ttls={"villages.get": 0.3}) as world:
        vid = first_village(world, 1)
        world.villages.get(vid)
        world.villages.get(vid)
        assert counts(world)[:2] == (1, 2)  # list_by_player + get missed, get hit
        time.sleep(0.4)
        world.villages.get(vid)
        assert counts(world)[:2] == (1, 3)
        # The game clock counts too: once it moves past the TTL, the entry is old.
        world.villages.build_queue(vid)
        world.villages.build_queue(vid)
        assert counts(world)[:2] == (2, 4)
        clock.advance(31)
        world.villages.build_queue(vid)
        assert counts(world)[:2] == (2, 5)


def test_undecodable_entry_is_a_miss(cached_world: tr.World, redis_url: str, world_id: str) -> None:
    vid = first_village(cached_world, 1)
    good = cached_world.villages.get(vid)
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(
            f"{KEY_PREFIX}:{CACHE_FORMAT_VERSION}:{world_id}:1:villages.get:*"))
        assert len(keys) == 1
        for garbage in (b"\x00\xffnot json", b'{"g": [], "t": 0, "v": {"id": "x"}}',
                        json.dumps({"g": ["a", "b"], "t": 0, "v": {"id": 1}}).encode()):
            client.set(keys[0], garbage, ex=30)
            hits, misses, _ = counts(cached_world)
            assert cached_world.villages.get(vid) == good
            assert counts(cached_world)[:2] == (hits, misses + 1)
            assert cached_world.villages.get(vid) == good  # the miss wrote a good entry back
            assert counts(cached_world)[:2] == (hits + 1, misses + 1)
    finally:
        client.close()


# ---- invalidation ----------------------------------------------------------------------------

CHILD = textwrap.dedent("""
    import json, sys
    from datetime import datetime, timezone
    import travian_repo as tr
    from travian_repo.sandbox import Clock
    url, redis_url, world_id, vid = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    clock = Clock(datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc))
    with tr.connect(url, player_id=1, redis_url=redis_url, world_id=world_id, clock=clock) as w:
        for line in sys.stdin:
            queue = [o.building for o in w.villages.build_queue(vid)]
            stock = w.villages.get(vid).resources.wood
            m = w.metrics
            print(json.dumps({"queue": queue, "wood": stock, "hits": m["cache_hits"],
                              "misses": m["cache_misses"]}), flush=True)
""")


@pytest.mark.slow  # a Python process of its own
def test_invalidation_after_commit_is_seen_by_a_second_process(
    cached_world: tr.World, database_url: str, redis_url: str, world_id: str
) -> None:
    vid = first_village(cached_world, 1)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, database_url, redis_url, world_id, str(vid)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert child.stdin is not None and child.stdout is not None

    def ask() -> dict[str, Any]:
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write("read\n")
        child.stdin.flush()
        return dict(json.loads(child.stdout.readline()))

    try:
        warm = ask()
        again = ask()
        assert again["hits"] - warm["hits"] == 2 and again["misses"] == warm["misses"]
        assert again["queue"] == warm["queue"] == []
        with cached_world.unit_of_work() as uow:
            uow.villages.queue_building(vid, "woodcutter")
            # Not committed yet: the other process still reads the committed state.
            assert ask()["queue"] == []
        after = ask()
        assert after["queue"] == ["woodcutter"]
        assert after["wood"] < warm["wood"]
        assert after["misses"] - warm["misses"] == 2
    finally:
        child.stdin.close()
        child.wait(timeout=30)


def test_rolled_back_unit_invalidates_nothing(cached_world: tr.World, database_url: str,
                                              world_id: str, clock: Clock) -> None:
    vid = first_village(cached_world, 1)
    before = cached_world.villages.get(vid)
    queue = cached_world.villages.build_queue(vid)
    with pytest.raises(RuntimeError):
        with cached_world.unit_of_work() as uow:
            uow.villages.queue_building(vid, "woodcutter")
            # Inside the unit, its own write is visible (the read goes around the cache).
            assert len(uow.villages.build_queue(vid)) == len(queue) + 1
            raise RuntimeError("abandon")
    hits, misses, _ = counts(cached_world)
    assert cached_world.villages.get(vid) == before
    assert cached_world.villages.build_queue(vid) == queue
    assert counts(cached_world)[:2] == (hits + 2, misses)  # still warm: nothing invalidated
    with uncached(database_url, world_id, clock) as fresh:  # and nothing stale
        assert fresh.villages.get(vid) == before
        assert fresh.villages.build_queue(vid) == queue


def test_committed_writes_invalidate_what_they_changed(cached_world: tr.World) -> None:
    vid = first_village(cached_world, 1)
    target = first_village(cached_world, 2)
    cached_world.military.outgoing(vid)
    with cached_world.unit_of_work(2) as uow:
        assert uow.military.incoming(target) == []
        assert uow.diplomacy.messages(2) == []
    cached_world.trade.offers(target)
    troops = cached_world.military.troops(vid)
    tribe = cached_world.villages.get(vid).tribe
    unit = next(u for u in sorted(troops) if unit_spec(tribe, u).role not in ("scout", "settler"))
    with cached_world.unit_of_work() as uow:
        uow.military.attack(vid, target, {unit: 1})
        uow.diplomacy.send_message(1, 2, "hello", "there")
        uow.trade.create_offer(vid, "wood", 10, "clay", 10)
    assert cached_world.military.troops(vid)[unit] == troops[unit] - 1
    assert len(cached_world.military.outgoing(vid)) == 1
    assert len(cached_world.trade.offers(target)) == 1
    with cached_world.unit_of_work(2) as uow:
        assert len(uow.military.incoming(target)) == 1
        assert [m.subject for m in uow.diplomacy.messages(2)] == ["hello"]


def test_reports_are_never_cached_and_marking_read_invalidates_only_reports(
    cached_world: tr.World,
) -> None:
    from travian_repo.sql import schema

    def add(kind: str) -> int:
        with cached_world.database.engine.begin() as conn:  # as an engine elsewhere would
            return int(conn.execute(schema.reports.insert().values(
                player_id=1, kind=kind, subject=kind, village_id=2, payload={}, read=False,
                created_at=cached_world.database.clock()).returning(schema.reports.c.id)
            ).scalar_one())

    scout = add("scout")
    vid = first_village(cached_world, 1)
    village = cached_world.villages.get(vid)
    assert [r.read for r in cached_world.intel.scout_reports(1)] == [False]
    assert [r.kind for r in cached_world.intel.reports(1)] == ["scout"]
    attack = add("attack")
    again = add("scout")
    hits, misses, _ = counts(cached_world)
    assert [r.id for r in cached_world.intel.reports(1)] == [again, attack, scout]  # at once
    assert [r.id for r in cached_world.intel.scout_reports(1)] == [again, scout]
    assert counts(cached_world)[:2] == (hits, misses)  # not cached reads at all
    assert cached_world.intel.mark_report_read(scout).read is True
    assert [r.read for r in cached_world.intel.scout_reports(1)] == [False, True]
    assert cached_world.villages.get(vid) == village
    assert counts(cached_world)[:2] == (hits + 1, misses)  # the village, still cached


# ---- no cross-player leak --------------------------------------------------------------------

def test_no_cross_player_leak_through_a_warm_shared_cache(
    make_world: Any, database_url: str, redis_url: str, world_id: str, clock: Clock
) -> None:
    make_world(world_id=world_id)
    with tr.connect(database_url, player_id=1, redis_url=redis_url, world_id=world_id,
                    clock=clock) as a, \
         tr.connect(database_url, player_id=2, redis_url=redis_url, world_id=world_id,
                    clock=clock) as b:
        vid = first_village(a, 1)
        # A warms the shared cache with private reads (twice: the second is a hit).
        for _ in range(2):
            a.diplomacy.messages(1)
            a.intel.scout_reports(1)
            a.villages.build_queue(vid)
            a.military.troops(vid)
            a.military.incoming(vid)
            private = a.villages.get(vid)
        assert private.is_private_view
        assert a.metrics["cache_hits"] >= 5
        for read in (lambda: b.diplomacy.messages(1), lambda: b.intel.scout_reports(1),
                     lambda: b.villages.build_queue(vid), lambda: b.military.troops(vid),
                     lambda: b.military.incoming(vid)):
            for _ in range(2):  # errors are never cached, and never turn into A's data
                with pytest.raises(tr.Forbidden):
                    read()
        seen = b.villages.get(vid)
        assert seen == private.public() and not seen.is_private_view
        assert b.villages.get(vid) == private.public()
        assert b.metrics["cache_hits"] == 1
        # Public reads are shared: B hits what A loaded.
        a.players.get(1)
        hits = b.metrics["cache_hits"]
        b.players.get(1)
        assert b.metrics["cache_hits"] == hits + 1


# ---- stampede --------------------------------------------------------------------------------

def test_sixteen_threads_missing_one_key_load_it_once(cached_world: tr.World) -> None:
    vid = first_village(cached_world, 1)
    cached_world.players.get(1)  # the pool has a connection; the settings are read
    hits0, misses0, _ = counts(cached_world)
    statements: list[str] = []
    lock = threading.Lock()

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "villages" in statement or "tr_village" in statement:  # plain, or prepared
            with lock:
                statements.append(statement)

    engine = cached_world.database.engine
    sa.event.listen(engine, "before_cursor_execute", count)
    barrier = threading.Barrier(16)
    results: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            results.append(cached_world.villages.get(vid))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(16)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert not errors
    assert len(results) == 16 and all(r == results[0] for r in results)
    assert len(statements) == 1
    hits, misses, _ = counts(cached_world)
    assert (hits - hits0, misses - misses0) == (15, 1)


# ---- Redis down and back ---------------------------------------------------------------------

@pytest.mark.slow  # stops and starts Redis
def test_redis_stopped_and_started_in_a_run_of_reads_and_writes(
    make_world: Any, database_url: str, world_id: str, clock: Clock, private_redis: PrivateRedis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    make_world(world_id=world_id)
    caplog.set_level(logging.WARNING, logger="travian_repo.infra.cache")
    with tr.connect(database_url, player_id=1, redis_url=private_redis.url, world_id=world_id,
                    clock=clock) as world, uncached(database_url, world_id, clock) as truth:
        vid = first_village(world, 1)

        def check_reads() -> None:
            assert world.villages.get(vid) == truth.villages.get(vid)
            assert world.villages.build_queue(vid) == truth.villages.build_queue(vid)
            assert world.players.get(1) == truth.players.get(1)

        check_reads()
        check_reads()
        assert world.metrics["cache_hits"] >= 3
        private_redis.stop()
        written = 0
        for building in ("woodcutter", "clay_pit"):
            check_reads()
            with world.unit_of_work() as uow:
                uow.villages.queue_building(vid, building)
                written += 1
            check_reads()
        assert len(truth.villages.build_queue(vid)) == written  # nothing lost
        assert world.metrics["cache_bypassed"] >= 6
        failed = [r for r in caplog.records if "Redis failed" in r.getMessage()]
        assert len(failed) == 1  # once per outage

        private_redis.start()
        time.sleep(REDIS_RETRY_S + 0.1)
        check_reads()  # Redis back: misses, entries written again
        hits = world.metrics["cache_hits"]
        check_reads()
        assert world.metrics["cache_hits"] == hits + 3
        back = [r for r in caplog.records if "answering again" in r.getMessage()]
        assert len(back) == 1


@pytest.mark.slow  # waits out a Redis outage
def test_invalidation_lost_while_redis_refuses_writes_is_made_up_for(
    make_world: Any, database_url: str, world_id: str, clock: Clock, private_redis: PrivateRedis,
) -> None:
    """Redis alive but not taking writes (paused) when a commit invalidates: the entries stay
    readable for a moment, and the world's epoch is bumped as soon as Redis answers."""
    make_world(world_id=world_id)
    with tr.connect(database_url, player_id=1, redis_url=private_redis.url, world_id=world_id,
                    clock=clock) as reader, \
         tr.connect(database_url, player_id=1, redis_url=private_redis.url, world_id=world_id,
                    clock=clock) as writer:
        vid = first_village(reader, 1)
        assert reader.villages.build_queue(vid) == []
        admin = redis.Redis(port=private_redis.port)
        try:
            admin.execute_command("CLIENT", "PAUSE", 600, "WRITE")
            with writer.unit_of_work() as uow:
                uow.villages.queue_building(vid, "woodcutter")  # the bump times out
            time.sleep(0.7)  # the pause is over
        finally:
            admin.close()
        time.sleep(REDIS_RETRY_S)
        writer.players.get(1)  # the writer's next cache use sends the lost invalidation
        assert [o.building for o in reader.villages.build_queue(vid)] == ["woodcutter"]


# ---- over HTTP and in auto mode ----------------------------------------------------------------

@pytest.fixture
def served(make_world: Any, database_url: str, clock: Clock, world_id: str) -> Iterator[tuple[str, dict[int, str]]]:
    summary = make_world(world_id=world_id)
    app = create_app(database_url, clock=clock)
    try:
        with ServerThread(app, threads=8) as server:
            yield server.url, summary.tokens
    finally:
        app_world(app).close()


def test_http_backend_hits_avoid_requests(served: tuple[str, dict[int, str]], redis_url: str,
                                          world_id: str) -> None:
    url, tokens = served
    with tr.connect(api_url=url, token=tokens[1], redis_url=redis_url, world_id=world_id) as world, \
         tr.connect(api_url=url, token=tokens[2], redis_url=redis_url, world_id=world_id) as other:
        vid = world.villages.list_by_player(1)[0].id
        sent = world.metrics["total_requests"]
        first = world.villages.get(vid)
        assert world.metrics["total_requests"] == sent + 1
        for _ in range(5):
            assert world.villages.get(vid) == first
            assert world.villages.build_queue(vid) == []
        assert world.metrics["total_requests"] == sent + 2
        with pytest.raises(tr.Forbidden):
            other.villages.build_queue(vid)
        assert other.villages.get(vid) == first.public()
        # An API write invalidates when it returns; the next read asks the server again.
        world.villages.queue_building(vid, "woodcutter")
        assert [o.building for o in world.villages.build_queue(vid)] == ["woodcutter"]
        assert world.villages.get(vid).resources != first.resources


def test_auto_mode_reads_its_own_writes_through_the_cache(
    served: tuple[str, dict[int, str]], database_url: str, redis_url: str, world_id: str,
    clock: Clock,
) -> None:
    url, tokens = served
    with tr.connect(database_url, url, token=tokens[1], redis_url=redis_url,
                    world_id=world_id, clock=clock) as world:
        assert world.prefer == "auto"
        vid = first_village(world, 1)
        assert world.villages.build_queue(vid) == []
        assert world.villages.build_queue(vid) == []  # warm
        with world.unit_of_work() as uow:
            uow.villages.queue_building(vid, "woodcutter")
            assert [o.building for o in uow.villages.build_queue(vid)] == ["woodcutter"]
        assert [o.building for o in world.villages.build_queue(vid)] == ["woodcutter"]

"""The cache after a Redis outage, against a private redis-server frozen (SIGSTOP/SIGCONT) or
paused (``CLIENT PAUSE ... WRITE``): an invalidation that could not be delivered while Redis
was unreachable must not leave a reader with a stale entry once Redis is back.

The writer's process delivers what it lost by bumping the world's epoch (every entry records
it): before its own next cache use, and from a background retry every ``LOST_RETRY_S`` while
it is idle. Readers elsewhere see the write within ``FRESH_WITHIN_S`` of Redis answering.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import redis

import travian_repo as tr
from tests.conftest import START, PrivateRedis
from travian_repo.infra.cache import CACHE_FORMAT_VERSION, KEY_PREFIX, LOST_RETRY_S
from travian_repo.sandbox import Clock, create_world

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]

# The stated bound: one retry interval, plus one attempt that was in flight when Redis froze
# (two 0.25 s socket timeouts: the command and its one retry), plus slack for a busy machine.
FRESH_WITHIN_S = LOST_RETRY_S + 0.5 + 1.0


@pytest.fixture
def world_id() -> str:
    return f"outage{uuid.uuid4().hex[:10]}"


@pytest.fixture
def sqlite_url(tmp_path: Path, world_id: str) -> str:
    url = f"sqlite:///{tmp_path / 'world.db'}"
    create_world(url, players=3, seed=7, start="developed", world_id=world_id, now=START)
    return url


@pytest.fixture
def admin(private_redis: PrivateRedis) -> Iterator[redis.Redis]:
    client = redis.Redis(port=private_redis.port, socket_timeout=5)
    yield client
    client.close()


class Frozen:
    """SIGSTOP the private redis-server for the ``with`` block; SIGCONT on the way out."""

    def __init__(self, server: PrivateRedis) -> None:
        assert server.proc is not None
        self.pid = server.proc.pid

    def __enter__(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def __exit__(self, *exc: object) -> None:
        os.kill(self.pid, signal.SIGCONT)


def connect(url: str, player: int, server: PrivateRedis, world_id: str, **kwargs: Any) -> tr.World:
    return tr.connect(url, player_id=player, redis_url=server.url, world_id=world_id,
                      clock=Clock(START), **kwargs)


def inbox(world: tr.World) -> list[str]:
    return [m.body for m in world.diplomacy.messages(2)]


def wait_until(check: Callable[[], bool], limit_s: float) -> float | None:
    """Seconds until ``check()`` held (polled every 50 ms), or None if it never did."""
    started = time.monotonic()
    while True:
        if check():
            return time.monotonic() - started
        if time.monotonic() - started > limit_s:
            return None
        time.sleep(0.05)


def epoch(admin: redis.Redis, world_id: str) -> Any:
    return admin.get(f"{KEY_PREFIX}:{CACHE_FORMAT_VERSION}:{world_id}:gen:world")


# ---- a writer in another process, idle after its write -------------------------------------

WRITER = textwrap.dedent("""
    import sys
    from datetime import datetime, timezone
    import travian_repo as tr
    from travian_repo.sandbox import Clock
    url, redis_url, world_id = sys.argv[1:4]
    clock = Clock(datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc))
    with tr.connect(url, player_id=1, redis_url=redis_url, world_id=world_id, clock=clock) as w:
        w.diplomacy.messages(1)  # the connection to Redis is open
        print("ready", flush=True)
        sys.stdin.readline()
        w.diplomacy.send_message(1, 2, "hello", "sent while Redis was frozen")
        print("sent", flush=True)
        sys.stdin.readline()  # idle, alive, until told to finish
""")


@pytest.mark.slow
def test_write_lost_in_a_freeze_reaches_a_reader_in_another_process(
    sqlite_url: str, world_id: str, private_redis: PrivateRedis
) -> None:
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, sqlite_url, private_redis.url, world_id],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert writer.stdin is not None and writer.stdout is not None
    try:
        assert writer.stdout.readline().strip() == "ready"
        with connect(sqlite_url, 2, private_redis, world_id) as reader:
            assert inbox(reader) == [] and inbox(reader) == []
            assert reader.metrics["cache_hits"] == 1  # the empty inbox is cached
            with Frozen(private_redis):
                writer.stdin.write("go\n")
                writer.stdin.flush()
                assert writer.stdout.readline().strip() == "sent"  # its invalidation is lost
            # Redis is back; the writer stays idle. The reader must see the message soon.
            seen = wait_until(lambda: inbox(reader) == ["sent while Redis was frozen"],
                              FRESH_WITHIN_S)
            assert seen is not None, (
                f"reader still served the stale inbox {FRESH_WITHIN_S:.2f} s after Redis came "
                f"back (metrics {reader.metrics})")
            for _ in range(5):  # and it stays fresh
                assert inbox(reader) == ["sent while Redis was frozen"]
    finally:
        writer.stdin.close()
        writer.wait(timeout=30)
    assert writer.returncode == 0


# ---- a failed bump is retried ----------------------------------------------------------------

@pytest.mark.slow
def test_a_failed_recovery_bump_is_retried_until_redis_takes_it(
    sqlite_url: str, world_id: str, private_redis: PrivateRedis, admin: redis.Redis
) -> None:
    """Redis answers reads but refuses writes (paused) for 3 s: the invalidation and every
    retry of the epoch bump in that time fail; once writes are taken, a retry goes through
    without the writer doing anything."""
    with connect(sqlite_url, 1, private_redis, world_id) as writer, \
         connect(sqlite_url, 2, private_redis, world_id) as reader:
        assert inbox(reader) == []
        before = epoch(admin, world_id)
        admin.execute_command("CLIENT", "PAUSE", 3000, "WRITE")
        paused_at = time.monotonic()
        writer.diplomacy.send_message(1, 2, "hello", "paused")  # about 1 s of timeouts
        assert writer.metrics.get("cache_invalidations_lost") == 1
        # Reads still work: the stale inbox is what a reader sees until the bump lands.
        assert inbox(reader) == []
        # By 2 s the background retry has tried (and failed) at least once.
        assert wait_until(lambda: time.monotonic() - paused_at > 2.0, 3.0) is not None
        assert epoch(admin, world_id) == before  # no bump got through the pause
        assert inbox(reader) == []
        assert writer.cache is not None and writer.cache.store.pending
        seen = wait_until(lambda: inbox(reader) == ["paused"], 1.0 + FRESH_WITHIN_S)
        assert seen is not None, f"the bump was not retried (metrics {writer.metrics})"
        assert epoch(admin, world_id) != before
        assert writer.metrics.get("cache_invalidations_recovered") == 1
        assert not writer.cache.store.pending


@pytest.mark.slow  # waits out a Redis outage
def test_writer_delivers_before_its_own_next_cache_use(
    sqlite_url: str, world_id: str, private_redis: PrivateRedis
) -> None:
    """No waiting for the background retry: the writer's first cache use after the freeze
    sends the epoch bump first (a read of anything)."""
    with connect(sqlite_url, 1, private_redis, world_id) as writer, \
         connect(sqlite_url, 2, private_redis, world_id) as reader:
        writer.cache.store._lost_retry_s = 3600  # type: ignore[union-attr]  # not the retry
        assert inbox(reader) == []
        with Frozen(private_redis):
            writer.diplomacy.send_message(1, 2, "hello", "frozen")
            time.sleep(1.1)  # the writer's breaker is open; wait it out
        writer.players.get(1)
        assert inbox(reader) == ["frozen"]


@pytest.mark.slow  # waits out a Redis outage
def test_closing_the_writer_delivers_what_it_lost(
    sqlite_url: str, world_id: str, private_redis: PrivateRedis
) -> None:
    with connect(sqlite_url, 2, private_redis, world_id) as reader:
        assert inbox(reader) == []
        writer = connect(sqlite_url, 1, private_redis, world_id)
        writer.cache.store._lost_retry_s = 3600  # type: ignore[union-attr]  # close, not the retry
        try:
            with Frozen(private_redis):
                writer.diplomacy.send_message(1, 2, "hello", "frozen")
        finally:
            writer.close()
        assert inbox(reader) == ["frozen"]


# ---- the races around the bump ---------------------------------------------------------------

@pytest.mark.slow  # waits out a Redis outage
@pytest.mark.parametrize("put_lands", ["before the bump", "after the bump"])
def test_an_entry_loaded_before_the_write_is_dropped_by_the_bump(
    sqlite_url: str, world_id: str, private_redis: PrivateRedis, put_lands: str
) -> None:
    """A reader loads the inbox before the write, but its entry reaches Redis only after the
    freeze: before the writer's bump (readable until the bump), or after it. Either way,
    once the bump is delivered nothing from before the write is served."""
    with connect(sqlite_url, 1, private_redis, world_id) as writer, \
         connect(sqlite_url, 2, private_redis, world_id) as reader, \
         connect(sqlite_url, 2, private_redis, world_id) as other:
        writer.cache.store._lost_retry_s = 3600  # type: ignore[union-attr]  # deliver by hand
        assert reader.cache is not None
        loaded, release = threading.Event(), threading.Event()
        original = reader.cache._put

        def delayed_put(*args: Any) -> None:
            loaded.set()
            assert release.wait(10)
            original(*args)

        reader.cache._put = delayed_put  # type: ignore[method-assign]
        got: list[list[str]] = []
        loader = threading.Thread(target=lambda: got.append(inbox(reader)))
        loader.start()
        try:
            assert loaded.wait(10)  # the database read is done: an empty inbox
            with Frozen(private_redis):
                writer.diplomacy.send_message(1, 2, "hello", "frozen")
            assert writer.cache is not None and writer.cache.store.pending
            if put_lands == "before the bump":
                release.set()
                loader.join(10)
                assert inbox(other) == []  # the window: stale until the writer's bump
                time.sleep(1.1)
                writer.players.get(1)  # the writer's next cache use delivers the bump
            else:
                time.sleep(1.1)
                writer.players.get(1)
                release.set()
                loader.join(10)
        finally:
            release.set()
            loader.join(10)
        assert got == [[]]
        assert not writer.cache.store.pending
        reader.cache._put = original  # type: ignore[method-assign]
        for world in (other, reader, other, reader):
            assert inbox(world) == ["frozen"]


# ---- the in-process memo of decoded values ---------------------------------------------------

def test_decoded_value_reuse_does_not_outlive_an_epoch_bump(
    sqlite_url: str, world_id: str, private_redis: PrivateRedis, admin: redis.Redis
) -> None:
    """A hit on unchanged bytes reuses the value decoded last time; the bytes in Redis stay
    the same across the bump, the epoch they were stored under does not."""
    with connect(sqlite_url, 2, private_redis, world_id) as reader, \
         tr.connect(sqlite_url, player_id=1, world_id=world_id, clock=Clock(START),
                    cache=False) as unseen:
        assert inbox(reader) == [] and inbox(reader) == []
        key = next(iter(admin.scan_iter(f"{KEY_PREFIX}:*:{world_id}:2:diplomacy.messages:*")))
        stored = admin.get(key)
        unseen.diplomacy.send_message(1, 2, "hello", "not invalidated")
        assert inbox(reader) == []  # a cache=False writer invalidates nothing (documented)
        hits = reader.metrics["cache_hits"]
        assert reader.cache is not None
        reader.cache.invalidate({"world"})  # what a delivered lost invalidation does
        assert admin.get(key) == stored  # the same bytes
        assert inbox(reader) == ["not invalidated"]
        assert reader.metrics["cache_hits"] == hits


def test_reads_skip_the_memo_while_redis_is_unreachable(
    sqlite_url: str, world_id: str, private_redis: PrivateRedis
) -> None:
    with connect(sqlite_url, 2, private_redis, world_id) as reader, \
         tr.connect(sqlite_url, player_id=1, world_id=world_id, clock=Clock(START),
                    cache=False) as unseen:
        assert inbox(reader) == [] and inbox(reader) == []
        unseen.diplomacy.send_message(1, 2, "hello", "not invalidated")
        bypassed = reader.metrics["cache_bypassed"]
        with Frozen(private_redis):
            assert inbox(reader) == ["not invalidated"]  # from the database
            assert inbox(reader) == ["not invalidated"]
        assert reader.metrics["cache_bypassed"] == bypassed + 2


# ---- the store's bookkeeping -----------------------------------------------------------------

def test_a_loss_during_a_bump_in_flight_stays_pending(private_redis: PrivateRedis,
                                                      admin: redis.Redis) -> None:
    """Thread A's recovery bump is on its way when thread B's invalidation fails (B's write
    may have committed after A's bump reached Redis): B's loss must not be cleared by A."""
    from travian_repo.infra.cache import RedisStore

    epoch_key = f"{KEY_PREFIX}:{CACHE_FORMAT_VERSION}:w{uuid.uuid4().hex[:8]}:gen:world"

    class Client(redis.Redis):  # a real client; one hook to interleave the second loss
        def pipeline(self, *args: Any, **kwargs: Any) -> Any:
            pipe = super().pipeline(*args, **kwargs)
            execute = pipe.execute

            def execute_then_lose(*a: Any, **k: Any) -> Any:
                done = execute(*a, **k)
                if hook:
                    hook.pop()()
                return done

            pipe.execute = execute_then_lose  # type: ignore[method-assign]
            return pipe

    hook: list[Callable[[], None]] = []
    client = Client(port=private_redis.port, socket_timeout=1)
    store = RedisStore(client, lost_retry_s=3600)
    try:
        store._lose(epoch_key)
        assert store.pending
        hook.append(lambda: store._lose(epoch_key))
        assert store.lookup([epoch_key]) is not None  # recovers first: the bump reaches Redis
        first = admin.get(epoch_key)
        assert first is not None
        assert store.pending, "a loss recorded while the bump was in flight was dropped"
        assert store.lookup([epoch_key]) is not None
        assert not store.pending
        assert admin.get(epoch_key) not in (None, first)  # bumped again
    finally:
        store.close()
        client.close()

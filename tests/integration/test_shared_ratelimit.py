"""The rate limit shared through Redis: real Redis, real processes, a real restart."""

from __future__ import annotations

import logging
import multiprocessing
import time
import uuid
from typing import Any, Iterator

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

import travian_repo as tr
from travian_repo.http.backend import HttpBackend
from tests.conftest import PrivateRedis, free_port
from travian_repo.domain.errors import RateLimited
from travian_repo.infra.ratelimit import (
    LocalRateLimiter,
    RedisRateLimiter,
    rate_limiter_from_option,
)

pytestmark = pytest.mark.redis

LOGGER = "travian_repo.infra.ratelimit"


def unique_world() -> str:
    return f"test-rl-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    made = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
    yield made
    made.close()


def no_retry_client(url: str) -> redis.Redis:
    """Bounded timeouts and no client-side retry backoff, so a dead Redis fails in ~ms."""
    return redis.Redis.from_url(url, socket_timeout=0.25, socket_connect_timeout=0.25,
                                retry=Retry(NoBackoff(), 0))


# ---- four processes, one bucket ------------------------------------------------------------

RATE = 50
WINDOW_S = 3.0


def _hammer(url: str, world_id: str, ready: Any, go: Any, start_at: Any, results: Any,
            index: int) -> None:
    """Acquire as fast as possible during [start_at, start_at + WINDOW_S]; count the grants
    that were both asked for and granted inside the window. The window opens only once
    every process is ready, however long spawning took on a loaded machine."""
    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    limiter = RedisRateLimiter(client, RATE, 1_000_000, world_id=world_id)
    limiter.load_script()
    ready.put(index)
    if not go.wait(60):
        raise RuntimeError("the start signal never came")
    end = start_at.value + WINDOW_S
    while time.time() < start_at.value:
        time.sleep(0.001)
    count = 0
    while True:
        asked = time.time()
        if asked >= end:
            break
        limiter.acquire()
        if time.time() <= end:
            count += 1
    results.put((index, count, limiter.fallback_acquires))
    client.close()


@pytest.mark.slow
def test_four_processes_share_one_bucket_of_50_per_second(redis_url: str) -> None:
    world_id = unique_world()
    ctx = multiprocessing.get_context("spawn")
    results, ready, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    start_at = ctx.Value("d", 0.0)
    procs = [ctx.Process(target=_hammer,
                         args=(redis_url, world_id, ready, go, start_at, results, i))
             for i in range(4)]
    for proc in procs:
        proc.start()
    for _ in procs:
        ready.get(timeout=60)
    start_at.value = time.time() + 0.2
    go.set()
    got = [results.get(timeout=30) for _ in procs]
    for proc in procs:
        proc.join(10)
        assert proc.exitcode == 0
    counts = {index: count for index, count, _fallback in got}
    assert all(fallback == 0 for _i, _c, fallback in got), "Redis was used throughout"
    total = sum(counts.values())
    print(f"grants per process in {WINDOW_S:g}s at {RATE}/s: {counts}, total {total}")
    # GCRA: in any window of T seconds at most rate * T + bucket grants (the bucket starts full)
    assert total <= RATE * WINDOW_S + RATE, counts
    assert total >= RATE * WINDOW_S * 0.9, counts  # and the quota is actually used
    for index, count in counts.items():
        assert count >= 0.10 * total, f"process {index} starved: {counts}"


# ---- the script, NOSCRIPT and restarts ------------------------------------------------------

def test_the_script_reloads_after_script_flush(client: redis.Redis) -> None:
    limiter = RedisRateLimiter(client, 1000, 100_000, world_id=unique_world())
    limiter.acquire()  # loads the script unless this server already has it
    loads = limiter.script_loads
    client.script_flush()  # what a restart does to scripts
    limiter.acquire()  # NOSCRIPT -> SCRIPT LOAD -> EVALSHA again
    assert limiter.script_loads == loads + 1
    assert limiter.fallback_acquires == 0
    assert client.exists(limiter.key)


def test_keys_have_a_ttl_and_vanish_when_idle(client: redis.Redis) -> None:
    limiter = RedisRateLimiter(client, 100, 6000, world_id=unique_world())
    limiter.acquire()
    ttl = client.pttl(limiter.key)
    assert 0 < ttl <= 1000 + 1000  # the minute bucket refills one token in 10 ms, + 1 s margin
    assert limiter.key.startswith("travian_repo:v1:") and limiter.key.endswith(":ratelimit")


@pytest.mark.slow  # restarts Redis
def test_a_real_restart_falls_back_then_shares_again(
    private_redis: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    client = no_retry_client(private_redis.url)
    limiter = RedisRateLimiter(client, 1000, 100_000, world_id=unique_world(), recheck_s=0.2)
    limiter.acquire()
    assert limiter.script_loads == 1
    caplog.set_level(logging.WARNING, logger=LOGGER)

    private_redis.stop()
    for _ in range(5):
        limiter.acquire()  # never fails: the local fallback serves
        time.sleep(0.1)
    assert limiter.fallback_acquires >= 5
    down = [r for r in caplog.records if "Redis unavailable" in r.getMessage()]
    assert len(down) == 1, "one warning per outage"

    private_redis.start()  # a fresh server: empty, no scripts
    time.sleep(0.3)  # past recheck_s
    before = limiter.fallback_acquires
    limiter.acquire()
    assert limiter.fallback_acquires == before
    assert limiter.script_loads == 2  # reloaded on the restarted server
    assert client.exists(limiter.key)
    assert any("back" in r.getMessage() for r in caplog.records)
    client.close()


# ---- both limits together --------------------------------------------------------------------

def _state(client: redis.Redis, key: str) -> dict[Any, Any]:
    return dict(client.hgetall(key))


def test_a_minute_refusal_charges_neither_bucket(client: redis.Redis) -> None:
    limiter = RedisRateLimiter(client, 100, 3, world_id=unique_world())
    for _ in range(3):
        limiter.acquire(timeout=0)  # the minute bucket holds 3
    state = _state(client, limiter.key)
    for _ in range(5):
        with pytest.raises(RateLimited) as caught:
            limiter.acquire(timeout=0)
        # the next minute token comes 60/3 = 20 s after the first grant
        assert 19.0 < (caught.value.retry_after or 0) <= 20.0
    assert _state(client, limiter.key) == state  # the second bucket was not charged either


def test_a_second_refusal_charges_neither_bucket(client: redis.Redis) -> None:
    limiter = RedisRateLimiter(client, 2, 1000, world_id=unique_world())
    limiter.acquire(timeout=0)
    limiter.acquire(timeout=0)
    state = _state(client, limiter.key)
    with pytest.raises(RateLimited) as caught:
        limiter.acquire(timeout=0)
    assert 0.3 < (caught.value.retry_after or 0) <= 0.5
    assert _state(client, limiter.key) == state


def test_acquire_sleeps_until_its_booked_slot(client: redis.Redis) -> None:
    slept: list[float] = []
    limiter = RedisRateLimiter(client, 10, 1000, world_id=unique_world(), sleep=slept.append)
    for _ in range(10):
        limiter.acquire()
    assert slept == []  # the full bucket
    limiter.acquire()
    limiter.acquire()
    assert len(slept) == 2
    # booked one after the other, 0.1 s apart (no real sleep happened)
    assert 0.0 < slept[0] <= 0.1 and 0.1 < slept[1] <= 0.2
    with pytest.raises(RateLimited):
        limiter.acquire(timeout=0.1)


def test_the_minute_limit_holds_across_many_seconds(client: redis.Redis) -> None:
    """per second 100 but per minute 120: after the minute burst, one per 0.5 s."""
    slept: list[float] = []
    limiter = RedisRateLimiter(client, 100, 120, world_id=unique_world(), sleep=slept.append)
    for _ in range(100):
        limiter.acquire()
    # the second bucket (100) is the first to run dry: waits of about 10 ms
    for _ in range(30):
        limiter.acquire()
    # now the minute bucket (120) is dry too: 60/120 = 0.5 s per grant, booked ahead
    assert slept[-1] > 4.0


# ---- Redis down --------------------------------------------------------------------------------

def test_redis_down_falls_back_to_local_limits_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead = no_retry_client(f"redis://127.0.0.1:{free_port()}/0")
    limiter = RedisRateLimiter(dead, 3, 1000, world_id=unique_world(), recheck_s=0)
    caplog.set_level(logging.WARNING, logger=LOGGER)
    for _ in range(3):
        limiter.acquire(timeout=0)  # served locally, never an error
    with pytest.raises(RateLimited):
        limiter.acquire(timeout=0)  # the same limits, enforced locally
    assert limiter.fallback_acquires == 4
    assert isinstance(limiter.fallback, LocalRateLimiter)
    assert limiter.fallback.per_second == 3
    warnings = [r for r in caplog.records if r.name == LOGGER]
    assert len(warnings) == 1 and "Redis unavailable" in warnings[0].getMessage()


def test_while_down_redis_is_only_rechecked_now_and_then() -> None:
    dead = no_retry_client(f"redis://127.0.0.1:{free_port()}/0")
    limiter = RedisRateLimiter(dead, 1_000_000, 1_000_000_000, world_id=unique_world(),
                               recheck_s=60)
    limiter.acquire()
    started = time.perf_counter()
    for _ in range(200):
        limiter.acquire()
    assert time.perf_counter() - started < 0.5  # no connect attempt per acquire


# ---- the option and connect() ------------------------------------------------------------------

def test_rate_limiter_from_option(client: redis.Redis) -> None:
    shared = rate_limiter_from_option(None, client, world_id="w1")
    assert isinstance(shared, RedisRateLimiter)
    assert (shared.per_second, shared.per_minute) == (100, 5000)
    assert shared.key == "travian_repo:v1:w1:ratelimit"
    pair = rate_limiter_from_option((10, 200), client, world_id="w1")
    assert isinstance(pair, RedisRateLimiter) and pair.per_second == 10
    ready = LocalRateLimiter(5, 50)
    assert rate_limiter_from_option(ready, client, world_id="w1") is ready
    assert isinstance(rate_limiter_from_option((10, 200)), LocalRateLimiter)


def test_connect_shares_the_limit_when_redis_is_configured(redis_url: str) -> None:
    world_id = unique_world()
    with tr.connect(api_url="http://127.0.0.1:9", prefer="http", redis_url=redis_url,
                    world_id=world_id, rate_limit=(7, 70)) as world:
        assert isinstance(world.backend, HttpBackend)
        limiter = world.backend.transport.rate_limiter
        assert isinstance(limiter, RedisRateLimiter)
        assert limiter.key == f"travian_repo:v1:{world_id}:ratelimit"
        assert (limiter.per_second, limiter.per_minute) == (7, 70)
        assert limiter.client is world.redis
    with tr.connect(api_url="http://127.0.0.1:9", prefer="http", world_id=world_id) as world:
        assert isinstance(world.backend, HttpBackend)
        assert isinstance(world.backend.transport.rate_limiter, LocalRateLimiter)

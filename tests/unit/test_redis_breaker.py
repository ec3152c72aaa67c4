"""The Redis outage breaker shared by the cache, the rate limiter and the event bus."""

from __future__ import annotations

import logging
import threading

import pytest
import redis

from travian_repo.infra.redis_breaker import RedisBreaker

LOGGER = "tests.redis_breaker"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(clock: FakeClock, retry_s: float = 1.0) -> RedisBreaker:
    return RedisBreaker(retry_s, log=logging.getLogger(LOGGER), clock=clock,
                        down_message="down (%s: %s)", back_message="back")


def test_while_redis_answers_every_call_is_allowed() -> None:
    breaker = make(FakeClock())
    assert all(breaker.allow() for _ in range(3))
    breaker.succeeded()
    assert not breaker.down and breaker.allow()


def test_after_a_failure_redis_is_skipped_until_one_probe_per_interval() -> None:
    clock = FakeClock()
    breaker = make(clock, retry_s=1.0)
    breaker.failed(redis.ConnectionError("refused"))
    assert breaker.down
    assert not breaker.allow()
    clock.now += 0.99
    assert not breaker.allow()
    clock.now += 0.02
    assert breaker.allow()  # the probe
    assert not breaker.allow() and not breaker.allow()  # the others skip while it runs
    breaker.failed(redis.ConnectionError("still refused"))
    clock.now += 0.5
    assert not breaker.allow()  # the interval counts from the last failure
    clock.now += 0.6
    assert breaker.allow()
    breaker.succeeded()
    assert not breaker.down
    assert all(breaker.allow() for _ in range(3))


def test_one_warning_per_outage_and_one_when_back(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    clock = FakeClock()
    breaker = make(clock, retry_s=0)
    for n in range(3):
        breaker.failed(redis.TimeoutError(f"timeout {n}"))
    breaker.succeeded()
    breaker.succeeded()
    breaker.failed(OSError("reset"))
    messages = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert messages == ["down (TimeoutError: timeout 0)", "back", "down (OSError: reset)"]


def test_concurrent_callers_after_the_interval_send_a_single_probe() -> None:
    clock = FakeClock()
    breaker = make(clock, retry_s=5.0)
    breaker.failed(redis.ConnectionError("refused"))
    clock.now += 6
    allowed: list[bool] = []
    start = threading.Barrier(8)

    def caller() -> None:
        start.wait(timeout=5)
        allowed.append(breaker.allow())

    threads = [threading.Thread(target=caller) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=5)
    assert sorted(allowed) == [False] * 7 + [True]

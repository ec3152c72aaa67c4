"""The client rate limiter: token buckets on a fake clock; nothing waits for real time."""

from __future__ import annotations

import bisect
import threading
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from travian_repo.domain.errors import ConfigurationError, InvalidRequest, RateLimited
from travian_repo.infra.ratelimit import (
    DEFAULT_PER_MINUTE,
    DEFAULT_PER_SECOND,
    LocalRateLimiter,
    RateLimiter,
    rate_limiter_from_option,
)

EPS = 1e-9


class FakeTime:
    """A shared clock that moves only when someone sleeps.

    Each thread remembers the time it last read; ``sleep(s)`` wakes it at that time plus
    ``s`` (the clock moves to the latest wake-up asked for), like threads sleeping side by side.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.lock = threading.Lock()
        self.local = threading.local()
        self.sleeps: list[float] = []
        self.reads = 0

    def clock(self) -> float:
        with self.lock:
            self.reads += 1
            self.local.seen = self.now
            return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0, "a zero or negative sleep is a spin"
        with self.lock:
            self.sleeps.append(seconds)
            wake = getattr(self.local, "seen", self.now) + seconds
            self.now = max(self.now, wake)
        time.sleep(0)  # let the other threads run


class RecordingLimiter(LocalRateLimiter):
    """Writes down the time each slot is granted for (under the limiter's lock)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.grants: list[float] = []

    def _reserve(self, now: float, timeout: float | None) -> float:
        grant = super()._reserve(now, timeout)
        self.grants.append(grant)
        return grant


def busiest_window(times: list[float], width: float) -> int:
    """The most grants in any half-open window ``[t, t + width)``."""
    ordered = sorted(times)
    return max(
        (bisect.bisect_left(ordered, t + width - EPS) - i for i, t in enumerate(ordered)),
        default=0,
    )


def make(fake: FakeTime, per_second: float = 10, per_minute: float = 6000) -> RecordingLimiter:
    return RecordingLimiter(per_second, per_minute, clock=fake.clock, sleep=fake.sleep)


# ---- the buckets ---------------------------------------------------------------------------


def test_a_full_bucket_gives_a_burst_then_one_slot_per_interval() -> None:
    fake = FakeTime()
    limiter = make(fake, per_second=5)
    for _ in range(12):
        limiter.acquire()
    assert limiter.grants[:5] == [1000.0] * 5  # the burst: the bucket holds per_second
    assert limiter.grants[5:] == pytest.approx([1000.0 + 0.2 * k for k in range(1, 8)])
    assert fake.sleeps == pytest.approx([0.2] * 7)


def test_it_sleeps_instead_of_spinning() -> None:
    fake = FakeTime()
    limiter = make(fake, per_second=10)
    for _ in range(30):
        limiter.acquire()
    # one clock read and at most one sleep per acquire: nothing polls
    assert len(fake.sleeps) == 20
    assert fake.reads == 30 + 1  # + the one at construction
    assert all(s == pytest.approx(0.1) for s in fake.sleeps)


def test_the_per_minute_limit_is_enforced() -> None:
    fake = FakeTime()
    limiter = make(fake, per_second=100, per_minute=60)
    for _ in range(200):
        limiter.acquire()
    grants = limiter.grants
    assert grants[:60] == [1000.0] * 60  # the minute bucket's burst
    assert grants[60] == pytest.approx(1001.0)  # then one per second (60 per minute)
    assert grants[-1] == pytest.approx(1000.0 + 140)
    assert busiest_window(grants, 60.0) <= 60 + 60  # the limit plus the bucket
    assert busiest_window(grants[60:], 60.0) <= 60  # sustained: the limit itself
    assert len(fake.sleeps) == 140


def test_sixteen_threads_keep_the_per_second_limit() -> None:
    fake = FakeTime()
    per_second, threads, per_thread = 10, 16, 40
    limiter = make(fake, per_second=per_second, per_minute=100_000)
    barrier = threading.Barrier(threads)
    failures: list[BaseException] = []

    def work() -> None:
        try:
            barrier.wait()
            for _ in range(per_thread):
                limiter.acquire()
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert failures == []
    grants = limiter.grants
    total = threads * per_thread
    assert len(grants) == total  # every acquire booked exactly one slot: no lost update
    # no window of one second holds more than the per-second limit plus the bucket size
    assert busiest_window(grants, 1.0) <= per_second + per_second
    # and overall the rate is the limit: the burst, then 1/per_second apart
    assert max(grants) - min(grants) == pytest.approx((total - per_second) / per_second)
    assert len(set(grants[per_second:])) == total - per_second  # one slot per grant


def test_timeout_raises_rate_limited_at_once_and_books_nothing() -> None:
    fake = FakeTime()
    limiter = make(fake, per_second=1, per_minute=1000)
    limiter.acquire()
    with pytest.raises(RateLimited) as caught:
        limiter.acquire(timeout=0.5)
    assert caught.value.retry_after == pytest.approx(1.0)
    assert fake.sleeps == []  # it did not wait to find out
    with pytest.raises(RateLimited):
        limiter.acquire(timeout=0)  # non-blocking try
    limiter.acquire(timeout=1.0)  # the refusals booked nothing: the slot is still at +1 s
    assert fake.sleeps == [pytest.approx(1.0)]


def test_timeout_counts_the_queue_ahead() -> None:
    fake = FakeTime()
    limiter = make(fake, per_second=2, per_minute=1000)
    for _ in range(4):  # burst of 2, then slots at +0.5 and +1.0
        limiter.acquire()
    with pytest.raises(RateLimited) as caught:
        limiter.acquire(timeout=0.2)
    assert caught.value.retry_after == pytest.approx(0.5)


def test_fractional_limits_work() -> None:
    fake = FakeTime()
    limiter = make(fake, per_second=0.5, per_minute=1000)
    limiter.acquire()
    limiter.acquire()
    assert limiter.grants == [1000.0, pytest.approx(1002.0)]


def test_a_clock_going_backwards_gives_no_free_tokens() -> None:
    fake = FakeTime()
    limiter = make(fake, per_second=10)
    for _ in range(10):
        limiter.acquire()
    fake.now -= 100.0  # a broken clock: the limiter keeps the latest time it saw
    limiter.acquire()
    assert limiter.grants[-1] == pytest.approx(1000.1)
    assert fake.sleeps[-1] == pytest.approx(0.1)  # measured from the latest time it saw


def test_the_default_clock_is_monotonic() -> None:
    limiter = LocalRateLimiter()
    assert limiter._clock is time.monotonic
    assert (limiter.per_second, limiter.per_minute) == (DEFAULT_PER_SECOND, DEFAULT_PER_MINUTE)


def test_real_time_without_timing_asserts() -> None:
    # Real clock, real sleep; only what cannot depend on the machine's speed is asserted:
    # one slot per minute means the second acquire is refused whatever the time taken.
    limiter = LocalRateLimiter(per_second=1, per_minute=1)
    limiter.acquire(timeout=0)
    with pytest.raises(RateLimited) as caught:
        limiter.acquire(timeout=0)
    assert caught.value.retry_after is not None and 0 < caught.value.retry_after <= 60


def test_bad_timeout_is_refused() -> None:
    limiter = LocalRateLimiter()
    for bad in (-1, float("nan"), "1", True):
        with pytest.raises(InvalidRequest):
            limiter.acquire(timeout=bad)  # type: ignore[arg-type]


@settings(max_examples=80, deadline=None)
@given(
    per_second=st.integers(1, 20),
    per_minute=st.integers(1, 300),
    gaps=st.lists(st.floats(0, 3, allow_nan=False), min_size=1, max_size=150),
)
def test_no_window_ever_exceeds_the_limit_plus_the_bucket(
    per_second: int, per_minute: int, gaps: list[float]
) -> None:
    fake = FakeTime()
    limiter = make(fake, per_second=per_second, per_minute=per_minute)
    for gap in gaps:
        with fake.lock:
            fake.now += gap
        limiter.acquire()
    assert busiest_window(limiter.grants, 1.0) <= 2 * per_second
    assert busiest_window(limiter.grants, 60.0) <= 2 * per_minute
    assert limiter.grants == sorted(limiter.grants)  # first come, first served


# ---- the option ------------------------------------------------------------------------------


def test_rate_limiter_from_option() -> None:
    default = rate_limiter_from_option(None)
    assert isinstance(default, LocalRateLimiter)
    assert (default.per_second, default.per_minute) == (100, 5000)
    pair = rate_limiter_from_option((10, 600))
    assert isinstance(pair, LocalRateLimiter) and (pair.per_second, pair.per_minute) == (10, 600)
    assert isinstance(rate_limiter_from_option([5, 50]), LocalRateLimiter)

    class Shared:  # e.g. the Redis-backed one: anything with acquire(timeout=None)
        def acquire(self, timeout: float | None = None) -> None:
            return None

    shared = Shared()
    assert rate_limiter_from_option(shared) is shared
    assert isinstance(shared, RateLimiter)


@pytest.mark.parametrize(
    "bad", ["fast", 100, (1, 2, 3), (0, 5), (5, -1), (True, 5), (float("inf"), 5),
            ("10", "600"), LocalRateLimiter],
)
def test_rate_limiter_from_option_refuses_the_rest(bad: object) -> None:
    with pytest.raises(ConfigurationError):
        rate_limiter_from_option(bad)


def test_burst_sizes_the_second_bucket() -> None:
    fake = FakeTime()
    limiter = LocalRateLimiter(2, 1000, burst=5, clock=fake.clock, sleep=fake.sleep)
    for _ in range(5):
        limiter.acquire(timeout=0)  # the burst, at once
    with pytest.raises(RateLimited) as caught:
        limiter.acquire(timeout=0)
    assert caught.value.retry_after == pytest.approx(0.5)
    assert fake.sleeps == []
    fake.now += 0.5
    limiter.acquire(timeout=0)  # one token back after 1 / rate
    with pytest.raises(ConfigurationError):
        LocalRateLimiter(2, 1000, burst=0)


def test_the_server_limit_keeps_a_bucket_per_caller_and_forgets_the_oldest() -> None:
    from travian_repo.sandbox.limits import ServerRateLimit, caller_of

    limit = ServerRateLimit(1, 2, max_callers=2)
    token = caller_of("Bearer abc", "127.0.0.1")
    assert token == caller_of("bearer  abc ", "10.0.0.1") and "abc" not in token
    assert caller_of("", "127.0.0.1") == "a:127.0.0.1"
    limit.check(token)
    limit.check(token)
    with pytest.raises(RateLimited) as caught:
        limit.check(token)
    assert 0 < (caught.value.retry_after or 0) <= 1
    limit.check("a:1")
    limit.check("a:2")  # three callers for two places: the least recently used one goes
    limit.check(token)  # ... with its bucket (bounded memory over exact accounting)
    with pytest.raises(ConfigurationError):
        ServerRateLimit(0)
    with pytest.raises(ConfigurationError):
        ServerRateLimit(1, 0.5)

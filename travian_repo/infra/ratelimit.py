"""Client-side rate limiting: two token buckets, per second and per minute.

``LocalRateLimiter`` keeps one process within the engine's quota (by default 100 requests per
second, 5000 per minute); ``RedisRateLimiter`` shares the same buckets among every process of
a world through Redis. Both implement the ``RateLimiter`` protocol.

The buckets are kept in their "virtual scheduling" form (GCRA): instead of a token count,
each bucket remembers the theoretical time its next token is due. That form is exactly a
token bucket (same capacity, same refill rate) and it lets a caller *reserve* its slot under
the lock and then sleep once, outside the lock, until that slot: no spinning, no thundering
herd, first come first served, and a grant is charged to both buckets at the moment it is
granted.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from typing import Callable, Protocol, cast, runtime_checkable

import redis

from travian_repo.domain.errors import ConfigurationError, RateLimited
from travian_repo.domain.validators import check_timeout, is_finite_number
from travian_repo.infra.keys import rate_limit_key
from travian_repo.infra.redis_breaker import RedisBreaker

DEFAULT_PER_SECOND = 100.0
DEFAULT_PER_MINUTE = 5000.0

_EPSILON = 1e-9  # float noise below which a wait counts as none

log = logging.getLogger(__name__)


@runtime_checkable
class RateLimiter(Protocol):
    """Anything that can hold a caller back until it may send one request."""

    def acquire(self, timeout: float | None = None) -> None:
        """Block (sleeping) until one request may be sent.

        ``timeout`` (seconds) bounds the wait; when the next slot is further away than that,
        raise ``RateLimited`` at once, with ``retry_after`` the wait that would have been
        needed. ``None`` waits as long as it takes.
        """
        ...


class _Bucket:
    """One token bucket as GCRA state: ``tat`` is when the bucket is next empty-and-refilled."""

    __slots__ = ("capacity", "interval", "tolerance", "tat")

    def __init__(self, rate_per_s: float, capacity: float, now: float) -> None:
        self.capacity = capacity
        self.interval = 1.0 / rate_per_s  # seconds per token
        self.tolerance = (capacity - 1.0) * self.interval  # how far ahead a burst may run
        self.tat = now  # a full bucket

    def earliest(self) -> float:
        """The earliest time the next token may be taken."""
        return self.tat - self.tolerance

    def take_at(self, when: float) -> None:
        self.tat = max(self.tat, when) + self.interval


class LocalRateLimiter(RateLimiter):
    """Two token buckets consumed together or not at all; thread-safe; in-process.

    - the second bucket refills at ``per_second`` tokens per second and holds at most
      ``per_second`` tokens: a burst after idling is at most ``per_second`` requests, so no
      window of one second sees more than ``2 * per_second`` (the limit plus the bucket);
    - the minute bucket refills at ``per_minute / 60`` per second and holds ``per_minute``
      (so no window of one minute sees more than ``2 * per_minute``, and a sustained load
      gets ``per_minute`` per minute).

    A bucket never holds less than one token, so fractional limits (``0.5`` per second) work.

    ``burst`` (default ``per_second``) is how many tokens the second bucket holds instead.

    Both start full. Time comes from ``clock`` (default ``time.monotonic``: wall-clock
    jumps do not matter, and a clock that goes backwards is ignored); waiting is done by
    ``sleep`` (default ``time.sleep``), once per ``acquire`` at most. Both are injectable
    for tests.
    """

    def __init__(
        self,
        per_second: float = DEFAULT_PER_SECOND,
        per_minute: float = DEFAULT_PER_MINUTE,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.per_second = _positive("per_second", per_second)
        self.per_minute = _positive("per_minute", per_minute)
        self.burst = self.per_second if burst is None else _positive("burst", burst)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        now = clock()
        self._last_now = now
        # A bucket holds at least one token, so fractional limits (0.5/s) work too.
        self._second = _Bucket(self.per_second, max(1.0, self.burst), now)
        self._minute = _Bucket(self.per_minute / 60.0, max(1.0, self.per_minute), now)

    def acquire(self, timeout: float | None = None) -> None:
        check_timeout(timeout)
        with self._lock:
            now = self._now()
            grant_at = self._reserve(now, timeout)
        wait = grant_at - now
        if wait > _EPSILON:
            self._sleep(wait)

    def _now(self) -> float:
        """The clock, never going backwards (called under the lock)."""
        now = self._clock()
        if now < self._last_now:
            now = self._last_now
        self._last_now = now
        return now

    def _reserve(self, now: float, timeout: float | None) -> float:
        """Book the next slot in both buckets and return its time (called under the lock).

        Raises ``RateLimited`` without booking anything when the slot is further away than
        ``timeout``.
        """
        grant_at = max(now, self._second.earliest(), self._minute.earliest())
        wait = grant_at - now
        if wait <= _EPSILON:
            grant_at, wait = now, 0.0
        if timeout is not None and wait > timeout:
            raise RateLimited(
                f"client rate limit ({self.per_second:g}/s, {self.per_minute:g}/min): the next "
                f"slot is {wait:.3f}s away, beyond the {timeout:g}s timeout",
                retry_after=wait,
            )
        self._second.take_at(grant_at)
        self._minute.take_at(grant_at)
        return grant_at

    def __repr__(self) -> str:
        return f"LocalRateLimiter(per_second={self.per_second:g}, per_minute={self.per_minute:g})"


class RedisRateLimiter(RateLimiter):
    """The same two buckets, shared by every process of a world through Redis.

    One Lua script does the whole decision atomically on the Redis server, on Redis's own
    clock (``TIME``), so processes on different machines (with drifting clocks) agree. The
    buckets are GCRA state in one hash per world (``travian_repo:v1:{world_id}:ratelimit``,
    fields ``s`` and ``m``: when each bucket is next full, in microseconds of Redis time);
    the key expires once both buckets are full again, so an idle world leaves nothing behind.

    ``acquire`` makes one round trip: the script *books* the next slot free in both buckets
    (both or neither) and returns how long until it; the caller then sleeps that long, once.
    When the slot is further away than ``timeout``, the script books nothing and returns the
    wait ("refused"), and ``acquire`` raises ``RateLimited(retry_after=wait)`` at once.
    Booking instead of polling makes the shared bucket first come, first served: N processes
    hammering it get about 1/N each, with no thundering herd of retries.

    ``burst`` sizes the second bucket as in ``LocalRateLimiter``.

    The script runs by ``EVALSHA``; on ``NOSCRIPT`` (Redis restarted or ``SCRIPT FLUSH``) it
    is loaded again and the call retried once.

    Redis unreachable (or any Redis error): the request is never failed because of the
    limiter. It falls back to ``fallback`` (default: a ``LocalRateLimiter`` with the same
    limits, per process, so N processes may together send up to N times the quota during the
    outage), logs one warning per outage, and tries Redis again after ``recheck_s`` seconds;
    the first success logs that the shared limit is back.
    """

    SCRIPT = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local s_interval = tonumber(ARGV[1])
local s_tolerance = tonumber(ARGV[2])
local m_interval = tonumber(ARGV[3])
local m_tolerance = tonumber(ARGV[4])
local max_wait = tonumber(ARGV[5])
local state = redis.call('HMGET', KEYS[1], 's', 'm')
local s_tat = tonumber(state[1]) or now
local m_tat = tonumber(state[2]) or now
local grant = math.max(now, s_tat - s_tolerance, m_tat - m_tolerance)
local wait = grant - now
if wait < 1 then
  grant = now
  wait = 0
end
if max_wait >= 0 and wait > max_wait then
  return {0, math.ceil(wait)}
end
s_tat = math.max(s_tat, grant) + s_interval
m_tat = math.max(m_tat, grant) + m_interval
redis.call('HSET', KEYS[1], 's', string.format('%.3f', s_tat), 'm', string.format('%.3f', m_tat))
redis.call('PEXPIRE', KEYS[1], math.ceil((math.max(s_tat, m_tat) - now) / 1000) + 1000)
return {1, math.ceil(wait)}
"""
    SHA = hashlib.sha1(SCRIPT.encode("utf-8")).hexdigest()

    def __init__(
        self,
        client: redis.Redis,
        per_second: float = DEFAULT_PER_SECOND,
        per_minute: float = DEFAULT_PER_MINUTE,
        *,
        world_id: str = "default",
        key: str | None = None,
        fallback: RateLimiter | None = None,
        recheck_s: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        burst: float | None = None,
    ) -> None:
        self.per_second = _positive("per_second", per_second)
        self.per_minute = _positive("per_minute", per_minute)
        self.burst = self.per_second if burst is None else _positive("burst", burst)
        self.client = client
        self.key = key if key is not None else rate_limit_key(world_id)
        self.fallback = (
            fallback if fallback is not None
            else LocalRateLimiter(self.per_second, self.per_minute, burst=self.burst, sleep=sleep)
        )
        self._breaker = RedisBreaker(
            recheck_s, log=log,
            down_message=(
                "shared rate limit: Redis unavailable (%s: %s); limiting this process locally "
                f"({self.per_second:g}/s, {self.per_minute:g}/min) until it is back"
            ),
            back_message="shared rate limit: Redis is back; the limit is shared again",
        )
        self._sleep = sleep
        s_interval = 1e6 / self.per_second
        m_interval = 60e6 / self.per_minute
        self._args = (
            repr(s_interval),
            repr((max(1.0, self.burst) - 1.0) * s_interval),
            repr(m_interval),
            repr((max(1.0, self.per_minute) - 1.0) * m_interval),
        )
        self._state_lock = threading.Lock()
        self.script_loads = 0  # how many times the script was loaded (first use, NOSCRIPT)
        self.fallback_acquires = 0  # acquires served by the fallback while Redis was down

    def acquire(self, timeout: float | None = None) -> None:
        check_timeout(timeout)
        if not self._breaker.allow():
            self._acquire_locally(timeout)
            return
        max_wait_us = -1 if timeout is None else int(timeout * 1e6)
        try:
            granted, wait_us = self._run(max_wait_us)
        except redis.RedisError as exc:
            self._breaker.failed(exc)
            self._acquire_locally(timeout)
            return
        self._breaker.succeeded()
        wait = int(wait_us) / 1e6
        if not granted:
            raise RateLimited(
                f"shared rate limit ({self.per_second:g}/s, {self.per_minute:g}/min): the next "
                f"slot is {wait:.3f}s away, beyond the {timeout:g}s timeout",
                retry_after=wait,
            )
        if wait > 0:
            self._sleep(wait)

    def _run(self, max_wait_us: int) -> tuple[int, int]:
        try:
            result = self.client.evalsha(self.SHA, 1, self.key, *self._args, max_wait_us)
        except redis.exceptions.NoScriptError:
            # Redis restarted, or SCRIPT FLUSH: load it again and retry once.
            self.load_script()
            result = self.client.evalsha(self.SHA, 1, self.key, *self._args, max_wait_us)
        granted, wait_us = cast("list[int]", result)
        return int(granted), int(wait_us)

    def load_script(self) -> None:
        sha = self.client.script_load(self.SCRIPT)
        if isinstance(sha, bytes):
            sha = sha.decode("ascii")
        if sha != self.SHA:  # pragma: no cover - Redis hashes the body with SHA-1, as we do
            raise redis.exceptions.ResponseError(f"script loaded as {sha}, expected {self.SHA}")
        with self._state_lock:
            self.script_loads += 1
        log.debug("rate limit script loaded into Redis (%s)", self.SHA)

    def _acquire_locally(self, timeout: float | None) -> None:
        with self._state_lock:
            self.fallback_acquires += 1
        self.fallback.acquire(timeout)

    @property
    def recheck_s(self) -> float:
        """Seconds between tries of Redis while it is down."""
        return self._breaker.retry_s

    @recheck_s.setter
    def recheck_s(self, value: float) -> None:
        self._breaker.retry_s = value

    def __repr__(self) -> str:
        return (f"RedisRateLimiter(per_second={self.per_second:g}, "
                f"per_minute={self.per_minute:g}, key={self.key!r})")


def rate_limiter_from_option(
    value: object, redis_client: redis.Redis | None = None, *, world_id: str = "default"
) -> RateLimiter:
    """The limiter ``connect(rate_limit=...)`` asks for.

    ``value``: ``None`` for the defaults (100/s, 5000/min); a ``(per_second, per_minute)``
    pair; or a ready ``RateLimiter`` (anything with ``acquire(timeout=None)``), used as given.

    With a ``redis_client`` and no ready limiter, the limits are shared by every process of
    the world through Redis (``RedisRateLimiter``); without one, they hold for this process
    (``LocalRateLimiter``).
    """
    if value is None:
        per_second, per_minute = DEFAULT_PER_SECOND, DEFAULT_PER_MINUTE
    elif isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ConfigurationError(
                f"rate_limit must be (per_second, per_minute), got {len(value)} values"
            )
        per_second, per_minute = value[0], value[1]
    elif not isinstance(value, type) and isinstance(value, RateLimiter):
        return value
    else:
        raise ConfigurationError(
            "rate_limit must be None, a (per_second, per_minute) pair or a RateLimiter, "
            f"not {type(value).__name__}"
        )
    if redis_client is not None:
        return RedisRateLimiter(redis_client, per_second, per_minute, world_id=world_id)
    return LocalRateLimiter(per_second, per_minute)


def _positive(name: str, value: object) -> float:
    if not is_finite_number(value) or value <= 0:
        raise ConfigurationError(f"rate limit {name} must be a positive number, not {value!r}")
    return float(value)


__all__ = [
    "DEFAULT_PER_MINUTE",
    "DEFAULT_PER_SECOND",
    "LocalRateLimiter",
    "RateLimiter",
    "RedisRateLimiter",
    "rate_limiter_from_option",
]

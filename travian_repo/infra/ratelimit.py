"""Client-side rate limiting: two token buckets, per second and per minute.

``LocalRateLimiter`` keeps one process within the engine's quota (the seed's numbers: 100
requests per second, 5000 per minute). A limiter shared by every process through Redis can
follow by implementing the same ``RateLimiter`` protocol.

The buckets are kept in their "virtual scheduling" form (GCRA): instead of a token count,
each bucket remembers the theoretical time its next token is due. That form is exactly a
token bucket (same capacity, same refill rate) and it lets a caller *reserve* its slot under
the lock and then sleep once, outside the lock, until that slot: no spinning, no thundering
herd, first come first served, and a grant is charged to both buckets at the moment it is
granted.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Callable, Protocol, runtime_checkable

from travian_repo.domain.errors import ConfigurationError, InvalidRequest, RateLimited

DEFAULT_PER_SECOND = 100.0
DEFAULT_PER_MINUTE = 5000.0

_EPSILON = 1e-9  # float noise below which a wait counts as none


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
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.per_second = _positive("per_second", per_second)
        self.per_minute = _positive("per_minute", per_minute)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        now = clock()
        self._last_now = now
        # A bucket holds at least one token, so fractional limits (0.5/s) work too.
        self._second = _Bucket(self.per_second, max(1.0, self.per_second), now)
        self._minute = _Bucket(self.per_minute / 60.0, max(1.0, self.per_minute), now)

    def acquire(self, timeout: float | None = None) -> None:
        if timeout is not None and (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or math.isnan(timeout)
            or timeout < 0
        ):
            raise InvalidRequest(f"timeout must be None or a number >= 0, not {timeout!r}")
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


def rate_limiter_from_option(value: object) -> RateLimiter:
    """The limiter ``connect(rate_limit=...)`` asks for.

    ``None``: the defaults (100/s, 5000/min); a ``(per_second, per_minute)`` pair; or a ready
    ``RateLimiter`` (anything with ``acquire(timeout=None)``), used as given.
    """
    if value is None:
        return LocalRateLimiter()
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ConfigurationError(
                f"rate_limit must be (per_second, per_minute), got {len(value)} values"
            )
        return LocalRateLimiter(value[0], value[1])
    if not isinstance(value, type) and isinstance(value, RateLimiter):
        return value
    raise ConfigurationError(
        "rate_limit must be None, a (per_second, per_minute) pair or a RateLimiter, "
        f"not {type(value).__name__}"
    )


def _positive(name: str, value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigurationError(f"rate limit {name} must be a positive number, not {value!r}")
    return float(value)


__all__ = [
    "DEFAULT_PER_MINUTE",
    "DEFAULT_PER_SECOND",
    "LocalRateLimiter",
    "RateLimiter",
    "rate_limiter_from_option",
]

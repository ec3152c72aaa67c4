"""When Redis stops answering, stop asking it for a while: one breaker for every Redis user.

The cache, the shared rate limiter and the event bus each have a way to carry on without
Redis (read the backend, limit locally, drop the events). What they share is this: after a
failure, Redis is skipped for ``retry_s`` seconds so that no caller waits for a dead server's
timeout; then one caller tries it again (the probe) while the others keep skipping. One
warning when an outage starts and one when Redis answers again, whatever the number of
failures in between.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable


class RedisBreaker:
    """The outage state of one Redis user.

    ``allow()`` before a Redis call says whether to make it; ``failed(exc)`` and
    ``succeeded()`` after it report how it went. The warnings go to ``log`` (the user's own
    logger, so they keep its name): ``down_message`` is formatted with the failure's type
    and text (two ``%s``), ``back_message`` with nothing.
    """

    __slots__ = ("retry_s", "_log", "_down_message", "_back_message", "_clock", "_lock",
                 "_down", "_retry_at")

    def __init__(
        self, retry_s: float, *, log: logging.Logger, down_message: str, back_message: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.retry_s = retry_s
        self._clock = clock
        self._log = log
        self._down_message = down_message
        self._back_message = back_message
        self._lock = threading.Lock()
        self._down = False
        self._retry_at = 0.0  # the clock's time before which Redis is not tried again

    @property
    def down(self) -> bool:
        """Whether the last Redis call failed (and none succeeded since)."""
        return self._down

    def allow(self) -> bool:
        """Whether to call Redis now: always while it answers; during an outage, once per
        ``retry_s`` (that caller probes it, the others keep skipping meanwhile)."""
        if not self._down:
            return True
        now = self._clock()
        with self._lock:
            if not self._down:
                return True
            if now < self._retry_at:
                return False
            self._retry_at = now + self.retry_s
            return True

    def failed(self, exc: BaseException) -> None:
        """A Redis call failed: skip Redis for ``retry_s``; warn if the outage is new."""
        with self._lock:
            first = not self._down
            self._down = True
            self._retry_at = self._clock() + self.retry_s
        if first:
            self._log.warning(self._down_message, type(exc).__name__, str(exc)[:200])

    def succeeded(self) -> None:
        """A Redis call worked: the outage (if any) is over."""
        if not self._down:
            return
        with self._lock:
            was = self._down
            self._down = False
            self._retry_at = 0.0
        if was:
            self._log.warning(self._back_message)


__all__ = ["RedisBreaker"]

"""A settable clock for tests and simulations."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone


class Clock:
    """Callable like ``datetime.now(timezone.utc)``, but it moves only when told."""

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime(2026, 1, 1, tzinfo=timezone.utc)
        if start.tzinfo is None:
            raise ValueError("Clock needs an aware datetime")
        self._now = start.astimezone(timezone.utc)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        # Reading one attribute is atomic; the lock only orders the writers.
        return self._now

    def advance(self, seconds: float) -> datetime:
        if seconds < 0:
            raise ValueError("time does not run backwards")
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now

    def set(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("Clock needs an aware datetime")
        with self._lock:
            self._now = when.astimezone(timezone.utc)

    def __repr__(self) -> str:
        return f"Clock({self().isoformat()})"

"""Thread-safe counters and latencies, per operation, read as a snapshot mapping."""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

_WINDOW = 10_000  # latencies kept for the p95


class _OpStats:
    __slots__ = ("requests", "errors", "retries", "total_ms", "latencies")

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.retries = 0
        self.total_ms = 0.0
        self.latencies: deque[float] = deque(maxlen=_WINDOW)


def _p95(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ops: dict[str, _OpStats] = {}
        self._all = _OpStats()
        self._counters: dict[str, int] = {"cache_hits": 0, "cache_misses": 0, "cache_bypassed": 0}

    def record(self, operation: str, elapsed_ms: float, *, error: bool = False) -> None:
        with self._lock:
            op = self._ops.get(operation)
            if op is None:  # not setdefault: that builds a spare _OpStats on every call
                op = self._ops[operation] = _OpStats()
            # Unrolled: this runs once per repository call.
            every = self._all
            every.requests += 1
            op.requests += 1
            if error:
                every.errors += 1
                op.errors += 1
            every.total_ms += elapsed_ms
            op.total_ms += elapsed_ms
            every.latencies.append(elapsed_ms)
            op.latencies.append(elapsed_ms)

    def retried(self, operation: str) -> None:
        with self._lock:
            self._all.retries += 1
            self._ops.setdefault(operation, _OpStats()).retries += 1

    def count(self, counter: str, n: int = 1) -> None:
        with self._lock:
            self._counters[counter] = self._counters.get(counter, 0) + n

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            result: dict[str, Any] = {
                "total_requests": self._all.requests,
                "errors": self._all.errors,
                "retries": self._all.retries,
                "avg_latency_ms": self._all.total_ms / self._all.requests if self._all.requests else 0.0,
                "p95_latency_ms": _p95(list(self._all.latencies)),
                **self._counters,
                "operations": {
                    name: {
                        "requests": s.requests,
                        "errors": s.errors,
                        "retries": s.retries,
                        "avg_latency_ms": s.total_ms / s.requests if s.requests else 0.0,
                        "p95_latency_ms": _p95(list(s.latencies)),
                    }
                    for name, s in sorted(self._ops.items())
                },
            }
        return result

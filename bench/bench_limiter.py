#!/usr/bin/env python
"""The cost of one rate limiter acquire, local and shared through Redis.

    python bench/bench_limiter.py [--redis-url URL] [--calls N] [--rounds R]

Both limiters are configured with limits far above what one process can ask for (10^9 per
second, 6 x 10^10 per minute), so no acquire ever waits: the figures are the limiter's
overhead, not its waiting. For reference it also times a raw Redis ``PING`` and a raw
``EVALSHA`` of a trivial script on the same connection (the round trip the shared limiter
cannot avoid). Medians in microseconds over ``rounds`` x ``calls``; printed, never asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis  # noqa: E402

from travian_repo.infra.ratelimit import LocalRateLimiter, RedisRateLimiter  # noqa: E402

UNLIMITED = (1e9, 6e10)


def timed(fn: Callable[[], object], calls: int, rounds: int) -> tuple[float, float]:
    """(median, p95) of one call, in microseconds."""
    for _ in range(min(calls, 200)):  # warm-up
        fn()
    samples: list[float] = []
    clock = time.perf_counter_ns
    for _ in range(rounds):
        for _ in range(calls):
            started = clock()
            fn()
            samples.append((clock() - started) / 1000.0)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    client = redis.Redis.from_url(args.redis_url, socket_timeout=1, socket_connect_timeout=1)
    world_id = f"bench-{uuid.uuid4().hex[:8]}"
    local = LocalRateLimiter(*UNLIMITED)
    shared = RedisRateLimiter(client, *UNLIMITED, world_id=world_id)
    trivial = client.script_load("return 1")

    rows = [
        ("LocalRateLimiter.acquire()", lambda: local.acquire()),
        ("RedisRateLimiter.acquire()", lambda: shared.acquire()),
        ("raw Redis PING (reference)", lambda: client.ping()),
        ("raw EVALSHA 'return 1' (reference)", lambda: client.evalsha(trivial, 0)),
    ]
    print(f"one acquire, unlimited rate ({args.rounds} x {args.calls} calls, µs)")
    print(f"{'':38} {'median':>9} {'p95':>9}")
    for name, fn in rows:
        median, p95 = timed(fn, args.calls, args.rounds)
        print(f"{name:38} {median:9.1f} {p95:9.1f}")
    assert shared.fallback_acquires == 0, "Redis was unreachable: the figures are the fallback's"
    client.delete(shared.key)
    client.close()


if __name__ == "__main__":
    main()

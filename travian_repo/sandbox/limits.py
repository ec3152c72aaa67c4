"""The server's rate limit: one token bucket per API token, answered ``429`` with ``Retry-After``.

The buckets are ``travian_repo.infra.ratelimit``'s limiters, asked with ``timeout=0`` (a
request over the limit is refused at once, never held): ``LocalRateLimiter`` per process,
or ``RedisRateLimiter`` when the server has Redis, so every server process of a world shares
each token's bucket (Redis down: each process limits on its own until it is back).

A caller is its bearer token (hashed, so no token is kept in memory keys or in Redis), or,
without one, its remote address.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import redis

from travian_repo.domain.errors import ConfigurationError, RateLimited
from travian_repo.domain.validators import is_finite_number
from travian_repo.infra.keys import server_rate_limit_prefix
from travian_repo.infra.ratelimit import LocalRateLimiter, RateLimiter, RedisRateLimiter

# Per token: twice the client's own default quota (100 requests per second), so a client
# within its default limit is never refused, and five seconds of it at once, so short bursts
# (a script's start, a test's loop) pass while a token that keeps hammering is held back.
DEFAULT_RATE = 200.0
DEFAULT_BURST_FACTOR = 5.0
MAX_LOCAL_CALLERS = 10_000  # buckets kept per process; the least recently used go first


def caller_of(authorization: str, remote_addr: str | None) -> str:
    """The bucket a request counts against: its token's digest, or its address."""
    _, _, token = authorization.partition(" ")
    token = token.strip()
    if token:
        digest = hashlib.sha256(b"travian_repo server rate limit\x00" + token.encode("utf-8",
                                "surrogateescape")).hexdigest()
        return "t:" + digest[:32]
    return "a:" + (remote_addr or "unknown")


class ServerRateLimit:
    """``rate`` requests per second per caller, with bursts of up to ``burst`` requests."""

    def __init__(
        self,
        rate: float = DEFAULT_RATE,
        burst: float | None = None,
        *,
        redis_client: redis.Redis | None = None,
        world_id: str = "default",
        max_callers: int = MAX_LOCAL_CALLERS,
    ) -> None:
        if not is_finite_number(rate) or rate <= 0:
            raise ConfigurationError(f"the server rate limit must be a positive number of "
                                     f"requests per second, not {rate!r}")
        if burst is None:
            burst = max(1.0, rate * DEFAULT_BURST_FACTOR)
        if not is_finite_number(burst) or burst < 1:
            raise ConfigurationError(f"the server rate burst must be a number >= 1, "
                                     f"not {burst!r}")
        self.rate = float(rate)
        self.burst = float(burst)
        self._redis = redis_client
        self._prefix = server_rate_limit_prefix(world_id)
        self._max = max_callers
        self._lock = threading.Lock()
        self._limiters: OrderedDict[str, RateLimiter] = OrderedDict()

    def check(self, caller: str) -> None:
        """Count one request of ``caller``; ``RateLimited`` (retry_after set) when over."""
        try:
            self._limiter(caller).acquire(timeout=0)
        except RateLimited as refused:
            wait = refused.retry_after or 1.0 / self.rate
            raise RateLimited(
                f"server rate limit: {self.rate:g} requests per second per token (bursts of "
                f"{self.burst:g}); retry in {wait:.2f}s",
                retry_after=wait, details={"limit_per_second": self.rate, "burst": self.burst},
            ) from None

    def _limiter(self, caller: str) -> RateLimiter:
        with self._lock:
            limiter = self._limiters.get(caller)
            if limiter is not None:
                self._limiters.move_to_end(caller)
                return limiter
            # the minute bucket is set never to bind: the second bucket is the whole limit
            per_minute = self.rate * 60.0 * 2.0
            if self._redis is not None:
                limiter = RedisRateLimiter(self._redis, self.rate, per_minute, burst=self.burst,
                                           key=self._prefix + caller)
            else:
                limiter = LocalRateLimiter(self.rate, per_minute, burst=self.burst)
            self._limiters[caller] = limiter
            while len(self._limiters) > self._max:
                self._limiters.popitem(last=False)
            return limiter

    def __repr__(self) -> str:
        where = "redis" if self._redis is not None else "local"
        return f"ServerRateLimit(rate={self.rate:g}, burst={self.burst:g}, {where})"


__all__ = ["DEFAULT_BURST_FACTOR", "DEFAULT_RATE", "ServerRateLimit", "caller_of"]

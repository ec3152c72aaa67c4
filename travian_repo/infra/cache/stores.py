"""Where cache entries and generations live: Redis (shared by processes) or a dict (one process)."""

from __future__ import annotations

import logging
import os
import threading
import time
import typing
from abc import ABC, abstractmethod
from typing import Any, Callable, Iterable

import redis

from travian_repo.infra.metrics import Metrics
from travian_repo.infra.redis_breaker import RedisBreaker

# The package's logger: outage warnings keep the name users already filter on.
log = logging.getLogger("travian_repo.infra.cache")

GENERATION_TTL_S = 24 * 3600  # generations outlive every entry; a lost one only means misses
REDIS_RETRY_S = 1.0  # after a Redis failure, reads skip Redis this long before trying again
LOST_RETRY_S = 0.25  # a process holding an undelivered invalidation retries it this often
MEMORY_MAX_ENTRIES = 50_000


class Store(ABC):
    @abstractmethod
    def lookup(self, keys: list[str]) -> list[Any] | None:
        """Values of ``keys`` (None where missing) in one round trip; None = store unusable."""

    @abstractmethod
    def ensure(self, gen_keys: list[str], key: str) -> list[Any] | None:
        """Give every generation in ``gen_keys`` a value if it has none, then return
        ``[value of key, *generations]`` in one round trip; None = store unusable."""

    @abstractmethod
    def put(self, key: str, value: bytes, ttl_s: float) -> None:
        """Store an entry for ``ttl_s`` seconds (best effort)."""

    @abstractmethod
    def bump(self, gen_keys: Iterable[str], epoch_key: str) -> None:
        """New generations for ``gen_keys``."""

    @property
    def pending(self) -> bool:
        """Whether an invalidation is still waiting to reach the store."""
        return False

    def close(self) -> None:
        """Release what the store holds (nothing, unless it says otherwise)."""


def _token() -> str:
    return os.urandom(8).hex()


class MemoryStore(Store):
    """One process's cache: entries with a TTL, generations, one lock."""

    def __init__(self, max_entries: int = MEMORY_MAX_ENTRIES) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[bytes, float]] = {}
        self._gens: dict[str, str] = {}
        self._max = max_entries

    def _get(self, key: str, now: float) -> Any:
        found = self._entries.get(key)
        if found is not None:
            if found[1] > now:
                return found[0]
            del self._entries[key]
        return self._gens.get(key)

    def lookup(self, keys: list[str]) -> list[Any]:
        now = time.monotonic()
        with self._lock:
            return [self._get(k, now) for k in keys]

    def ensure(self, gen_keys: list[str], key: str) -> list[Any]:
        now = time.monotonic()
        with self._lock:
            for g in gen_keys:
                if g not in self._gens:
                    self._gens[g] = _token()
            return [self._get(key, now), *(self._gens[g] for g in gen_keys)]

    def put(self, key: str, value: bytes, ttl_s: float) -> None:
        now = time.monotonic()
        with self._lock:
            self._entries.pop(key, None)  # re-inserted last: the dict's order is age
            self._entries[key] = (value, now + ttl_s)
            if len(self._entries) > self._max:
                for k in [k for k, (_, exp) in self._entries.items() if exp <= now]:
                    del self._entries[k]
                while len(self._entries) > self._max:
                    del self._entries[next(iter(self._entries))]

    def bump(self, gen_keys: Iterable[str], epoch_key: str) -> None:
        with self._lock:
            for g in gen_keys:
                self._gens[g] = _token()


class RedisStore(Store):
    """Redis through the world's client, behind a ``RedisBreaker``: after a failure, reads
    skip Redis for ``REDIS_RETRY_S``, then one of them tries it again; one warning when it
    fails, one when it is back.

    An invalidation that could not be delivered is remembered (in this process) as the
    world's epoch to bump: the bump is sent before this process's next use of Redis, and a
    background thread retries it every ``lost_retry_s`` until Redis takes it, so an idle
    writer does not leave other processes' readers with stale entries.
    """

    def __init__(
        self, client: redis.Redis, retry_s: float = REDIS_RETRY_S,
        lost_retry_s: float = LOST_RETRY_S, metrics: Metrics | None = None,
    ) -> None:
        self._client = client
        self._breaker = RedisBreaker(
            retry_s, log=log,
            down_message="Redis failed (%s: %s): cached reads go to the backend until it "
                         "answers again",
            back_message="Redis is answering again: the cache is back in use",
        )
        self._lost_retry_s = lost_retry_s
        self._metrics = metrics
        self._state_lock = threading.Lock()
        # Epochs to bump once Redis answers again, and how many losses were recorded: a bump
        # clears them only if no loss came in while it was on its way (that loss may be for a
        # write committed after the bump reached Redis).
        self._lost: set[str] = set()
        self._lost_seq = 0
        self._retrier: threading.Thread | None = None
        self._closed = threading.Event()

    @property
    def down(self) -> bool:
        return self._breaker.down

    @property
    def pending(self) -> bool:
        """Whether an invalidation of this process is still waiting to reach Redis."""
        return bool(self._lost)

    def _run(self, action: Callable[[], Any], force: bool = False) -> tuple[bool, Any]:
        """``action()`` on Redis, or (False, None) when it fails or the breaker is open
        (``force``: try anyway)."""
        if not force and not self._breaker.allow():
            return False, None
        try:
            if self._lost:
                self._recover()  # before anything is read: entries from before the loss go
            result = action()
        except (redis.RedisError, OSError) as exc:
            self._breaker.failed(exc)
            return False, None
        self._breaker.succeeded()
        return True, result

    def _recover(self) -> None:
        with self._state_lock:
            lost = sorted(self._lost)
            seq = self._lost_seq
        if not lost:
            return
        pipe = self._client.pipeline(transaction=False)
        for key in lost:
            pipe.set(key, _token(), ex=GENERATION_TTL_S)
        pipe.execute()
        with self._state_lock:
            done = self._lost_seq == seq
            if done:
                self._lost.clear()
        if done:
            self._count("cache_invalidations_recovered")
            log.warning("invalidations lost while Redis was unreachable: every cached read "
                        "of the world is invalidated")

    def _count(self, name: str) -> None:
        if self._metrics is not None:
            self._metrics.count(name)

    def _lose(self, epoch_key: str) -> None:
        with self._state_lock:
            self._lost.add(epoch_key)
            self._lost_seq += 1
            if self._retrier is None and not self._closed.is_set():
                self._retrier = threading.Thread(
                    target=self._retry_lost, name="travian-repo-cache-recovery", daemon=True)
                self._retrier.start()
        self._count("cache_invalidations_lost")

    def _retry_lost(self) -> None:
        # Ends when the loss is delivered or the store is closed; one attempt per interval.
        while not self._closed.wait(self._lost_retry_s):
            if self._lost:
                self._run(_nothing, force=True)
            with self._state_lock:
                if not self._lost:
                    self._retrier = None
                    return
        with self._state_lock:
            self._retrier = None

    def close(self) -> None:
        """Stop the background retry; one last attempt to deliver what was lost."""
        self._closed.set()
        if self._lost:
            self._run(_nothing, force=True)
            if self._lost:
                log.warning("closed with invalidations Redis never took: other processes may "
                            "read entries from before them until their TTL ends")

    def lookup(self, keys: list[str]) -> list[Any] | None:
        ok, values = self._run(lambda: self._client.mget(keys))
        return typing.cast("list[Any]", values) if ok else None

    def ensure(self, gen_keys: list[str], key: str) -> list[Any] | None:
        def run() -> list[Any]:
            pipe = self._client.pipeline(transaction=False)
            for g in gen_keys:
                pipe.set(g, _token(), nx=True, ex=GENERATION_TTL_S)
            pipe.mget([key, *gen_keys])
            return typing.cast("list[Any]", pipe.execute()[-1])

        ok, values = self._run(run)
        return typing.cast("list[Any]", values) if ok else None

    def put(self, key: str, value: bytes, ttl_s: float) -> None:
        self._run(lambda: self._client.set(key, value, px=max(1, int(ttl_s * 1000))))

    def bump(self, gen_keys: Iterable[str], epoch_key: str) -> None:
        keys = sorted(set(gen_keys))

        def run() -> None:
            pipe = self._client.pipeline(transaction=False)
            for g in keys:
                pipe.set(g, _token(), ex=GENERATION_TTL_S)
            pipe.execute()

        ok, _ = self._run(run)
        if not ok:
            # Not sent (or not known to be): what depends on them would stay readable.
            # Drop the whole world's entries as soon as Redis answers.
            self._lose(epoch_key)


def _nothing() -> None:
    return None


__all__ = [
    "GENERATION_TTL_S",
    "LOST_RETRY_S",
    "MEMORY_MAX_ENTRIES",
    "REDIS_RETRY_S",
    "MemoryStore",
    "RedisStore",
    "Store",
]

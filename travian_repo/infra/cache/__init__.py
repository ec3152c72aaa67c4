"""The read cache: a decorator on repository reads, shared by the SQL and the HTTP side.

See docs/cache.md for the whole story. The package's parts:

- ``policy``: the data: each read's TTL (``DEFAULT_TTLS``) and what each write changes
  (``EVENT_INVALIDATES`` for the domain events of a SQL commit, ``entities_of_write`` for an
  HTTP write, from its declaration's ``invalidates=``).
- ``stores``: where entries live: ``RedisStore`` (shared by processes; skips Redis while it is
  down and re-sends what an outage swallowed) and ``MemoryStore`` (one process).
- ``decorator``: ``@cached`` on a read method, the world's ``Cache`` and the ``CacheView`` a
  unit of work reads through.
- ``options``: what ``connect(cache=..., cache_ttls=...)`` builds.

In short: an entry depends on *entities* (``village:7``, ``villages_of:3``, ``market`` ...)
and on the world's epoch. Each entity has a generation (a random token kept in the store); an
entry is a hit only while the generations it was loaded under are unchanged. A committed write
sets new generations for what it changed. Redis down or slow: reads go to the backend, counted
as ``cache_bypassed``, one warning per outage and one when Redis is back. An invalidation that
could not be sent is remembered by its process, which bumps the world's epoch (every entry of
the world becomes a miss) as soon as Redis answers again.
"""

from __future__ import annotations

from travian_repo.infra.cache.decorator import Cache, CacheSpec, CacheView, cached
from travian_repo.infra.cache.options import build_cache, resolve_ttls
from travian_repo.infra.cache.policy import (
    DEFAULT_TTLS,
    EVENT_INVALIDATES,
    WORLD,
    entities_of_event,
    entities_of_write,
)
from travian_repo.infra.cache.stores import (
    GENERATION_TTL_S,
    LOST_RETRY_S,
    MEMORY_MAX_ENTRIES,
    REDIS_RETRY_S,
    MemoryStore,
    RedisStore,
    Store,
)
from travian_repo.infra.keys import CACHE_FORMAT_VERSION, KEY_PREFIX

__all__ = [
    "CACHE_FORMAT_VERSION",
    "DEFAULT_TTLS",
    "EVENT_INVALIDATES",
    "GENERATION_TTL_S",
    "KEY_PREFIX",
    "LOST_RETRY_S",
    "MEMORY_MAX_ENTRIES",
    "REDIS_RETRY_S",
    "WORLD",
    "Cache",
    "CacheSpec",
    "CacheView",
    "MemoryStore",
    "RedisStore",
    "Store",
    "build_cache",
    "cached",
    "entities_of_event",
    "entities_of_write",
    "resolve_ttls",
]

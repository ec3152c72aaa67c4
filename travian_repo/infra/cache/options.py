"""What ``connect(cache=..., cache_ttls=...)`` builds: the TTL table and the cache, or none."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import redis

from travian_repo.domain.errors import ConfigurationError
from travian_repo.domain.validators import is_number
from travian_repo.infra.cache.decorator import Cache
from travian_repo.infra.cache.policy import DEFAULT_TTLS
from travian_repo.infra.cache.stores import MemoryStore, RedisStore, Store
from travian_repo.infra.metrics import Metrics

if TYPE_CHECKING:
    from travian_repo.sql.database import Database


def resolve_ttls(overrides: Any) -> dict[str, float]:
    """The TTL table with ``cache_ttls=`` applied; unknown names are a ConfigurationError."""
    ttls = dict(DEFAULT_TTLS)
    if overrides is None:
        return ttls
    if not isinstance(overrides, Mapping):
        raise ConfigurationError("cache_ttls= must be a mapping of operation name -> seconds")
    unknown = sorted(str(k) for k in overrides if k not in DEFAULT_TTLS)
    if unknown:
        raise ConfigurationError(
            f"cache_ttls: unknown operation(s) {', '.join(unknown)}; cached operations: "
            f"{', '.join(sorted(DEFAULT_TTLS))}"
        )
    for name, seconds in overrides.items():
        if not is_number(seconds) or not seconds >= 0:
            raise ConfigurationError(
                f"cache_ttls[{name!r}] must be a number of seconds >= 0 (0 = not cached), "
                f"got {seconds!r}"
            )
        ttls[name] = float(seconds)
    return ttls


def build_cache(
    option: Any,
    ttls: Any,
    *,
    redis_client: redis.Redis | None,
    world_id: str,
    metrics: Metrics,
    database: Database | None = None,
) -> Cache | None:
    """What ``connect(cache=..., cache_ttls=...)`` asks for: None when caching is off.

    ``cache=None`` (the default): the Redis cache when Redis is configured, else no cache;
    ``cache=True``: Redis when configured, else the in-process cache; ``cache=False``: none.
    """
    table = resolve_ttls(ttls)
    if option is not None and not isinstance(option, bool):
        raise ConfigurationError(f"cache= must be True, False or None, got {option!r}")
    if option is False or (option is None and redis_client is None):
        # Without Redis the cache is opt-in (cache=True): an in-process cache cannot see what
        # other processes, the engine or hand-written SQL change in the world.
        return None
    store: Store = (RedisStore(redis_client, metrics=metrics) if redis_client is not None
                    else MemoryStore())
    cache = Cache(store, world_id=world_id, metrics=metrics, ttls=table)
    if database is not None:
        database.add_commit_listener(cache.committed)
    return cache


__all__ = ["build_cache", "resolve_ttls"]

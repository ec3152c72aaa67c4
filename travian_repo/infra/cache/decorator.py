"""The read-through cache: the ``@cached`` decorator, one world's ``Cache``, and the
``CacheView`` a unit of work reads through.

An entry is kept under ``travian_repo:{CACHE_FORMAT_VERSION}:{world_id}:{actor|public|nobody}:
{operation}:{args}`` with the generations of the entities it depends on; it is a hit only while
they are unchanged and its TTL has not run out (the value and the generations come back in one
MGET). A unit of work that has written reads around the cache (read-your-writes).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence, TypeVar

from travian_repo.domain.values import Event
from travian_repo.infra.cache.policy import (
    DEFAULT_TTLS,
    WORLD,
    entities_of_event,
    entities_of_write,
)
from travian_repo.infra.cache.stores import Store
from travian_repo.infra.keys import cache_prefix
from travian_repo.infra.metrics import Metrics
from travian_repo.wire.serializer import answer_decoder, encode

if TYPE_CHECKING:
    from travian_repo.repositories.declaration import Operation
    from travian_repo.sql.database import SqlSession

log = logging.getLogger("travian_repo.infra.cache")

F = TypeVar("F", bound=Callable[..., Any])


_CACHEABLE_ARG_TYPES = (int, str, bool)


@dataclass
class CacheSpec:
    operation: str
    scope: str
    depends: tuple[str, ...]
    names: tuple[str, ...]
    defaults: dict[str, Any]
    fn: Callable[..., Any]
    _decoder: Callable[[Any], Any] | None = field(default=None, repr=False)

    @property
    def arg_depends(self) -> tuple[str, ...]:
        return tuple(d for d in self.depends if "{result" not in d)

    @property
    def result_depends(self) -> tuple[str, ...]:
        return tuple(d for d in self.depends if "{result" in d)

    def bind(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any] | None:
        """The arguments by name, defaults filled in; None when they cannot make a key."""
        names = self.names
        if len(args) > len(names):
            return None
        values = dict(zip(names, args))
        for k, v in kwargs.items():
            if k not in names or k in values:
                return None
            values[k] = v
        if len(values) < len(names):
            for n in names:
                if n not in values:
                    if n not in self.defaults:
                        return None
                    values[n] = self.defaults[n]
        for v in values.values():
            if type(v) not in _CACHEABLE_ARG_TYPES:
                return None
        return values

    def decoder(self) -> Callable[[Any], Any]:
        if self._decoder is None:
            self._decoder = answer_decoder(typing.get_type_hints(self.fn)["return"])
        return self._decoder


def cached(
    operation: str, *, scope: str, depends: Sequence[str] = ()
) -> Callable[[F], F]:
    """Cache a repository read (a method of a class with ``_cache`` and ``_actor``).

    ``scope``: ``"private"`` keys the entry by the acting player (the backend decides what
    that player may see); ``"public"`` shares one entry among all players (only for reads
    whose answer does not depend on who asks). ``depends``: entity templates formatted with
    the call's arguments by name (``"village:{village_id}"``) or with the result
    (``"village:{result.id}"``, checked with a second round trip on a hit).
    """
    if operation not in DEFAULT_TTLS:
        raise ValueError(f"no TTL for cached operation {operation!r}: declare its ttl= with @operation")
    if scope not in ("public", "private"):
        raise ValueError(f"scope must be 'public' or 'private', got {scope!r}")

    def decorate(fn: F) -> F:
        import inspect

        params = list(inspect.signature(fn).parameters.values())[1:]  # after self
        spec = CacheSpec(
            operation=operation,
            scope=scope,
            depends=tuple(depends),
            names=tuple(p.name for p in params),
            defaults={p.name: p.default for p in params if p.default is not inspect.Parameter.empty},
            fn=fn,
        )

        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            view: CacheView | None = self._cache
            if view is None:
                return fn(self, *args, **kwargs)
            return view.cache.call(view, spec, self, args, kwargs)

        wrapper.__name__ = fn.__name__
        wrapper.__qualname__ = fn.__qualname__
        wrapper.__doc__ = fn.__doc__
        wrapper.__module__ = fn.__module__
        wrapper.__wrapped__ = fn  # type: ignore[attr-defined]
        wrapper.__cache_spec__ = spec  # type: ignore[attr-defined]
        return typing.cast(F, wrapper)

    return decorate


# ---------------------------------------------------------------------------------------------
# The cache of one world, and its view from one unit of work


_DECODED_MEMO_SIZE = 10_000


class CacheView:
    """One unit of work's handle: the world's cache, the game clock, and whether the unit has
    written (then its reads go around the cache: they must see the unit's own writes)."""

    __slots__ = ("cache", "clock", "sessions", "written")

    def __init__(self, cache: Cache, clock: Callable[[], datetime] | None = None) -> None:
        self.cache = cache
        self.clock = clock
        self.sessions: list[SqlSession] = []
        self.written = False

    def now(self) -> float:
        return self.clock().timestamp() if self.clock is not None else time.time()

    def bypass(self) -> bool:
        if self.written:
            return True
        for s in self.sessions:
            # An open transaction (or a write not committed yet): its reads are not shared.
            if s._in_transaction or s._wrote:
                return True
        return False

    def wrote(
        self, declared: Operation, actor: int | None, values: Sequence[Any], result: Any = None,
    ) -> None:
        """An API write returned (or failed, maybe after acting): the server committed what
        it did, so invalidate now. Later reads of this unit skip the cache."""
        self.written = True
        self.cache.invalidate(entities_of_write(declared, actor, values, result))


_MISS = object()


class _KeyLock:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0


class Cache:
    def __init__(
        self, store: Store, *, world_id: str, metrics: Metrics, ttls: Mapping[str, float] | None = None
    ) -> None:
        self.store = store
        self.world_id = world_id
        self.metrics = metrics
        self.ttls = dict(ttls) if ttls is not None else dict(DEFAULT_TTLS)
        self.prefix = cache_prefix(world_id)
        self.gen_prefix = self.prefix + "gen:"
        self.epoch_key = self.gen_prefix + WORLD
        self._mutex = threading.Lock()
        self._loading: dict[str, _KeyLock] = {}
        # key -> (stored bytes, parsed entry, decoded value): a hit on unchanged bytes skips
        # json.loads and the decode; validity (generations, age) is still checked each time.
        self._decoded: dict[str, tuple[Any, Any, Any]] = {}

    def __repr__(self) -> str:
        return f"<Cache {type(self.store).__name__} world={self.world_id!r}>"

    def view(self, clock: Callable[[], datetime] | None = None) -> CacheView:
        return CacheView(self, clock)

    def close(self) -> None:
        self.store.close()

    # -- invalidation

    def committed(self, events: list[Event]) -> None:
        """The SQL commit listener: invalidate what the committed events changed."""
        found: set[str] = set()
        for e in events:
            found |= entities_of_event(e.kind, e.player_id, e.data)
        self.invalidate(found)

    def invalidate(self, entities: Iterable[str]) -> None:
        keys = [self.gen_prefix + e for e in entities]
        if keys:
            self.store.bump(keys, self.epoch_key)

    # -- reads

    def key(self, spec: CacheSpec, actor: int | None, values: Mapping[str, Any]) -> str:
        if spec.scope == "public":
            who = "public"
        else:
            who = "nobody" if actor is None else str(actor)
        args = json.dumps(list(values.values()), separators=(",", ":"))
        return f"{self.prefix}{who}:{spec.operation}:{args}"

    def call(
        self, view: CacheView, spec: CacheSpec, repo: Any, args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
    ) -> Any:
        fn = spec.fn
        ttl = self.ttls.get(spec.operation, 0.0)
        values = spec.bind(args, kwargs)
        if values is None or ttl <= 0 or view.bypass():
            return fn(repo, *args, **kwargs)
        key = self.key(spec, repo._actor, values)
        gen_keys = [self.epoch_key, *(self.gen_prefix + d.format(**values) for d in spec.arg_depends)]
        now = view.now()

        found = self.store.lookup([key, *gen_keys])
        if found is None:
            self.metrics.count("cache_bypassed")
            return fn(repo, *args, **kwargs)
        value = self._valid(spec, key, found, now, ttl)
        if value is not _MISS:
            self.metrics.count("cache_hits")
            return value

        with self._key_lock(key):
            # Another thread may have loaded it meanwhile; and the generations are taken
            # now, before the load, so a write committed during the load makes it stale.
            found = self.store.ensure(gen_keys, key)
            if found is None:
                self.metrics.count("cache_bypassed")
                return fn(repo, *args, **kwargs)
            value = self._valid(spec, key, found, now, ttl)
            if value is not _MISS:
                self.metrics.count("cache_hits")
                return value
            self.metrics.count("cache_misses")
            result = fn(repo, *args, **kwargs)  # errors are raised, never cached
            self._put(spec, key, found[1:], result, now, ttl)
            return result

    def _valid(
        self, spec: CacheSpec, key: str, found: list[Any], now: float, ttl: float
    ) -> Any:
        raw = found[0]
        if raw is None:
            return _MISS
        try:
            # The same bytes as last time: reuse what they decoded to (values are frozen).
            memo = self._decoded.get(key)
            if memo is not None and memo[0] == raw:
                entry, decoded = memo[1], memo[2]
            else:
                entry, decoded = json.loads(raw), _MISS
            gens = entry["g"]
            if len(gens) != len(found) - 1:
                return _MISS
            for stored, current in zip(gens, found[1:]):
                if current is None or stored != (
                    current.decode() if isinstance(current, bytes) else current
                ):
                    return _MISS
            age = now - entry["t"]
            if not -1.0 <= age < ttl:  # the game clock moved on (or back) past the TTL
                return _MISS
            extra = entry.get("x")
            if extra:
                names = list(extra)
                current_extra = self.store.lookup(names)
                if current_extra is None:
                    return _MISS
                for name, cur in zip(names, current_extra):
                    if cur is None or extra[name] != (cur.decode() if isinstance(cur, bytes) else cur):
                        return _MISS
            if decoded is _MISS:
                decoded = spec.decoder()(entry["v"])
                if len(self._decoded) >= _DECODED_MEMO_SIZE:
                    self._decoded.clear()  # crude but bounded; the next hits refill it
                self._decoded[key] = (raw, entry, decoded)
            return decoded
        except Exception:  # noqa: BLE001 - an entry that cannot be read is a miss, never an error
            return _MISS

    def _put(
        self, spec: CacheSpec, key: str, gens: list[Any], result: Any, now: float, ttl: float
    ) -> None:
        try:
            entry: dict[str, Any] = {
                "g": [g.decode() if isinstance(g, bytes) else g for g in gens],
                "t": now,
                "v": encode(result),
            }
            if result is not None and spec.result_depends:
                names = [self.gen_prefix + d.format(result=result) for d in spec.result_depends]
                extra = self.store.ensure(names, key)
                if extra is None:
                    return
                entry["x"] = {
                    n: g.decode() if isinstance(g, bytes) else g for n, g in zip(names, extra[1:])
                }
            self.store.put(key, json.dumps(entry, separators=(",", ":")).encode(), ttl)
        except Exception:  # noqa: BLE001 - failing to cache is never the caller's error
            log.warning("could not cache %s", spec.operation, exc_info=True)

    def _key_lock(self, key: str) -> _Held:
        with self._mutex:
            held = self._loading.get(key)
            if held is None:
                held = self._loading[key] = _KeyLock()
            held.users += 1
        return _Held(self, key, held)

    def _release(self, key: str, held: _KeyLock) -> None:
        with self._mutex:
            held.users -= 1
            if held.users == 0:
                del self._loading[key]


class _Held:
    __slots__ = ("cache", "key", "held")

    def __init__(self, cache: Cache, key: str, held: _KeyLock) -> None:
        self.cache = cache
        self.key = key
        self.held = held

    def __enter__(self) -> None:
        self.held.lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self.held.lock.release()
        self.cache._release(self.key, self.held)


__all__ = ["Cache", "CacheSpec", "CacheView", "cached"]

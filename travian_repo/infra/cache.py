"""The read cache: a decorator on repository reads, shared by the SQL and the HTTP side.

See docs/cache.md for the whole story. In short:

- ``@cached("villages.get", scope="private", depends=("village:{village_id}",))`` on a read
  method caches its result under
  ``travian_repo:{CACHE_FORMAT_VERSION}:{world_id}:{actor|public|nobody}:{operation}:{args}``
  for the operation's TTL (the seed's numbers, overridable with ``cache_ttls=``).
- Every entry depends on *entities* (``village:7``, ``villages_of:3``, ``mail:3``, ``market``,
  ``rank`` ...) and on the world's epoch. Each entity has a generation (a random token kept
  in the store); an entry remembers the generations it was loaded under and is a hit only
  while they are unchanged. The value and the current generations come back in one MGET.
- A committed write sets new generations for what it changed: on SQL from the domain events
  of the commit (a commit listener; a rolled-back unit commits nothing, so it invalidates
  nothing), over HTTP from the operation and its arguments when the write call returns
  (the server committed it before it answered). Both go through ``EVENT_INVALIDATES``.
- A unit of work that has written reads around the cache (read-your-writes).
- Redis down or slow: reads go to the backend, counted as ``cache_bypassed``, one warning per
  outage and one when Redis is back. An invalidation that could not be sent is remembered by
  its process, which bumps the world's epoch (every entry of the world becomes a miss) before
  its own next use of Redis and, idle or not, from a background retry every
  ``LOST_RETRY_S``; and once more when the world is closed.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import types
import typing
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence, TypeVar, Union

import redis

from travian_repo.domain import events as ev
from travian_repo.domain.errors import ConfigurationError
from travian_repo.domain.values import Event
from travian_repo.infra.metrics import Metrics
from travian_repo.repositories.base import declared_operations
from travian_repo.wire.serializer import decode, decode_list, encode

if TYPE_CHECKING:
    from travian_repo.sql.database import Database, SqlSession

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

# Bump when the envelope or any cached value's encoding changes: old entries become misses.
CACHE_FORMAT_VERSION = 1
KEY_PREFIX = "travian_repo"

# Seconds, from each read's declaration (``ttl=`` of its ``@operation``).
DEFAULT_TTLS: dict[str, float] = {
    op.name: op.ttl for op in declared_operations().values() if op.ttl is not None
}

GENERATION_TTL_S = 24 * 3600  # generations outlive every entry; a lost one only means misses
REDIS_RETRY_S = 1.0  # after a Redis failure, reads skip Redis this long before trying again
LOST_RETRY_S = 0.25  # a process holding an undelivered invalidation retries it this often
MEMORY_MAX_ENTRIES = 50_000
WORLD = "world"  # the entity every entry depends on: the world's epoch

# ---------------------------------------------------------------------------------------------
# What a committed write changed: the one mapping from domain events to entities.
# Templates are formatted with the event's data plus ``player`` (the event's player).
# A kind not listed here (or an event missing a field) invalidates the whole world.

EVENT_INVALIDATES: dict[str, tuple[str, ...]] = {
    ev.BUILD_QUEUED: ("village:{village_id}", "villages_of:{player}"),
    ev.BUILD_CANCELLED: ("village:{village_id}", "villages_of:{player}"),
    ev.BUILD_COMPLETED: ("village:{village_id}", "villages_of:{player}", "player:{player}", "rank"),
    ev.TRAINING_QUEUED: ("village:{village_id}", "villages_of:{player}"),
    ev.TROOPS_TRAINED: ("village:{village_id}", "villages_of:{player}"),
    ev.MOVEMENT_SENT: ("village:{from_village_id}", "village:{to_village_id}", "villages_of:{player}"),
    ev.ATTACK_INCOMING: ("village:{to_village_id}",),
    ev.REINFORCEMENT_INCOMING: ("village:{to_village_id}",),
    # An arrival may plunder, kill, conquer: both villages, the player told, the rankings.
    ev.MOVEMENT_ARRIVED: ("village:{from_village_id}", "village:{to_village_id}",
                          "villages_of:{player}", "player:{player}", "rank"),
    ev.OFFER_CREATED: ("village:{village_id}", "villages_of:{player}", "market"),
    # Emitted to both players: each one's own villages list is invalidated by its event.
    ev.OFFER_ACCEPTED: ("village:{village_id}", "village:{accepted_by_village_id}",
                        "villages_of:{player}", "market"),
    ev.OFFER_CANCELLED: ("village:{village_id}", "villages_of:{player}", "market"),
    ev.RESOURCES_SENT: ("village:{from_village_id}", "village:{to_village_id}", "villages_of:{player}"),
    ev.RESOURCES_INCOMING: ("village:{to_village_id}",),
    ev.RESOURCES_ARRIVED: ("village:{from_village_id}", "village:{to_village_id}", "villages_of:{player}"),
    ev.MESSAGE_RECEIVED: ("mail:{player}",),
    ev.REPORT_CREATED: ("reports:{player}",),
    ev.ALLIANCE_CREATED: ("player:{player}", "rank"),
    ev.ALLIANCE_INVITATION: ("player:{player}",),
}


def entities_of_event(kind: str, player_id: int | None, data: Mapping[str, Any]) -> set[str]:
    templates = EVENT_INVALIDATES.get(kind)
    if templates is None:
        return {WORLD}
    try:
        return {t.format(player=player_id, **data) for t in templates}
    except (KeyError, IndexError, AttributeError):
        return {WORLD}


# An HTTP write, as the events the server's commit recorded (the same events the SQL side
# emits), from its path parameters, its JSON body and the acting player.
_WriteEvents = Callable[[int | None, Mapping[str, Any], Mapping[str, Any], Any],
                        list[tuple[str, int | None, dict[str, Any]]]]


def _sent(kind: str) -> _WriteEvents:
    return lambda actor, path, body, result: [
        (kind, actor, {"from_village_id": path["village_id"],
                       "to_village_id": body["target_village_id"]})
    ]


WRITE_EVENTS: dict[str, _WriteEvents] = {
    "villages.queue_building": lambda actor, path, body, result: [
        (ev.BUILD_COMPLETED if body.get("instant") else ev.BUILD_QUEUED, actor,
         {"village_id": path["village_id"]})
    ],
    "villages.cancel_building": lambda actor, path, body, result: [
        (ev.BUILD_CANCELLED, actor, {"village_id": path["village_id"]})
    ],
    "military.train": lambda actor, path, body, result: [
        (ev.TRAINING_QUEUED, actor, {"village_id": path["village_id"]})
    ],
    "military.attack": _sent(ev.MOVEMENT_SENT),
    "military.reinforce": _sent(ev.MOVEMENT_SENT),
    "military.send_home": lambda actor, path, body, result: [
        (ev.MOVEMENT_SENT, actor, {"from_village_id": result["from_village_id"],
                                   "to_village_id": path["village_id"]})
    ],
    "intel.send_scouts": _sent(ev.MOVEMENT_SENT),
    "trade.create_offer": lambda actor, path, body, result: [
        (ev.OFFER_CREATED, actor, {"village_id": path["village_id"]})
    ],
    "trade.send_resources": _sent(ev.RESOURCES_SENT),
    # The offerer's village comes from the answer (the shipment goes to it); without an
    # answer (the call failed) the KeyError/TypeError makes it the whole world.
    "trade.accept_offer": lambda actor, path, body, result: [
        (ev.OFFER_ACCEPTED, actor, {"village_id": result["to_village_id"],
                                    "accepted_by_village_id": path["village_id"]})
    ],
    "trade.cancel_offer": lambda actor, path, body, result: [
        (ev.OFFER_CANCELLED, actor, {"village_id": path["village_id"]})
    ],
    "diplomacy.send_message": lambda actor, path, body, result: [
        (ev.MESSAGE_RECEIVED, body["to"], {})
    ],
    "diplomacy.create_alliance": lambda actor, path, body, result: [
        (ev.ALLIANCE_CREATED, path["player_id"], {})
    ],
    "diplomacy.invite": lambda actor, path, body, result: [
        (ev.ALLIANCE_INVITATION, body["player_id"], {})
    ],
}


def entities_of_write(
    operation: str, actor: int | None, path: Mapping[str, Any], body: Any, result: Any = None
) -> set[str]:
    make = WRITE_EVENTS.get(operation)
    if make is None:
        return {WORLD}
    try:
        found: set[str] = set()
        for kind, player, data in make(actor, path, body if isinstance(body, Mapping) else {},
                                       result):
            found |= entities_of_event(kind, player, data)
        return found
    except (KeyError, TypeError):
        return {WORLD}


# ---------------------------------------------------------------------------------------------
# Options


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
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds >= 0:
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


# ---------------------------------------------------------------------------------------------
# Stores: Redis (shared by processes) and a thread-safe dict (one process).


class Store(ABC):
    shared = False

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
    """Redis through the world's client, with a breaker: after a failure, Redis is skipped
    for ``REDIS_RETRY_S`` and then tried again; one warning when it fails, one when it is back.

    An invalidation that could not be delivered is remembered (in this process) as the
    world's epoch to bump: the bump is sent before this process's next use of Redis, and a
    background thread retries it every ``lost_retry_s`` until Redis takes it, so an idle
    writer does not leave other processes' readers with stale entries.
    """

    shared = True

    def __init__(
        self, client: redis.Redis, retry_s: float = REDIS_RETRY_S,
        lost_retry_s: float = LOST_RETRY_S, metrics: Metrics | None = None,
    ) -> None:
        self._client = client
        self._retry_s = retry_s
        self._lost_retry_s = lost_retry_s
        self._metrics = metrics
        self._state_lock = threading.Lock()
        self._down = False
        self._retry_at = 0.0
        # Epochs to bump once Redis answers again, and how many losses were recorded: a bump
        # clears them only if no loss came in while it was on its way (that loss may be for a
        # write committed after the bump reached Redis).
        self._lost: set[str] = set()
        self._lost_seq = 0
        self._retrier: threading.Thread | None = None
        self._closed = threading.Event()

    @property
    def down(self) -> bool:
        return self._down

    @property
    def pending(self) -> bool:
        """Whether an invalidation of this process is still waiting to reach Redis."""
        return bool(self._lost)

    def _run(self, action: Callable[[], Any], force: bool = False) -> tuple[bool, Any]:
        """``action()`` on Redis, or (False, None) when it fails or the breaker is open
        (``force``: try anyway)."""
        if self._down and not force and time.monotonic() < self._retry_at:
            return False, None
        try:
            if self._lost:
                self._recover()  # before anything is read: entries from before the loss go
            result = action()
        except (redis.RedisError, OSError) as exc:
            self._failed(exc)
            return False, None
        if self._down:
            with self._state_lock:
                if self._down:
                    self._down = False
                    log.warning("Redis is answering again: the cache is back in use")
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

    def _failed(self, exc: BaseException) -> None:
        with self._state_lock:
            self._retry_at = time.monotonic() + self._retry_s
            if not self._down:
                self._down = True
                log.warning("Redis failed (%s: %s): cached reads go to the backend until it "
                            "answers again", type(exc).__name__, str(exc)[:200])

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


# ---------------------------------------------------------------------------------------------
# The decorator


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
            self._decoder = _decoder_for(typing.get_type_hints(self.fn)["return"])
        return self._decoder


def _decoder_for(tp: Any) -> Callable[[Any], Any]:
    origin = typing.get_origin(tp)
    if origin is list:
        (inner,) = typing.get_args(tp)
        return lambda data: decode_list(inner, data)
    if origin in (Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        one = _decoder_for(inner)
        return lambda data: None if data is None else one(data)
    return lambda data: decode(tp, data)


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
        self, operation: str, actor: int | None, path: Mapping[str, Any], body: Any,
        result: Any = None,
    ) -> None:
        """An API write returned (or failed, maybe after acting): the server committed what
        it did, so invalidate now. Later reads of this unit skip the cache."""
        self.written = True
        self.cache.invalidate(entities_of_write(operation, actor, path, body, result))


_MISS = object()
_BYPASS = object()


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
        self.prefix = f"{KEY_PREFIX}:{CACHE_FORMAT_VERSION}:{world_id}:"
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


__all__ = [
    "CACHE_FORMAT_VERSION",
    "DEFAULT_TTLS",
    "EVENT_INVALIDATES",
    "Cache",
    "CacheView",
    "MemoryStore",
    "RedisStore",
    "build_cache",
    "cached",
    "entities_of_event",
    "entities_of_write",
    "resolve_ttls",
]

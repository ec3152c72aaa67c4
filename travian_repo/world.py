"""``connect()`` and ``World``: the library's entry point.

Nothing is built at import time; ``connect`` builds what it is given and nothing else.
"""

from __future__ import annotations

import os

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from types import TracebackType
from typing import TYPE_CHECKING, Any, Iterator, TypeVar, cast

from sqlalchemy import Engine

from datetime import datetime

from travian_repo.domain.errors import ConfigurationError, Forbidden, InvalidRequest, TravianError
from travian_repo.domain.settings import Settings
from travian_repo.domain.values import Event
from travian_repo.infra.event_bus import EventBus, event_bus_for
from travian_repo.infra.cache import Cache, build_cache, resolve_ttls
from travian_repo.infra.metrics import Metrics
from travian_repo.infra.retry import RetryPolicy
from travian_repo.repositories.base import (
    DiplomacyRepository,
    IntelRepository,
    MilitaryRepository,
    PlayerRepository,
    TradeRepository,
    VillageRepository,
)
from travian_repo.backend import Backend, BackendRequest, open_backend
from travian_repo.backends import BACKEND_NAMES
from travian_repo.repositories.delegating import QUICK
from travian_repo.sql.backend import DATABASE_OPTIONS
from travian_repo.repositories.validation import check_id
from travian_repo.sql.database import Database
from travian_repo.unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from travian_repo.npc import NPCGameInterface

R = TypeVar("R")

KNOWN_OPTIONS = frozenset(
    {"rate_limit", "cache", "cache_ttls", "retry", "timeout", "clock", "pool_size", "http_session",
     "catch_up"}
) | DATABASE_OPTIONS


class WorldClosed(TravianError):
    """A call on a ``World`` after its ``close()`` (or ``with`` block): nothing was read or
    written."""

    code = "world_closed"


class World:
    """A connected world. Use as a context manager, or call ``close()``; a closed world
    refuses every call with ``WorldClosed``."""

    def __init__(
        self,
        backend: Backend,
        *,
        prefer: str,
        metrics: Metrics,
        redis_client: redis.Redis | None = None,
        owns_redis: bool = False,
    ) -> None:
        # The Redis client shared by the cache, the rate limiter and the event bus (or None).
        self.redis = redis_client
        self._owns_redis = owns_redis
        self._closed = False
        self.backend = backend
        self._database = backend.database
        self._token_player = backend.token_player
        self.player_id = backend.player_id
        self.world_id = backend.world_id
        # The backend's name: "sql", "http", or "auto" (database reads, API writes).
        self.prefer = prefer
        self._metrics = metrics
        self.cache: Cache | None = None  # the read cache (set by connect()), None = off
        # Quick calls: ``world.villages.get(1)``, each in its own unit of work.
        self.villages = cast(VillageRepository, QUICK["villages"](self.unit_of_work))  # type: ignore[call-arg]
        self.military = cast(MilitaryRepository, QUICK["military"](self.unit_of_work))  # type: ignore[call-arg]
        self.trade = cast(TradeRepository, QUICK["trade"](self.unit_of_work))  # type: ignore[call-arg]
        self.intel = cast(IntelRepository, QUICK["intel"](self.unit_of_work))  # type: ignore[call-arg]
        self.diplomacy = cast(DiplomacyRepository, QUICK["diplomacy"](self.unit_of_work))  # type: ignore[call-arg]
        self.players = cast(PlayerRepository, QUICK["players"](self.unit_of_work))  # type: ignore[call-arg]
        # Events: Redis pub/sub with a Redis client, else this process's bus for the world;
        # the backend publishes after each commit that wrote.
        self._event_bus = event_bus_for(redis_client, self.world_id)
        backend.add_commit_listener(self._event_bus.publish)

    @property
    def event_bus(self) -> EventBus:
        """Where this process's commits publish their events (the server streams its log)."""
        return self._event_bus

    @property
    def database(self) -> Database:
        if self._database is None:
            raise ConfigurationError("this world has no database connection")
        return self._database

    def unit_of_work(self, player_id: int | None = None) -> UnitOfWork:
        """A unit of work acting as ``player_id`` (default: the world's player)."""
        self._check_open()
        actor = self.player_id if player_id is None else check_id(player_id, "player_id")
        return self.backend.unit_of_work(actor, self.cache)

    def npc(self, player_id: int) -> NPCGameInterface:
        from travian_repo.npc import NPCGameInterface

        self._check_open()
        return NPCGameInterface(self, check_id(player_id, "player_id"))

    def events(self, player_id: int, *, timeout: float | None = None) -> Iterator[Event]:
        """A blocking iterator of ``player_id``'s events from now on; ``timeout``: stop after
        that many seconds without one (None: never). Close it (or ``with``) when done.
        Through an API (``http``, ``auto``) it reads the server's event stream."""
        self._check_open()
        player_id = check_id(player_id, "player_id")
        if self._token_player is not None and player_id != self._token_player:
            raise Forbidden(f"the API token belongs to player {self._token_player}, "
                            f"not player {player_id}: its events are not yours to read")
        streamed = self.backend.events(player_id, timeout)  # over HTTP, the server's stream
        if streamed is not None:
            return streamed
        return self._event_bus.subscribe(player_id, timeout=timeout)

    def advance(self, seconds: float) -> datetime:
        """Sandbox only: move the world's manual clock on by ``seconds`` (a ``Clock`` given
        to connect(), or a server started with ``--manual-clock``) and process what fell due;
        the world's time after. ConfigurationError on a world that runs on real time."""
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not (
                0 <= seconds < float("inf")):
            raise InvalidRequest("seconds must be a number of seconds, 0 or more",
                                 details={"field": "seconds"})
        return self.backend.advance(seconds)

    @property
    def settings(self) -> Settings:
        """The world's settings and server time (read now: the database, or GET /v1/world)."""
        return self.backend.world_settings()

    @property
    def metrics(self) -> dict[str, Any]:
        return self._metrics.snapshot()

    @property
    def closed(self) -> bool:
        """True after ``close()``."""
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise WorldClosed(f"this world ({self.world_id!r} at {self.backend.describe()}) is "
                              "closed: it reads and writes nothing more; connect() again")

    def close(self) -> None:
        """Release the connections; a second call does nothing."""
        if self._closed:
            return
        self._closed = True
        if self.cache is not None:
            self.cache.close()  # before the client goes: it may still owe Redis an invalidation
        if self.redis is not None and self._owns_redis:
            self.redis.close()
        self.backend.close()

    def __enter__(self) -> World:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<World {self.world_id!r} prefer={self.prefer} at {self.backend.describe()} "
                f"player_id={self.player_id} {'closed' if self._closed else 'open'}>")


def connect(
    database_url: str | Engine | None = None,
    api_url: str | None = None,
    *,
    token: str | None = None,
    player_id: int | None = None,
    redis_url: Any = None,
    world_id: str | None = None,
    prefer: str = "auto",
    **options: Any,
) -> World:
    """Connect to a world. Arguments left as None come from ``TRAVIAN_*`` variables, except
    that ``TRAVIAN_DATABASE_URL`` and ``TRAVIAN_API_URL`` are read only when neither
    ``database_url`` nor ``api_url`` is given (see docs/connecting.md)."""
    unknown = set(options) - KNOWN_OPTIONS
    if unknown:
        raise ConfigurationError(
            f"unknown option(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(KNOWN_OPTIONS))}"
        )
    resolve_ttls(options.get("cache_ttls"))  # a bad cache_ttls= fails before connecting
    if prefer not in BACKEND_NAMES:
        raise ConfigurationError(
            f"prefer must be one of {', '.join(BACKEND_NAMES)}, got {prefer!r}")
    if database_url is None and api_url is None:
        # Where to connect comes from the arguments, or only when none is given from the
        # environment: an explicit database never mixes with an exported API (nor back).
        database_url, api_url = _env("TRAVIAN_DATABASE_URL"), _env("TRAVIAN_API_URL")
    token = token or _env("TRAVIAN_API_TOKEN")
    world_id = world_id or _env("TRAVIAN_WORLD_ID") or "default"
    if player_id is None and _env("TRAVIAN_PLAYER_ID"):
        try:
            player_id = int(_env("TRAVIAN_PLAYER_ID") or "")
        except ValueError:
            raise ConfigurationError("TRAVIAN_PLAYER_ID must be an integer player id") from None
    if player_id is not None:
        try:
            player_id = check_id(player_id, "player_id")
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None

    if database_url is None and api_url is None:
        raise ConfigurationError(
            "nothing to connect to: pass database_url= (e.g. 'sqlite:///world.db') or api_url=, "
            "or set TRAVIAN_DATABASE_URL / TRAVIAN_API_URL"
        )
    mode = prefer
    if prefer == "auto":
        mode = "auto" if database_url is not None and api_url is not None else (
            "sql" if database_url is not None else "http"
        )
    retry = options.get("retry")
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise ConfigurationError("retry= must be a travian_repo.RetryPolicy")
    metrics = Metrics()
    redis_client = _redis_client(redis_url if redis_url is not None else _env("TRAVIAN_REDIS_URL"))
    backend = open_backend(mode, BackendRequest(
        database_url=database_url, api_url=None if api_url is None else str(api_url),
        token=token, player_id=player_id, world_id=world_id, metrics=metrics,
        redis_client=redis_client, options=options,
    ))
    world = World(backend, prefer=mode, metrics=metrics, redis_client=redis_client,
                  owns_redis=redis_client is not None and not isinstance(redis_url, redis.Redis))
    world.cache = build_cache(options.get("cache"), options.get("cache_ttls"),
                              redis_client=redis_client, world_id=world.world_id, metrics=metrics,
                              database=backend.database)
    return world


# Bounded, explicit socket timeouts: a slow or absent Redis must never stall a read for long.
REDIS_SOCKET_TIMEOUT_S = 0.25
REDIS_CONNECT_TIMEOUT_S = 0.25


def _redis_client(value: Any) -> redis.Redis | None:
    """A ready ``redis.Redis`` as given, one built from a URL (not connected yet), or None."""
    if value is None or isinstance(value, redis.Redis):
        return value
    if not isinstance(value, str):
        raise ConfigurationError("redis_url must be a redis:// URL or a redis.Redis client")
    try:
        return redis.Redis.from_url(
            value,
            socket_timeout=REDIS_SOCKET_TIMEOUT_S,
            socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S,
            health_check_interval=30,
            retry=Retry(NoBackoff(), 1),  # one quick retry; an outage is bypassed, not waited on
        )
    except ValueError as exc:
        raise ConfigurationError(f"not a usable Redis URL: {exc}") from None


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


__all__ = ["World", "WorldClosed", "connect"]

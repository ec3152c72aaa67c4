"""``connect()`` and ``World``: the library's entry point.

Nothing is built at import time; ``connect`` builds what it is given and nothing else.
"""

from __future__ import annotations

import os

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable, Iterator, TypeVar, cast

from sqlalchemy import Engine

from travian_repo.domain.errors import ConfigurationError, Forbidden
from travian_repo.domain.values import Event, Player
from travian_repo.http.transport import Transport
from travian_repo.infra.event_bus import event_bus_for
from travian_repo.infra.cache import Cache, build_cache, resolve_ttls
from travian_repo.infra.ratelimit import rate_limiter_from_option
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
from travian_repo.repositories.validation import check_id
from travian_repo.sql.database import Clock, Database, make_engine
from travian_repo.unit_of_work import AutoUnitOfWork, HttpUnitOfWork, SqlUnitOfWork, UnitOfWork
from travian_repo.wire.routes import route
from travian_repo.wire.serializer import decode

if TYPE_CHECKING:
    from travian_repo.npc import NPCGameInterface

R = TypeVar("R")

# Bounded waits on the database (make_engine's keywords; engines built from a URL only).
DATABASE_OPTIONS = frozenset(
    {"connect_timeout", "statement_timeout", "pool_timeout", "pool_pre_ping", "keepalives_idle"}
)
KNOWN_OPTIONS = frozenset(
    {"rate_limit", "cache", "cache_ttls", "retry", "timeout", "clock", "pool_size", "http_session"}
) | DATABASE_OPTIONS
PREFERENCES = ("auto", "sql", "http")


class World:
    """A connected world. Use as a context manager, or call ``close()``."""

    def __init__(
        self,
        *,
        database: Database | None,
        player_id: int | None,
        world_id: str,
        prefer: str,
        owns_engine: bool,
        metrics: Metrics,
        transport: Transport | None = None,
        token_player: int | None = None,
        redis_client: redis.Redis | None = None,
        owns_redis: bool = False,
    ) -> None:
        # The Redis client shared by the cache, the rate limiter and the event bus (or None).
        self.redis = redis_client
        self._owns_redis = owns_redis
        self._database = database
        self._transport = transport
        self._token_player = token_player
        self.player_id = player_id
        self.world_id = world_id
        # Resolved: "sql", "http", or "auto" (database reads, API writes).
        self.prefer = prefer
        self._owns_engine = owns_engine
        self._metrics = metrics
        self.cache: Cache | None = None  # the read cache (set by connect()), None = off
        self.villages: VillageRepository = _quick(self, "villages")
        self.military: MilitaryRepository = _quick(self, "military")
        self.trade: TradeRepository = _quick(self, "trade")
        self.intel: IntelRepository = _quick(self, "intel")
        self.diplomacy: DiplomacyRepository = _quick(self, "diplomacy")
        self.players: PlayerRepository = _quick(self, "players")
        # Events: Redis pub/sub with a Redis client, else this process's bus for the world;
        # the SQL side publishes after each commit that wrote.
        self._event_bus = event_bus_for(redis_client, world_id)
        if database is not None:
            database.add_commit_listener(self._event_bus.publish)

    @property
    def database(self) -> Database:
        if self._database is None:
            raise ConfigurationError("this world has no database connection")
        return self._database

    def unit_of_work(self, player_id: int | None = None) -> UnitOfWork:
        """A unit of work acting as ``player_id`` (default: the world's player)."""
        actor = self.player_id if player_id is None else check_id(player_id, "player_id")
        if self.prefer == "sql":
            return SqlUnitOfWork(self.database, actor, self._metrics, self.cache)
        assert self._transport is not None
        http = HttpUnitOfWork(self._transport, actor, self._token_player, self.cache)
        if self.prefer == "http":
            return http
        return AutoUnitOfWork(SqlUnitOfWork(self.database, actor, self._metrics, self.cache), http)

    def npc(self, player_id: int) -> NPCGameInterface:
        from travian_repo.npc import NPCGameInterface

        return NPCGameInterface(self, check_id(player_id, "player_id"))

    def events(self, player_id: int, *, timeout: float | None = None) -> Iterator[Event]:
        """A blocking iterator of ``player_id``'s events from now on; ``timeout``: stop after
        that many seconds without one (None: never). Close it (or ``with``) when done."""
        player_id = check_id(player_id, "player_id")
        if self._token_player is not None and player_id != self._token_player:
            raise Forbidden(f"the API token belongs to player {self._token_player}, "
                            f"not player {player_id}: its events are not yours to read")
        return self._event_bus.subscribe(player_id, timeout=timeout)

    @property
    def metrics(self) -> dict[str, Any]:
        return self._metrics.snapshot()

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()  # before the client goes: it may still owe Redis an invalidation
        if self.redis is not None and self._owns_redis:
            self.redis.close()
        if self._transport is not None:
            self._transport.close()
        if self._database is not None and self._owns_engine:
            self._database.dispose()

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
        where = self._database.engine.url.render_as_string(hide_password=True) if self._database else "-"
        api = self._transport.base_url if self._transport else "-"
        return (f"<World {self.world_id!r} prefer={self.prefer} database={where} api={api} "
                f"player_id={self.player_id}>")


class _QuickRepository:
    """``world.villages.get(1)``: each call in its own unit of work, as the world's player."""

    def __init__(self, world: World, domain: str) -> None:
        self._world = world
        self._domain = domain

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)

        world, domain = self._world, self._domain

        def call(*args: Any, **kwargs: Any) -> Any:
            with world.unit_of_work() as uow:
                return getattr(getattr(uow, domain), name)(*args, **kwargs)

        call.__name__ = name
        setattr(self, name, call)  # later lookups skip __getattr__
        return call


def _quick(world: World, domain: str) -> Any:
    return _QuickRepository(world, domain)


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
    """Connect to a world. Arguments left as None come from ``TRAVIAN_*`` variables."""
    unknown = set(options) - KNOWN_OPTIONS
    if unknown:
        raise ConfigurationError(
            f"unknown option(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(KNOWN_OPTIONS))}"
        )
    resolve_ttls(options.get("cache_ttls"))  # a bad cache_ttls= fails before connecting
    if prefer not in PREFERENCES:
        raise ConfigurationError(f"prefer must be one of {', '.join(PREFERENCES)}, got {prefer!r}")
    database_url = database_url if database_url is not None else _env("TRAVIAN_DATABASE_URL")
    api_url = api_url or _env("TRAVIAN_API_URL")
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
    if prefer == "sql" and database_url is None:
        raise ConfigurationError("prefer='sql' needs database_url= (or TRAVIAN_DATABASE_URL)")
    if prefer == "http" and api_url is None:
        raise ConfigurationError("prefer='http' needs api_url= (or TRAVIAN_API_URL)")
    mode = prefer
    if prefer == "auto":
        mode = "auto" if database_url is not None and api_url is not None else (
            "sql" if database_url is not None else "http"
        )
    clock = cast("Clock | None", options.get("clock"))
    retry = options.get("retry")
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise ConfigurationError("retry= must be a travian_repo.RetryPolicy")
    metrics = Metrics()
    redis_client = _redis_client(redis_url if redis_url is not None else _env("TRAVIAN_REDIS_URL"))

    database: Database | None = None
    owns = False
    if mode in ("sql", "auto"):
        database, owns = _open_database(
            database_url, clock, retry, options.get("pool_size"),
            {name: options[name] for name in DATABASE_OPTIONS if name in options},
        )
        if world_id == "default":
            world_id = database.settings.world_id  # nothing asked for: the database's world
        elif database.settings.world_id != world_id:
            if owns:
                database.dispose()
            raise ConfigurationError(
                f"the database holds world {database.settings.world_id!r}, not {world_id!r}"
            )

    transport: Transport | None = None
    token_player: int | None = None
    if mode in ("http", "auto"):
        try:
            transport = Transport(
                str(api_url),
                token=token,
                world_id=world_id,
                session=options.get("http_session"),
                timeout=options.get("timeout") or (3.05, 10.0),
                retry=retry,
                rate_limiter=rate_limiter_from_option(
                    options.get("rate_limit"), redis_client, world_id=world_id
                ),
                metrics=metrics,
                pool_size=options.get("pool_size") or 16,
            )
            if token:
                me = decode(Player, transport.request("session.me", "GET", route("session.me").url_path()))
                token_player = me.id
                if player_id is not None and player_id != me.id:
                    raise Forbidden(
                        f"the API token belongs to player {me.id}, not player {player_id}"
                    )
                player_id = me.id
        except BaseException:
            if transport is not None:
                transport.close()
            if database is not None and owns:
                database.dispose()
            raise
    world = World(database=database, player_id=player_id, world_id=world_id, prefer=mode,
                 owns_engine=owns, metrics=metrics, transport=transport,
                 token_player=token_player, redis_client=redis_client,
                 owns_redis=redis_client is not None and not isinstance(redis_url, redis.Redis))
    world.cache = build_cache(options.get("cache"), options.get("cache_ttls"),
                              redis_client=redis_client, world_id=world_id, metrics=metrics,
                              database=database)
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


def _open_database(
    database_url: str | Engine | None, clock: Clock | None, retry: RetryPolicy | None,
    pool_size: int | None, bounds: dict[str, Any] | None = None,
) -> tuple[Database, bool]:
    if isinstance(database_url, Engine):
        if bounds:
            raise ConfigurationError(
                f"{', '.join(sorted(bounds))} apply to an engine built from a URL; for your own "
                "Engine, build it with travian_repo.sql.database.make_engine(url, ...) instead"
            )
        engine, owns = database_url, False
    elif isinstance(database_url, str):
        engine, owns = make_engine(database_url, pool_size=pool_size, **(bounds or {})), True
    else:
        raise ConfigurationError("database_url must be a URL string or a SQLAlchemy Engine")
    database = Database(engine, clock=clock, retry=retry)
    try:
        database.settings  # SchemaMismatch now, not at the first call
    except BaseException:
        if owns:
            engine.dispose()
        raise
    return database, owns


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


__all__ = ["World", "connect"]

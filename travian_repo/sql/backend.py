"""The SQL backend: units of work on the world's database."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, cast

from datetime import datetime

from sqlalchemy import Engine

from travian_repo.backend import Backend, BackendRequest
from travian_repo.domain.errors import ConfigurationError
from travian_repo.domain.settings import Settings
from travian_repo.domain.values import Event
from travian_repo.infra.retry import RetryPolicy
from travian_repo.sql.catch_up import CatchUp, Processor
from travian_repo.sql.database import Database, TimeSource, WorldSettings, make_engine
from travian_repo.sql.engines import check_sqlite_file
from travian_repo.unit_of_work import SqlUnitOfWork

if TYPE_CHECKING:
    from travian_repo.infra.cache import Cache
    from travian_repo.infra.metrics import Metrics
    from travian_repo.unit_of_work import UnitOfWork

# Bounded waits on the database (make_engine's keywords; engines built from a URL only).
DATABASE_OPTIONS = frozenset(
    {"connect_timeout", "statement_timeout", "pool_timeout", "pool_pre_ping", "keepalives_idle"}
)


class SqlBackend(Backend):
    def __init__(self, database: Database, metrics: Metrics, *, owns_engine: bool,
                 player_id: int | None) -> None:
        self.database = database
        self._metrics = metrics
        self._owns_engine = owns_engine
        self.world_id = database.settings.world_id
        self.player_id = player_id

    @classmethod
    def open(cls, request: BackendRequest,
             processor: Callable[[Database], Processor] | None = None) -> SqlBackend:
        """``processor``: what processes the world's due events (the engine's
        ``run_until``), run before each unit of work unless ``catch_up=False`` was given."""
        if request.database_url is None:
            raise ConfigurationError("prefer='sql' needs database_url= (or TRAVIAN_DATABASE_URL)")
        options = request.options
        database, owns = open_database(
            request.database_url, cast("TimeSource | None", options.get("clock")),
            options.get("retry"), options.get("pool_size"),
            {name: options[name] for name in DATABASE_OPTIONS if name in options},
        )
        if processor is not None and options.get("catch_up", True):
            database.catch_up = CatchUp(database, processor(database))
        served = database.settings.world_id
        if request.world_id not in ("default", served):
            if owns:
                database.dispose()
            raise ConfigurationError(
                f"the database holds world {served!r}, not {request.world_id!r}")
        return cls(database, request.metrics, owns_engine=owns, player_id=request.player_id)

    def unit_of_work(self, player_id: int | None, cache: Cache | None) -> UnitOfWork:
        return SqlUnitOfWork(self.database_, player_id, self._metrics, cache)

    @property
    def database_(self) -> Database:
        assert self.database is not None
        return self.database

    @property
    def settings(self) -> WorldSettings:
        return self.database_.settings

    def world_settings(self) -> Settings:
        return settings_value(self.database_)

    def advance(self, seconds: float) -> datetime:
        database = self.database_
        move = getattr(database.clock, "advance", None)
        if move is None:
            raise ConfigurationError(
                "advance() moves a manual clock: connect(..., clock=travian_repo.sandbox.Clock())"
                "; this world runs on real time")
        move(seconds)
        if database.catch_up is not None:
            database.catch_up()
        return database.clock()

    def add_commit_listener(self, listener: Callable[[list[Event]], None]) -> None:
        self.database_.add_commit_listener(listener)

    def close(self) -> None:
        if self._owns_engine:
            self.database_.dispose()

    def describe(self) -> str:
        return self.database_.engine.url.render_as_string(hide_password=True)


def settings_value(database: Database) -> Settings:
    """The world's settings as the public value, at the database clock's now."""
    row = database.settings
    return Settings(world_id=row.world_id, world_uid=row.world_uid, speed=row.speed,
                    map_radius=row.map_radius,
                    tournament_square_bonus_percent=row.tournament_square_bonus_percent,
                    build_queue_limit=row.build_queue_limit, morale=row.morale,
                    server_time=database.clock())


def open_database(
    database_url: Any, clock: TimeSource | None, retry: RetryPolicy | None,
    pool_size: int | None, bounds: dict[str, Any] | None = None,
) -> tuple[Database, bool]:
    """The database at ``database_url`` (a URL or a caller's Engine) and whether we own its
    engine; its settings are read now, so a schema mismatch fails here."""
    if isinstance(database_url, Engine):
        if bounds:
            raise ConfigurationError(
                f"{', '.join(sorted(bounds))} apply to an engine built from a URL; for your own "
                "Engine, build it with travian_repo.sql.database.make_engine(url, ...) instead"
            )
        engine, owns = database_url, False
    elif isinstance(database_url, str):
        check_sqlite_file(database_url)
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

"""The built-in backends under the names ``connect(prefer=...)`` accepts, and ``"auto"``:
reads on the database, writes through the API."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Callable, Iterator

from travian_repo.backend import BACKENDS, Backend, BackendRequest, register_backend
from travian_repo.domain.errors import ConfigurationError, NotFound
from travian_repo.domain.settings import Settings
from travian_repo.domain.values import Event
from travian_repo.http.backend import HttpBackend
from travian_repo.sql.backend import SqlBackend

if TYPE_CHECKING:
    from travian_repo.infra.cache import Cache
    from travian_repo.sql.catch_up import Processor
    from travian_repo.sql.database import Database, WorldSettings
    from travian_repo.unit_of_work import UnitOfWork


class AutoBackend(Backend):
    def __init__(self, sql: SqlBackend, http: HttpBackend) -> None:
        self.sql = sql
        self.http = http
        self.database = sql.database
        self.world_id = sql.world_id
        self.player_id = http.player_id
        self.token_player = http.token_player

    @classmethod
    def open(cls, request: BackendRequest) -> AutoBackend:
        sql = open_sql(request)
        try:
            http = HttpBackend.open(replace(request, world_id=sql.world_id))
            try:
                _check_same_world(sql, http)
            except BaseException:
                http.close()
                raise
        except BaseException:
            sql.close()
            raise
        return cls(sql, http)

    def unit_of_work(self, player_id: int | None, cache: Cache | None) -> UnitOfWork:
        from travian_repo.unit_of_work import AutoUnitOfWork, HttpUnitOfWork, SqlUnitOfWork

        http = self.http.unit_of_work(player_id, cache)
        sql = self.sql.unit_of_work(player_id, cache)
        assert isinstance(http, HttpUnitOfWork) and isinstance(sql, SqlUnitOfWork)
        return AutoUnitOfWork(sql, http)

    @property
    def settings(self) -> WorldSettings:
        return self.sql.settings

    def world_settings(self) -> Settings:
        return self.sql.world_settings()

    def advance(self, seconds: float) -> datetime:
        return self.http.advance(seconds)  # the server owns the clock its writes run on

    def add_commit_listener(self, listener: Callable[[list[Event]], None]) -> None:
        self.sql.add_commit_listener(listener)

    def events(self, player_id: int, timeout: float | None) -> Iterator[Event] | None:
        """The API's event stream: the writes (and the engine) commit on the server."""
        return self.http.events(player_id, timeout)

    def close(self) -> None:
        try:
            self.http.close()
        finally:
            self.sql.close()

    def describe(self) -> str:
        return f"{self.sql.describe()} + {self.http.describe()}"


def engine_processor(database: Database) -> Processor:
    """The sandbox engine's public entry point, processing what is due in ``database``.

    The library core's one edge into ``sandbox/``: the engine imports only ``sql/``,
    ``rules/`` and ``domain/``, so nothing of the server or world generation is loaded."""
    from travian_repo.sandbox.engine import Engine

    return Engine(database).run_until


def open_sql(request: BackendRequest) -> SqlBackend:
    return SqlBackend.open(request, engine_processor)


def _check_same_world(sql: SqlBackend, http: HttpBackend) -> None:
    """Reads on one world and writes on another would mix two games: the identities in the
    database's settings and the API's GET /v1/world must be the same."""
    database = sql.settings.world_uid
    try:
        served = http.world_settings().world_uid
    except NotFound:
        raise ConfigurationError(
            f"{http.describe()} does not say which world it serves (no GET /v1/world), so "
            "reading its world from the database cannot be checked; use prefer='http'") from None
    if served != database:
        raise ConfigurationError(
            f"the database {sql.describe()} and the API {http.describe()} hold different "
            f"worlds (identities {database} and {served}); connect to one of them",
            details={"database_world_uid": database, "api_world_uid": served})


register_backend("sql", open_sql)
register_backend("http", HttpBackend.open)
register_backend("auto", AutoBackend.open)


class _Names:
    """The names ``prefer=`` accepts: the built-in ones first, then any registered later."""

    def __iter__(self) -> Iterator[str]:
        yield from ("auto", "sql", "http")
        yield from (name for name in BACKENDS if name not in ("auto", "sql", "http"))

    def __contains__(self, name: object) -> bool:
        return name in BACKENDS


BACKEND_NAMES = _Names()

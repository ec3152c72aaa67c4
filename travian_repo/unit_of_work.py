"""The unit of work: one acting player, the six repositories, one transaction.

Leaving the block normally commits; an exception rolls back. On SQL the block is one
database transaction (opened at its first write). Over HTTP each write is atomic on its own.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from types import TracebackType
from typing import Any, TypeVar, cast

from travian_repo.domain.errors import Forbidden
from travian_repo.http.base import HttpRepository
from travian_repo.http.diplomacy import HttpDiplomacyRepository
from travian_repo.http.intel import HttpIntelRepository
from travian_repo.http.military import HttpMilitaryRepository
from travian_repo.http.players import HttpPlayerRepository
from travian_repo.http.trade import HttpTradeRepository
from travian_repo.http.transport import Transport
from travian_repo.http.villages import HttpVillageRepository
from travian_repo.infra.cache import Cache, CacheView
from travian_repo.infra.metrics import Metrics
from travian_repo.wire.routes import BY_OPERATION
from travian_repo.repositories.base import (
    DiplomacyRepository,
    IntelRepository,
    MilitaryRepository,
    PlayerRepository,
    TradeRepository,
    VillageRepository,
)
from travian_repo.sql.database import Database, SqlSession
from travian_repo.sql.diplomacy import SqlDiplomacyRepository
from travian_repo.sql.intel import SqlIntelRepository
from travian_repo.sql.military import SqlMilitaryRepository
from travian_repo.sql.players import SqlPlayerRepository
from travian_repo.sql.trade import SqlTradeRepository
from travian_repo.sql.villages import SqlVillageRepository

R = TypeVar("R")


class UnitOfWork(ABC):
    villages: VillageRepository
    military: MilitaryRepository
    trade: TradeRepository
    intel: IntelRepository
    diplomacy: DiplomacyRepository
    players: PlayerRepository

    def __init__(self, player_id: int | None) -> None:
        self.player_id = player_id
        self._closed = False

    def __enter__(self) -> UnitOfWork:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None:
                self.commit()
            else:
                self.rollback()
        finally:
            self.close()

    @abstractmethod
    def commit(self) -> None:
        """Make this block's writes permanent now."""

    @abstractmethod
    def rollback(self) -> None:
        """Undo this block's writes not yet committed."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection (rolls back what is not committed)."""


_SQL_REPOSITORIES: dict[str, type[Any]] = {
    "villages": SqlVillageRepository,
    "military": SqlMilitaryRepository,
    "trade": SqlTradeRepository,
    "intel": SqlIntelRepository,
    "diplomacy": SqlDiplomacyRepository,
    "players": SqlPlayerRepository,
}


class SqlUnitOfWork(UnitOfWork):
    """Repositories are made on first use: a quick call needs one, not six."""

    def __init__(
        self, database: Database, player_id: int | None, metrics: Metrics, cache: Cache | None = None
    ) -> None:
        super().__init__(player_id)
        self._session: SqlSession = database.session()
        self._metrics = metrics
        self._cache_view: CacheView | None = None
        if cache is not None:
            self._cache_view = cache.view(database.clock)
            self._cache_view.sessions.append(self._session)

    def __getattr__(self, domain: str) -> Any:
        cls = _SQL_REPOSITORIES.get(domain)
        if cls is None:
            raise AttributeError(domain)
        target = cls(self._session, self.player_id)
        target._cache = self._cache_view
        repo = _instrument(target, domain, self._metrics)
        setattr(self, domain, repo)
        return repo

    @property
    def session(self) -> SqlSession:
        """The database session (one connection, one transaction) behind this unit."""
        return self._session

    def commit(self) -> None:
        self._session.commit()

    def rollback(self) -> None:
        self._session.rollback()

    def close(self) -> None:
        self._session.close()


_HTTP_REPOSITORIES: dict[str, type[HttpRepository]] = {
    "villages": HttpVillageRepository,
    "military": HttpMilitaryRepository,
    "trade": HttpTradeRepository,
    "intel": HttpIntelRepository,
    "diplomacy": HttpDiplomacyRepository,
    "players": HttpPlayerRepository,
}


class HttpUnitOfWork(UnitOfWork):
    """Over the API each write is sent at once and is atomic on its own; the unit adds one
    acting player (the token's). The transport records the metrics of every request."""

    def __init__(
        self, transport: Transport, player_id: int | None, token_player: int | None,
        cache: Cache | None = None,
    ) -> None:
        if player_id is not None and player_id != token_player:
            raise Forbidden(
                f"the API token acts as player {token_player}; it cannot act as player {player_id}"
            )
        super().__init__(player_id)
        self._transport = transport
        self._cache_view: CacheView | None = cache.view() if cache is not None else None

    def __getattr__(self, domain: str) -> Any:
        cls = _HTTP_REPOSITORIES.get(domain)
        if cls is None:
            raise AttributeError(domain)
        repo = cls(self._transport, self.player_id)
        repo._cache = self._cache_view
        setattr(self, domain, repo)
        return repo

    def commit(self) -> None:
        """Nothing to do: every write was committed by the server when it answered."""

    def rollback(self) -> None:
        """Nothing to undo locally: writes already answered are committed on the server."""

    def close(self) -> None:
        """The transport is the world's; it stays open."""


class AutoUnitOfWork(UnitOfWork):
    """Reads from the database (faster), writes through the API (the engine validates them).

    Reads run in autocommit on the database, so a read after a write of the same unit sees
    it: the server committed the write before it answered.
    """

    def __init__(self, sql: SqlUnitOfWork, http: HttpUnitOfWork) -> None:
        super().__init__(http.player_id)
        self._sql = sql
        self._http = http
        if sql._cache_view is not None:
            # One cache handle: the API writes invalidate and mark the unit written, so the
            # database reads after them skip the cache (read-your-writes).
            http._cache_view = sql._cache_view

    def __getattr__(self, domain: str) -> Any:
        if domain not in _SQL_REPOSITORIES:
            raise AttributeError(domain)
        repo = _Routed(domain, getattr(self._sql, domain), getattr(self._http, domain))
        setattr(self, domain, repo)
        return repo

    def commit(self) -> None:
        self._sql.commit()

    def rollback(self) -> None:
        self._sql.rollback()

    def close(self) -> None:
        self._sql.close()


class _Routed:
    """One domain's methods: writes to the API repository, reads to the SQL one."""

    def __init__(self, domain: str, reads: Any, writes: Any) -> None:
        self._domain = domain
        self._reads = reads
        self._writes = writes

    def __getattr__(self, name: str) -> Any:
        operation = f"{self._domain}.{name}"
        target = self._writes if operation in BY_OPERATION and BY_OPERATION[operation].is_write else self._reads
        return getattr(target, name)


class _Instrumented:
    """Times every public call of a repository into the metrics, by ``domain.method``."""

    def __init__(self, target: Any, domain: str, metrics: Metrics) -> None:
        self._target = target
        self._domain = domain
        self._metrics = metrics

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if name.startswith("_") or not callable(attr):
            return attr
        operation = f"{self._domain}.{name}"
        metrics = self._metrics

        def call(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            failed = True
            try:
                result = attr(*args, **kwargs)
                failed = False
                return result
            finally:
                metrics.record(operation, (time.perf_counter() - started) * 1000.0, error=failed)

        call.__name__ = name
        call.__doc__ = attr.__doc__
        setattr(self, name, call)  # later lookups skip __getattr__
        return call

    def __repr__(self) -> str:
        return f"<{type(self._target).__name__} (instrumented)>"


def _instrument(repo: R, domain: str, metrics: Metrics) -> R:
    return cast(R, _Instrumented(repo, domain, metrics))


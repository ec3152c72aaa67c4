"""The unit of work: one acting player, the six repositories, one transaction.

Leaving the block normally commits; an exception rolls back. On SQL the block is one
database transaction (opened at its first write). Over HTTP each write is atomic on its own.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import cast

from travian_repo.domain.errors import Forbidden
from travian_repo.http.repositories import HTTP_REPOSITORIES
from travian_repo.http.transport import Transport
from travian_repo.infra.cache import Cache, CacheView
from travian_repo.infra.metrics import Metrics
from travian_repo.repositories.base import (
    DiplomacyRepository,
    Repository,
    check_open,
    IntelRepository,
    MilitaryRepository,
    PlayerRepository,
    TradeRepository,
    VillageRepository,
)
from travian_repo.repositories.delegating import ROUTED
from travian_repo.sql.repository import SqlRepository
from travian_repo.sql.database import Database, SqlSession
from travian_repo.sql.diplomacy import SqlDiplomacyRepository
from travian_repo.sql.intel import SqlIntelRepository
from travian_repo.sql.military import SqlMilitaryRepository
from travian_repo.sql.players import SqlPlayerRepository
from travian_repo.sql.trade import SqlTradeRepository
from travian_repo.sql.villages import SqlVillageRepository

class UnitOfWork(ABC):
    """One acting player, one transaction. Each repository is made on its first use (a
    quick call needs one, not six) and belongs to this unit: once the unit has ended, its
    repositories refuse every call with ``UnitOfWorkEnded`` (a TravianError)."""

    backend_name = "?"  # the backend's name, for the repr

    def __init__(self, player_id: int | None) -> None:
        self.player_id = player_id
        self._closed = False
        self._repositories: dict[str, Repository] = {}

    @property
    def villages(self) -> VillageRepository:
        return cast(VillageRepository, self._repository("villages"))

    @property
    def military(self) -> MilitaryRepository:
        return cast(MilitaryRepository, self._repository("military"))

    @property
    def trade(self) -> TradeRepository:
        return cast(TradeRepository, self._repository("trade"))

    @property
    def intel(self) -> IntelRepository:
        return cast(IntelRepository, self._repository("intel"))

    @property
    def diplomacy(self) -> DiplomacyRepository:
        return cast(DiplomacyRepository, self._repository("diplomacy"))

    @property
    def players(self) -> PlayerRepository:
        return cast(PlayerRepository, self._repository("players"))

    def _repository(self, domain: str) -> Repository:
        repo = self._repositories.get(domain)
        if repo is None:
            check_open(self)
            repo = self._build(domain)
            repo._unit = self
            self._repositories[domain] = repo
        return repo

    @abstractmethod
    def _build(self, domain: str) -> Repository:
        """This backend's repository of ``domain`` ("villages", ...)."""

    def __enter__(self) -> UnitOfWork:
        check_open(self)
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
        """End the unit: release the connection (rolls back what is not committed)."""

    def _end(self) -> None:
        # Each repository points back at its unit (to refuse calls once it has ended):
        # dropping the unit's side of that cycle lets both go as soon as the caller lets go,
        # not at the next garbage collection (a quick call makes one of these per call).
        self._closed = True
        self._repositories.clear()

    def __repr__(self) -> str:
        return (f"<UnitOfWork {self.backend_name} player_id={self.player_id} "
                f"{'ended' if self._closed else 'open'}>")


_SQL_REPOSITORIES: dict[str, type[SqlRepository]] = {
    "villages": SqlVillageRepository,
    "military": SqlMilitaryRepository,
    "trade": SqlTradeRepository,
    "intel": SqlIntelRepository,
    "diplomacy": SqlDiplomacyRepository,
    "players": SqlPlayerRepository,
}


class SqlUnitOfWork(UnitOfWork):
    backend_name = "sql"

    def __init__(
        self, database: Database, player_id: int | None, metrics: Metrics, cache: Cache | None = None
    ) -> None:
        super().__init__(player_id)
        self._session: SqlSession = database.session(catch_up=True)
        self._metrics = metrics
        self._cache_view: CacheView | None = None
        if cache is not None:
            self._cache_view = cache.view(database.clock)
            self._cache_view.sessions.append(self._session)

    def _build(self, domain: str) -> Repository:
        repo = _SQL_REPOSITORIES[domain](self._session, self.player_id)
        repo._cache = self._cache_view
        repo._metrics = self._metrics
        return repo

    @property
    def session(self) -> SqlSession:
        """The database session (one connection, one transaction) behind this unit."""
        return self._session

    def commit(self) -> None:
        check_open(self)
        self._session.commit()

    def rollback(self) -> None:
        if not self._closed:
            self._session.rollback()

    def close(self) -> None:
        self._end()
        self._session.close()


class HttpUnitOfWork(UnitOfWork):
    """Over the API each write is sent at once and is atomic on its own; the unit adds one
    acting player (the token's). The transport records the metrics of every request."""

    backend_name = "http"

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

    def _build(self, domain: str) -> Repository:
        repo = HTTP_REPOSITORIES[domain](self._transport, self.player_id)
        repo._cache = self._cache_view
        return repo

    def commit(self) -> None:
        """Nothing to do: every write was committed by the server when it answered."""

    def rollback(self) -> None:
        """Nothing to undo locally: writes already answered are committed on the server."""

    def close(self) -> None:
        """The transport is the world's; it stays open. The unit ends."""
        self._end()


class AutoUnitOfWork(UnitOfWork):
    """Reads from the database (faster), writes through the API (the engine validates them).

    Reads run in autocommit on the database, so a read after a write of the same unit sees
    it: the server committed the write before it answered.
    """

    backend_name = "auto"

    def __init__(self, sql: SqlUnitOfWork, http: HttpUnitOfWork) -> None:
        super().__init__(http.player_id)
        self._sql = sql
        self._http = http
        catch_up = sql.session.database.catch_up
        if catch_up is not None:
            catch_up.invalidate()  # the API's writes are not seen by this process's commits
        if sql._cache_view is not None:
            # One cache handle: the API writes invalidate and mark the unit written, so the
            # database reads after them skip the cache (read-your-writes).
            http._cache_view = sql._cache_view

    def _build(self, domain: str) -> Repository:
        routed = ROUTED[domain]
        return routed(self._sql._repository(domain), self._http._repository(domain))  # type: ignore[call-arg]

    def commit(self) -> None:
        self._sql.commit()

    def rollback(self) -> None:
        self._sql.rollback()

    def close(self) -> None:
        self._end()
        self._http.close()
        self._sql.close()

"""The unit of work: one acting player, the six repositories, one transaction.

Leaving the block normally commits; an exception rolls back. On SQL the block is one
database transaction (opened at its first write). Over HTTP each write is atomic on its own.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from types import TracebackType
from typing import Any, Callable, TypeVar, cast

from travian_repo.infra.metrics import Metrics
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

    def __init__(self, database: Database, player_id: int | None, metrics: Metrics) -> None:
        super().__init__(player_id)
        self._session: SqlSession = database.session()
        self._metrics = metrics

    def __getattr__(self, domain: str) -> Any:
        cls = _SQL_REPOSITORIES.get(domain)
        if cls is None:
            raise AttributeError(domain)
        repo = _instrument(cls(self._session, self.player_id), domain, self._metrics)
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


Factory = Callable[[int | None], UnitOfWork]

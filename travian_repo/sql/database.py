"""The world database: an engine plus what every session on it shares.

Its parts, one job each: ``engines`` (engines, bounded waits, the settings row),
``session`` (one unit of work's connection and lazy transaction), ``error_mapping`` (the one
SQL error mapping). Their public names are importable from here too.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Callable

from sqlalchemy import Engine
from sqlalchemy import exc as sa_exc

from travian_repo.domain.errors import BackendUnavailable, SchemaMismatch
from travian_repo.domain.values import Event
from travian_repo.infra.retry import DEFAULT_RETRY, RetryPolicy
from travian_repo.sql import idempotency, tokens
from travian_repo.sql.deadline import ReplyDeadline
from travian_repo.sql.engines import (
    CONNECT_TIMEOUT_S,
    KEEPALIVES_IDLE_S,
    POOL_TIMEOUT_S,
    PRE_PING_IDLE_S,
    REPLY_GRACE_S,
    SQLITE_BUSY_TIMEOUT_MS,
    STATEMENT_TIMEOUT_S,
    TimeSource,
    WorldSettings,
    make_engine,
    prepare_sqlite,
    read_created_at,
    read_settings,
    utc_now,
)
from travian_repo.sql.error_mapping import translate
from travian_repo.sql.listeners import quiet
from travian_repo.sql.ahead import pipeline
from travian_repo.sql.session import NOT_APPLIED, SqlSession

if TYPE_CHECKING:
    from travian_repo.sql.catch_up import CatchUp

log = logging.getLogger(__name__)


class Database:
    """An engine plus what every session on it shares: settings, clock, retry policy."""

    def __init__(
        self,
        engine: Engine,
        *,
        clock: TimeSource | None = None,
        retry: RetryPolicy | None = None,
        settings: WorldSettings | None = None,
    ) -> None:
        if engine.dialect.name == "sqlite":
            prepare_sqlite(engine)
        elif engine.dialect.name == "postgresql":
            pipeline(engine)
        else:
            raise SchemaMismatch(
                f"unsupported database {engine.dialect.name}: use PostgreSQL or SQLite"
            )
        self.engine = engine
        self.dialect = engine.dialect.name
        # Engines from make_engine() connect in autocommit; a caller's engine may not.
        self.autocommit_engine = getattr(engine, "_travian_autocommit", False)
        self.deadline: ReplyDeadline | None = getattr(engine, "_travian_deadline", None)
        # Reads may skip the SQLAlchemy Connection (``SqlSession.fetch``) on the library's
        # own PostgreSQL engines, in autocommit.
        self._direct = self.dialect == "postgresql" and self.autocommit_engine
        self.clock: TimeSource = clock or utc_now
        self.retry = retry or DEFAULT_RETRY
        self._settings = settings
        self._lock = threading.Lock()
        self._commit_listeners: list[Callable[[list[Event]], None]] = []
        # Outcome keys of confirmed commits, deleted by later transactions (PostgreSQL).
        self._spent_keys: list[str] = []
        # Run before a unit of work's first statement: the world catching up to now (set by
        # the SQL backend, see travian_repo.sql.catch_up), or None.
        self.catch_up: CatchUp | None = None
        self._held: dict[int, int] = {}  # thread id -> transactions it holds open

    def hold(self, thread: int, change: int) -> None:
        """Count a transaction opened (+1) or ended (-1) by ``thread``."""
        with self._lock:
            count = self._held.get(thread, 0) + change
            if count > 0:
                self._held[thread] = count
            else:
                self._held.pop(thread, None)

    def direct_reads(self) -> bool:
        """Whether a read may run straight on the pooled driver connection now (nobody but
        the library listens to the engine's statement execution)."""
        return self._direct and quiet(self.engine)

    def holds_transaction(self, thread: int) -> bool:
        return thread in self._held

    def add_commit_listener(self, listener: Callable[[list[Event]], None]) -> None:
        """Call ``listener(events)`` after every commit that wrote (cache, event bus)."""
        self._commit_listeners.append(listener)

    def committed(self, events: list[Event]) -> None:
        for listener in list(self._commit_listeners):
            try:
                listener(events)
            except Exception:  # noqa: BLE001 - the commit stands; a listener's fault is logged
                log.exception("a commit listener failed")

    @property
    def settings(self) -> WorldSettings:
        if self._settings is None:
            with self._lock:
                if self._settings is None:
                    self._settings = read_settings(self.engine)
        return self._settings

    def session(self, *, catch_up: bool = False) -> SqlSession:
        """A new session; ``catch_up``: run ``self.catch_up`` before its first statement
        (a unit of work's session; never the engine's own)."""
        return SqlSession(self, catch_up=catch_up)

    def player_for_token(self, token: str) -> int | None:
        """The player an API token belongs to; None for an unknown token.

        Reads in a connection of its own; any database failure is ``BackendUnavailable``.
        """
        try:
            with self.engine.connect() as conn:
                return tokens.player_for_token(conn, token)
        except sa_exc.SQLAlchemyError as exc:
            raise BackendUnavailable(
                "the world database is unavailable; try again", details={"cause": type(exc).__name__}
            ) from exc

    def dispose(self) -> None:
        self.engine.dispose()

    # -- outcome keys (see travian_repo.sql.idempotency) --

    def spend_key(self, key: tuple[int, str] | None) -> list[str] | None:
        """Note a confirmed commit's own outcome key; a full batch to delete comes back."""
        if key is None or key[0] != idempotency.SESSION_PLAYER:
            return None  # no key, or the server's: its row is the stored answer
        with self._lock:
            self._spent_keys.append(key[1])
            if len(self._spent_keys) < idempotency.SPENT_BATCH:
                return None
            batch, self._spent_keys = self._spent_keys, []
        return batch


__all__ = ["CONNECT_TIMEOUT_S", "KEEPALIVES_IDLE_S", "NOT_APPLIED", "POOL_TIMEOUT_S",
           "PRE_PING_IDLE_S", "REPLY_GRACE_S", "SQLITE_BUSY_TIMEOUT_MS", "STATEMENT_TIMEOUT_S",
           "Database", "SqlSession", "TimeSource", "WorldSettings", "make_engine", "prepare_sqlite",
           "read_created_at", "read_settings", "translate", "utc_now"]

"""Engines, the world settings row, and the per-unit-of-work database session.

Transactions are lazy: a unit of work reads in autocommit (one statement, one round trip,
and at READ COMMITTED no weaker than a transaction's reads) and opens the transaction at its
first write (``BEGIN`` on PostgreSQL; ``BEGIN IMMEDIATE`` on SQLite, which takes the write
lock up front so two writers never interleave). Each write after the first runs in a
savepoint, so a write that fails leaves nothing behind even when the caller goes on.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, inspect, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

from travian_repo.domain.errors import BackendUnavailable, ConfigurationError, Conflict, SchemaMismatch
from travian_repo.domain.values import Event
from travian_repo.infra.retry import DEFAULT_RETRY, RetryPolicy
from travian_repo.sql import schema

log = logging.getLogger(__name__)

T = TypeVar("T")
Clock = Callable[[], datetime]

SQLITE_BUSY_TIMEOUT_MS = 30_000
_PG_RETRYABLE = {"40001", "40P01"}  # serialization_failure, deadlock_detected


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class WorldSettings:
    world_id: str
    schema_version: int
    speed: int
    map_radius: int
    tournament_square_bonus_percent: int
    build_queue_limit: int
    instant_builds: bool


def make_engine(url: str, *, pool_size: int | None = None, **kwargs: Any) -> Engine:
    """An engine set up for the library: WAL and a busy timeout on SQLite, a sized pool."""
    try:
        parsed = make_url(url)
        parsed.get_dialect()
    except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError) as exc:
        raise ConfigurationError(f"not a usable database URL: {exc}") from None
    # The library sends BEGIN/COMMIT itself; a driver in autocommit means a read is one
    # statement on the wire, with no isolation reset when the connection goes back.
    kwargs.setdefault("isolation_level", "AUTOCOMMIT")
    if parsed.get_backend_name() == "sqlite":
        memory = parsed.database in (None, "", ":memory:")
        if memory:
            kwargs.setdefault("poolclass", StaticPool)
        kwargs.setdefault("connect_args", {"check_same_thread": False})
        engine = create_engine(url, **kwargs)
        prepare_sqlite(engine)
        engine._travian_autocommit = kwargs["isolation_level"] == "AUTOCOMMIT"  # type: ignore[attr-defined]
        return engine
    if parsed.get_backend_name() == "postgresql":
        kwargs.setdefault("pool_size", pool_size or 10)
        kwargs.setdefault("max_overflow", 2 * (pool_size or 10))
        kwargs.setdefault("pool_recycle", 1800)
    engine = create_engine(url, **kwargs)
    if parsed.get_backend_name() == "postgresql":
        _guard_checkin(engine)
    engine._travian_autocommit = kwargs["isolation_level"] == "AUTOCOMMIT"  # type: ignore[attr-defined]
    return engine


def _guard_checkin(engine: Engine) -> None:
    """In driver autocommit the pool's rollback does nothing: end any open transaction."""

    @event.listens_for(engine, "reset")
    def _on_reset(dbapi_connection: Any, _record: Any, _state: Any) -> None:
        if dbapi_connection.get_transaction_status() != 0:  # not idle
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("ROLLBACK")
            finally:
                cursor.close()


def prepare_sqlite(engine: Engine) -> None:
    """WAL, a busy timeout, foreign keys; the driver leaves transactions to us."""
    if getattr(engine, "_travian_sqlite_ready", False):
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we send BEGIN IMMEDIATE ourselves
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    engine._travian_sqlite_ready = True  # type: ignore[attr-defined]


def read_settings(engine: Engine) -> WorldSettings:
    """The world settings row, or SchemaMismatch saying what to do."""
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("world_settings"):
                raise SchemaMismatch(
                    f"{_safe_url(engine)} is not a travian_repo world (no world_settings table); "
                    "create one with travian_repo.sandbox.create_world(url) or "
                    "`travian-repo create-world --database-url URL`",
                )
            row = conn.execute(select(schema.world_settings)).mappings().first()
    except sa_exc.DBAPIError as exc:
        raise BackendUnavailable(
            f"cannot read the world database {_safe_url(engine)}: {str(exc.orig).strip()[:200]}"
        ) from exc
    if row is None:
        raise SchemaMismatch(
            f"{_safe_url(engine)} has an empty world_settings table; recreate the world with "
            "travian_repo.sandbox.create_world(url)"
        )
    found = row["schema_version"]
    if found != schema.SCHEMA_VERSION:
        shown = _safe_url(engine)
        if found < schema.SCHEMA_VERSION:
            advice = (f"upgrade the world in place with `travian-repo upgrade-world "
                      f"--database-url {shown}` (or travian_repo.sandbox.upgrade_world(url))")
        else:
            advice = "upgrade travian_repo to read it"
        raise SchemaMismatch(
            f"world schema version {found} at {shown}, this library reads version "
            f"{schema.SCHEMA_VERSION}; {advice}",
            details={"found": found, "expected": schema.SCHEMA_VERSION},
        )
    return WorldSettings(
        world_id=row["world_id"],
        schema_version=row["schema_version"],
        speed=row["speed"],
        map_radius=row["map_radius"],
        tournament_square_bonus_percent=row["tournament_square_bonus_percent"],
        build_queue_limit=row["build_queue_limit"],
        instant_builds=bool(row["instant_builds"]),
    )


def _safe_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


class Database:
    """An engine plus what every session on it shares: settings, clock, retry policy."""

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Clock | None = None,
        retry: RetryPolicy | None = None,
        settings: WorldSettings | None = None,
    ) -> None:
        if engine.dialect.name == "sqlite":
            prepare_sqlite(engine)
        elif engine.dialect.name != "postgresql":
            raise SchemaMismatch(
                f"unsupported database {engine.dialect.name}: use PostgreSQL or SQLite"
            )
        self.engine = engine
        self.dialect = engine.dialect.name
        # Engines from make_engine() connect in autocommit; a caller's engine may not.
        self.autocommit_engine = getattr(engine, "_travian_autocommit", False)
        self.clock: Clock = clock or utc_now
        self.retry = retry or DEFAULT_RETRY
        self._settings = settings
        self._lock = threading.Lock()
        self._commit_listeners: list[Callable[[list[Event]], None]] = []

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

    def session(self) -> SqlSession:
        return SqlSession(self)

    def dispose(self) -> None:
        self.engine.dispose()


class _Retryable(Exception):
    """A serialization failure or deadlock: the write step may run again."""


class SqlSession:
    """One unit of work's connection: autocommit reads, one lazy transaction for writes."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._conn: Connection | None = None
        self._in_transaction = False
        self._wrote = False
        self._savepoints = 0
        self._events: list[Event] = []

    def emit(self, kind: str, player_id: int, /, **data: Any) -> None:
        """Record a domain event of the current write; published only after the commit."""
        self._events.append(Event(kind, player_id, self.now, data))

    @property
    def now(self) -> datetime:
        return self.database.clock()

    @property
    def settings(self) -> WorldSettings:
        return self.database.settings

    @property
    def dialect(self) -> str:
        return self.database.dialect

    def connection(self) -> Connection:
        if self._conn is None:
            try:
                conn = self.database.engine.connect()
                if not self.database.autocommit_engine:
                    # A caller's engine: switch per connection (costs a reset on check-in).
                    conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                self._conn = conn
            except sa_exc.DBAPIError as exc:
                raise translate(exc) from exc
        return self._conn

    def read(self, fn: Callable[[Connection], T]) -> T:
        """Run a read; database errors come back as library errors."""
        conn = self.connection()
        try:
            return fn(conn)
        except sa_exc.DBAPIError as exc:
            raise translate(exc) from exc

    def write(self, fn: Callable[[Connection], T]) -> T:
        """Run one write operation atomically inside this session's transaction.

        On PostgreSQL a serialization failure or deadlock undoes the step and runs it again
        under the retry policy.
        """

        def attempt() -> T:
            conn = self.connection()
            first = not self._in_transaction
            if first:
                conn.exec_driver_sql("BEGIN IMMEDIATE" if self.dialect == "sqlite" else "BEGIN")
                self._in_transaction = True
            else:
                self._savepoints += 1
                name = f"tr_step_{self._savepoints}"
                conn.exec_driver_sql(f"SAVEPOINT {name}")
            mark = len(self._events)
            try:
                result = fn(conn)
            except BaseException as exc:
                del self._events[mark:]
                self._undo_step(conn, first, None if first else name)
                if isinstance(exc, sa_exc.DBAPIError):
                    if _is_retryable(exc):
                        raise _Retryable() from exc
                    raise translate(exc) from exc
                raise
            if not first:
                conn.exec_driver_sql(f"RELEASE SAVEPOINT {name}")
            self._wrote = True
            return result

        try:
            return self.database.retry.call(attempt, lambda e: isinstance(e, _Retryable))
        except _Retryable as exc:
            raise Conflict(
                "the write kept colliding with concurrent writes; try again",
                details={"cause": str(exc.__cause__)[:200]},
            ) from exc.__cause__
        except sa_exc.DBAPIError as exc:  # BEGIN/SAVEPOINT itself failed
            raise translate(exc) from exc

    def _undo_step(self, conn: Connection, first: bool, savepoint: str | None) -> None:
        try:
            if first:
                conn.exec_driver_sql("ROLLBACK")
                self._in_transaction = False
            else:
                conn.exec_driver_sql(f"ROLLBACK TO SAVEPOINT {savepoint}")
        except sa_exc.DBAPIError:
            log.warning("rollback of a failed write step failed; closing the connection")
            self._discard()

    def commit(self) -> bool:
        """Commit the open transaction, if any; True when something was written."""
        wrote = self._wrote
        events, self._events = self._events, []
        if self._conn is not None and self._in_transaction:
            try:
                self._conn.exec_driver_sql("COMMIT")
            except sa_exc.DBAPIError as exc:
                self._discard()
                raise translate(exc) from exc
            finally:
                self._in_transaction = False
        self._wrote = False
        if wrote:
            self.database.committed(events)
        return wrote

    def rollback(self) -> None:
        self._events = []
        if self._conn is not None and self._in_transaction:
            try:
                self._conn.exec_driver_sql("ROLLBACK")
            except sa_exc.DBAPIError:
                self._discard()
            self._in_transaction = False
        self._wrote = False

    def close(self) -> None:
        if self._conn is not None:
            if self._in_transaction:
                self.rollback()
            if self._conn is not None:
                self._conn.close()
            self._conn = None

    def _discard(self) -> None:
        if self._conn is not None:
            try:
                self._conn.invalidate()
                self._conn.close()
            finally:
                self._conn = None
                self._in_transaction = False


def _is_retryable(exc: sa_exc.DBAPIError) -> bool:
    return getattr(exc.orig, "pgcode", None) in _PG_RETRYABLE


def translate(exc: sa_exc.DBAPIError) -> Exception:
    """A database error as a library error (the one SQL error mapping)."""
    from travian_repo.domain.errors import TravianError

    orig = exc.orig
    text = str(orig).splitlines()[0][:300] if orig is not None else str(exc)[:300]
    if isinstance(exc, sa_exc.IntegrityError):
        return Conflict(f"the write conflicts with existing data: {text}")
    if exc.connection_invalidated or isinstance(exc, (sa_exc.InterfaceError,)):
        return BackendUnavailable(f"the world database connection failed: {text}")
    if isinstance(exc, sa_exc.OperationalError):
        if "locked" in text or "busy" in text:
            return Conflict(f"the world database is busy: {text}")
        return BackendUnavailable(f"the world database is unavailable: {text}")
    return TravianError(f"database error: {text}")

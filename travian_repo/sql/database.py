"""Engines, the world settings row, and the per-unit-of-work database session.

Transactions are lazy: a unit of work reads in autocommit (one statement, one round trip,
and at READ COMMITTED no weaker than a transaction's reads) and opens the transaction at its
first write (``BEGIN`` on PostgreSQL; ``BEGIN IMMEDIATE`` on SQLite, which takes the write
lock up front so two writers never interleave). Each write after the first runs in a
savepoint, so a write that fails leaves nothing behind even when the caller goes on.
"""

from __future__ import annotations

import logging
import math
import threading
import time
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
from travian_repo.sql import idempotency, schema
from travian_repo.sql.deadline import ReplyDeadline

log = logging.getLogger(__name__)

T = TypeVar("T")
Clock = Callable[[], datetime]

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Bounded waits on PostgreSQL (seconds); connect(), make_engine() and serve take others.
CONNECT_TIMEOUT_S = 5.0
STATEMENT_TIMEOUT_S = 30.0
POOL_TIMEOUT_S = 10.0
KEEPALIVES_IDLE_S = 30
# The client waits this much longer than statement_timeout for the server's own timeout
# error before it decides the server (or the path to it) has stalled and drops the connection.
REPLY_GRACE_S = 2.0
# pool_pre_ping=True tests a pooled connection that sat idle this long before handing it out;
# one used more recently costs no round trip, and if it died meanwhile its first statement
# is run again on a fresh connection (see SqlSession.read / write).
PRE_PING_IDLE_S = 5.0
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


def make_engine(
    url: str,
    *,
    pool_size: int | None = None,
    connect_timeout: float | None = CONNECT_TIMEOUT_S,
    statement_timeout: float | None = STATEMENT_TIMEOUT_S,
    pool_timeout: float | None = POOL_TIMEOUT_S,
    pool_pre_ping: bool | float = True,
    keepalives_idle: int | None = KEEPALIVES_IDLE_S,
    **kwargs: Any,
) -> Engine:
    """An engine set up for the library: WAL and a busy timeout on SQLite; on PostgreSQL a
    sized pool and bounded waits (None or 0 turns a bound off):

    - ``connect_timeout``: seconds to open a connection (libpq counts whole seconds, at least 2);
    - ``statement_timeout``: seconds a statement may run on the server; the client gives up
      on a reply ``REPLY_GRACE_S`` later (a stalled server or network) and drops the connection;
    - ``pool_timeout``: seconds to wait for a free pooled connection;
    - ``pool_pre_ping``: test a pooled connection that sat idle ``PRE_PING_IDLE_S`` or more
      before use, replacing it when dead (a number: that idle time instead, 0: every time);
    - ``keepalives_idle``: seconds of silence before TCP keepalive probes start.
    """
    try:
        parsed = make_url(url)
        parsed.get_dialect()
    except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError) as exc:
        raise ConfigurationError(f"not a usable database URL: {exc}") from None
    for name, value in (("connect_timeout", connect_timeout), ("statement_timeout", statement_timeout),
                        ("pool_timeout", pool_timeout), ("keepalives_idle", keepalives_idle)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or value < 0):
            raise ConfigurationError(f"{name} must be a number of seconds >= 0 (or None), got {value!r}")
    if not isinstance(pool_pre_ping, (bool, int, float)) or (
            not isinstance(pool_pre_ping, bool)
            and (not math.isfinite(pool_pre_ping) or pool_pre_ping < 0)):
        raise ConfigurationError(
            f"pool_pre_ping must be True, False or an idle time in seconds >= 0, got {pool_pre_ping!r}")
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
    deadline: ReplyDeadline | None = None
    if parsed.get_backend_name() == "postgresql":
        kwargs.setdefault("pool_size", pool_size or 10)
        kwargs.setdefault("max_overflow", 2 * (pool_size or 10))
        kwargs.setdefault("pool_recycle", 1800)
        if pool_timeout:
            kwargs.setdefault("pool_timeout", pool_timeout)
        if parsed.get_driver_name() == "psycopg2":
            kwargs["connect_args"] = _bounded_connect_args(
                parsed.query, dict(kwargs.get("connect_args") or {}),
                connect_timeout=connect_timeout, statement_timeout=statement_timeout,
                keepalives_idle=keepalives_idle,
            )
            if statement_timeout:
                deadline = ReplyDeadline(statement_timeout + REPLY_GRACE_S)
    engine = create_engine(url, **kwargs)
    if parsed.get_backend_name() == "postgresql":
        _guard_checkin(engine, deadline)
    if deadline is not None:
        deadline.install(engine)
    if parsed.get_backend_name() == "postgresql" and pool_pre_ping is not False:
        _pre_ping(engine, PRE_PING_IDLE_S if pool_pre_ping is True else float(pool_pre_ping),
                  deadline)
    engine._travian_deadline = deadline  # type: ignore[attr-defined]
    engine._travian_autocommit = kwargs["isolation_level"] == "AUTOCOMMIT"  # type: ignore[attr-defined]
    return engine


def _bounded_connect_args(
    query: Any, connect_args: dict[str, Any], *, connect_timeout: float | None,
    statement_timeout: float | None, keepalives_idle: int | None,
) -> dict[str, Any]:
    """libpq parameters for the bounds; what the caller set in the URL or connect_args wins."""
    given = {**dict(query), **connect_args}
    if connect_timeout and "connect_timeout" not in given:
        connect_args["connect_timeout"] = max(2, math.ceil(connect_timeout))
    if keepalives_idle and "keepalives" not in given:
        connect_args.update(keepalives=1, keepalives_idle=max(1, int(keepalives_idle)),
                            keepalives_interval=max(1, min(10, int(keepalives_idle))),
                            keepalives_count=3)
    if statement_timeout:
        options = given.get("options") or ""
        if isinstance(options, tuple):
            options = " ".join(options)
        if "statement_timeout" not in options:
            # A startup parameter: no extra round trip, and the URL's own options are kept.
            ms = max(1, int(statement_timeout * 1000))
            connect_args["options"] = f"{options} -c statement_timeout={ms}".strip()
    return connect_args


def _guard_checkin(engine: Engine, deadline: ReplyDeadline | None = None) -> None:
    """In driver autocommit the pool's rollback does nothing: end any open transaction.
    (A failure here makes the pool discard the connection.)"""

    @event.listens_for(engine, "reset")
    def _on_reset(dbapi_connection: Any, _record: Any, _state: Any) -> None:
        if dbapi_connection.get_transaction_status() != 0:  # not idle
            if deadline is not None:
                deadline.arm(dbapi_connection)
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("ROLLBACK")
            finally:
                cursor.close()
                if deadline is not None:
                    deadline.disarm(dbapi_connection)


def _pre_ping(engine: Engine, idle_s: float, deadline: ReplyDeadline | None) -> None:
    """Test a connection that sat in the pool ``idle_s`` or longer before handing it out
    (bounded by the reply deadline); a dead one is replaced by the pool."""

    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_connection: Any, record: Any) -> None:
        record.info["travian_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("travian_idle_since")
        if since is None or time.monotonic() - since < idle_s:
            return  # new, or in use a moment ago
        if deadline is not None:
            deadline.arm(dbapi_connection)
        try:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("SELECT 1")
            finally:
                cursor.close()
        except Exception as exc:  # noqa: BLE001 - any failure: the pool replaces it
            raise sa_exc.DisconnectionError(f"pre-ping failed: {exc}") from exc
        finally:
            if deadline is not None:
                deadline.disarm(dbapi_connection)


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
    except sa_exc.SQLAlchemyError as exc:
        cause = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
        raise BackendUnavailable(
            f"cannot read the world database {_safe_url(engine)}: {str(cause).strip()[:200]}"
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
        self.deadline: ReplyDeadline | None = getattr(engine, "_travian_deadline", None)
        self.clock: Clock = clock or utc_now
        self.retry = retry or DEFAULT_RETRY
        self._settings = settings
        self._lock = threading.Lock()
        self._commit_listeners: list[Callable[[list[Event]], None]] = []
        # Outcome keys of confirmed commits, deleted by later transactions (PostgreSQL).
        self._spent_keys: list[str] = []

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


class _Retryable(Exception):
    """A serialization failure or deadlock: the write step may run again."""


NOT_APPLIED = "nothing of the unit of work was committed; it is safe to run it again"


class SqlSession:
    """One unit of work's connection: autocommit reads, one lazy transaction for writes.

    On PostgreSQL the transaction carries an outcome key (``travian_repo.sql.idempotency``):
    when the connection drops while ``COMMIT`` is under way, ``commit()`` looks the key up
    and returns normally if the transaction committed, or raises ``BackendUnavailable``
    saying whether it did not (safe to retry) or could not be found out.
    """

    def __init__(self, database: Database) -> None:
        self.database = database
        self._conn: Connection | None = None
        self._in_transaction = False
        self._wrote = False
        self._savepoints = 0
        self._events: list[Event] = []
        # The key of the open transaction, and one a caller asked to use for the next.
        self._key: tuple[int, str] | None = None
        self._caller_key: tuple[int, str] | None = None
        # Set when the connection dropped under an open transaction: its writes are gone, so
        # the unit of work may not go on writing or commit as if they were there.
        self._lost: str | None = None

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

    def track_outcome(self, player_id: int, key: str) -> None:
        """The next transaction inserts this ``idempotency_keys`` row itself (the sandbox
        server's claim): the session resolves a lost commit by it instead of a key of its own."""
        if not self._in_transaction:
            self._caller_key = (player_id, key)

    def connection(self) -> Connection:
        if self._conn is None:
            try:
                conn = self.database.engine.connect()
                if not self.database.autocommit_engine:
                    # A caller's engine: switch per connection (costs a reset on check-in).
                    conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                self._conn = conn
            except sa_exc.SQLAlchemyError as exc:
                raise self._translate(exc) from exc
        return self._conn

    def read(self, fn: Callable[[Connection], T]) -> T:
        """Run a read; database errors come back as library errors.

        A read outside a transaction whose connection turns out dead runs once more on a
        fresh one (it changes nothing; a pooled connection may have died since its last use).
        """
        for again in (False, True):
            conn = self.connection()
            try:
                return fn(conn)
            except sa_exc.SQLAlchemyError as exc:
                if not _is_disconnect(exc):
                    raise self._translate(exc) from exc
                in_transaction = self._in_transaction
                self._connection_lost()
                if again or in_transaction or self._stalled():
                    raise self._translate(exc) from exc
                log.info("a read's connection was dead; reading again on a fresh one")
        raise AssertionError("unreachable")

    def _stalled(self) -> bool:
        deadline = self.database.deadline
        return deadline is not None and deadline.fired_here(keep=True)

    def write(self, fn: Callable[[Connection], T]) -> T:
        """Run one write operation atomically inside this session's transaction.

        On PostgreSQL a serialization failure or deadlock undoes the step and runs it again
        under the retry policy. A first step (nothing else in the transaction) whose
        connection drops runs once more on a fresh connection: no COMMIT was sent, so nothing
        of it can have been applied.
        """
        first = not self._in_transaction
        try:
            return self._write(fn)
        except BackendUnavailable as error:
            if not (first and error.details.get("outcome") == "not_applied"
                    and isinstance(error.__cause__, sa_exc.SQLAlchemyError)
                    and _is_disconnect(error.__cause__) and not self._stalled()):
                raise
            log.info("a write's connection dropped before anything was sent to commit; "
                     "running it again on a fresh connection")
        return self._write(fn)

    def _write(self, fn: Callable[[Connection], T]) -> T:
        if self._lost is not None:
            raise BackendUnavailable(self._lost, details={"outcome": "not_applied"})

        def attempt() -> T:
            conn = self.connection()
            first = not self._in_transaction
            name = ""
            if not first:
                self._savepoints += 1
                name = f"tr_step_{self._savepoints}"
                conn.exec_driver_sql(f"SAVEPOINT {name}")
            mark = len(self._events)
            try:
                if first:
                    self._begin(conn)  # inside: its insert may hit a serialization failure
                result = fn(conn)
            except BaseException as exc:
                del self._events[mark:]
                if isinstance(exc, sa_exc.SQLAlchemyError) and _is_disconnect(exc):
                    self._connection_lost()
                    raise
                self._undo_step(conn, first, None if first else name)
                if isinstance(exc, sa_exc.DBAPIError) and _is_retryable(exc):
                    raise _Retryable() from exc
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
        except sa_exc.SQLAlchemyError as exc:  # the step, or BEGIN/SAVEPOINT itself, failed
            if not _is_disconnect(exc):
                raise self._translate(exc) from exc
            if self._conn is not None:
                self._connection_lost()
            # No COMMIT was sent: the dropped transaction is rolled back by the server.
            error = self._translate(exc)
            if isinstance(error, BackendUnavailable):
                error = BackendUnavailable(
                    f"{self._lost or error.message}"
                    + (f" ({error.message})" if self._lost else f"; {NOT_APPLIED}"),
                    details={"outcome": "not_applied"},
                )
            raise error from exc

    def _begin(self, conn: Connection) -> None:
        if self.dialect != "postgresql":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            self._in_transaction = True
            return
        key = self._caller_key or (idempotency.SESSION_PLAYER, idempotency.new_key())
        self._caller_key = None
        inserts = None if key[0] != idempotency.SESSION_PLAYER else key
        sql, params = idempotency.begin_sql(inserts, self.now)
        self._in_transaction = True  # from here a failure must roll back
        conn.exec_driver_sql(sql, params)
        self._key = key

    def _undo_step(self, conn: Connection, first: bool, savepoint: str | None) -> None:
        try:
            if first:
                conn.exec_driver_sql("ROLLBACK")
                self._end_transaction()
            else:
                conn.exec_driver_sql(f"ROLLBACK TO SAVEPOINT {savepoint}")
        except sa_exc.SQLAlchemyError:
            log.warning("rollback of a failed write step failed; closing the connection")
            self._connection_lost()

    def commit(self) -> bool:
        """Commit the open transaction, if any; True when something was written."""
        if self._lost is not None:
            lost, self._lost = self._lost, None
            self._events, self._wrote = [], False
            raise BackendUnavailable(lost, details={"outcome": "not_applied"})
        wrote = self._wrote
        events, self._events = self._events, []
        if self._conn is not None and self._in_transaction:
            key = self._key
            try:
                self._conn.exec_driver_sql("COMMIT")
            except sa_exc.SQLAlchemyError as exc:
                self._discard()
                self._end_transaction()
                self._wrote = False
                if not _outcome_unknown(exc) or key is None:
                    raise self._translate(exc, "the commit failed; " + NOT_APPLIED) from exc
                self._resolve(key, exc)  # returns only when the commit did happen
                self.database.spend_key(key)  # the next full batch deletes it
            else:
                self._end_transaction()
                batch = self.database.spend_key(key)
                if batch:
                    self._delete_spent(batch)
        self._wrote = False
        if wrote:
            self.database.committed(events)
        return wrote

    def _resolve(self, key: tuple[int, str], cause: sa_exc.SQLAlchemyError) -> None:
        """After a commit whose answer was lost: return if it committed, else raise."""
        reason = str(getattr(cause, "orig", None) or cause).strip().splitlines()[0][:200]
        if self.database.deadline is not None and self.database.deadline.fired_here():
            reason = f"no answer within {self.database.deadline.seconds:g} s"

        def look() -> bool:
            with self.database.engine.connect() as conn:
                if not self.database.autocommit_engine:
                    conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                return idempotency.committed(conn, key, self.now)

        try:
            applied = self.database.retry.call(
                look, lambda e: isinstance(e, sa_exc.SQLAlchemyError))
        except sa_exc.SQLAlchemyError as exc:
            log.warning("the outcome of a lost commit could not be checked: %s", exc)
            raise BackendUnavailable(
                f"the world database connection dropped during COMMIT ({reason}) and the "
                "database could not be asked whether it committed: the outcome is unknown; "
                "read the state back before writing again",
                details={"outcome": "unknown", "outcome_key": key[1]},
            ) from exc
        if not applied:
            raise BackendUnavailable(
                f"the world database connection dropped during COMMIT ({reason}); the database "
                f"says the transaction did not commit: {NOT_APPLIED}",
                details={"outcome": "not_applied"},
            ) from cause
        log.info("a commit whose answer was lost did commit (outcome key %s)", key[1])

    def rollback(self) -> None:
        self._events = []
        self._lost = None
        if self._conn is not None and self._in_transaction:
            try:
                self._conn.exec_driver_sql("ROLLBACK")
            except sa_exc.SQLAlchemyError:
                self._discard()
        self._end_transaction()
        self._wrote = False

    def close(self) -> None:
        if self._conn is not None:
            if self._in_transaction:
                self.rollback()
            if self._conn is not None:
                try:
                    self._conn.close()
                except sa_exc.SQLAlchemyError:
                    log.warning("closing a database connection failed", exc_info=True)
                self._conn = None
        self._lost = None

    def _delete_spent(self, batch: list[str]) -> None:
        try:
            idempotency.delete_spent(self.connection(), batch)
        except (sa_exc.SQLAlchemyError, BackendUnavailable) as exc:
            # The commit stands; the rows stay for the retention purge.
            log.debug("deleting %d spent outcome keys failed: %s", len(batch), exc)
            if isinstance(exc, sa_exc.SQLAlchemyError) and _is_disconnect(exc):
                self._discard()

    def _end_transaction(self) -> None:
        self._in_transaction = False
        self._key = None
        self._caller_key = None

    def _connection_lost(self) -> None:
        """The connection is gone: drop it; an open transaction went with it."""
        had_writes = self._in_transaction and self._wrote  # earlier steps of this transaction
        in_transaction = self._in_transaction
        self._discard()
        if in_transaction:
            self._end_transaction()
            self._events = []
            if had_writes:
                self._lost = ("the world database connection dropped in the middle of the unit "
                              f"of work's transaction; {NOT_APPLIED}")

    def _discard(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.invalidate()
                conn.close()
            except sa_exc.SQLAlchemyError:
                log.debug("discarding a broken connection failed", exc_info=True)

    def _translate(self, exc: sa_exc.SQLAlchemyError, context: str | None = None) -> Exception:
        error = translate(exc)
        deadline = self.database.deadline
        if deadline is not None and deadline.fired_here():
            error = BackendUnavailable(
                f"the world database did not answer within {deadline.seconds:g} s "
                "(statement_timeout plus a grace period); the connection was dropped",
            )
        if context and isinstance(error, BackendUnavailable):
            error = BackendUnavailable(f"{error.message}; {context}", details=error.details)
        return error


def _is_retryable(exc: sa_exc.DBAPIError) -> bool:
    return getattr(exc.orig, "pgcode", None) in _PG_RETRYABLE


def _is_disconnect(exc: sa_exc.SQLAlchemyError) -> bool:
    """The connection is unusable (dropped, or invalidated by an earlier drop)."""
    if isinstance(exc, sa_exc.DBAPIError):
        return bool(exc.connection_invalidated) or (
            isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError))
            and getattr(exc.orig, "pgcode", None) is None
            and "locked" not in str(exc.orig) and "busy" not in str(exc.orig)
        )
    return isinstance(exc, (sa_exc.PendingRollbackError, sa_exc.ResourceClosedError))


def _outcome_unknown(exc: sa_exc.SQLAlchemyError) -> bool:
    """COMMIT failed without an answer from the server: it may or may not have committed."""
    return isinstance(exc, sa_exc.DBAPIError) and _is_disconnect(exc)


def translate(exc: sa_exc.SQLAlchemyError) -> Exception:
    """A database error as a library error (the one SQL error mapping)."""
    from travian_repo.domain.errors import TravianError

    if isinstance(exc, sa_exc.TimeoutError):  # the pool had no free connection in time
        return BackendUnavailable(f"no free world database connection: {str(exc).splitlines()[0][:200]}")
    if not isinstance(exc, sa_exc.DBAPIError):
        if isinstance(exc, (sa_exc.PendingRollbackError, sa_exc.ResourceClosedError)):
            return BackendUnavailable(f"the world database connection was lost: {str(exc)[:200]}")
        return TravianError(f"database error: {str(exc).splitlines()[0][:300]}")
    orig = exc.orig
    text = str(orig).splitlines()[0][:300] if orig is not None and str(orig) else str(exc)[:300]
    if isinstance(exc, sa_exc.IntegrityError):
        return Conflict(f"the write conflicts with existing data: {text}")
    if exc.connection_invalidated or isinstance(exc, (sa_exc.InterfaceError,)):
        return BackendUnavailable(f"the world database connection failed: {text}")
    if isinstance(exc, sa_exc.OperationalError):
        if "locked" in text or "busy" in text:
            return Conflict(f"the world database is busy: {text}")
        return BackendUnavailable(f"the world database is unavailable: {text}")
    return TravianError(f"database error: {text}")

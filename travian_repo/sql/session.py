"""One unit of work's database session: autocommit reads, one lazy transaction for writes.

Transactions are lazy: a unit of work reads in autocommit (one statement, one round trip,
and at READ COMMITTED no weaker than a transaction's reads) and opens the transaction at its
first write (``BEGIN`` on PostgreSQL; ``BEGIN IMMEDIATE`` on SQLite, which takes the write
lock up front so two writers never interleave). Each write after the first runs in a
savepoint, so a write that fails leaves nothing behind even when the caller goes on.

On PostgreSQL the session's own statements ride along: ``BEGIN`` (with its outcome key),
``SAVEPOINT`` and the last step's ``RELEASE SAVEPOINT`` are sent in the same round trip as
the step's first statement, ahead of it (``ahead.pipeline``); ``COMMIT`` makes a pending
``RELEASE`` unnecessary. Nothing else changes: the server runs them first, in order, and a
step that sends nothing sends none of them. Fewer statements, too: the transaction's first
village lock carries the outcome key's insert (``ahead.fold_outcome_key``), and the session
keeps the villages its transaction has locked (``ahead.held_locks``; a step's own go when its savepoint
is rolled back, as PostgreSQL releases them), so a later step only reads them.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from sqlalchemy import Connection
from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import PoolProxiedConnection

from travian_repo.domain.errors import BackendUnavailable, Conflict
from travian_repo.domain.values import Event
from travian_repo.sql import error_mapping, idempotency, prepared
from travian_repo.sql.ahead import AHEAD, LOCKED, OUTCOME, forget
from travian_repo.sql.engines import WorldSettings

if TYPE_CHECKING:
    from travian_repo.sql.database import Database

log = logging.getLogger(__name__)

T = TypeVar("T")


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

    def __init__(self, database: Database, *, catch_up: bool = False) -> None:
        self.database = database
        self._catch_up = catch_up
        self._conn: Connection | None = None
        # The pooled driver connection a direct read checked out (``fetch``); ``connection``
        # wraps it when a statement needs SQLAlchemy's Connection.
        self._fairy: PoolProxiedConnection | None = None
        self._open = False  # see _in_transaction
        self._holder = 0  # the thread that opened the transaction
        self._wrote = False
        self._savepoints = 0
        self._events: list[Event] = []
        # The key of the open transaction, and one a caller asked to use for the next.
        self._key: tuple[int, str] | None = None
        self._caller_key: tuple[int, str] | None = None
        # Set when the connection dropped under an open transaction: its writes are gone, so
        # the unit of work may not go on writing or commit as if they were there.
        self._lost: str | None = None

    @property
    def _in_transaction(self) -> bool:
        return self._open

    @_in_transaction.setter
    def _in_transaction(self, value: bool) -> None:
        # The database counts the transactions each thread holds open: catching the world
        # up from a thread that holds one would wait on its own locks.
        if value and not self._open:
            self._holder = threading.get_ident()
            self.database.hold(self._holder, 1)
        elif self._open and not value:
            self.database.hold(self._holder, -1)
        self._open = value

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

    def _catch_up_first(self) -> None:
        if self._catch_up:
            self._catch_up = False
            if (self.database.catch_up is not None
                    and not self.database.holds_transaction(threading.get_ident())):
                self.database.catch_up()

    def connection(self) -> Connection:
        if self._conn is None:
            engine = self.database.engine
            try:
                if self._fairy is not None:  # a direct read checked it out
                    conn = Connection(engine, connection=self._fairy)
                else:
                    self._catch_up_first()
                    conn = engine.connect()
                    forget(conn.info)  # never another session's leftovers
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
                self._read_failed(exc, again)
        raise AssertionError("unreachable")

    def fetch(self, statement: prepared.Prepared, params: dict[str, Any]) -> prepared.Rows:
        """The rows of a registered read statement (``prepared.run``), as ``read`` runs it.

        With no SQLAlchemy Connection open yet, on PostgreSQL, on one of the library's
        engines that nobody else listens to (``listeners.quiet``), it runs straight on the
        pooled driver connection (``prepared.run_direct``): no transaction is open then, so
        nothing is queued ahead of it.
        """
        if self._conn is not None or not self.database.direct_reads():
            return self.read(lambda conn: prepared.run(conn, statement, params=params))
        engine = self.database.engine
        for again in (False, True):
            try:
                fairy = self._fairy
                if fairy is None:
                    self._catch_up_first()
                    fairy = prepared.checkout(engine)
                    forget(fairy.info)
                    self._fairy = fairy
                return prepared.run_direct(fairy, engine, statement, params=params)
            except sa_exc.SQLAlchemyError as exc:
                self._read_failed(exc, again)
        raise AssertionError("unreachable")

    def _read_failed(self, exc: sa_exc.SQLAlchemyError, again: bool) -> None:
        """Raise ``exc`` as a library error, unless the read should run again: its
        connection was dead, outside a transaction, the first time, and not for stalling."""
        if not error_mapping.is_disconnect(exc):
            raise self._translate(exc) from exc
        in_transaction = self._in_transaction
        self._connection_lost()
        if again or in_transaction or self._stalled():
            raise self._translate(exc) from exc
        log.info("a read's connection was dead; reading again on a fresh one")

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
                    and error_mapping.is_disconnect(error.__cause__) and not self._stalled()):
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
            held = conn.info.get(AHEAD)  # the last step's RELEASE, not sent yet
            queued: str | None = None
            name = ""
            locked = conn.info.get(LOCKED)
            before = None if first or locked is None else set(locked)
            if not first:
                self._savepoints += 1
                name = f"tr_step_{self._savepoints}"
                self._ahead(conn, f"SAVEPOINT {name}")
            mark = len(self._events)
            try:
                if first:
                    self._begin(conn)  # inside: its insert may hit a serialization failure
                queued = conn.info.get(AHEAD)  # what the step's first statement takes along
                result = fn(conn)
            except BaseException as exc:
                del self._events[mark:]
                if isinstance(exc, sa_exc.SQLAlchemyError) and error_mapping.is_disconnect(exc):
                    self._connection_lost()
                    raise
                if queued is not None and conn.info.get(AHEAD) is queued:
                    self._unsent(conn, held, first)  # nothing reached the server: no undo
                else:
                    self._undo_step(conn, first, None if first else name)
                    if before is not None and self._conn is conn:
                        conn.info[LOCKED] = before  # the step's own locks went with it
                if isinstance(exc, sa_exc.DBAPIError) and error_mapping.is_retryable(exc):
                    raise _Retryable() from exc
                raise
            if queued is not None and conn.info.get(AHEAD) is queued:
                self._unsent(conn, held, first)
            elif not first:
                self._ahead(conn, f"RELEASE SAVEPOINT {name}")
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
            if not error_mapping.is_disconnect(exc):
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
        self._key = key
        conn.info[LOCKED] = set()
        if params:
            cursor = conn.connection.cursor()
            try:
                sql = cursor.mogrify(sql, params).decode()
            finally:
                cursor.close()
        self._ahead(conn, sql)
        if params and conn.info.get(AHEAD) is sql:
            conn.info[OUTCOME] = (sql, params)

    def _ahead(self, conn: Connection, sql: str) -> None:
        """Run ``sql`` before the next statement: on PostgreSQL in that statement's round
        trip (``pipeline``), elsewhere now."""
        if self.dialect != "postgresql" or "%" in sql:  # '%' would meet the driver's formatting
            conn.exec_driver_sql(sql)
            return
        info = conn.info
        held = info.get(AHEAD)
        info[AHEAD] = sql if held is None else f"{held}; {sql}"

    def _unsent(self, conn: Connection, held: str | None, first: bool) -> None:
        """A step that sent no statement: take back its BEGIN or SAVEPOINT."""
        if held is None:
            conn.info.pop(AHEAD, None)
        else:
            conn.info[AHEAD] = held
        if first:
            self._end_transaction()

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

    @property
    def step(self) -> int:
        """The session's write-step counter: each write step after a transaction's first runs
        in a savepoint and counts one more (never reset, so a number names one step)."""
        return self._savepoints

    def commit(self) -> bool:
        """Commit the open transaction, if any; True when something was written."""
        if not (self._open or self._wrote or self._events or self._lost):
            return False  # only read: nothing to commit, nobody to tell
        if self._lost is not None:
            lost, self._lost = self._lost, None
            self._events, self._wrote = [], False
            raise BackendUnavailable(lost, details={"outcome": "not_applied"})
        wrote = self._wrote
        events, self._events = self._events, []
        if self._conn is not None and self._in_transaction:
            key = self._key
            forget(self._conn.info)  # a RELEASE at most: COMMIT releases them all
            try:
                if self.dialect == "postgresql":
                    prepared.plain(self._conn, "COMMIT")  # no result object to set up
                else:
                    self._conn.exec_driver_sql("COMMIT")
            except sa_exc.SQLAlchemyError as exc:
                self._discard()
                self._end_transaction()
                self._wrote = False
                if not error_mapping.outcome_unknown(exc) or key is None:
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
        if self._conn is not None:
            forget(self._conn.info)
        if self._conn is not None and self._in_transaction:
            try:
                self._conn.exec_driver_sql("ROLLBACK")
            except sa_exc.SQLAlchemyError:
                self._discard()
        self._end_transaction()
        self._wrote = False

    def close(self) -> None:
        if self._conn is not None and self._open:
            self.rollback()
        # A Connection closes the pooled connection it wraps.
        held = self._conn if self._conn is not None else self._fairy
        self._conn = self._fairy = None
        if held is not None:
            forget(held.info)
            try:
                held.close()
            except sa_exc.SQLAlchemyError:
                log.warning("closing a database connection failed", exc_info=True)
        self._lost = None

    def _delete_spent(self, batch: list[str]) -> None:
        try:
            idempotency.delete_spent(self.connection(), batch)
        except (sa_exc.SQLAlchemyError, BackendUnavailable) as exc:
            # The commit stands; the rows stay for the retention purge.
            log.debug("deleting %d spent outcome keys failed: %s", len(batch), exc)
            if isinstance(exc, sa_exc.SQLAlchemyError) and error_mapping.is_disconnect(exc):
                self._discard()

    def _end_transaction(self) -> None:
        if self._conn is not None:
            self._conn.info.pop(LOCKED, None)
            self._conn.info.pop(OUTCOME, None)
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
            self._fairy = None  # the Connection's own
            try:
                forget(conn.info)
                conn.invalidate()
                conn.close()
            except sa_exc.SQLAlchemyError:
                log.debug("discarding a broken connection failed", exc_info=True)
        elif self._fairy is not None:
            fairy, self._fairy = self._fairy, None
            forget(fairy.info)
            if fairy.is_valid:  # a dropped one was invalidated (and returned) already
                fairy.invalidate()

    def _translate(self, exc: sa_exc.SQLAlchemyError, context: str | None = None) -> Exception:
        error = error_mapping.translate(exc)
        deadline = self.database.deadline
        if deadline is not None and deadline.fired_here():
            error = BackendUnavailable(
                f"the world database did not answer within {deadline.seconds:g} s "
                "(statement_timeout plus a grace period); the connection was dropped",
            )
        if context and isinstance(error, BackendUnavailable):
            error = BackendUnavailable(f"{error.message}; {context}", details=error.details)
        return error


__all__ = ["NOT_APPLIED", "SqlSession"]

"""The hot reads, prepared once per PostgreSQL connection and then run by name.

Planning a village read (a join with two correlated subqueries) costs the server more than
running it. ``PREPARE`` does the parse and plan once per connection; each call then sends
``EXECUTE name(...)``. The statements are defined on a connection's first use of any of
them, all at once, in that use's own round trip (no extra one). Prepared statements belong
to the connection, not to a transaction: a rollback keeps them, and a new connection (a
reconnect, a recycle) starts without them.

If that first round trip fails, the connection runs the plain statements from then on (it
cannot tell which definitions the server took); so does a connection on which a prepared
statement went missing or stale (``_GONE``): a read outside a transaction runs again at
once, plain; a write step inside one fails that once. SQLite runs the Core statements.

On PostgreSQL the rows come straight off the driver's cursor as named tuples: the statement
still goes through the connection's cursor execution (its events, so statements queued
ahead ride along and the reply deadline is armed; its error handling, so a failure is
SQLAlchemy's error and a dropped connection is invalidated), but not through a result
object, whose per-call column bookkeeping costs as much as the rest of a quick read.

``run_direct`` goes one step further for a read outside any transaction: it runs on the
pooled driver connection itself, with no SQLAlchemy Connection (whose construction and event
dispatch cost as much again). It does what the Connection would have done around the call:
arms the reply deadline, turns a driver error into SQLAlchemy's, and invalidates a connection
that dropped. The session uses it only on an engine whose statement execution nobody else
listens to (``listeners.quiet``), so no listener or statement log misses a statement.
"""

from __future__ import annotations

import functools
from collections import namedtuple
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol, Sequence

from sqlalchemy import Connection, Engine, Executable
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql
from sqlalchemy.pool import PoolProxiedConnection

# conn.info key (one per DBAPI connection): True defined, False failed once, absent unused.
DEFINED = "travian_prepared"
# The server lost them (DISCARD ALL, a pooler handing out another session) or cannot run
# them any more (a column's type changed under them): that call fails, later ones go plain.
_GONE = {"26000", "0A000"}


@dataclass(frozen=True)
class Prepared:
    """One statement: the Core form, its PostgreSQL text and its prepared-statement call."""

    name: str
    statement: Executable
    text: str  # pyformat parameters (%(name)s), as psycopg2 takes them
    define: str  # PREPARE name AS ... with $n parameters
    call: str  # EXECUTE name(%(a)s, ...)


_ALL: dict[str, Prepared] = {}
# The same by the Core statement object each was made from (``execute``).
_BY_STATEMENT: dict[Executable, Prepared] = {}
_DEFINE_ALL = ""


def prepare(name: str, statement: Executable) -> Prepared:
    """Register ``statement`` under ``name`` (at import time; names are the library's own)."""
    global _DEFINE_ALL
    dialect = postgresql.psycopg2.dialect()  # type: ignore[no-untyped-call]
    numbered = statement.compile(  # type: ignore[attr-defined]
        dialect=postgresql.psycopg2.dialect(paramstyle="numeric_dollar"))  # type: ignore[no-untyped-call]
    order = list(numbered.positiontup or ())
    args = ", ".join(f"%({p})s" for p in order)
    entry = Prepared(
        name=name,
        statement=statement,
        text=str(statement.compile(dialect=dialect)),  # type: ignore[attr-defined]
        define=f"PREPARE {name} AS {numbered}",
        call=f"EXECUTE {name}({args})" if order else f"EXECUTE {name}",
    )
    _ALL[name] = entry
    _BY_STATEMENT[statement] = entry
    _DEFINE_ALL = "; ".join(p.define for p in _ALL.values())
    return entry


class Rows(Protocol):
    """What ``run`` returns: its rows (attribute access by column name)."""

    def first(self) -> Any: ...

    def __iter__(self) -> Iterator[Any]: ...


class _Fetched:
    def __init__(self, rows: Sequence[Any], make: Callable[[Any], Any]) -> None:
        self._rows = [make(row) for row in rows]

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)


@functools.cache
def _row_type(names: tuple[str, ...]) -> Any:
    return namedtuple("Row", names, rename=True)


# The row maker of each statement text (the library's own few): its columns never change.
_MAKERS: dict[str, Callable[[Any], Any]] = {}


def _execute(conn: Connection, sql: str, params: dict[str, Any] | None) -> Rows:
    cursor = conn.connection.cursor()
    try:
        try:
            conn._cursor_execute(cursor, sql, params)  # type: ignore[arg-type]  # None: as is
        except BaseException:
            # The reply deadline disarms on the error of an execution context; there is none.
            deadline = getattr(conn.engine, "_travian_deadline", None)
            if deadline is not None:
                deadline.disarm(cursor.connection)
            raise
        return _rows(cursor, sql)
    finally:
        cursor.close()


def _execute_direct(fairy: PoolProxiedConnection, engine: Engine, sql: str,
                    params: dict[str, Any]) -> Rows:
    dbapi = fairy.dbapi_connection
    cursor = dbapi.cursor()  # type: ignore[union-attr]
    deadline = getattr(engine, "_travian_deadline", None)
    try:
        if deadline is not None:
            deadline.arm(dbapi)
        try:
            cursor.execute(sql, params)
        except BaseException as exc:
            raise _driver_error(fairy, engine, exc, cursor, sql, params) from exc
        finally:
            if deadline is not None:
                deadline.disarm(dbapi)
        return _rows(cursor, sql)
    finally:
        cursor.close()


def _driver_error(fairy: PoolProxiedConnection, engine: Engine, exc: BaseException,
                  cursor: Any, sql: str | None, params: dict[str, Any] | None) -> BaseException:
    """What a Connection makes of an error on its driver connection: SQLAlchemy's error (a
    dropped connection invalidated with the pool's older ones); an interrupt as it is, with
    the connection invalidated, as its state is unknown."""
    dialect = engine.dialect
    if not isinstance(exc, Exception):
        if fairy.is_valid:
            fairy.invalidate(exc)
        return exc
    dbapi_error = dialect.loaded_dbapi.Error
    dropped = isinstance(exc, dbapi_error) and dialect.is_disconnect(
        exc, fairy.dbapi_connection, cursor)
    if dropped:
        # As a Connection does: every pooled connection as old as this one is replaced at
        # its next checkout (when one dropped, its siblings likely did too), and this one
        # goes back invalidated.
        engine.pool._invalidate(fairy, exc)
    return _wrapped(engine, exc, sql, params, dropped)


def _wrapped(engine: Engine, exc: Exception, sql: str | None,
             params: dict[str, Any] | None, dropped: bool) -> sa_exc.StatementError:
    return sa_exc.DBAPIError.instance(
        sql, params, exc, engine.dialect.loaded_dbapi.Error,
        hide_parameters=engine.hide_parameters, connection_invalidated=dropped,
        dialect=engine.dialect)


def checkout(engine: Engine) -> PoolProxiedConnection:
    """A pooled driver connection for ``run_direct``; a failure to connect is SQLAlchemy's
    error, as from ``engine.connect()``."""
    try:
        return engine.raw_connection()
    except engine.dialect.loaded_dbapi.Error as exc:
        dropped = engine.dialect.is_disconnect(exc, None, None)
        raise _wrapped(engine, exc, None, None, dropped) from exc


def _rows(cursor: Any, sql: str) -> Rows:
    make = _MAKERS.get(sql)
    if make is None:
        description = cursor.description
        if description is None:
            return _Fetched([], tuple)
        make = _MAKERS[sql] = _row_type(tuple(d[0] for d in description))._make
    return _Fetched(cursor.fetchall(), make)


def execute(conn: Connection, statement: Executable, params: dict[str, Any]) -> Rows:
    """Run a Core statement: on PostgreSQL as the prepared statement registered for that
    very object, if any (its parameters go to the driver as they are: no bind processing),
    else as itself."""
    entry = _BY_STATEMENT.get(statement) if conn.dialect.name == "postgresql" else None
    if entry is None:
        return conn.execute(statement, params)
    return run(conn, entry, params=params)


def plain(conn: Connection, sql: str) -> None:
    """PostgreSQL: run ``sql`` (no parameters, no rows wanted: a ``COMMIT``) by the same
    cursor path as the prepared statements, not through a result object."""
    _execute(conn, sql, None)


def run(conn: Connection, *statements: Prepared, params: dict[str, Any]) -> Rows:
    """Run ``statements`` in order, in one round trip; the last one's rows come back.

    On PostgreSQL each goes as ``EXECUTE`` (defining them all first on the connection's
    first use); elsewhere they run one by one as Core statements.
    """
    if conn.dialect.name != "postgresql":
        core = None
        for p in statements:
            core = conn.execute(p.statement, params)
        assert core is not None
        return core
    return _by_name(conn.info, statements, lambda sql: _execute(conn, sql, params),
                    lambda: conn.invalidated, lambda: conn.connection.dbapi_connection)


def run_direct(fairy: PoolProxiedConnection, engine: Engine, *statements: Prepared,
               params: dict[str, Any]) -> Rows:
    """``run`` on PostgreSQL, straight on a pooled driver connection in autocommit with
    nothing queued ahead (see the module)."""
    return _by_name(fairy.info, statements,
                    lambda sql: _execute_direct(fairy, engine, sql, params),
                    lambda: not fairy.is_valid, lambda: fairy.dbapi_connection)


def _by_name(info: dict[Any, Any], statements: Sequence[Prepared],
             execute: Callable[[str], Rows], invalidated: Callable[[], bool],
             dbapi: Callable[[], Any]) -> Rows:
    state = info.get(DEFINED)
    if state is False:
        return execute("; ".join(p.text for p in statements))
    calls = "; ".join(p.call for p in statements)
    if state:
        try:
            return execute(calls)
        except sa_exc.DBAPIError as exc:
            if getattr(exc.orig, "pgcode", None) not in _GONE or invalidated():
                raise
            info[DEFINED] = False  # plain statements on this connection from now on
            if dbapi().get_transaction_status() != 0:
                raise  # a transaction the error aborted: its write step fails
        # outside a transaction nothing was changed: run it again, plain
        return execute("; ".join(p.text for p in statements))
    try:
        result = execute(f"{_DEFINE_ALL}; {calls}")
    except BaseException:
        if not invalidated():  # a new connection starts over anyway
            info[DEFINED] = False
        raise
    info[DEFINED] = True
    return result


__all__ = ["DEFINED", "Prepared", "Rows", "checkout", "execute", "plain", "prepare", "run",
           "run_direct"]

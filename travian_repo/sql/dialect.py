"""The few SQL constructs that differ between PostgreSQL and SQLite."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, ColumnElement, Connection, Float, Table, type_coerce
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.functions import FunctionElement


class _JsonRows(FunctionElement[Any]):
    """An aggregate: the group's rows as a JSON array of arrays (``[]`` when empty)."""

    name = "json_rows"
    inherit_cache = True


@compiles(_JsonRows, "postgresql")
def _json_rows_pg(element: _JsonRows, compiler: SQLCompiler, **kw: Any) -> str:
    args = compiler.process(element.clauses, **kw)
    return f"coalesce(json_agg(json_build_array({args})), '[]'::json)"


@compiles(_JsonRows, "sqlite")
def _json_rows_sqlite(element: _JsonRows, compiler: SQLCompiler, **kw: Any) -> str:
    args = compiler.process(element.clauses, **kw)
    return f"json_group_array(json_array({args}))"


def json_rows(*columns: ColumnElement[Any]) -> ColumnElement[Any]:
    """Aggregate ``columns`` of every row into one JSON value, decoded to a list on read."""
    return type_coerce(_JsonRows(*columns), JSON)


class _JsonColumns(FunctionElement[Any]):
    """An aggregate: each column over the group's rows as one JSON array, in one row order
    (on PostgreSQL ``null`` for each when the group is empty; on SQLite ``[]``)."""

    name = "json_columns"
    inherit_cache = True


@compiles(_JsonColumns, "postgresql")
def _json_columns_pg(element: _JsonColumns, compiler: SQLCompiler, **kw: Any) -> str:
    args = ", ".join(f"array_agg({compiler.process(c, **kw)})" for c in element.clauses)
    return f"json_build_array({args})"


@compiles(_JsonColumns, "sqlite")
def _json_columns_sqlite(element: _JsonColumns, compiler: SQLCompiler, **kw: Any) -> str:
    args = ", ".join(f"json_group_array({compiler.process(c, **kw)})" for c in element.clauses)
    return f"json_array({args})"


def json_columns(*columns: ColumnElement[Any]) -> ColumnElement[Any]:
    """Aggregate each of ``columns`` into a JSON array, the arrays in one JSON value decoded to
    a list on read: fewer values to build and decode than an array per row."""
    return type_coerce(_JsonColumns(*columns), JSON)


class _JsonRow(FunctionElement[Any]):
    """One row's values as a JSON array (JSON values among them embedded as JSON)."""

    name = "json_row"
    inherit_cache = True


@compiles(_JsonRow, "postgresql")
def _json_row_pg(element: _JsonRow, compiler: SQLCompiler, **kw: Any) -> str:
    return f"json_build_array({compiler.process(element.clauses, **kw)})"


@compiles(_JsonRow, "sqlite")
def _json_row_sqlite(element: _JsonRow, compiler: SQLCompiler, **kw: Any) -> str:
    args = ", ".join(_sqlite_json_value(c, compiler, **kw) for c in element.clauses)
    return f"json_array({args})"


def _sqlite_json_value(column: Any, compiler: SQLCompiler, **kw: Any) -> str:
    sql = compiler.process(column, **kw)
    if isinstance(column.type, JSON):
        # A JSON value read from a subquery is text to SQLite: json() marks it JSON again,
        # or json_array would embed it as a string.
        return f"json({sql})"
    if isinstance(column.type, Float):
        # SQLite writes a real into JSON with 15 digits, which loses the last bits of a
        # stock; 17 give the same double back (as text: ``float()`` reads it).
        return f"printf('%!.17g', {sql})"
    return sql


def json_row(*columns: ColumnElement[Any]) -> ColumnElement[Any]:
    """``columns`` of one row as one JSON array, decoded to a list on read: one column for
    the driver to name and convert instead of many (times come back as ISO text, and on
    SQLite floats as text too: ``float()`` them)."""
    return type_coerce(_JsonRow(*columns), JSON)


def insert_unless_taken(conn: Connection, table: Table) -> Insert:
    """``INSERT ... ON CONFLICT DO NOTHING``: a row that a unique constraint refuses is not
    inserted and ``RETURNING`` gives no row, instead of an error that aborts the transaction.

    On PostgreSQL it waits for a concurrent insert of the same key to end first, so a
    statement run after it sees the row that took the key.
    """
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()

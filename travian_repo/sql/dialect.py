"""The few SQL constructs that differ between PostgreSQL and SQLite."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, ColumnElement, type_coerce
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
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

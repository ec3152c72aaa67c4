"""Set-wise statements: many rows changed by one statement, on PostgreSQL and SQLite.

The engine's batches write through these: one ``UPDATE ... FROM (VALUES ...)`` for every
row of a kind of change, one ``DELETE ... WHERE key IN (...)``, one multi-row ``INSERT``.
Each returns how many rows it changed, for the callers' row checks.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any, Callable, Sequence

from sqlalchemy import Connection, Table, delete, insert, text, tuple_

# Rows per statement: well below SQLite's 32,766 bound parameters for the widest row.
CHUNK = 500


def update_rows(conn: Connection, table: Table, keys: Sequence[str], columns: Sequence[str],
                rows: Sequence[Sequence[Any]], *, match: Sequence[str] = (),
                where: str = "", add: bool = False) -> int:
    """Set ``columns`` of the rows with ``keys``: each row is its key values, then the new
    values (added to the old ones with ``add``), then the values the ``match`` columns must
    still have (a guard). ``where`` is a further condition on ``t``. The number of rows
    changed."""
    if not rows:
        return 0
    names = [*keys, *columns, *match]
    source, encode = _json_rows(conn, table, names)
    n_keys, n_cols = len(keys), len(columns)
    plus = "t.{} + " if add else ""
    sets = ", ".join(f"{c} = {plus.format(c)}v.c{n_keys + j}" for j, c in enumerate(columns))
    conds = [f"t.{k} = v.c{i}" for i, k in enumerate(keys)]
    conds += [f"t.{m} = v.c{n_keys + n_cols + j}" for j, m in enumerate(match)]
    if where:
        conds.append(where)
    statement = text(f"UPDATE {table.name} AS t SET {sets} FROM {source} "
                     f"WHERE {' AND '.join(conds)}")
    changed = 0
    for start in range(0, len(rows), CHUNK * 4):
        changed += conn.execute(statement, {"rows": encode(rows[start:start + CHUNK * 4])}
                                ).rowcount
    return changed


def _json_rows(conn: Connection, table: Table, names: Sequence[str]
               ) -> tuple[str, Callable[[Sequence[Sequence[Any]]], str]]:
    """A row source ``v`` (columns ``c0``, ``c1``...) reading the rows from one JSON
    parameter ``:rows`` (one statement text per shape, compiled once): ``json_to_recordset``
    on PostgreSQL, ``json_each`` on SQLite; and the encoder of the rows."""
    types = [table.c[n].type for n in names]
    dialect = conn.dialect
    processors = [t.dialect_impl(dialect).bind_processor(dialect) for t in types]
    pg = dialect.name == "postgresql"
    if pg:
        fields = ", ".join(f"c{i} {t.compile(dialect)}" for i, t in enumerate(types))
        source = f"json_to_recordset(CAST(:rows AS JSON)) AS v({fields})"
    else:
        picks = ", ".join(f"json_extract(value, '$[{i}]') AS c{i}" for i in range(len(names)))
        source = f"(SELECT {picks} FROM json_each(:rows)) AS v"

    def encode(rows: Sequence[Sequence[Any]]) -> str:
        out = [[_plain(p(v) if p else v) for p, v in zip(processors, row)] for row in rows]
        if pg:
            return json.dumps([{f"c{i}": v for i, v in enumerate(r)} for r in out])
        return json.dumps(out)

    return source, encode


def _plain(value: Any) -> Any:
    """A bound value as JSON carries it (times as ISO text, which both databases read)."""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


def delete_rows(conn: Connection, table: Table, keys: Sequence[str],
                rows: Sequence[Sequence[Any]], *conditions: Any) -> int:
    """Delete the rows with these key values (and ``conditions``); how many went."""
    gone = 0
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start:start + CHUNK]
        if len(keys) == 1:
            match = table.c[keys[0]].in_([r[0] for r in chunk])
        else:
            match = tuple_(*(table.c[k] for k in keys)).in_([tuple(r) for r in chunk])
        gone += conn.execute(delete(table).where(match, *conditions)).rowcount
    return gone


def insert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]],
                returning: Any = None) -> list[Any]:
    """Insert the rows (one statement per chunk); the ``returning`` column of each, in the
    rows' order, when asked."""
    out: list[Any] = []
    for start in range(0, len(rows), CHUNK):
        chunk = list(rows[start:start + CHUNK])
        if returning is None:
            conn.execute(insert(table), chunk)
        elif conn.dialect.name == "sqlite" and returning is table.c.id:
            # One multi-row INSERT gives consecutive rowids after the largest, and the
            # transaction holds the database's write lock: the ids are the last one's run.
            conn.execute(insert(table).values(chunk))
            last = int(conn.execute(text("SELECT last_insert_rowid()")).scalar_one())
            out.extend(range(last - len(chunk) + 1, last + 1))
        else:
            result = conn.execute(
                insert(table).returning(returning, sort_by_parameter_order=True), chunk)
            out.extend(r[0] for r in result)
    return out


def upsert_rows(conn: Connection, table: Table, keys: Sequence[str],
                rows: Sequence[dict[str, Any]]) -> None:
    """Insert the rows, or set the other columns of those whose keys exist (rows of one
    shape)."""
    if not rows:
        return
    names = list(rows[0])
    source, encode = _json_rows(conn, table, names)
    picks = ", ".join(f"v.c{i}" for i in range(len(names)))
    sets = ", ".join(f"{c} = excluded.{c}" for c in names if c not in keys)
    # "WHERE true": SQLite reads ON CONFLICT after a SELECT's FROM as a join's ON otherwise.
    statement = text(f"INSERT INTO {table.name} ({', '.join(names)}) SELECT {picks} FROM "
                     f"{source} WHERE true ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sets}")
    for start in range(0, len(rows), CHUNK * 4):
        chunk = rows[start:start + CHUNK * 4]
        conn.execute(statement, {"rows": encode([[r[n] for n in names] for r in chunk])})

"""Set-wise statements: many rows changed by one statement, on PostgreSQL and SQLite.

The engine's batches write through these: one ``UPDATE ... FROM (VALUES ...)`` for every
row of a kind of change, one ``DELETE ... WHERE key IN (...)``, one multi-row ``INSERT``.
Each returns how many rows it changed, for the callers' row checks.
"""

from __future__ import annotations

from typing import Any, Sequence

from sqlalchemy import Connection, Table, bindparam, delete, insert, text, tuple_
from sqlalchemy.dialects import postgresql, sqlite

# Rows per statement: well below SQLite's 32,766 bound parameters for the widest row.
CHUNK = 500


def update_rows(conn: Connection, table: Table, keys: Sequence[str], columns: Sequence[str],
                rows: Sequence[Sequence[Any]], *, match: Sequence[str] = (),
                where: str = "", add: bool = False) -> int:
    """Set ``columns`` of the rows with ``keys``: each row is its key values, then the new
    values (added to the old ones with ``add``), then the values the ``match`` columns must
    still have (a guard). ``where`` is a further condition on ``t``. The number of rows
    changed."""
    names = [*keys, *columns, *match]
    types = [table.c[n].type for n in names]
    changed = 0
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start:start + CHUNK]
        params = []
        tuples = []
        for r, row in enumerate(chunk):
            marks = []
            for i, value in enumerate(row):
                name = f"p{r}_{i}"
                marks.append(f":{name}")
                params.append(bindparam(name, value, type_=types[i]))
            tuples.append("(" + ", ".join(marks) + ")")
        n_keys, n_cols = len(keys), len(columns)

        def col(i: int) -> str:
            ref = f"v.column{i + 1}"
            if conn.dialect.name == "postgresql":  # literals arrive untyped
                return f"CAST({ref} AS {types[i].compile(conn.dialect)})"
            return ref

        plus = "t.{} + " if add else ""
        sets = ", ".join(f"{c} = {plus.format(c)}{col(n_keys + j)}" for j, c in enumerate(columns))
        conds = [f"t.{k} = {col(i)}" for i, k in enumerate(keys)]
        conds += [f"t.{m} = {col(n_keys + n_cols + j)}" for j, m in enumerate(match)]
        if where:
            conds.append(where)
        sql = (f"UPDATE {table.name} AS t SET {sets} FROM (VALUES {', '.join(tuples)}) AS v "
               f"WHERE {' AND '.join(conds)}")
        changed += conn.execute(text(sql).bindparams(*params)).rowcount
    return changed


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
        else:
            result = conn.execute(
                insert(table).returning(returning, sort_by_parameter_order=True), chunk)
            out.extend(r[0] for r in result)
    return out


def upsert_rows(conn: Connection, table: Table, keys: Sequence[str],
                rows: Sequence[dict[str, Any]]) -> None:
    """Insert the rows, or set the other columns of those whose keys exist."""
    make = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    for start in range(0, len(rows), CHUNK):
        chunk = list(rows[start:start + CHUNK])
        stmt = make(table).values(chunk)
        others = [c for c in chunk[0] if c not in keys]
        conn.execute(stmt.on_conflict_do_update(
            index_elements=list(keys), set_={c: stmt.excluded[c] for c in others}))

"""Set-wise statements: many rows changed by one statement, on PostgreSQL and SQLite.

The engine's batches write through these: one ``UPDATE ... FROM`` (the rows), one
``INSERT ... SELECT`` (the rows), one ``DELETE ... WHERE key IN (the rows)``, where "the rows"
are one JSON parameter (a single ``json.dumps`` per statement, no processing per bound
value). Each returns how many rows it changed, for the callers' row checks.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any, Callable, Sequence

from sqlalchemy import JSON, Connection, Date, DateTime, Table, text

# Rows per statement, by fours (a statement's JSON stays within a few hundred kB).
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


def _json_rows(conn: Connection, table: Table, names: Sequence[str], encoded: bool = False
               ) -> tuple[str, Callable[[Sequence[Sequence[Any]]], str]]:
    """A row source ``v`` (columns ``c0``, ``c1``...) reading the rows from one JSON
    parameter ``:rows`` (one statement text per shape, compiled once): ``json_to_recordset``
    on PostgreSQL, ``json_each`` on SQLite; and the encoder of the rows (one ``json.dumps``
    for them all; with ``encoded``, the JSON columns' values are their JSON text, spliced in
    as it is: a caller can encode a value when it is made and keep only the text)."""
    types = [table.c[n].type for n in names]
    dialect = conn.dialect
    nested = [i for i, t in enumerate(types) if isinstance(t, JSON)]
    plain = [i for i in range(len(names)) if i not in nested]
    processors = [t.dialect_impl(dialect).bind_processor(dialect) for t in types]
    pg = dialect.name == "postgresql"
    # A row's values in the order the source reads them: the plain ones, then the JSON ones.
    order = plain + nested
    if pg:
        fields = ", ".join(f"c{i} {t.compile(dialect)}" for i, t in enumerate(types))
        source = f"json_to_recordset(CAST(:rows AS JSON)) AS v({fields})"
    else:
        # Each row an array: the plain values, then the JSON ones (json_extract alone would
        # unquote a JSON string value).
        at = {i: p for p, i in enumerate(order)}
        picks = ", ".join((f"json_quote(json_extract(value, '$[{at[i]}]'))" if i in nested
                           else f"json_extract(value, '$[{at[i]}]')") + f" AS c{i}"
                          for i in range(len(names)))
        source = f"(SELECT {picks} FROM json_each(:rows) ORDER BY key) AS v"
    keys = [f"c{i}" for i in order]
    # Only the columns whose values need converting go through a function per value.
    convert = [(j, p) for j, i in enumerate(plain) if (p := processors[i]) is not None]
    timed = [j for j, i in enumerate(plain)
             if isinstance(getattr(types[i], "impl", types[i]), (DateTime, Date))]
    # A plain row's encoding ends with "}" (an object) or "]" (an array): the JSON values go
    # in before it, after their keys on PostgreSQL.
    heads = [(", " if plain or n else "") + (f'"c{i}": ' if pg else "")
             for n, i in enumerate(nested)]
    close = "}" if pg else "]"

    splice = encoded and bool(nested)

    def encode(rows: Sequence[Sequence[Any]]) -> str:
        out: list[Any] = []
        for row in rows:
            values = [row[i] for i in (plain if splice else order)]
            for j, p in convert:
                values[j] = p(values[j])
            for j in timed:
                v = values[j]
                if isinstance(v, (datetime, date)):
                    values[j] = v.isoformat()
            out.append(dict(zip(keys, values)) if pg else values)
        if not splice:
            return json.dumps(out)
        texts = []
        for row, values in zip(rows, out):
            text = json.dumps(values)[:-1]
            for head, i in zip(heads, nested):
                text += head + row[i]
            texts.append(text + close)
        return "[" + ", ".join(texts) + "]"

    return source, encode


def delete_rows(conn: Connection, table: Table, keys: Sequence[str],
                rows: Sequence[Sequence[Any]]) -> int:
    """Delete the rows with these key values; how many went."""
    if not rows:
        return 0
    source, encode = _json_rows(conn, table, keys)
    picks = ", ".join(f"v.c{i}" for i in range(len(keys)))
    match = keys[0] if len(keys) == 1 else f"({', '.join(keys)})"
    statement = text(f"DELETE FROM {table.name} WHERE {match} IN (SELECT {picks} FROM {source})")
    gone = 0
    for start in range(0, len(rows), CHUNK * 4):
        gone += conn.execute(statement, {"rows": encode(rows[start:start + CHUNK * 4])}
                             ).rowcount
    return gone


def insert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]],
                returning: Any = None, *, encoded: bool = False) -> list[Any]:
    """Insert the rows (of one shape: the first row's keys), one statement per chunk; with
    ``returning`` (the table's ``id``), the new ids in the rows' order; with ``encoded``,
    the JSON columns' values are their JSON text (``json.dumps``'s)."""
    if not rows:
        return []
    names = list(rows[0])
    pg = conn.dialect.name == "postgresql"
    source, encode = _json_rows(conn, table, [*names, "id"] if pg and returning is not None
                                else names, encoded)
    picks = ", ".join(f"v.c{i}" for i in range(len(names)))
    statement = f"INSERT INTO {table.name} ({', '.join(names)}) SELECT {picks} FROM {source}"
    if returning is not None and returning is not table.c.id:
        raise ValueError("insert_rows returns the new ids only")
    if returning is not None and pg:
        # The ids come from the sequence as the rows are inserted, in the SELECT's order:
        # sorted, they are the rows' in order (the extra column numbers the rows).
        statement += f" ORDER BY v.c{len(names)} RETURNING id"
    out: list[Any] = []
    query = text(statement)
    for start in range(0, len(rows), CHUNK * 4):
        chunk = rows[start:start + CHUNK * 4]
        if len(chunk) > 1 and any(r.keys() != rows[0].keys() for r in chunk):
            raise ValueError("insert_rows takes rows of one shape")
        values = [[r[n] for n in names] for r in chunk]
        if returning is None:
            conn.execute(query, {"rows": encode(values)})
        elif pg:
            numbered = [[*v, i] for i, v in enumerate(values)]
            out.extend(sorted(int(r[0]) for r in conn.execute(query, {"rows": encode(numbered)})))
        else:
            # One INSERT gives consecutive rowids after the largest, in the source's order,
            # and the transaction holds the database's write lock: the ids are the last
            # one's run.
            conn.execute(query, {"rows": encode(values)})
            last = int(conn.execute(text("SELECT last_insert_rowid()")).scalar_one())
            out.extend(range(last - len(chunk) + 1, last + 1))
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

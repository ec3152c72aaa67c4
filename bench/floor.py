"""The floor of an engine run: the same row changes applied by hand-written batched SQL.

``Floor(engine)`` snapshots the tables the engine changes; ``measure()``, after the run,
takes their difference (rows inserted, deleted, updated, by primary key), puts the world
back as it was (untimed), then applies the difference again, timed: per table one DELETE,
one UPDATE and one INSERT per 1,000 rows, in one transaction.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy

TABLES = {
    "players": ("id",), "villages": ("id",), "village_resources": ("village_id",),
    "village_buildings": ("village_id", "slot"), "build_queue": ("id",),
    "troops": ("village_id", "unit"), "training_orders": ("id",), "training_queue": ("id",),
    "movements": ("id",), "shipments": ("id",), "reports": ("id",),
}
CHUNK = 1000

Rows = dict[tuple[Any, ...], tuple[Any, ...]]


class Floor:
    def __init__(self, engine: sqlalchemy.Engine) -> None:
        self.engine = engine
        self.pg = engine.dialect.name == "postgresql"
        self.before = self._snapshot()

    def _snapshot(self) -> dict[str, tuple[list[str], Rows]]:
        raw = self.engine.raw_connection()
        try:
            cur = raw.cursor()
            out = {}
            for table, pk in TABLES.items():
                cur.execute(f"SELECT * FROM {table}")
                cols = [d[0] for d in cur.description]
                at = [cols.index(k) for k in pk]
                out[table] = (cols, {tuple(r[i] for i in at): tuple(r) for r in cur.fetchall()})
            raw.rollback()
            return out
        finally:
            raw.close()

    def measure(self) -> tuple[float, int, int]:
        """(seconds, statements, rows changed) of applying the run's changes by batched SQL."""
        after = self._snapshot()
        forward, backward = [], []
        rows = 0
        for table, (cols, old) in self.before.items():
            new = after[table][1]
            ins = [new[k] for k in new.keys() - old.keys()]
            dele = [k for k in old.keys() - new.keys()]
            upd = [new[k] for k in new.keys() & old.keys() if new[k] != old[k]]
            rows += len(ins) + len(dele) + len(upd)
            forward.append((table, cols, ins, dele, upd))
            backward.append((table, cols, [old[k] for k in dele],
                             [k for k in new.keys() - old.keys()],
                             [old[k] for k in new.keys() & old.keys() if new[k] != old[k]]))
        self._apply(backward)
        t0 = time.perf_counter()
        statements = self._apply(forward)
        return time.perf_counter() - t0, statements, rows

    def _apply(self, changes: list[tuple[str, list[str], list[Any], list[Any], list[Any]]]
               ) -> int:
        raw = self.engine.raw_connection()
        statements = 0
        try:
            cur = raw.cursor()
            # Children's rows go first and come last (the foreign keys).
            for table, cols, ins, dele, upd in reversed(changes):
                pk = TABLES[table]
                for chunk in _chunks(dele):
                    statements += 1
                    if len(pk) == 1:
                        marks = ",".join(self._mark() for _ in chunk)
                        cur.execute(f"DELETE FROM {table} WHERE {pk[0]} IN ({marks})",
                                    [k[0] for k in chunk])
                    else:
                        marks = ",".join(f"({self._mark()},{self._mark()})" for _ in chunk)
                        cur.execute(f"DELETE FROM {table} WHERE ({pk[0]},{pk[1]}) IN ({marks})",
                                    [v for k in chunk for v in k])
            for table, cols, ins, dele, upd in changes:
                at = [cols.index(k) for k in TABLES[table]]
                for chunk in _chunks(upd):
                    statements += 1
                    self._update(cur, table, cols, at, [self._values(r) for r in chunk])
                for chunk in _chunks(ins):
                    statements += 1
                    row = "(" + ",".join(self._mark() for _ in cols) + ")"
                    cur.execute(f"INSERT INTO {table} ({','.join(cols)}) VALUES "
                                + ",".join(row for _ in chunk),
                                [v for r in chunk for v in self._values(r)])
            raw.commit()
            if self.pg:  # the sequences past the rows put back
                for table, pk in TABLES.items():
                    if len(pk) == 1 and pk[0] == "id":
                        cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                    f"COALESCE((SELECT max(id) FROM {table}), 0) + 1, false)")
                raw.commit()
            return statements
        finally:
            raw.close()

    def _update(self, cur: Any, table: str, cols: list[str], at: list[int],
                rows: list[list[Any]]) -> None:
        keys = [cols[i] for i in at]
        rest = [c for c in cols if c not in keys]
        if self.pg:  # UPDATE ... FROM (VALUES ...) joined on the key, types from the table
            row = "(" + ",".join("%s" for _ in cols) + ")"
            cur.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS floor_{table} "
                f"(LIKE {table}) ON COMMIT DELETE ROWS")
            cur.execute(f"INSERT INTO floor_{table} ({','.join(cols)}) VALUES "
                        + ",".join(row for _ in rows), [v for r in rows for v in r])
            cur.execute(
                f"UPDATE {table} t SET " + ",".join(f"{c} = v.{c}" for c in rest)
                + f" FROM floor_{table} v WHERE " + " AND ".join(f"t.{k} = v.{k}" for k in keys))
            cur.execute(f"DELETE FROM floor_{table}")
        else:  # SQLite: the same statement for every row, prepared once
            sets = ",".join(f"{c} = ?" for c in rest)
            where = " AND ".join(f"{k} = ?" for k in keys)
            cur.executemany(f"UPDATE {table} SET {sets} WHERE {where}",
                            [[r[cols.index(c)] for c in rest] + [r[i] for i in at]
                             for r in rows])

    def _mark(self) -> str:
        return "%s" if self.pg else "?"

    def _values(self, row: tuple[Any, ...]) -> list[Any]:
        if not self.pg:
            return list(row)
        from psycopg2.extras import Json
        return [Json(v) if isinstance(v, (dict, list)) else v for v in row]


def _chunks(items: list[Any]) -> list[list[Any]]:
    return [items[i:i + CHUNK] for i in range(0, len(items), CHUNK)]

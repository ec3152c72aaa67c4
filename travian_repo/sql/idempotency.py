"""Outcome keys: how a PostgreSQL unit of work learns whether its lost COMMIT happened.

Every write transaction inserts one row in ``idempotency_keys`` in the same round trip as its
``BEGIN`` (player 0, a random key), or reuses the key row the sandbox server claims for an
``Idempotency-Key``. The row becomes durable with the write or not at all. When the
connection drops after ``COMMIT`` was sent, ``committed`` looks the key up on a fresh
connection, by inserting it again in a transaction that is always rolled back:

- the insert conflicts: the lost transaction committed (the write happened, once);
- the insert goes in: the lost transaction is over and did not commit, and never will;
- the lost transaction is still running: the insert waits for it (bounded by the statement
  timeout), so "absent" is never answered while the first COMMIT could still land.

Keys of confirmed commits are deleted in batches, one autocommit ``DELETE`` per
``SPENT_BATCH`` commits (never inside a write's transaction, where it would add conflicts
under SERIALIZABLE); what a crash leaves behind goes with the idempotency retention purge.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from travian_repo.sql import schema

SESSION_PLAYER = 0  # no player has id 0: the unit of work's own keys never meet a client's
SPENT_BATCH = 32
_TABLE = schema.idempotency_keys.name


def new_key() -> str:
    # 128 random bits as 32 hex digits (a uuid4's shape, without building a UUID).
    return "uow-" + os.urandom(16).hex()


def begin_sql(key: tuple[int, str] | None, now: datetime) -> tuple[str, dict[str, Any]]:
    """``BEGIN`` and (in the same round trip) the insert of the outcome key."""
    if key is None:
        return "BEGIN", {}
    return (f"BEGIN; INSERT INTO {_TABLE} (player_id, key, request_hash, created_at) "
            "VALUES (%(player)s, %(key)s, '', %(now)s)",
            {"player": key[0], "key": key[1], "now": now})


def delete_spent(conn: Connection, keys: list[str]) -> None:
    """Forget outcome keys whose commits were confirmed (autocommit, one statement)."""
    conn.exec_driver_sql(
        f"DELETE FROM {_TABLE} WHERE player_id = {SESSION_PLAYER} AND key = ANY(%(keys)s)",
        {"keys": keys},
    )


def committed(conn: Connection, key: tuple[int, str], now: datetime) -> bool:
    """Whether the transaction that inserted ``key`` committed (see the module docstring).

    ``conn`` must be a fresh autocommit connection; it is left with no transaction open.
    """
    conn.exec_driver_sql("BEGIN")
    try:
        inserted = conn.exec_driver_sql(
            f"INSERT INTO {_TABLE} (player_id, key, request_hash, created_at) "
            "VALUES (%(player)s, %(key)s, '', %(now)s) ON CONFLICT DO NOTHING",
            {"player": key[0], "key": key[1], "now": now},
        ).rowcount
    finally:
        conn.exec_driver_sql("ROLLBACK")  # the probe itself never leaves a row
    return inserted == 0


__all__ = ["SESSION_PLAYER", "SPENT_BATCH", "begin_sql", "committed", "delete_spent", "new_key"]

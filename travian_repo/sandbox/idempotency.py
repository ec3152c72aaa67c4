"""The sandbox server's idempotency store, on the ``idempotency_keys`` table.

A write that carries an ``Idempotency-Key`` is answered exactly once per (player, key):

1. ``claim`` inserts the key row as the *first* step of the unit of work's transaction
   (``INSERT ... ON CONFLICT DO NOTHING``). When the row already exists (committed by an
   earlier request) the stored answer comes back instead and nothing runs.
2. The repository write runs in the same transaction.
3. ``record`` stores the answer (status and JSON text) in the key row, still in the same
   transaction, and the unit of work commits: the effect and its answer become durable
   together, or not at all. The row is also the session's outcome key
   (``travian_repo.sql.idempotency``): if the connection to the database drops during the
   COMMIT, the session looks the row up and answers as if nothing happened when it
   committed, or 503 when it did not (or cannot tell). A client whose connection dropped after the commit retries with
   the same key and gets the stored answer, byte for byte: exactly one effect.

Two requests with the same key at the same time cannot both act: on PostgreSQL the second
``INSERT`` waits on the first one's uncommitted row and then finds it; on SQLite
``BEGIN IMMEDIATE`` serializes writers. Within one server process ``InFlight`` answers the
second at once with "in progress" instead of letting it wait.

Keys are kept for a retention window (``DEFAULT_RETENTION``, 24 hours, by the world's clock):
``purge_due`` forgets older ones, at most ``PURGE_BATCH`` rows per call and at most once per
``PURGE_INTERVAL`` while there is no backlog, so the server can call it after every keyed
write for the price of a clock check. A key older than the window may act again.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite

from travian_repo.domain.errors import InvalidRequest
from travian_repo.sql import schema
from travian_repo.sql.database import SqlSession

MAX_KEY_LENGTH = 128
DEFAULT_RETENTION = timedelta(hours=24)
PURGE_INTERVAL = timedelta(minutes=1)
PURGE_BATCH = 1000
_KEY = re.compile(r"[\x21-\x7e]{1,%d}" % MAX_KEY_LENGTH)  # visible ASCII, no spaces
_keys = schema.idempotency_keys


def check_key(value: str) -> str:
    """An ``Idempotency-Key`` header value: 1 to 128 visible ASCII characters."""
    if not _KEY.fullmatch(value):
        raise InvalidRequest(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} visible ASCII characters "
            "(no spaces)",
            details={"header": "Idempotency-Key"},
        )
    return value


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no insignificant whitespace (the request's fingerprint)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def request_hash(method: str, path: str, body: Any) -> str:
    """sha256 of the method, the path and the canonical JSON body (None: no body)."""
    text = canonical_json(body) if body is not None else ""
    digest = hashlib.sha256()
    for part in (method.upper(), path, text):
        digest.update(part.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()


@dataclass(frozen=True)
class StoredAnswer:
    """A key row that was already there: who asked what, and the answer if it has one."""

    request_hash: str
    status_code: int | None
    response_body: str | None

    @property
    def complete(self) -> bool:
        return self.status_code is not None and self.response_body is not None


class IdempotencyStore:
    """Claim a key and record its answer inside a unit of work's transaction.

    ``retention``: how long a key is kept (None: for ever); see ``purge_due``.
    """

    def __init__(
        self,
        retention: timedelta | None = DEFAULT_RETENTION,
        *,
        purge_interval: timedelta = PURGE_INTERVAL,
        batch: int = PURGE_BATCH,
    ) -> None:
        if retention is not None and retention <= timedelta(0):
            raise ValueError(f"retention must be positive, not {retention}")
        self.retention = retention
        self.purge_interval = purge_interval
        self.batch = batch
        self._purge_lock = threading.Lock()
        self._next_purge: datetime | None = None

    def claim(
        self, session: SqlSession, player_id: int, key: str, fingerprint: str
    ) -> StoredAnswer | None:
        """Insert the key row in the session's transaction.

        Returns None when this request now owns the key (go on, then ``record``), or the
        row that was already there (roll back and answer from it).
        """
        now = session.now
        dialect = session.dialect

        def run(conn: Connection) -> StoredAnswer | None:
            values = dict(player_id=player_id, key=key, request_hash=fingerprint,
                          status_code=None, response_body=None, created_at=now)
            if dialect == "postgresql":
                stmt: Any = postgresql.insert(_keys).values(**values).on_conflict_do_nothing(
                    index_elements=[_keys.c.player_id, _keys.c.key]
                )
            else:
                stmt = sqlite.insert(_keys).values(**values).on_conflict_do_nothing(
                    index_elements=[_keys.c.player_id, _keys.c.key]
                )
            if conn.execute(stmt).rowcount == 1:
                return None
            row = conn.execute(
                select(_keys.c.request_hash, _keys.c.status_code, _keys.c.response_body).where(
                    (_keys.c.player_id == player_id) & (_keys.c.key == key)
                )
            ).one()
            return StoredAnswer(row.request_hash, row.status_code, row.response_body)

        # This row is the transaction's outcome key: if the COMMIT's answer is lost, the
        # session finds out by it (and inserts no key of its own).
        session.track_outcome(player_id, key)
        return session.write(run)

    def find(self, engine: Engine, player_id: int, key: str) -> StoredAnswer | None:
        """The key's row as committed now, outside any transaction of the caller's."""
        with engine.connect() as conn:
            row = conn.execute(
                select(_keys.c.request_hash, _keys.c.status_code, _keys.c.response_body).where(
                    (_keys.c.player_id == player_id) & (_keys.c.key == key)
                )
            ).one_or_none()
        return None if row is None else StoredAnswer(row.request_hash, row.status_code,
                                                     row.response_body)

    def record(
        self, session: SqlSession, player_id: int, key: str, status_code: int, body: str
    ) -> None:
        """Store the answer in the claimed row (same transaction as the write itself)."""

        def run(conn: Connection) -> None:
            conn.execute(
                update(_keys)
                .where((_keys.c.player_id == player_id) & (_keys.c.key == key))
                .values(status_code=status_code, response_body=body)
            )

        session.write(run)

    def purge(self, engine: Engine, *, older_than: datetime, limit: int | None = None) -> int:
        """Forget keys created before ``older_than`` (at most ``limit``); how many went."""
        where = _keys.c.created_at < older_than
        if limit is not None:
            oldest = select(_keys.c.player_id, _keys.c.key).where(where).limit(limit)
            where = tuple_(_keys.c.player_id, _keys.c.key).in_(oldest)
        with engine.begin() as conn:
            return conn.execute(delete(_keys).where(where)).rowcount

    def purge_due(self, engine: Engine, now: datetime) -> int:
        """Forget keys older than the retention when a purge is due; how many went.

        Due once per ``purge_interval`` of ``now``, or at once after a purge that hit the
        batch limit (a backlog goes away ``batch`` rows per call).
        """
        if self.retention is None:
            return 0
        with self._purge_lock:
            if self._next_purge is not None and now < self._next_purge:
                return 0
            self._next_purge = now + self.purge_interval
        gone = self.purge(engine, older_than=now - self.retention, limit=self.batch)
        if gone >= self.batch:
            with self._purge_lock:
                self._next_purge = None
        return gone


class InFlight:
    """The (player, key) pairs this process is answering right now (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[tuple[int, str]] = set()

    def enter(self, player_id: int, key: str) -> bool:
        """True when the pair was free and is now taken; False when it is in progress."""
        with self._lock:
            if (player_id, key) in self._running:
                return False
            self._running.add((player_id, key))
            return True

    def leave(self, player_id: int, key: str) -> None:
        with self._lock:
            self._running.discard((player_id, key))


__all__ = [
    "DEFAULT_RETENTION",
    "MAX_KEY_LENGTH",
    "IdempotencyStore",
    "InFlight",
    "StoredAnswer",
    "canonical_json",
    "check_key",
    "request_hash",
]

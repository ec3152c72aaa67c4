"""Running an operation once per ``Idempotency-Key`` (the store is ``sandbox.idempotency``).

The same key and the same request (method, path, canonical JSON body) replays the first
answer with the same status and bytes (and ``Idempotent-Replayed: true``); the same key with
another request is ``409 conflict``; a key whose first request is still running is ``409
conflict`` with ``Retry-After: 1``. Answers from the repository (2xx and 4xx) are stored in
the write's own transaction, so the answer and the write commit together; 5xx answers are
not stored (nothing was committed; a retry runs again).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, Callable

from flask import Response
from sqlalchemy import exc as sa_exc

from travian_repo.domain.errors import Conflict
from travian_repo.sandbox.idempotency import DEFAULT_RETENTION, IdempotencyStore, InFlight
from travian_repo.sandbox.server.answers import Answer, error, in_progress
from travian_repo.sql.database import Database
from travian_repo.unit_of_work import SqlUnitOfWork, UnitOfWork

log = logging.getLogger(__name__)

# Runs the parsed operation in a unit of work; a repository error is its error answer.
Execute = Callable[[UnitOfWork], Answer]


class IdempotentWrites:
    """The key store plus the keys being answered right now (in this process)."""

    def __init__(self, retention: timedelta | None = DEFAULT_RETENTION) -> None:
        self.store = IdempotencyStore(retention)
        self.in_flight = InFlight()

    def run_once(self, units: Callable[[int], UnitOfWork], database: Database,
                 execute: Execute, player_id: int, key: str, fingerprint: str) -> Response:
        """The answer to this player's request under ``key``: run now, or replayed."""
        if not self.in_flight.enter(player_id, key):
            return in_progress(key).response()
        try:
            uow = units(player_id)
            try:
                session = _session_of(uow)
                stored = self.store.claim(session, player_id, key, fingerprint)
                if stored is not None:
                    uow.rollback()
                    if stored.request_hash != fingerprint:
                        return error(
                            409, Conflict.code,
                            "this Idempotency-Key was used for a different request; "
                            "use a new key for a new request",
                            {"reason": "idempotency_key_reused", "idempotency_key": key},
                        ).response()
                    if not stored.complete:
                        return in_progress(key).response()
                    assert stored.status_code is not None and stored.response_body is not None
                    return Answer(stored.status_code, stored.response_body).response(
                        **{"Idempotent-Replayed": "true"})
                answer = execute(uow)
                if answer.status >= 500:
                    uow.rollback()
                    return answer.response()
                self.store.record(session, player_id, key, answer.status, answer.body)
                uow.commit()
                return answer.response()
            except BaseException:
                uow.rollback()
                raise
            finally:
                uow.close()
        finally:
            self.in_flight.leave(player_id, key)
            self.purge_keys(database)

    def purge_keys(self, database: Database) -> None:
        """Forget idempotency keys past the retention window (cheap unless one is due)."""
        try:
            self.store.purge_due(database.engine, database.clock())
        except sa_exc.SQLAlchemyError as exc:  # the answer stands; the next write tries again
            log.warning("purging old idempotency keys failed: %s", type(exc).__name__)


def _session_of(uow: UnitOfWork) -> Any:
    # the key row is claimed in the write's own transaction: SQL units of work only
    if not isinstance(uow, SqlUnitOfWork):
        raise TypeError("the sandbox server needs SQL units of work")
    return uow.session


__all__ = ["IdempotentWrites"]

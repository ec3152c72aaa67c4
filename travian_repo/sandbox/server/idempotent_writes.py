"""Running an operation once per ``Idempotency-Key`` (the store is ``sandbox.idempotency``).

The same key and the same request (method, path, canonical JSON body) replays the first
answer with the same status and bytes (and ``Idempotent-Replayed: true``); the same key with
another request is ``409 conflict``; a key whose first request is still running is ``409
conflict`` with ``Retry-After: 1``. Answers from the repository (2xx and 4xx) are stored in
the write's own transaction, so the answer and the write commit together; 5xx answers are
not stored (nothing was committed; a retry runs again).

``run_outside`` keys an effect outside the database (the sandbox's manual clock): the key is
looked up first and the answer stored after the effect, so a lost answer is replayed; only a
database failure between the effect and storing its answer lets a retry act again.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, Callable

from flask import Response
from sqlalchemy import exc as sa_exc

from travian_repo.domain.errors import Conflict, TravianError
from travian_repo.sandbox.idempotency import (
    DEFAULT_RETENTION,
    IdempotencyStore,
    InFlight,
    StoredAnswer,
)
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
                    return _replay(stored, key, fingerprint)
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

    def run_outside(self, units: Callable[[int], UnitOfWork], database: Database,
                    effect: Callable[[], Answer], player_id: int, key: str,
                    fingerprint: str) -> Response:
        """Like ``run_once`` for an effect that no transaction holds (it may itself commit,
        as the engine does, so no transaction of the key's can stay open across it)."""
        if not self.in_flight.enter(player_id, key):
            return in_progress(key).response()
        try:
            stored = self.store.find(database.engine, player_id, key)
            if stored is not None:
                return _replay(stored, key, fingerprint)
            answer = effect()
            if answer.status < 500:
                self._keep(units(player_id), player_id, key, fingerprint, answer)
            return answer.response()
        finally:
            self.in_flight.leave(player_id, key)
            self.purge_keys(database)

    def _keep(self, uow: UnitOfWork, player_id: int, key: str, fingerprint: str,
              answer: Answer) -> None:
        try:
            session = _session_of(uow)
            if self.store.claim(session, player_id, key, fingerprint) is None:
                self.store.record(session, player_id, key, answer.status, answer.body)
                uow.commit()
            else:  # another server process answered this key meanwhile: its answer stays
                uow.rollback()
        except (TravianError, sa_exc.SQLAlchemyError) as exc:
            # the effect happened: answer it; only a retry of this key would act again
            uow.rollback()
            log.warning("storing the answer of Idempotency-Key %r failed: %s", key,
                        type(exc).__name__)
        except BaseException:
            uow.rollback()
            raise
        finally:
            uow.close()

    def purge_keys(self, database: Database) -> None:
        """Forget idempotency keys past the retention window (cheap unless one is due)."""
        try:
            self.store.purge_due(database.engine, database.clock())
        except sa_exc.SQLAlchemyError as exc:  # the answer stands; the next write tries again
            log.warning("purging old idempotency keys failed: %s", type(exc).__name__)


def _replay(stored: StoredAnswer, key: str, fingerprint: str) -> Response:
    """The answer to a key already used: its stored answer, or why there is none."""
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


def _session_of(uow: UnitOfWork) -> Any:
    # the key row is claimed in the write's own transaction: SQL units of work only
    if not isinstance(uow, SqlUnitOfWork):
        raise TypeError("the sandbox server needs SQL units of work")
    return uow.session


__all__ = ["IdempotentWrites"]

"""``POST /v1/sandbox/advance``: a manual clock for demos and tests (not part of v1's game
contract; the route exists only in apps made with ``manual_clock=True``).

Time stands still until a client (any player's token and the world id, as for v1) posts
``{"seconds": N}``: the clock moves on and the engine runs up to it, answering
``{"processed": count, "now": iso}``. An ``Idempotency-Key`` is honoured as on every write:
the same key and body replay the first answer and move the clock once.
"""

from __future__ import annotations

import threading
from typing import Callable

from flask import Flask, Response, request
from sqlalchemy import Engine

from travian_repo.domain.errors import InvalidRequest, TravianError
from travian_repo.sandbox.clock import Clock
from travian_repo.sandbox.server.answers import Answer, Refused, error_answer, json_text, unauthorized
from travian_repo.sandbox.idempotency import check_key, request_hash
from travian_repo.sandbox.server.auth import authenticate, check_world
from travian_repo.sandbox.server.idempotent_writes import IdempotentWrites
from travian_repo.sandbox.server.parsing import optional_object_body
from travian_repo.sql.database import Database, TimeSource, make_engine, read_created_at
from travian_repo.unit_of_work import UnitOfWork
from travian_repo.wire.routes import ADVANCE_PATH

SANDBOX_ADVANCE_PATH = ADVANCE_PATH
MAX_ADVANCE_SECONDS = 366 * 86400


def manual_clock_for(database_url: str | Engine, clock: TimeSource | None) -> Clock:
    """``clock`` if it is a manual clock; without one, a manual clock at the world's creation."""
    if clock is not None:
        if not isinstance(clock, Clock):
            raise TypeError("manual_clock=True needs clock= to be a travian_repo.sandbox.Clock")
        return clock
    engine = make_engine(database_url) if isinstance(database_url, str) else database_url
    try:
        created = read_created_at(engine)  # None if not a world: create_app's connect() says so
    finally:
        if isinstance(database_url, str):
            engine.dispose()
    return Clock(created)


def add_clock_route(app: Flask, database: Database, world_id: str, clock: Clock,
                    writes: IdempotentWrites, units: Callable[[int], UnitOfWork]) -> None:
    """Register ``POST /v1/sandbox/advance`` on ``app``, moving ``clock``; keyed requests
    are answered once per key through ``writes`` (key rows written in ``units``)."""
    from travian_repo.sandbox.engine import Engine as WorldEngine

    engine = WorldEngine(database, clock=clock)
    lock = threading.Lock()

    def move(seconds: float) -> Answer:
        with lock:
            clock.advance(seconds)
            now = clock()
            processed = engine.run_until(now)
        return Answer(200, json_text({"processed": processed, "now": now.isoformat()}))

    def advance() -> Response:
        try:
            player_id = authenticate(database)
            if player_id is None:  # a player's token: anyone may move time
                raise Refused(unauthorized("missing Authorization: Bearer <token> header"))
            check_world(world_id)
            key = request.headers.get("Idempotency-Key")
            if key is not None:
                check_key(key)
            body = optional_object_body()
            seconds = body.get("seconds")
            body.finish()
            if (isinstance(seconds, bool) or not isinstance(seconds, (int, float))
                    or not 0 <= seconds <= MAX_ADVANCE_SECONDS):
                raise InvalidRequest(f"seconds must be a number from 0 to {MAX_ADVANCE_SECONDS}",
                                     details={"field": "seconds"})
            if key is None:
                return move(seconds).response()
            fingerprint = request_hash("POST", request.path, {"seconds": seconds})
            return writes.run_outside(units, database, lambda: move(seconds), player_id, key,
                                      fingerprint)
        except Refused as refused:
            return refused.answer.response()
        except TravianError as failure:
            return error_answer(failure).response()

    app.add_url_rule(SANDBOX_ADVANCE_PATH, endpoint="sandbox_advance", view_func=advance,
                     methods=["POST"])


__all__ = ["MAX_ADVANCE_SECONDS", "SANDBOX_ADVANCE_PATH", "add_clock_route", "manual_clock_for"]

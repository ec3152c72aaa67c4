"""The Flask app: one view per route of ``wire.routes.ROUTES``, plus health and OpenAPI.

A request runs: rate limit, token, world id, Idempotency-Key shape, body and query (parsed by
the operation's declaration), then the repository call -- once per key for writes that carry one.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, Callable

from flask import Flask, Response, request
from sqlalchemy import Engine
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from travian_repo.domain.errors import TravianError
from travian_repo.sandbox.idempotency import DEFAULT_RETENTION, check_key, request_hash
from travian_repo.sandbox.inputs import MAX_BODY_BYTES, AsciiIdConverter
from travian_repo.sandbox.limits import DEFAULT_RATE, ServerRateLimit, caller_of
from travian_repo.sandbox.server.answers import (
    Answer,
    Refused,
    error,
    error_answer,
    internal_error,
    json_text,
    unauthorized,
)
from travian_repo.sandbox.server.auth import authenticate, check_world
from travian_repo.sandbox.server.clock_route import add_clock_route, manual_clock_for
from travian_repo.sandbox.server.events_stream import (
    DEFAULT_HEARTBEAT_S,
    DEFAULT_MAX_STREAMS,
    EventStreams,
    add_event_stream_route,
)
from travian_repo.sandbox.server.handlers import Op, parse
from travian_repo.sandbox.server.idempotent_writes import IdempotentWrites
from travian_repo.sandbox.server.parsing import Call, request_body, request_query
from travian_repo.sql.database import TimeSource
from travian_repo.unit_of_work import UnitOfWork
from travian_repo.wire.openapi import document_text
from travian_repo.wire.routes import PREFIX, ROUTES, WORLD_PATH, Route
from travian_repo.wire.serializer import encode
from travian_repo.world import World, connect

log = logging.getLogger("travian_repo.sandbox.server")

OPENAPI_PATH = f"{PREFIX}/openapi.yaml"
HEALTH_PATH = f"{PREFIX}/health"
# Answered without the database, on threads of their own (see serving.py).
DATABASE_FREE_PATHS = frozenset({OPENAPI_PATH, HEALTH_PATH, WORLD_PATH})
_EXTENSION = "travian_repo"


class _Service:
    """What every request shares: the world, its id, the idempotency keys, the rate limit."""

    def __init__(self, world: World, *, limit: ServerRateLimit | None = None,
                 retention: timedelta | None = DEFAULT_RETENTION) -> None:
        self.world = world
        self.world_id = world.database.settings.world_id
        self.writes = IdempotentWrites(retention)
        self.limit = limit

    def check_rate(self) -> None:
        """Count this request against its token's bucket; RateLimited when over."""
        if self.limit is not None:
            self.limit.check(caller_of(request.headers.get("Authorization", ""),
                                       request.remote_addr))

    def handle(self, route: Route, params: dict[str, Any]) -> Response:
        try:
            self.check_rate()
            player_id = authenticate(self.world.database)
            if player_id is None and route.operation == "session.me":
                raise Refused(unauthorized("GET /v1/me needs Authorization: Bearer <token>"))
            check_world(self.world_id)
            key = request.headers.get("Idempotency-Key") if route.is_write else None
            if key is not None:
                check_key(key)
            data, body = request_body(route)
            op = parse(route, Call(player_id, params, request_query(), body))
            if key is None or player_id is None:  # keys are per player; nobody writes anyway
                return self._run(route, op, player_id).response()
            fingerprint = request_hash(route.method, request.path, data)
            return self.writes.run_once(
                self.world.unit_of_work, self.world.database,
                lambda uow: _execute(route, uow, op), player_id, key, fingerprint)
        except Refused as refused:
            return refused.answer.response()
        except TravianError as failure:
            return error_answer(failure).response()
        except HTTPException:  # 413 and the like: the app's HTTPException handler answers
            raise
        except Exception:  # noqa: BLE001 - answered, logged, never leaked
            log.exception("%s %s failed", request.method, request.path)
            return internal_error().response()

    def _run(self, route: Route, op: Op, player_id: int | None) -> Answer:
        with self.world.unit_of_work(player_id) as uow:
            answer = _execute(route, uow, op)
            if answer.status >= 300:
                uow.rollback()
        return answer


def _execute(route: Route, uow: UnitOfWork, op: Op) -> Answer:
    """The repository call as an answer; TravianError becomes its error answer."""
    try:
        result = op(uow)
    except TravianError as failure:
        return error_answer(failure)
    # 200 with the created value for writes too: the original async client accepts only 200.
    return Answer(200, json_text(encode(result)))


def openapi_text() -> str:
    """The OpenAPI document the server serves: generated from the operations' declarations,
    the same text as docs/openapi.yaml."""
    return document_text()


def create_app(
    database_url: str | Engine, *, clock: TimeSource | None = None, redis_url: Any = None,
    manual_clock: bool = False,
    rate_limit: float | None = DEFAULT_RATE, rate_burst: float | None = None,
    idempotency_retention: timedelta | None = DEFAULT_RETENTION,
    max_streams: int = DEFAULT_MAX_STREAMS, heartbeat_s: float = DEFAULT_HEARTBEAT_S,
    event_retention: int | None = None,
) -> Flask:
    """The v1 API over the world at ``database_url`` (a URL or a SQLAlchemy Engine).

    Reads the world settings at once: a database that is not a world raises
    ``SchemaMismatch`` here rather than on the first request. ``redis_url`` (a URL or a
    ``redis.Redis``; default ``TRAVIAN_REDIS_URL``): where committed writes publish their
    events (without one, the in-process bus).

    ``manual_clock=True`` (a sandbox for demos and tests, not part of v1's game contract):
    time stands still -- ``clock`` must be a ``travian_repo.sandbox.Clock``, by default one
    at the world's creation -- until a client calls ``POST /v1/sandbox/advance`` with
    ``{"seconds": N}`` (any player's token and the world id, as for v1), which advances the
    clock and runs the engine up to it, answering ``{"processed": count, "now": iso}``.
    Without it the route does not exist (404).

    ``rate_limit``: requests per second per API token (without a token, per remote address),
    with bursts of ``rate_burst`` (default five times the rate); past it the server answers
    ``429`` with ``Retry-After``. Shared through Redis when the server has one. None: no
    limit. ``idempotency_retention``: how long an ``Idempotency-Key`` replays its answer
    (by the world's clock; None keeps keys for ever).

    ``GET /v1/player/{id}/events`` streams a player's events (``events_stream.py``): at most
    ``max_streams`` at once, a heartbeat every ``heartbeat_s`` seconds, resumable within the
    last ``event_retention`` events per player (default 1000).
    """
    manual = manual_clock_for(database_url, clock) if manual_clock else None
    if manual is not None:
        clock = manual
    world = connect(database_url, prefer="sql", clock=clock, redis_url=redis_url)
    try:
        limit = None if rate_limit is None else ServerRateLimit(
            rate_limit, rate_burst, redis_client=world.redis,
            world_id=world.database.settings.world_id)
        service = _Service(world, limit=limit, retention=idempotency_retention)
        streams = EventStreams(world.event_bus.event_log(event_retention),
                               max_streams=max_streams, heartbeat_s=heartbeat_s)
    except BaseException:
        world.close()
        raise
    app = Flask("travian_repo.sandbox.server")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    # No implicit OPTIONS answers (an empty text/html 200): OPTIONS is a JSON 405 with Allow.
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    app.extensions[_EXTENSION] = service
    app.url_map.converters["int"] = AsciiIdConverter  # ids in paths: ASCII digits only

    for route in ROUTES:
        app.add_url_rule(route.flask_rule, endpoint=route.operation,
                         view_func=_view(service, route), methods=[route.method])

    def openapi() -> Response:
        return Response(openapi_text(), content_type="application/yaml; charset=utf-8")

    def health() -> Response:
        # Never touches the database: says the server is up and which world it serves.
        return Answer(200, json_text({"status": "ok", "world_id": service.world_id})).response(
            **{"Cache-Control": "no-store"})

    def world_settings() -> Response:
        # Public, like health: the settings are read once per server, the time is the clock's.
        return Answer(200, json_text(encode(world.settings))).response()

    app.add_url_rule(OPENAPI_PATH, endpoint="openapi", view_func=openapi, methods=["GET"])
    app.add_url_rule(WORLD_PATH, endpoint="world", view_func=world_settings, methods=["GET"])
    app.add_url_rule(HEALTH_PATH, endpoint="health", view_func=health, methods=["GET"])
    if manual is not None:
        add_clock_route(app, world.database, service.world_id, manual, service.writes,
                        world.unit_of_work)
    add_event_stream_route(app, world.database, service.world_id, service.check_rate, streams)

    @app.after_request
    def private(response: Response) -> Response:
        # answers depend on the token: no shared cache keeps them, no browser sniffs them
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if request.endpoint != "openapi":
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.errorhandler(HTTPException)
    def http_error(failure: HTTPException) -> Response:
        status = failure.code or 500
        code = {404: "not_found", 405: "method_not_allowed", 413: "invalid_request"}.get(
            status, "invalid_request" if status < 500 else "internal_error")
        headers = {}
        if isinstance(failure, MethodNotAllowed) and failure.valid_methods:
            headers["Allow"] = ", ".join(failure.valid_methods)
        return error(status, code, failure.description or failure.name,
                     headers=headers).response()

    @app.errorhandler(Exception)
    def unexpected(failure: Exception) -> Response:
        log.exception("%s %s failed", request.method, request.path, exc_info=failure)
        return internal_error().response()

    return app


def _view(service: _Service, route: Route) -> Callable[..., Response]:
    def view(**params: Any) -> Response:
        return service.handle(route, params)

    view.__name__ = route.operation.replace(".", "_")
    return view


def app_world(app: Flask) -> World:
    """The World an app made by ``create_app`` serves."""
    service: _Service = app.extensions[_EXTENSION]
    return service.world


__all__ = ["DATABASE_FREE_PATHS", "HEALTH_PATH", "OPENAPI_PATH", "app_world",
           "create_app", "openapi_text"]

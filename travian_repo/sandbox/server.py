"""The local server: the v1 wire contract over the SQL repositories (Flask, run by waitress).

One handler per route of ``travian_repo.wire.routes.ROUTES``; answers are
``wire.serializer.encode`` as JSON, errors the ``wire.errors`` table's status and body.

Every request except ``GET /v1/openapi.yaml`` and ``GET /v1/health`` needs:

- ``Authorization: Bearer <token>``: the player the token belongs to (table ``api_tokens``)
  acts. An unknown token: ``401`` with ``{"error": {"code": "unauthorized", ...}}`` and
  ``WWW-Authenticate: Bearer``. No token acts as nobody: public reads answer, anything
  else is the same ``401`` (``Unauthorized``, a ``Forbidden``); ``403`` is "not yours".
- ``X-World-Id``: must equal the world's id (``world_settings.world_id``). Missing: ``400
  invalid_request``; another world: ``409 conflict`` naming both ids.

Writes (POST, DELETE) honour an optional ``Idempotency-Key`` (1 to 128 visible ASCII
characters, scoped to the player): see ``travian_repo.sandbox.idempotency``. The same key
and the same request (method, path, canonical JSON body) replays the first answer with the
same status and bytes (and ``Idempotent-Replayed: true``); the same key with another request
is ``409 conflict``; a key whose first request is still running is ``409 conflict`` with
``Retry-After: 1``. Answers from the repository (2xx and 4xx) are stored in the write's own
transaction; 5xx answers are not stored (nothing was committed; a retry runs again).
Requests refused before the repository runs (auth, headers, query string, body shape) are
not stored either: they act on nothing and refuse the same way every time.

Each token (without one, each remote address) may send ``rate_limit`` requests per second
with bursts of ``rate_burst`` (``travian_repo.sandbox.limits``; shared through Redis when the
server has it); past that: ``429 rate_limited`` with ``Retry-After``. Bodies over 1 MiB are
``413``; ids in paths are ASCII digits; a body must be UTF-8 JSON without NaN, Infinity or
lone surrogates (``travian_repo.sandbox.inputs``). Answers carry ``Cache-Control: no-store``
(all but the OpenAPI document) and ``X-Content-Type-Options: nosniff``.

Anything that is not a ``TravianError`` is logged and answered ``500`` with a generic body.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import resources
from types import TracebackType
from typing import Any, Callable, Mapping

from flask import Flask, Response, request
from sqlalchemy import Engine, select
from sqlalchemy import exc as sa_exc
from waitress import wasyncore
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from travian_repo.domain.errors import (
    BackendUnavailable,
    ConfigurationError,
    Conflict,
    InvalidRequest,
    RateLimited,
    TravianError,
    Unauthorized,
)
from travian_repo.sandbox.idempotency import (
    DEFAULT_RETENTION,
    IdempotencyStore,
    InFlight,
    check_key,
    request_hash,
)
from travian_repo.sandbox.inputs import MAX_BODY_BYTES, AsciiIdConverter, decode_json
from travian_repo.sandbox.limits import DEFAULT_RATE, ServerRateLimit, caller_of
from travian_repo.sandbox.clock import Clock as ManualClock
from travian_repo.sandbox.serving import ServingOptions, make_server
from travian_repo.sql import schema
from travian_repo.sql.database import Clock
from travian_repo.sql.schema import as_utc
from travian_repo.sql.tokens import player_for_token
from travian_repo.unit_of_work import SqlUnitOfWork, UnitOfWork
from travian_repo.wire.errors import error_body, status_for
from travian_repo.wire.routes import PREFIX, ROUTES, Route
from travian_repo.wire.serializer import encode
from travian_repo.world import World, connect

log = logging.getLogger(__name__)

OPENAPI_RESOURCE = "openapi.yaml"  # travian_repo/sandbox/openapi.yaml (docs/ holds a copy)
MAX_TOKEN_LENGTH = 256
_INT = re.compile(r"-?[0-9]{1,18}")
_EXTENSION = "travian_repo"
# POSTs whose path says it all: the body is `{}` or empty (both the same request).
EMPTY_BODY_WRITES = frozenset({"trade.accept_offer", "military.send_home"})


# ---- answers ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Answer:
    status: int
    body: str  # JSON text
    headers: Mapping[str, str] = field(default_factory=dict)

    def response(self, **extra: str) -> Response:
        headers = dict(self.headers)
        headers.update(extra)
        # backslashreplace: a lone surrogate (never stored, but never a 500 either) becomes
        # a JSON \udXXX escape, which keeps the text valid JSON
        return Response(self.body.encode("utf-8", "backslashreplace"), status=self.status,
                        headers=headers, content_type="application/json")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _error(status: int, code: str, message: str, details: Mapping[str, Any] | None = None,
           headers: Mapping[str, str] | None = None) -> Answer:
    body = {"error": {"code": code, "message": message, "details": dict(details or {})}}
    return Answer(status, _json(body), dict(headers or {}))


def error_answer(error: TravianError) -> Answer:
    status = status_for(error)
    headers: dict[str, str] = {}
    if isinstance(error, RateLimited) and error.retry_after is not None:
        headers["Retry-After"] = str(max(1, int(error.retry_after + 0.999)))
    elif isinstance(error, BackendUnavailable):
        headers["Retry-After"] = "1"
    elif isinstance(error, Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="travian_repo"'
    try:
        text = _json(error_body(error))
    except (TypeError, ValueError):  # details that are not JSON-safe: keep the message
        text = _json({"error": {"code": error.code, "message": error.message, "details": {}}})
    return Answer(status, text, headers)


def _internal_error() -> Answer:
    return _error(500, "internal_error", "internal server error; the server log has the cause")


class _Refused(Exception):
    """A request refused before any repository ran (never stored)."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.body)
        self.answer = answer


# ---- request parsing ----------------------------------------------------------------------

class Query:
    """The query string, parsed strictly: known names only, each at most once."""

    def __init__(self, args: Mapping[str, list[str]]) -> None:
        self._args = args
        self._used: set[str] = set()

    def _one(self, name: str) -> str | None:
        self._used.add(name)
        values = self._args.get(name)
        if not values:
            return None
        if len(values) > 1:
            raise InvalidRequest(f"query parameter {name!r} given {len(values)} times",
                                 details={"parameter": name})
        return values[0]

    def int(self, name: str, default: int | None = None, *, required: bool = False) -> Any:
        text = self._one(name)
        if text is None:
            if required:
                raise InvalidRequest(f"query parameter {name!r} is required",
                                     details={"parameter": name})
            return default
        if not _INT.fullmatch(text):
            raise InvalidRequest(f"query parameter {name!r} must be an integer, got {text[:40]!r}",
                                 details={"parameter": name})
        return int(text)

    def bool(self, name: str, default: bool) -> bool:
        text = self._one(name)
        if text is None:
            return default
        if text not in ("true", "false"):
            raise InvalidRequest(
                f"query parameter {name!r} must be true or false, got {text[:40]!r}",
                details={"parameter": name},
            )
        return text == "true"

    def finish(self) -> None:
        unknown = sorted(set(self._args) - self._used)
        if unknown:
            raise InvalidRequest(f"unknown query parameter {unknown[0]!r}",
                                 details={"parameter": unknown[0]})


_MISSING = object()


class Body:
    """A JSON object body: required and optional fields, unknown fields refused.

    Values pass through as they are: the repository checks their types and ranges, so a
    string ``count`` gets the repository's own ``InvalidRequest``.
    """

    def __init__(self, data: Mapping[str, Any], where: str = "body") -> None:
        self._data = data
        self._where = where
        self._used: set[str] = set()

    def get(self, name: str, default: Any = _MISSING) -> Any:
        self._used.add(name)
        if name in self._data:
            return self._data[name]
        if default is _MISSING:
            raise InvalidRequest(f"{self._where} is missing the field {name!r}",
                                 details={"field": self._path(name)})
        return default

    def object(self, name: str) -> Body:
        value = self.get(name)
        if not isinstance(value, dict):
            raise InvalidRequest(f"{self._path(name)} must be a JSON object",
                                 details={"field": self._path(name)})
        return Body(value, self._path(name))

    def finish(self) -> None:
        unknown = sorted(set(self._data) - self._used)
        if unknown:
            raise InvalidRequest(f"{self._where} has an unknown field {unknown[0]!r}",
                                 details={"field": self._path(unknown[0])})

    def _path(self, name: str) -> str:
        return name if self._where == "body" else f"{self._where}.{name}"


@dataclass
class Call:
    """One request, parsed: the acting player, path parameters, query, body."""

    player_id: int | None
    params: dict[str, Any]
    query: Query
    body: Body | None

    @property
    def json(self) -> Body:
        assert self.body is not None
        return self.body


# ---- one handler per operation ------------------------------------------------------------

class Op:
    """A parsed request: which repository method to call, with which arguments."""

    __slots__ = ("target", "args", "kwargs")

    def __init__(self, target: str, *args: Any, **kwargs: Any) -> None:
        self.target = target  # "domain.method"
        self.args = args
        self.kwargs = kwargs

    def __call__(self, uow: UnitOfWork) -> Any:
        domain, method = self.target.split(".")
        return getattr(getattr(uow, domain), method)(*self.args, **self.kwargs)


# Each handler reads the request (path, query, body) into an Op before any repository runs,
# so a malformed request never reaches the database.
Handler = Callable[[Call], Op]


def _queue_building(c: Call) -> Op:
    b = c.json
    return Op("villages.queue_building", c.params["village_id"], b.get("building"),
              slot=b.get("slot", None), instant=b.get("instant", False))


def _attack(c: Call) -> Op:
    b = c.json
    return Op("military.attack", c.params["village_id"], b.get("target_village_id"),
              b.get("troops"), kind=b.get("attack_type", "normal"))


def _create_offer(c: Call) -> Op:
    offer, wanted = c.json.object("offer"), c.json.object("request")
    op = Op("trade.create_offer", c.params["village_id"], offer.get("resource"),
            offer.get("amount"), wanted.get("resource"), wanted.get("amount"))
    offer.finish()
    wanted.finish()
    return op


def _at(c: Call) -> Op:
    return Op("villages.at", c.query.int("x", required=True), c.query.int("y", required=True))


HANDLERS: dict[str, Handler] = {
    "villages.get": lambda c: Op("villages.get", c.params["village_id"]),
    "villages.list_by_player": lambda c: Op("villages.list_by_player", c.params["player_id"]),
    "villages.at": _at,
    "villages.queue_building": _queue_building,
    "villages.build_queue": lambda c: Op("villages.build_queue", c.params["village_id"]),
    "villages.cancel_building": lambda c: Op(
        "villages.cancel_building", c.params["village_id"], c.params["queue_position"]),
    "military.troops": lambda c: Op("military.troops", c.params["village_id"]),
    "military.train": lambda c: Op("military.train", c.params["village_id"],
                                   c.json.get("troops")),
    "military.attack": _attack,
    "military.reinforce": lambda c: Op(
        "military.reinforce", c.params["village_id"], c.json.get("target_village_id"),
        c.json.get("troops")),
    "military.incoming": lambda c: Op("military.incoming", c.params["village_id"]),
    "military.outgoing": lambda c: Op("military.outgoing", c.params["village_id"]),
    "military.send_home": lambda c: Op("military.send_home", c.params["village_id"],
                                       c.params["movement_id"]),
    "trade.create_offer": _create_offer,
    "trade.send_resources": lambda c: Op(
        "trade.send_resources", c.params["village_id"], c.json.get("target_village_id"),
        c.json.get("resources")),
    "trade.offers": lambda c: Op("trade.offers", c.params["village_id"]),
    "trade.accept_offer": lambda c: Op("trade.accept_offer", c.params["village_id"],
                                       c.params["offer_id"]),
    "trade.cancel_offer": lambda c: Op("trade.cancel_offer", c.params["village_id"],
                                       c.params["offer_id"]),
    "intel.send_scouts": lambda c: Op(
        "intel.send_scouts", c.params["village_id"], c.json.get("target_village_id"),
        c.json.get("scouts", 1)),
    "intel.scout_reports": lambda c: Op(
        "intel.scout_reports", c.params["player_id"], c.query.int("limit", 20)),
    "diplomacy.send_message": lambda c: Op(
        "diplomacy.send_message", c.params["player_id"], c.json.get("to"),
        c.json.get("subject"), c.json.get("body")),
    "diplomacy.messages": lambda c: Op(
        "diplomacy.messages", c.params["player_id"],
        unread_only=c.query.bool("unread_only", False)),
    "diplomacy.create_alliance": lambda c: Op(
        "diplomacy.create_alliance", c.params["player_id"], c.json.get("name"),
        c.json.get("tag")),
    "diplomacy.invite": lambda c: Op("diplomacy.invite", c.params["alliance_id"],
                                     c.json.get("player_id")),
    "players.get": lambda c: Op("players.get", c.params["player_id"]),
    "players.ranking": lambda c: Op("players.ranking", c.params["metric"],
                                    c.query.int("limit", 100)),
    "session.me": lambda c: Op("players.get", c.player_id),
}


def parse(route: Route, call: Call) -> Op:
    """The request as an Op; InvalidRequest for a malformed query string or body."""
    op = HANDLERS[route.operation](call)
    call.query.finish()
    if call.body is not None:
        call.body.finish()
    return op


def _check_table() -> None:
    routed = {r.operation for r in ROUTES}
    if routed != set(HANDLERS):
        raise RuntimeError(
            "the server's handlers and wire.routes.ROUTES disagree: "
            f"no handler for {sorted(routed - set(HANDLERS))}, "
            f"no route for {sorted(set(HANDLERS) - routed)}"
        )


OPENAPI_PATH = f"{PREFIX}/openapi.yaml"
HEALTH_PATH = f"{PREFIX}/health"
# Answered without the database, on threads of their own (see serving.py).
DATABASE_FREE_PATHS = frozenset({OPENAPI_PATH, HEALTH_PATH})


# ---- the application ----------------------------------------------------------------------

class _Service:
    """What every request shares: the world, its id, the idempotency store, the rate limit."""

    def __init__(self, world: World, *, limit: ServerRateLimit | None = None,
                 retention: timedelta | None = DEFAULT_RETENTION) -> None:
        self.world = world
        self.world_id = world.database.settings.world_id
        self.store = IdempotencyStore(retention)
        self.in_flight = InFlight()
        self.limit = limit

    # -- the envelope --

    def authenticate(self) -> int | None:
        """The token's player; None without an Authorization header (acting as nobody: the
        repositories answer public reads and refuse the rest, as on the SQL side)."""
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if not header:
            return None
        if scheme.lower() != "bearer" or not token:
            raise _Refused(self._unauthorized("the Authorization header must be 'Bearer <token>'"))
        if len(token) > MAX_TOKEN_LENGTH:
            raise _Refused(self._unauthorized("unknown API token", invalid=True))
        try:
            with self.world.database.engine.connect() as conn:
                player_id = player_for_token(conn, token)
        except sa_exc.SQLAlchemyError as exc:
            raise BackendUnavailable(
                "the world database is unavailable; try again", details={"cause": type(exc).__name__}
            ) from exc
        if player_id is None:
            raise _Refused(self._unauthorized("unknown API token", invalid=True))
        return int(player_id)

    @staticmethod
    def _unauthorized(message: str, *, invalid: bool = False) -> Answer:
        challenge = 'Bearer realm="travian_repo"' + (', error="invalid_token"' if invalid else "")
        return _error(401, Unauthorized.code, message, headers={"WWW-Authenticate": challenge})

    def check_world(self) -> None:
        given = request.headers.get("X-World-Id")
        if given is None or not given.strip():
            raise InvalidRequest("missing X-World-Id header (this server's world is "
                                 f"{self.world_id!r})", details={"header": "X-World-Id"})
        if given != self.world_id:
            raise Conflict(
                f"X-World-Id {given[:64]!r} does not match this server's world {self.world_id!r}",
                details={"header": "X-World-Id", "given": given[:64], "expected": self.world_id},
            )

    @staticmethod
    def parse_body(route: Route) -> tuple[Any, Body | None]:
        raw = request.get_data(cache=False)
        if not route.is_write or route.method == "DELETE":
            if raw.strip():
                raise InvalidRequest(
                    f"{route.method} {PREFIX}{route.path} takes no body"
                    + ("; GET parameters travel in the query string" if not route.is_write else "")
                )
            return None, None
        if not raw.strip():
            if route.operation in EMPTY_BODY_WRITES:  # nothing to say but the path
                return {}, Body({})
            raise InvalidRequest("the request body must be a JSON object; it is empty")
        data = decode_json(raw)
        if not isinstance(data, dict):
            raise InvalidRequest(
                f"the request body must be a JSON object, got {_json_kind(data)}")
        return data, Body(data)

    # -- running an operation --

    def check_rate(self) -> None:
        """Count this request against its token's bucket; RateLimited when over."""
        if self.limit is not None:
            self.limit.check(caller_of(request.headers.get("Authorization", ""),
                                       request.remote_addr))

    def handle(self, route: Route, params: dict[str, Any]) -> Response:
        try:
            self.check_rate()
            player_id = self.authenticate()
            if player_id is None and route.operation == "session.me":
                raise _Refused(self._unauthorized("GET /v1/me needs Authorization: Bearer <token>"))
            self.check_world()
            key = request.headers.get("Idempotency-Key") if route.is_write else None
            if key is not None:
                check_key(key)
            data, body = self.parse_body(route)
            call = Call(player_id, params, Query(request.args.to_dict(flat=False)), body)
            op = parse(route, call)
            if key is None or player_id is None:  # keys are per player; nobody writes anyway
                return self._run(route, op, player_id).response()
            fingerprint = request_hash(route.method, request.path, data)
            return self._run_once(route, op, player_id, key, fingerprint)
        except _Refused as refused:
            return refused.answer.response()
        except TravianError as error:
            return error_answer(error).response()
        except HTTPException:  # 413 and the like: the app's HTTPException handler answers
            raise
        except Exception:  # noqa: BLE001 - answered, logged, never leaked
            log.exception("%s %s failed", request.method, request.path)
            return _internal_error().response()

    @staticmethod
    def _execute(route: Route, uow: UnitOfWork, op: Op) -> Answer:
        """The repository call as an answer; TravianError becomes its error answer."""
        try:
            result = op(uow)
        except TravianError as error:
            return error_answer(error)
        return Answer(201 if route.method == "POST" else 200, _json(encode(result)))

    def _run(self, route: Route, op: Op, player_id: int | None) -> Answer:
        with self.world.unit_of_work(player_id) as uow:
            answer = self._execute(route, uow, op)
            if answer.status >= 300:
                uow.rollback()
        return answer

    def _run_once(
        self, route: Route, op: Op, player_id: int, key: str, fingerprint: str
    ) -> Response:
        if not self.in_flight.enter(player_id, key):
            return _in_progress(key).response()
        try:
            uow = self.world.unit_of_work(player_id)
            try:
                session = _session_of(uow)
                stored = self.store.claim(session, player_id, key, fingerprint)
                if stored is not None:
                    uow.rollback()
                    if stored.request_hash != fingerprint:
                        return _error(
                            409, Conflict.code,
                            "this Idempotency-Key was used for a different request; "
                            "use a new key for a new request",
                            {"reason": "idempotency_key_reused", "idempotency_key": key},
                        ).response()
                    if not stored.complete:
                        return _in_progress(key).response()
                    assert stored.status_code is not None and stored.response_body is not None
                    return Answer(stored.status_code, stored.response_body).response(
                        **{"Idempotent-Replayed": "true"})
                answer = self._execute(route, uow, op)
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
            self._purge_keys()

    def _purge_keys(self) -> None:
        """Forget idempotency keys past the retention window (cheap unless one is due)."""
        database = self.world.database
        try:
            self.store.purge_due(database.engine, database.clock())
        except sa_exc.SQLAlchemyError as exc:  # the answer stands; the next write tries again
            log.warning("purging old idempotency keys failed: %s", type(exc).__name__)


def _in_progress(key: str) -> Answer:
    return _error(409, Conflict.code,
                  "a request with this Idempotency-Key is still being answered; retry shortly",
                  {"reason": "idempotency_key_in_progress", "idempotency_key": key},
                  headers={"Retry-After": "1"})


def _session_of(uow: UnitOfWork) -> Any:
    if not isinstance(uow, SqlUnitOfWork):
        raise TypeError("the sandbox server needs SQL units of work")
    return uow._session


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array"


def openapi_text() -> str:
    """The OpenAPI document the server serves (travian_repo/sandbox/openapi.yaml)."""
    return resources.files("travian_repo.sandbox").joinpath(OPENAPI_RESOURCE).read_text("utf-8")


def create_app(
    database_url: str | Engine, *, clock: Clock | None = None, redis_url: Any = None,
    manual_clock: bool = False,
    rate_limit: float | None = DEFAULT_RATE, rate_burst: float | None = None,
    idempotency_retention: timedelta | None = DEFAULT_RETENTION,
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
    """
    _check_table()
    if manual_clock:
        clock = _manual_clock(database_url, clock)
    world = connect(database_url, prefer="sql", clock=clock, redis_url=redis_url)
    try:
        limit = None if rate_limit is None else ServerRateLimit(
            rate_limit, rate_burst, redis_client=world.redis,
            world_id=world.database.settings.world_id)
        service = _Service(world, limit=limit, retention=idempotency_retention)
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
        return Answer(200, _json({"status": "ok", "world_id": service.world_id})).response(
            **{"Cache-Control": "no-store"})

    app.add_url_rule(OPENAPI_PATH, endpoint="openapi", view_func=openapi, methods=["GET"])
    app.add_url_rule(HEALTH_PATH, endpoint="health", view_func=health, methods=["GET"])
    if manual_clock:
        assert isinstance(clock, ManualClock)
        _add_sandbox_clock(app, service, clock)

    @app.after_request
    def private(response: Response) -> Response:
        # answers depend on the token: no shared cache keeps them, no browser sniffs them
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if request.endpoint != "openapi":
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        code = {404: "not_found", 405: "method_not_allowed", 413: "invalid_request"}.get(
            status, "invalid_request" if status < 500 else "internal_error")
        headers = {}
        if isinstance(error, MethodNotAllowed) and error.valid_methods:
            headers["Allow"] = ", ".join(error.valid_methods)
        return _error(status, code, error.description or error.name, headers=headers).response()

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        log.exception("%s %s failed", request.method, request.path, exc_info=error)
        return _internal_error().response()

    return app


# ---- the sandbox clock (manual_clock=True only; not part of v1's game contract) -------------

SANDBOX_ADVANCE_PATH = f"{PREFIX}/sandbox/advance"
MAX_ADVANCE_SECONDS = 366 * 86400


def _manual_clock(database_url: str | Engine, clock: Clock | None) -> ManualClock:
    if clock is not None:
        if not isinstance(clock, ManualClock):
            raise TypeError("manual_clock=True needs clock= to be a travian_repo.sandbox.Clock")
        return clock
    from travian_repo.sql.database import make_engine

    engine = make_engine(database_url) if isinstance(database_url, str) else database_url
    try:
        with engine.connect() as conn:
            created = conn.execute(select(schema.world_settings.c.created_at)).scalar()
    except sa_exc.SQLAlchemyError:
        created = None  # not a world: create_app's connect() says so
    finally:
        if isinstance(database_url, str):
            engine.dispose()
    return ManualClock(as_utc(created) if created is not None else None)


def _add_sandbox_clock(app: Flask, service: _Service, clock: ManualClock) -> None:
    from travian_repo.sandbox.engine import Engine as WorldEngine

    engine = WorldEngine(service.world.database, clock=clock)
    lock = threading.Lock()

    def advance() -> Response:
        try:
            if service.authenticate() is None:  # a player's token: anyone may move time
                raise _Refused(service._unauthorized(
                    "missing Authorization: Bearer <token> header"))
            service.check_world()
            raw = request.get_data(cache=False)
            data = decode_json(raw) if raw.strip() else {}
            if not isinstance(data, dict):
                raise InvalidRequest("the request body must be a JSON object")
            body = Body(data)
            seconds = body.get("seconds")
            body.finish()
            if (isinstance(seconds, bool) or not isinstance(seconds, (int, float))
                    or not 0 <= seconds <= MAX_ADVANCE_SECONDS):
                raise InvalidRequest(f"seconds must be a number from 0 to {MAX_ADVANCE_SECONDS}",
                                     details={"field": "seconds"})
            with lock:
                clock.advance(seconds)
                now = clock()
                processed = engine.run_until(now)
            return Answer(200, _json({"processed": processed, "now": now.isoformat()})).response()
        except _Refused as refused:
            return refused.answer.response()
        except TravianError as error:
            return error_answer(error).response()

    app.add_url_rule(SANDBOX_ADVANCE_PATH, endpoint="sandbox_advance", view_func=advance,
                     methods=["POST"])


def _view(service: _Service, route: Route) -> Callable[..., Response]:
    def view(**params: Any) -> Response:
        return service.handle(route, params)

    view.__name__ = route.operation.replace(".", "_")
    return view


def app_world(app: Flask) -> World:
    """The World an app made by ``create_app`` serves."""
    service: _Service = app.extensions[_EXTENSION]
    return service.world


# ---- running it ---------------------------------------------------------------------------

def _error_text(status: int, message: str) -> str:
    """The JSON error body for an answer waitress writes itself (see serving.py)."""
    code = "internal_error" if status == 500 else "invalid_request"
    return _error(status, code, message).body


def _listen(app: Flask, host: str, port: int, options: ServingOptions,
            socket_map: dict[int, Any]) -> Any:
    # typed loosely: the waitress stubs miss effective_port and the trigger's thunks
    server: Any = make_server(app, host=host, port=port, options=options,
                              error_body=_error_text, light_paths=DATABASE_FREE_PATHS,
                              map=socket_map, ident="travian_repo")
    return server


def serve(
    database_url: str | Engine,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    threads: int = 8,
    connection_limit: int = ServingOptions.connection_limit,
    header_timeout: float = ServingOptions.header_timeout,
    request_timeout: float = ServingOptions.request_timeout,
    idle_timeout: float = ServingOptions.idle_timeout,
    clock: Clock | None = None,
    redis_url: Any = None,
    manual_clock: bool = False,
    speed: float | None = None,
    rate_limit: float | None = DEFAULT_RATE,
    rate_burst: float | None = None,
) -> None:
    """Serve v1 over the world at ``database_url`` until interrupted (blocking).

    ``threads`` answer requests (GET /v1/health and /v1/openapi.yaml have two threads of
    their own); at most ``connection_limit`` connections are open at once; a request's
    headers must arrive within ``header_timeout`` seconds of its first byte and the whole
    request within ``request_timeout``; a keep-alive connection idle for ``idle_timeout``
    seconds is closed. See ``travian_repo.sandbox.serving``.

    ``speed``: the engine runs by itself, the world's time going ``speed`` times real time
    from now (1 = real time); None with ``manual_clock`` leaves time to the clients.
    ``rate_limit`` / ``rate_burst``: the per-token limit, as for ``create_app``.
    """
    from travian_repo.sandbox.engine import AcceleratedClock, EngineThread

    options = ServingOptions(threads=threads, connection_limit=connection_limit,
                             header_timeout=header_timeout, request_timeout=request_timeout,
                             idle_timeout=idle_timeout)
    if speed is not None and manual_clock:
        raise ConfigurationError("choose a speed or a manual clock, not both")
    if speed is not None:
        clock = AcceleratedClock(speed)
    app = create_app(database_url, clock=clock, redis_url=redis_url, manual_clock=manual_clock,
                     rate_limit=rate_limit, rate_burst=rate_burst)
    database = app_world(app).database
    # The engine commits through the server's own Database, so its events reach the same
    # commit listeners (event bus, cache) as the players' writes.
    engine = None
    try:
        server = _listen(app, host, port, options, {})
        engine = None if speed is None else EngineThread(database, clock=clock,
                                                         interval=1.0).start()
        log.info("serving world %r on http://%s:%s%s", database.settings.world_id, host,
                 server.effective_port, PREFIX)
        server.run()
    finally:
        if engine is not None:
            engine.stop()
        app_world(app).close()


class ServerThread:
    """The server on a loopback port in a background thread, for tests and notebooks.

        with ServerThread(create_app(url)) as server:
            requests.get(server.url + "/v1/me", headers=...)

    ``port=0`` picks a free port; ``.url`` is ``http://host:port`` (without ``/v1``).
    ``threads``, ``connection_limit``, ``header_timeout``, ``request_timeout`` and
    ``idle_timeout`` as for ``serve``.
    """

    def __init__(
        self,
        app: Flask | str | Engine,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        threads: int = 8,
        clock: Clock | None = None,
        redis_url: Any = None,
        connection_limit: int = ServingOptions.connection_limit,
        header_timeout: float = ServingOptions.header_timeout,
        request_timeout: float = ServingOptions.request_timeout,
        idle_timeout: float = ServingOptions.idle_timeout,
    ) -> None:
        options = ServingOptions(threads=threads, connection_limit=connection_limit,
                                 header_timeout=header_timeout, request_timeout=request_timeout,
                                 idle_timeout=idle_timeout)
        self._owns_app = not isinstance(app, Flask)
        self.app = (app if isinstance(app, Flask)
                    else create_app(app, clock=clock, redis_url=redis_url))
        self._map: dict[int, Any] = {}
        try:
            server = _listen(self.app, host, port, options, self._map)
        except BaseException:
            if self._owns_app:
                app_world(self.app).close()
            raise
        self._server = server
        self.options = options
        self.host = host
        self.port = int(server.effective_port)
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=server.run, name=f"travian-server-{self.port}",
                                        daemon=True)
        self._started = False

    def start(self) -> ServerThread:
        if not self._started:
            self._started = True
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Close the listening socket and every connection, stop the worker threads."""
        server = self._server
        if self._started and self._thread.is_alive():
            # close_all runs in the server's own loop thread (the trigger's thunk), which
            # then finds its map empty and returns
            try:
                server.trigger.pull_trigger(lambda: wasyncore.close_all(self._map))
            except OSError:  # the loop closed its trigger on its own meanwhile
                wasyncore.close_all(self._map)
            self._thread.join(timeout)
        else:
            wasyncore.close_all(self._map)
        server.shutdown(timeout)
        if self._owns_app:
            app_world(self.app).close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<ServerThread {self.url}>"


__all__ = ["HANDLERS", "ServerThread", "app_world", "create_app", "openapi_text", "serve"]

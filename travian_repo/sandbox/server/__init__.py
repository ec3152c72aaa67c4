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
characters, scoped to the player): see ``idempotent_writes``. Requests refused before the
repository runs (auth, headers, query string, body shape) are not stored: they act on
nothing and refuse the same way every time.

Each token (without one, each remote address) may send ``rate_limit`` requests per second
with bursts of ``rate_burst`` (``travian_repo.sandbox.limits``; shared through Redis when the
server has it); past that: ``429 rate_limited`` with ``Retry-After``. Bodies over 1 MiB are
``413``; ids in paths are ASCII digits; a body must be UTF-8 JSON without NaN, Infinity or
lone surrogates (``travian_repo.sandbox.inputs``). Answers carry ``Cache-Control: no-store``
(all but the OpenAPI document) and ``X-Content-Type-Options: nosniff``.

Anything that is not a ``TravianError`` is logged and answered ``500`` with a generic body.

The modules, one job each: ``answers`` (the envelope and error answers), ``parsing`` (query
string and body), ``auth`` (token and world id), ``handlers`` (from a request to its
repository call, by the operation's declaration), ``idempotent_writes`` (once per key),
``app`` (the Flask app and its routes), ``clock_route`` (the manual clock),
``events_stream`` (a player's events as Server-Sent Events), ``runner`` (``serve``,
``ServerThread``).
"""

from travian_repo.sandbox.server.answers import Answer, error_answer
from travian_repo.sandbox.server.app import (
    DATABASE_FREE_PATHS,
    HEALTH_PATH,
    OPENAPI_PATH,
    app_world,
    create_app,
    openapi_text,
)
from travian_repo.sandbox.server.auth import MAX_TOKEN_LENGTH
from travian_repo.sandbox.server.clock_route import MAX_ADVANCE_SECONDS, SANDBOX_ADVANCE_PATH
from travian_repo.sandbox.server.handlers import Op, parse
from travian_repo.sandbox.server.parsing import Body, Call, Query
from travian_repo.sandbox.server.runner import ServerThread, serve

__all__ = [
    "DATABASE_FREE_PATHS",
    "HEALTH_PATH",
    "MAX_ADVANCE_SECONDS",
    "MAX_TOKEN_LENGTH",
    "OPENAPI_PATH",
    "SANDBOX_ADVANCE_PATH",
    "Answer",
    "Body",
    "Call",
    "Op",
    "Query",
    "ServerThread",
    "app_world",
    "create_app",
    "error_answer",
    "openapi_text",
    "parse",
    "serve",
]

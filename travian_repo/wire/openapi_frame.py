"""The fixed part of the OpenAPI document: what is the same for every operation (the
introduction, the headers, the error answers, the shared schemas) and the routes that are no
repository's (``/me``, the event stream, the document itself, ``/health``).
``wire.openapi`` adds one path per declared operation."""

from __future__ import annotations

from typing import Any

DESCRIPTION = """\
One route per repository operation of travian_repo, generated from the operations'
declarations (`python -m travian_repo.wire.openapi`).
Bodies are JSON; GET parameters travel in the query string, or (as the original async
client sends them) as the fields of a JSON object body on the GET. Writes answer `200`
with the created value.

**Every request** carries `Authorization: Bearer <token>` (the token decides which player
acts) and may carry `X-World-Id` (the world the client means; a request for another world
is refused with `409`, an empty header with `400`; without it, the server's own world).

**Writes** (POST, DELETE) may carry an `Idempotency-Key` (1 to 128 visible ASCII
characters, scoped to the player). The same key with the same request (method, path and
JSON body) replays the first answer, status and body alike, without acting again (the
replay carries `Idempotent-Replayed: true`); the same key with another request is
`409 conflict` (`details.reason: idempotency_key_reused`); a key whose first request is
still being answered is `409 conflict` (`details.reason: idempotency_key_in_progress`,
with `Retry-After`). The key and its answer are stored in the same database transaction
as the write, so a reply lost after the commit is replayed on retry: exactly one effect.
Requests refused before any game logic runs (authentication, headers, query string,
body shape) are not stored. Keys are kept 24 hours by default; an older key acts again.

**Who asks**: an unknown token, or no token where the request needs an acting player (a
write, a private read, `/v1/me`), is `401 unauthorized` with `WWW-Authenticate: Bearer`;
without a token, public reads still answer. A valid token asking for another player's
data is `403 forbidden`.

**Rate limit**: each token (without one, each remote address) may send a number of
requests per second with bursts (the server's `--rate-limit` and `--rate-burst`,
default 200 per second and bursts of 1000); past that, `429 rate_limited` with
`Retry-After` (whole seconds) and `details.retry_after` (exact seconds).

**Input**: ids in paths are ASCII digits (`/v1/village/１` is `404`); so are integers in
the query string. A body is UTF-8 JSON of at most 1 MiB (`413` past that), nested at
most 16 levels, without `NaN`, `Infinity`, numbers beyond a double (`1e309`) or lone
surrogates (`"\\ud800"`) in any string or field name (`400` otherwise).

**Answers** carry `X-Content-Type-Options: nosniff`, and all but this document
`Cache-Control: no-store`.

**Errors** are `{"error": {"code", "message", "details"}}` with these statuses and codes:
400 `invalid_request`; 401 `unauthorized`; 403 `forbidden`; 404 `not_found`;
409 `conflict`; 413 `invalid_request` (a body over 1 MiB); 422 `rule_violation` or
`insufficient_resources` (details `required` and `available`); 429 `rate_limited`
(details `retry_after`); 500 `internal_error`, `schema_mismatch`, `configuration_error`,
`travian_error`; 503 `backend_unavailable`.

The server's own refusals are JSON in the same shape: `404 not_found` for an unknown
route, `405 method_not_allowed` (with `Allow`) for a method a route does not have,
`OPTIONS` included; and, code `invalid_request`, `400` for a malformed request line or
header, `408` for a request that did not arrive in full in time (its headers within
10 s, all of it within 30 s; 2 s while the server is crowded), `413` for a body over
the limit, `431` for headers over 64 KiB, `501` for an unsupported transfer coding.

Times are ISO 8601 UTC (`2026-01-01T12:00:00Z`). "wheat" is Travian's crop. Building and
unit names are snake_case (`main_building`, `legionnaire`, ...).
"""

INFO: dict[str, Any] = {
    'title': 'travian_repo v1',
    'version': '1.0.0',
    'summary': (
        'The v1 wire contract of a Travian game world, as served by the travian_repo sandbox.'
    ),
    'description': DESCRIPTION,
    'license': {'name': 'MIT', 'identifier': 'MIT'},
}

SERVERS: list[dict[str, Any]] = [
    {
        'url': 'http://127.0.0.1:8080',
        'description': 'the sandbox server (`travian-repo serve --database-url URL`)',
    },
]

SESSION_PATHS: dict[str, Any] = {
    '/v1/me': {
        'get': {
            'operationId': 'session.me',
            'tags': ['session'],
            'summary': 'The player the bearer token belongs to.',
            'parameters': [{'$ref': '#/components/parameters/WorldId'}],
            'responses': {
                '200': {
                    'description': "The token's player.",
                    'headers': {
                        'Cache-Control': {'$ref': '#/components/headers/CacheControl'},
                        'X-Content-Type-Options': {'$ref': '#/components/headers/NoSniff'},
                    },
                    'content': {
                        'application/json': {'schema': {'$ref': '#/components/schemas/Player'}},
                    },
                },
                '400': {'$ref': '#/components/responses/BadRequest'},
                '401': {'$ref': '#/components/responses/Unauthorized'},
                '409': {'$ref': '#/components/responses/Conflict'},
                '429': {'$ref': '#/components/responses/TooManyRequests'},
                '500': {'$ref': '#/components/responses/InternalError'},
                '503': {'$ref': '#/components/responses/Unavailable'},
            },
        },
    },
    '/v1/player/{player_id}/events': {
        'get': {
            'operationId': 'events.stream',
            'tags': ['events'],
            'summary': (
                "The player's events as Server-Sent Events (the player only; not a repository "
                'operation).'
            ),
            'description': (
                'A `text/event-stream` that stays open. It opens with `retry:` and `id:` (the '
                'starting\n'
                'point); then each event is `id: <id>`, `event: <kind>`, `data: <Event as '
                'JSON>`, in the\n'
                'order the server logged them. A comment line `: heartbeat` comes every 15 s '
                '(the\n'
                "server's `--heartbeat`, at most 30 s).\n"
                '\n'
                'Reconnect with `Last-Event-ID` to get every event after that id. The server '
                'keeps each\n'
                "player's last 1000 events (Redis streams when it has Redis, else a ring in its "
                'memory);\n'
                'when it no longer holds the events after the id (too old, another server life, '
                'an\n'
                'expired stream) it first sends `event: events_lost` (an `Event` of kind '
                '`events_lost`,\n'
                '`data.last_event_id` the id asked for) and goes on with the oldest event it '
                'has.\n'
                '\n'
                "At most 32 streams are open at once (the server's `--max-streams`); one more is"
                ' `503`\n'
                'with `Retry-After` and `details.reason: too_many_streams`.\n'
            ),
            'parameters': [
                {'$ref': '#/components/parameters/WorldId'},
                {
                    'name': 'player_id',
                    'in': 'path',
                    'required': True,
                    'schema': {'$ref': '#/components/schemas/Id'},
                },
                {
                    'name': 'Last-Event-ID',
                    'in': 'header',
                    'required': False,
                    'description': (
                        'The id of the last event received; the stream resumes after it.'
                    ),
                    'schema': {
                        'type': 'string',
                        'maxLength': 64,
                        'pattern': '^[0-9A-Za-z]{1,40}-[0-9]{1,20}$',
                    },
                },
            ],
            'responses': {
                '200': {
                    'description': 'The stream (Server-Sent Events; each `data:` is an Event).',
                    'headers': {
                        'Cache-Control': {'$ref': '#/components/headers/CacheControl'},
                        'X-Content-Type-Options': {'$ref': '#/components/headers/NoSniff'},
                    },
                    'content': {
                        'text/event-stream': {
                            'schema': {'type': 'string'},
                            'example': (
                                'retry: 2000\n'
                                'id: 1767268800000-0\n'
                                '\n'
                                'id: 1767268801000-0\n'
                                'event: message_received\n'
                                'data: {"kind":"message_received","player_id":2,"occurred_at":"2'
                                '026-01-01T12:00:01Z","data":{"message_id":1,"from_player_id":1}'
                                '}\n'
                                '\n'
                                ': heartbeat\n'
                                '\n'
                            ),
                        },
                    },
                },
                '400': {'$ref': '#/components/responses/BadRequest'},
                '401': {'$ref': '#/components/responses/Unauthorized'},
                '403': {'$ref': '#/components/responses/Forbidden'},
                '409': {'$ref': '#/components/responses/Conflict'},
                '429': {'$ref': '#/components/responses/TooManyRequests'},
                '500': {'$ref': '#/components/responses/InternalError'},
                '503': {'$ref': '#/components/responses/Unavailable'},
            },
        },
    },
    '/v1/openapi.yaml': {
        'get': {
            'operationId': 'openapi',
            'tags': ['session'],
            'summary': 'This document. Needs neither a token nor X-World-Id.',
            'security': [],
            'responses': {
                '200': {
                    'description': 'The OpenAPI document.',
                    'headers': {
                        'X-Content-Type-Options': {'$ref': '#/components/headers/NoSniff'},
                    },
                    'content': {'application/yaml': {'schema': {'type': 'string'}}},
                },
            },
        },
    },
    '/v1/health': {
        'get': {
            'operationId': 'health',
            'tags': ['session'],
            'summary': (
                'The server is up, and which world it serves. Needs neither a token nor '
                'X-World-Id, never touches the database, and answers even while every worker '
                'thread waits on a stalled database.'
            ),
            'security': [],
            'responses': {
                '200': {
                    'description': 'Up.',
                    'headers': {
                        'Cache-Control': {'schema': {'type': 'string', 'const': 'no-store'}},
                    },
                    'content': {
                        'application/json': {
                            'schema': {
                                'type': 'object',
                                'required': ['status', 'world_id'],
                                'additionalProperties': False,
                                'properties': {
                                    'status': {'type': 'string', 'const': 'ok'},
                                    'world_id': {'type': 'string'},
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}

SECURITY_SCHEMES: dict[str, Any] = {
    'bearerAuth': {
        'type': 'http',
        'scheme': 'bearer',
        'description': "The player's API token (`travian-repo tokens --database-url URL`).",
    },
}

PARAMETERS: dict[str, Any] = {
    'WorldId': {
        'name': 'X-World-Id',
        'in': 'header',
        'required': False,
        'description': "The world the request is for; must equal the server's world id. "
                       "Without it, the server's own world.",
        'schema': {'type': 'string', 'minLength': 1, 'maxLength': 64},
    },
    'IdempotencyKey': {
        'name': 'Idempotency-Key',
        'in': 'header',
        'required': False,
        'description': (
            'Makes the write safe to retry: the same key and request replay the first answer. '
            "Scoped to the token's player."
        ),
        'schema': {
            'type': 'string',
            'minLength': 1,
            'maxLength': 128,
            'pattern': '^[\\x21-\\x7e]{1,128}$',
        },
    },
}

HEADERS: dict[str, Any] = {
    'RetryAfter': {
        'description': 'Seconds to wait before trying again.',
        'schema': {'type': 'integer', 'minimum': 0},
    },
    'WWWAuthenticate': {
        'description': 'The bearer challenge.',
        'schema': {'type': 'string', 'example': 'Bearer realm="travian_repo"'},
    },
    'CacheControl': {
        'description': 'Answers depend on the token; no cache may keep them.',
        'schema': {'type': 'string', 'const': 'no-store'},
    },
    'NoSniff': {
        'description': 'The content type is the one to use.',
        'schema': {'type': 'string', 'const': 'nosniff'},
    },
}

RESPONSES: dict[str, Any] = {
    'BadRequest': {
        'description': (
            'invalid_request: a malformed request or a bad argument (wrong type, unknown name, '
            'out of range).'
        ),
        'headers': {
            'Cache-Control': {'$ref': '#/components/headers/CacheControl'},
            'X-Content-Type-Options': {'$ref': '#/components/headers/NoSniff'},
        },
        'content': {'application/json': {'schema': {'$ref': '#/components/schemas/Error'}}},
    },
    'Unauthorized': {
        'description': (
            'unauthorized: no bearer token where an acting player is needed, or one this world '
            'does not know.'
        ),
        'headers': {
            'WWW-Authenticate': {'$ref': '#/components/headers/WWWAuthenticate'},
            'Cache-Control': {'$ref': '#/components/headers/CacheControl'},
            'X-Content-Type-Options': {'$ref': '#/components/headers/NoSniff'},
        },
        'content': {'application/json': {'schema': {'$ref': '#/components/schemas/Error'}}},
    },
    'Forbidden': {
        'description': (
            "forbidden: the token's player may not do or see this (another player's village, "
            'inbox ...).'
        ),
        'headers': {
            'Cache-Control': {'$ref': '#/components/headers/CacheControl'},
            'X-Content-Type-Options': {'$ref': '#/components/headers/NoSniff'},
        },
        'content': {'application/json': {'schema': {'$ref': '#/components/schemas/Error'}}},
    },
    'NotFound': {
        'description': (
            'not_found: no such village, player, alliance or queue position (also an unknown '
            'route).'
        ),
        'headers': {
            'Cache-Control': {'$ref': '#/components/headers/CacheControl'},
            'X-Content-Type-Options': {'$ref': '#/components/headers/NoSniff'},
        },
        'content': {'application/json': {'schema': {'$ref': '#/components/schemas/Error'}}},
    },
    'Conflict': {
        'description': (
            'conflict: X-World-Id names another world, an Idempotency-Key is reused for another '
            'request or still in progress (Retry-After), or the write collided with another one.'
        ),
        'headers': {
            'Retry-After': {'$ref': '#/components/headers/RetryAfter'},
            'Cache-Control': {'$ref': '#/components/headers/CacheControl'},
            'X-Content-Type-Options': {'$ref': '#/components/headers/NoSniff'},
        },
        'content': {'application/json': {'schema': {'$ref': '#/components/schemas/Error'}}},
    },
    'Unprocessable': {
        'description': (
            'rule_violation (a game rule says no: prerequisite, full queue, not enough troops or'
            ' merchants) or insufficient_resources (details carry required and available).'
        ),
        'headers': {
            'Cache-Control': {'$ref': '#/components/headers/CacheControl'},
            'X-Content-Type-Options': {'$ref': '#/components/headers/NoSniff'},
        },
        'content': {'application/json': {'schema': {'$ref': '#/components/schemas/Error'}}},
    },
    'PayloadTooLarge': {
        'description': 'invalid_request: the body is larger than 1 MiB.',
        'headers': {
            'Cache-Control': {'$ref': '#/components/headers/CacheControl'},
            'X-Content-Type-Options': {'$ref': '#/components/headers/NoSniff'},
        },
        'content': {'application/json': {'schema': {'$ref': '#/components/schemas/Error'}}},
    },
    'TooManyRequests': {
        'description': (
            "rate_limited: this token sent more than the server's rate limit; Retry-After says "
            'for how long.'
        ),
        'headers': {
            'Retry-After': {'$ref': '#/components/headers/RetryAfter'},
            'Cache-Control': {'$ref': '#/components/headers/CacheControl'},
            'X-Content-Type-Options': {'$ref': '#/components/headers/NoSniff'},
        },
        'content': {'application/json': {'schema': {'$ref': '#/components/schemas/Error'}}},
    },
    'InternalError': {
        'description': (
            'internal_error (or schema_mismatch, configuration_error): the server failed; the '
            'body never holds a traceback.'
        ),
        'headers': {
            'Cache-Control': {'$ref': '#/components/headers/CacheControl'},
            'X-Content-Type-Options': {'$ref': '#/components/headers/NoSniff'},
        },
        'content': {'application/json': {'schema': {'$ref': '#/components/schemas/Error'}}},
    },
    'Unavailable': {
        'description': (
            'backend_unavailable: the world database is down; try again after Retry-After.'
        ),
        'headers': {
            'Retry-After': {'$ref': '#/components/headers/RetryAfter'},
            'Cache-Control': {'$ref': '#/components/headers/CacheControl'},
            'X-Content-Type-Options': {'$ref': '#/components/headers/NoSniff'},
        },
        'content': {'application/json': {'schema': {'$ref': '#/components/schemas/Error'}}},
    },
}

SCHEMAS: dict[str, Any] = {
    'Id': {'type': 'integer', 'minimum': 1, 'maximum': 4611686018427387904},
    'Time': {
        'type': 'string',
        'format': 'date-time',
        'description': 'ISO 8601 in UTC, e.g. 2026-01-01T12:00:00Z.',
    },
    'ResourceName': {'type': 'string', 'enum': ['wood', 'clay', 'iron', 'wheat']},
    'Error': {
        'type': 'object',
        'required': ['error'],
        'additionalProperties': False,
        'properties': {
            'error': {
                'type': 'object',
                'required': ['code', 'message', 'details'],
                'additionalProperties': False,
                'properties': {
                    'code': {
                        'type': 'string',
                        'description': (
                            'Stable machine-readable name (see the table in the description '
                            'above).'
                        ),
                        'examples': [
                            'invalid_request',
                            'unauthorized',
                            'forbidden',
                            'not_found',
                            'conflict',
                            'rule_violation',
                            'insufficient_resources',
                            'rate_limited',
                            'internal_error',
                            'backend_unavailable',
                        ],
                    },
                    'message': {'type': 'string'},
                    'details': {
                        'type': 'object',
                        'description': (
                            'Structured context. insufficient_resources: `required` and '
                            '`available` (Resources); rate_limited: `retry_after` (seconds); '
                            'idempotency conflicts: `reason` and `idempotency_key`; X-World-Id '
                            'conflicts: `given`, `expected`.'
                        ),
                        'additionalProperties': True,
                        'properties': {
                            'required': {'$ref': '#/components/schemas/Resources'},
                            'available': {'$ref': '#/components/schemas/Resources'},
                            'retry_after': {'type': ['number', 'null']},
                            'reason': {
                                'type': 'string',
                                'enum': ['idempotency_key_reused', 'idempotency_key_in_progress'],
                            },
                        },
                    },
                },
            },
        },
    },
    'Troops': {
        'type': 'object',
        'description': 'Unit name (snake_case) to a count above 0.',
        'additionalProperties': {'type': 'integer', 'minimum': 1},
    },
    'TroopsRequest': {
        'type': 'object',
        'description': 'Unit name to count; at least one count above 0.',
        'minProperties': 1,
        'additionalProperties': {'type': 'integer', 'minimum': 0, 'maximum': 1000000},
    },
}

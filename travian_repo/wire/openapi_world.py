"""The OpenAPI paths beside the operations that tell about the world and its time:
``GET /v1/world`` (the settings) and the sandbox's ``POST /v1/sandbox/advance``."""

from __future__ import annotations

from typing import Any

from travian_repo.wire.routes import ADVANCE_PATH, WORLD_PATH

_ERRORS = {
    "400": {"$ref": "#/components/responses/BadRequest"},
    "401": {"$ref": "#/components/responses/Unauthorized"},
    "409": {"$ref": "#/components/responses/Conflict"},
    "404": {"$ref": "#/components/responses/NotFound"},
    "429": {"$ref": "#/components/responses/TooManyRequests"},
    "500": {"$ref": "#/components/responses/InternalError"},
    "503": {"$ref": "#/components/responses/Unavailable"},
}

PATHS: dict[str, Any] = {
    WORLD_PATH: {
        "get": {
            "operationId": "world.settings",
            "tags": ["session"],
            "summary": (
                "The world's settings and the server's time (travian_repo's `world.settings`). "
                "Needs neither a token nor X-World-Id and never touches the database."
            ),
            "security": [],
            "responses": {
                "200": {
                    "description": "The settings.",
                    "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Settings"}}},
                },
            },
        },
    },
    ADVANCE_PATH: {
        "post": {
            "operationId": "sandbox.advance",
            "tags": ["session"],
            "summary": (
                "Sandbox only (servers started with `--manual-clock`; otherwise 404): move the "
                "world's clock on by `seconds` and run the engine up to it (travian_repo's "
                "`world.advance(seconds)`). Headers: `Authorization: Bearer <token>` of any "
                "player (required), `X-World-Id` (optional, as everywhere), `Content-Type: "
                "application/json`, `Idempotency-Key` (optional, as on every write: the same key "
                "and body replay the first answer and move the clock once)."
            ),
            "parameters": [{"$ref": "#/components/parameters/WorldId"},
                           {"$ref": "#/components/parameters/IdempotencyKey"}],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {
                    "type": "object",
                    "required": ["seconds"],
                    "additionalProperties": False,
                    "properties": {"seconds": {"type": "number", "minimum": 0,
                                               "maximum": 31622400}},
                }}},
            },
            "responses": {
                "200": {
                    "description": "The clock moved; what the engine processed.",
                    "content": {"application/json": {"schema": {
                        "type": "object",
                        "required": ["processed", "now"],
                        "properties": {
                            "processed": {"type": "integer", "minimum": 0},
                            "now": {"type": "string", "format": "date-time"},
                        },
                    }}},
                },
                **_ERRORS,
            },
        },
    },
}

__all__ = ["PATHS"]

"""The server's answer envelope: JSON text, status and headers, and every error answer.

Errors carry the ``wire.errors`` table's status and body, so the HTTP client raises the
same typed error the repository raised on the server.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from flask import Response

from travian_repo.domain.errors import (
    BackendUnavailable,
    Conflict,
    RateLimited,
    TravianError,
    Unauthorized,
)
from travian_repo.wire.errors import error_body, status_for


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


def json_text(value: Any) -> str:
    """``value`` as compact JSON text (NaN and Infinity refused)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def error(status: int, code: str, message: str, details: Mapping[str, Any] | None = None,
          headers: Mapping[str, str] | None = None) -> Answer:
    """An error answer in the wire's shape: ``{"error": {code, message, details}}``."""
    body = {"error": {"code": code, "message": message, "details": dict(details or {})}}
    return Answer(status, json_text(body), dict(headers or {}))


def error_answer(failure: TravianError) -> Answer:
    """A library error as the answer the HTTP client turns back into the same error."""
    status = status_for(failure)
    headers: dict[str, str] = {}
    if isinstance(failure, RateLimited) and failure.retry_after is not None:
        headers["Retry-After"] = str(max(1, int(failure.retry_after + 0.999)))
    elif isinstance(failure, BackendUnavailable):
        headers["Retry-After"] = "1"
    elif isinstance(failure, Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="travian_repo"'
    try:
        text = json_text(error_body(failure))
    except (TypeError, ValueError):  # details that are not JSON-safe: keep the message
        text = json_text({"error": {"code": failure.code, "message": failure.message,
                                    "details": {}}})
    return Answer(status, text, headers)


def internal_error() -> Answer:
    return error(500, "internal_error", "internal server error; the server log has the cause")


def unauthorized(message: str, *, invalid: bool = False) -> Answer:
    """401 with a Bearer challenge (``invalid`` marks a token that was given but is unknown)."""
    challenge = 'Bearer realm="travian_repo"' + (', error="invalid_token"' if invalid else "")
    return error(401, Unauthorized.code, message, headers={"WWW-Authenticate": challenge})


def in_progress(key: str) -> Answer:
    """409 for an Idempotency-Key whose first request is still being answered."""
    return error(409, Conflict.code,
                 "a request with this Idempotency-Key is still being answered; retry shortly",
                 {"reason": "idempotency_key_in_progress", "idempotency_key": key},
                 headers={"Retry-After": "1"})


def error_text(status: int, message: str) -> str:
    """The JSON error body for an answer waitress writes itself (see serving.py)."""
    code = "internal_error" if status == 500 else "invalid_request"
    return error(status, code, message).body


class Refused(Exception):
    """A request refused before any repository ran (never stored)."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.body)
        self.answer = answer


__all__ = ["Answer", "Refused", "error", "error_answer", "error_text", "in_progress",
           "internal_error", "json_text", "unauthorized"]

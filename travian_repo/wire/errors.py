"""The one error table: error class <-> (HTTP status, error code).

The sandbox server answers with it and the HTTP client raises with it, so an error crosses
the wire and comes back as the same class, with its details.
"""

from __future__ import annotations

from typing import Any, Mapping

from travian_repo.domain.errors import (
    BackendUnavailable,
    ConfigurationError,
    Conflict,
    Forbidden,
    InsufficientResources,
    InvalidRequest,
    NotFound,
    RateLimited,
    RuleViolation,
    SchemaMismatch,
    TravianError,
    Unauthorized,
)
from travian_repo.domain.values import Resources

# Most specific first: the first class an error is an instance of decides its status.
ERROR_TABLE: tuple[tuple[type[TravianError], int, str], ...] = (
    (InsufficientResources, 422, InsufficientResources.code),
    (RuleViolation, 422, RuleViolation.code),
    (InvalidRequest, 400, InvalidRequest.code),
    (NotFound, 404, NotFound.code),
    (Unauthorized, 401, Unauthorized.code),
    (Forbidden, 403, Forbidden.code),
    (Conflict, 409, Conflict.code),
    (RateLimited, 429, RateLimited.code),
    (SchemaMismatch, 500, SchemaMismatch.code),
    (ConfigurationError, 500, ConfigurationError.code),
    (BackendUnavailable, 503, BackendUnavailable.code),
    (TravianError, 500, TravianError.code),
)
_BY_CODE = {code: cls for cls, _, code in ERROR_TABLE}
_FALLBACK_BY_STATUS = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: RuleViolation,
    429: RateLimited,
}


def status_for(error: TravianError) -> int:
    for cls, status, _ in ERROR_TABLE:
        if isinstance(error, cls):
            return status
    return 500


def error_body(error: TravianError) -> dict[str, Any]:
    """The JSON error body: ``{"error": {"code", "message", "details"}}``."""
    return {"error": {"code": error.code, "message": error.message, "details": error.details}}


def error_from_body(status: int, body: Any, *, retry_after: float | None = None) -> TravianError:
    """The exception a server's error answer stands for (unknown codes map by status)."""
    error = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(error, Mapping):
        return _by_status(status, f"HTTP {status} without an error body", {}, retry_after)
    code = error.get("code")
    message = str(error.get("message") or f"HTTP {status}")
    details = error.get("details") if isinstance(error.get("details"), Mapping) else {}
    cls = _BY_CODE.get(code) if isinstance(code, str) else None
    if cls is None:
        return _by_status(status, message, dict(details or {}), retry_after)
    return _build(cls, message, dict(details or {}), retry_after)


def _by_status(
    status: int, message: str, details: dict[str, Any], retry_after: float | None
) -> TravianError:
    cls: type[TravianError] = _FALLBACK_BY_STATUS.get(status) or (
        BackendUnavailable if status >= 500 else TravianError
    )
    return _build(cls, message, details, retry_after)


def _build(
    cls: type[TravianError], message: str, details: dict[str, Any], retry_after: float | None
) -> TravianError:
    if cls is InsufficientResources:
        try:
            required = Resources(**details["required"])
            available = Resources(**details["available"])
        except (KeyError, TypeError):
            return RuleViolation(message, details=details)
        return InsufficientResources(message, required=required, available=available,
                                     details=details)
    if cls is RateLimited:
        value = details.get("retry_after", retry_after)
        seconds = float(value) if isinstance(value, (int, float)) else retry_after
        return RateLimited(message, retry_after=seconds, details=details)
    return cls(message, details=details)

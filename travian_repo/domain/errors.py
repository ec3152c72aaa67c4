"""The one error hierarchy. Every failure the library reports is a ``TravianError``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from travian_repo.domain.values import Resources


class TravianError(Exception):
    """Root of every error the library raises.

    ``code`` is the stable machine-readable name used on the wire; ``details`` carries
    structured context (JSON-safe values only).
    """

    code = "travian_error"

    def __init__(self, message: str = "", *, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message or self.__class__.__name__)
        self.message = message or self.__class__.__name__
        self.details: dict[str, Any] = dict(details or {})

    def __str__(self) -> str:
        return self.message


class ConfigurationError(TravianError):
    code = "configuration_error"


class NotFound(TravianError):
    code = "not_found"


class Forbidden(TravianError):
    """Not yours: the acting player may not read or do this."""

    code = "forbidden"


class Unauthorized(Forbidden):
    """Nobody is acting: no API token, or one the server does not know (HTTP 401).

    A ``Forbidden``, so ``except Forbidden`` catches it too.
    """

    code = "unauthorized"


class InvalidRequest(TravianError, ValueError):
    """A bad argument: unknown name, wrong type, count out of range."""

    code = "invalid_request"


class RuleViolation(TravianError):
    """A game rule says no: prerequisite missing, queue full, not enough troops or merchants."""

    code = "rule_violation"


class InsufficientResources(RuleViolation):
    code = "insufficient_resources"

    def __init__(
        self,
        message: str = "",
        *,
        required: Resources,
        available: Resources,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        merged = {"required": required.as_dict(), "available": available.as_dict()}
        merged.update(details or {})
        super().__init__(
            message or f"not enough resources: need {required}, have {available}", details=merged
        )
        self.required = required
        self.available = available


class Conflict(TravianError):
    code = "conflict"


class RateLimited(TravianError):
    code = "rate_limited"

    def __init__(
        self,
        message: str = "",
        *,
        retry_after: float | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        merged: dict[str, Any] = {"retry_after": retry_after}
        merged.update(details or {})
        super().__init__(message or "rate limited", details=merged)
        self.retry_after = retry_after


class BackendUnavailable(TravianError):
    """Network, server or database down after retries."""

    code = "backend_unavailable"


class SchemaMismatch(TravianError):
    """The database is not a world this library understands."""

    code = "schema_mismatch"


__all__ = [
    "BackendUnavailable",
    "ConfigurationError",
    "Conflict",
    "Forbidden",
    "InsufficientResources",
    "InvalidRequest",
    "NotFound",
    "RateLimited",
    "RuleViolation",
    "SchemaMismatch",
    "TravianError",
    "Unauthorized",
]

"""The HTTP transport: ``Transport`` (in ``client``) and the parts it runs a call through."""

from __future__ import annotations

from travian_repo.http.transport.answers import (
    QUOTE_LIMIT,
    RETRY_AFTER_STATUSES,
    parse_retry_after,
)
from travian_repo.http.transport.client import METHODS, Transport
from travian_repo.http.transport.failures import RETRYABLE_STATUSES
from travian_repo.http.transport.idempotency import KEY_IN_PROGRESS, WRITE_METHODS

__all__ = [
    "KEY_IN_PROGRESS",
    "METHODS",
    "QUOTE_LIMIT",
    "RETRYABLE_STATUSES",
    "RETRY_AFTER_STATUSES",
    "WRITE_METHODS",
    "Transport",
    "parse_retry_after",
]

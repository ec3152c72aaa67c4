"""Idempotency keys: which calls carry one, and the server's "still running" answer.

A write (POST, PUT, PATCH, DELETE) carries an ``Idempotency-Key`` made once per call and sent
unchanged on every retry, so the server replays its first answer instead of acting twice.
"""

from __future__ import annotations

import uuid
from typing import Any, Mapping, NamedTuple

HEADER = "Idempotency-Key"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
KEY_IN_PROGRESS = "idempotency_key_in_progress"  # the server's details.reason for that 409


class Safety(NamedTuple):
    """What a call may do on a retry."""

    key: str | None  # the call's Idempotency-Key, if it has one
    replay_safe: bool  # whether sending it twice cannot act twice (a read, or a keyed write)


_READ = Safety(None, True)


def safety(method: str) -> Safety:
    """The key (new, once per call) and the replay safety of a call with ``method``."""
    if method not in WRITE_METHODS:
        return _READ
    return Safety(uuid.uuid4().hex, True)


def key_in_progress(status: int, details: Mapping[str, Any]) -> bool:
    """The server's "a request with this Idempotency-Key is still running" 409."""
    return status == 409 and details.get("reason") == KEY_IN_PROGRESS


__all__ = ["HEADER", "KEY_IN_PROGRESS", "WRITE_METHODS", "Safety", "key_in_progress", "safety"]

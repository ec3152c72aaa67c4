"""One answer of the server, read: the JSON of a 2xx, or an ``ErrorAnswer`` that carries the
typed error (decoded by the one wire error mapping) and the ``Retry-After`` to honour."""

from __future__ import annotations

import email.utils
import json
import re
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

import requests

from travian_repo.domain.errors import TravianError
from travian_repo.http.transport.idempotency import key_in_progress
from travian_repo.wire.errors import error_from_body

RETRY_AFTER_STATUSES = frozenset({429, 503})
# 409 is read for its Retry-After too, but only the "key in progress" 409 is retried.
_RETRY_AFTER_READ = RETRY_AFTER_STATUSES | {409}
QUOTE_LIMIT = 200  # characters of an unexpected answer quoted in an error

_SECONDS = re.compile(r"^\s*[0-9]+(\.[0-9]+)?\s*$")
WHITESPACE = re.compile(r"\s+")


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def parse_retry_after(value: str | None, *, now: Callable[[], datetime] | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP date.

    Like urllib3's ``Retry.parse_retry_after``: a date in the past means 0; an unreadable
    value means ``None`` (the caller falls back to its own backoff). Not capped here.
    """
    if value is None or not value.strip():
        return None
    if _SECONDS.match(value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" or no zone: RFC 9110 dates are GMT
        when = when.replace(tzinfo=timezone.utc)
    seconds = (when - (now or _utcnow)()).total_seconds()
    return max(0.0, seconds)


class ErrorAnswer(Exception):
    """A non-2xx answer of one attempt, carried through tenacity to the retry decision."""

    def __init__(self, status: int, error: TravianError, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status}: {error}")
        self.status = status
        self.error = error
        self.retry_after = retry_after

    @property
    def key_in_progress(self) -> bool:
        """The server's "a request with this Idempotency-Key is still running" 409."""
        return key_in_progress(self.status, self.error.details)

    @property
    def honours_retry_after(self) -> bool:
        return self.status in RETRY_AFTER_STATUSES or self.key_in_progress


def decode(response: requests.Response, operation: str) -> Any:
    """The JSON of a 2xx answer, or an exception that says what came back instead."""
    status = response.status_code
    if 200 <= status < 300:
        if status == 204:
            return None
        body = response.content
        content_type = response.headers.get("Content-Type", "")
        if not body.strip():
            raise TravianError(
                f"{operation}: the server sent an empty answer (HTTP {status})",
                details={"status": status},
            )
        if not _is_json(content_type):
            quote = _quote(response)
            raise TravianError(
                f"{operation}: expected JSON, got {content_type!r} (HTTP {status}): {quote}",
                details={"status": status, "content_type": content_type, "body": quote},
            )
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            quote = _quote(response)
            raise TravianError(
                f"{operation}: the server sent malformed JSON (HTTP {status}): {quote}",
                details={"status": status, "body": quote},
            ) from None

    retry_after = (
        parse_retry_after(response.headers.get("Retry-After"))
        if status in _RETRY_AFTER_READ
        else None
    )
    parsed: Any = None
    if response.content.strip() and _is_json(response.headers.get("Content-Type", "")):
        try:
            parsed = json.loads(response.content)
        except (ValueError, RecursionError):
            parsed = None
    if not (isinstance(parsed, Mapping) and isinstance(parsed.get("error"), Mapping)):
        quote = _quote(response)
        what = f"a non-v1 answer: {quote}" if quote else "an empty answer"
        parsed = {"error": {"message": f"HTTP {status} with {what}",
                            "details": {"status": status, "body": quote}}}
    error = error_from_body(status, parsed, retry_after=retry_after)
    raise ErrorAnswer(status, error, retry_after)


def _is_json(content_type: str) -> bool:
    """JSON media types; a missing Content-Type is given the benefit of the doubt."""
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime == "" or mime == "application/json" or mime.endswith("+json")


def _quote(response: requests.Response) -> str:
    """The start of an answer, on one line, cut to ``QUOTE_LIMIT`` characters."""
    raw = response.content[: QUOTE_LIMIT * 4]
    try:
        text = raw.decode(response.encoding or "utf-8", errors="replace")
    except LookupError:
        text = raw.decode("utf-8", errors="replace")
    text = WHITESPACE.sub(" ", text).strip()
    if len(text) > QUOTE_LIMIT or len(response.content) > len(raw):
        return text[:QUOTE_LIMIT] + "…"
    return text


__all__ = ["QUOTE_LIMIT", "RETRY_AFTER_STATUSES", "ErrorAnswer", "decode", "parse_retry_after"]

"""What a failed attempt means: whether to try again, how long to wait, and the error the
caller gets once no retry is left.

Who retries what:

- **urllib3** retries the *connect* phase only, on a session the transport makes itself:
  the server never saw those requests, so any method may go again.
- **tenacity** (through the one ``RetryPolicy``) retries everything else that is safe:
  502/503/504, 429, read timeouts and connection resets. A connect failure that urllib3
  already retried is not retried again, so the two layers never multiply. On a caller's
  session (whose adapter the transport does not touch) tenacity retries connect failures too.

What is safe: a read, or a write with an idempotency key, may go again after any of these; a
write without a key only where the server cannot have acted (a connect failure, a 429). A
409 "key in progress" on a keyed write is asked again with the same key. Other 4xx are final.
"""

from __future__ import annotations

from typing import Any

import requests
from urllib3.exceptions import ConnectTimeoutError

from travian_repo.domain.errors import BackendUnavailable, RateLimited, TravianError
from travian_repo.http.transport.answers import QUOTE_LIMIT, WHITESPACE, ErrorAnswer
from travian_repo.infra.retry import RetryPolicy

RETRYABLE_STATUSES = frozenset({502, 503, 504})


def should_retry(
    exc: BaseException, *, keyed: bool, replay_safe: bool, owns_session: bool
) -> bool:
    """Whether the call that failed with ``exc`` may be sent again."""
    if isinstance(exc, ErrorAnswer):
        if exc.status == 429:  # refused before acting: safe for any method
            return True
        if exc.key_in_progress:
            # our own earlier attempt is still running: ask again with the same key
            return keyed
        return exc.status in RETRYABLE_STATUSES and replay_safe
    if isinstance(exc, requests.RequestException):
        if never_sent(exc):
            # urllib3 already retried the connect phase on our own session.
            return not owns_session
        return replay_safe and transient(exc)
    return False


def retry_wait(
    exc: BaseException | None, attempt_number: int, policy: RetryPolicy, max_retry_after: float
) -> float:
    """The wait before the next attempt: the server's ``Retry-After`` (capped) where it
    counts, else the policy's backoff."""
    if isinstance(exc, ErrorAnswer) and exc.honours_retry_after and exc.retry_after is not None:
        return min(exc.retry_after, max_retry_after)
    return policy.backoff(attempt_number)


def answer_error(
    answer: ErrorAnswer,
    operation: str,
    method: str,
    path: str,
    attempts: int,
    replay_safe: bool,
) -> TravianError:
    """The error for the server's last answer: its own, or ``BackendUnavailable``."""
    error = answer.error
    if answer.key_in_progress and attempts > 1:
        # still in progress after every retry the policy allows: final, as itself
        error.details.setdefault("attempts", attempts)
        return error
    if isinstance(error, RateLimited):
        error.details.setdefault("attempts", attempts)
        error.details.setdefault("last_status", answer.status)
        return error
    if answer.status in RETRYABLE_STATUSES or (
        answer.status >= 500 and type(error) is BackendUnavailable
    ):
        why = "" if replay_safe or answer.status not in RETRYABLE_STATUSES else (
            " (not retried: a write without an idempotency key may have been applied)"
        )
        return BackendUnavailable(
            f"{operation}: {method} {path} failed after {_attempts(attempts)}{why}; "
            f"last answer HTTP {answer.status}: {error.message}",
            details={**error.details, "attempts": attempts, "last_status": answer.status,
                     **({"retry_after": answer.retry_after}
                        if answer.retry_after is not None else {})},
        )
    return error


def network_error(
    exc: requests.RequestException,
    operation: str,
    method: str,
    path: str,
    attempts: int,
    replay_safe: bool,
    *,
    connect_retries: int | None,
) -> TravianError:
    """The error for a request that never got an answer. ``connect_retries``: how many times
    urllib3 retried the connect phase (None on a caller's session, where it does not)."""
    why = ""
    details: dict[str, Any] = {
        "attempts": attempts, "last_status": None, "cause": type(exc).__name__
    }
    if never_sent(exc) and connect_retries is not None:
        connects = connect_retries + 1
        why = f" (could not connect: {connects} connection attempts per try)"
        details["connect_attempts"] = connects
    elif not replay_safe and transient(exc):
        why = (" (not retried: the server may have applied this write, and it has no "
               "idempotency key)")
    return BackendUnavailable(
        f"{operation}: {method} {path} failed after {_attempts(attempts)}{why}; "
        f"last error {describe(exc)}",
        details=details,
    )


def never_sent(exc: BaseException) -> bool:
    """A failure of the connect phase: the server cannot have seen the request."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, (requests.exceptions.SSLError, requests.exceptions.ProxyError)):
        return False
    if isinstance(exc, requests.exceptions.ConnectionError):
        inner = exc.args[0] if exc.args else None
        reason = getattr(inner, "reason", inner)
        return isinstance(reason, ConnectTimeoutError)  # includes NewConnectionError, DNS
    return False


def transient(exc: BaseException) -> bool:
    """Network trouble worth another try: resets, read timeouts, a body cut short."""
    if isinstance(exc, (requests.exceptions.SSLError, requests.exceptions.ProxyError)):
        return False
    return isinstance(
        exc,
        (
            requests.exceptions.ConnectionError,
            requests.exceptions.Timeout,
            requests.exceptions.ChunkedEncodingError,
        ),
    )


def describe(exc: BaseException | None) -> str:
    """The error on one line, ending with its root cause (``ConnectionRefusedError: [Errno
    111] Connection refused``): a long text is cut in its middle, never its cause."""
    if exc is None:
        return "no error"
    if isinstance(exc, ErrorAnswer):
        return f"HTTP {exc.status}"
    text = WHITESPACE.sub(" ", str(exc)).strip()
    root = root_cause(exc)
    if root is not exc:
        cause = _quote(root)
        if cause not in text:
            text = f"{_clip(text, QUOTE_LIMIT)}; cause: {cause}"
        elif len(text) > QUOTE_LIMIT:
            text = f"{_clip(text, QUOTE_LIMIT // 2)} cause: {cause}"
    else:
        text = _clip(text, QUOTE_LIMIT)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def root_cause(exc: BaseException) -> BaseException:
    """The innermost error behind ``exc``: through ``raise ... from``, the exception being
    handled, and the error requests and urllib3 wrap (their first argument, ``reason``)."""
    seen = {id(exc)}
    while True:
        inner = exc.__cause__ or getattr(exc, "reason", None)
        if not isinstance(inner, BaseException) and exc.args:
            inner = exc.args[0]
        if not isinstance(inner, BaseException):
            inner = exc.__context__
        if not isinstance(inner, BaseException) or id(inner) in seen:
            return exc
        seen.add(id(inner))
        exc = inner


def _quote(exc: BaseException) -> str:
    text = WHITESPACE.sub(" ", str(exc)).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _attempts(n: int) -> str:
    return f"{n} attempt" if n == 1 else f"{n} attempts"


__all__ = [
    "RETRYABLE_STATUSES",
    "answer_error",
    "describe",
    "network_error",
    "never_sent",
    "root_cause",
    "retry_wait",
    "should_retry",
    "transient",
]

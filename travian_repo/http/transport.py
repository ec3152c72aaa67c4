"""The transport: one pooled ``requests.Session`` that speaks v1 JSON, retries what is safe,
keeps the client rate limit and records every attempt into the metrics.

Who retries what:

- **urllib3** retries the *connect* phase only, on a session the transport makes itself
  (``Retry(connect=policy.retries, read=False, status=0, redirect=0, other=0)``): the
  server never saw those requests, so any method may go again.
- **tenacity** (through the one ``RetryPolicy``) retries everything else that is safe:
  502/503/504, 429, read timeouts and connection resets. A connect failure that urllib3
  already retried is not retried again, so the two layers never multiply. On a caller's
  session (whose adapter the transport does not touch) tenacity retries connect failures too.

What is safe:

- a GET: all of the above;
- a write (POST, PUT, PATCH, DELETE) carries an ``Idempotency-Key`` made once per call and
  sent unchanged on every retry, so the server replays instead of acting twice: all of the
  above as well;
- a write sent with ``idempotent_write=False`` has no key: it is retried only where the
  server cannot have acted (a connect failure, a 429);
- a ``409`` whose error ``details.reason`` is ``"idempotency_key_in_progress"`` on a keyed
  write: the server says the first attempt with this key is still running (typically one
  whose reply was lost and whose retry arrived before it finished). The same call, with the
  same key, goes again after ``Retry-After`` (capped) and within the same attempt and
  deadline bounds as every other retry; it then gets the first attempt's stored answer.
  Every other 409 (a key reused for another body, a world mismatch, a game conflict) is
  final;
- other 4xx are never retried.

Waits are full-jitter exponential backoff (``RetryPolicy.backoff``), except that 429, 503 and
an in-progress 409 honour ``Retry-After`` (seconds or an HTTP date), capped at ``max_retry_after``. A retry whose
wait would run past the policy's deadline is not attempted.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import re
import time
import uuid
from datetime import datetime, timezone
from types import TracebackType
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit, urlunsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from tenacity import RetryCallState
from urllib3.exceptions import ConnectTimeoutError

from travian_repo.domain.errors import (
    BackendUnavailable,
    ConfigurationError,
    InvalidRequest,
    RateLimited,
    TravianError,
)
from travian_repo.infra.metrics import Metrics
from travian_repo.infra.ratelimit import RateLimiter
from travian_repo.infra.retry import DEFAULT_RETRY, RetryPolicy
from travian_repo.wire.errors import error_from_body

logger = logging.getLogger(__name__)

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
METHODS = WRITE_METHODS | {"GET"}
RETRYABLE_STATUSES = frozenset({502, 503, 504})
RETRY_AFTER_STATUSES = frozenset({429, 503})
# 409 is read for its Retry-After too, but only the "key in progress" 409 is retried.
_RETRY_AFTER_READ = RETRY_AFTER_STATUSES | {409}
KEY_IN_PROGRESS = "idempotency_key_in_progress"  # the server's details.reason for that 409
QUOTE_LIMIT = 200  # characters of an unexpected answer quoted in an error

_SECONDS = re.compile(r"^\s*[0-9]+(\.[0-9]+)?\s*$")
_WHITESPACE = re.compile(r"\s+")


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


class _ErrorAnswer(Exception):
    """A non-2xx answer of one attempt, carried through tenacity to the retry decision."""

    def __init__(self, status: int, error: TravianError, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status}: {error}")
        self.status = status
        self.error = error
        self.retry_after = retry_after

    @property
    def key_in_progress(self) -> bool:
        """The server's "a request with this Idempotency-Key is still running" 409."""
        return self.status == 409 and self.error.details.get("reason") == KEY_IN_PROGRESS

    @property
    def honours_retry_after(self) -> bool:
        return self.status in RETRY_AFTER_STATUSES or self.key_in_progress


class Transport:
    """One pooled session to a v1 API, used by every HTTP repository of a world.

    ``request()`` returns the decoded JSON of a 2xx answer (``None`` for 204 or a JSON
    ``null``) and raises a ``TravianError`` for anything else; see the module docstring for
    retries. The transport is thread-safe: share one among threads, with ``pool_size`` at
    least the number of threads.

    ``session``: the caller's ``requests.Session`` is used as given (its adapters untouched)
    and never closed by ``close()``; without one the transport makes and owns one.
    ``rate_limiter``: acquired before every attempt (retries included); ``None`` = no client
    side limit (``connect()`` always passes one). ``metrics``: every attempt is recorded under
    its ``operation`` (so ``total_requests`` counts requests sent) and every retry counted.
    ``sleep`` waits between retries (inject a fake in tests).
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None,
        world_id: str,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = (3.05, 10.0),
        retry: RetryPolicy | None = None,
        rate_limiter: RateLimiter | None = None,
        metrics: Metrics | None = None,
        pool_size: int = 16,
        sleep: Callable[[float], None] = time.sleep,
        max_retry_after: float = 30.0,
    ) -> None:
        self.base_url = _check_base_url(base_url)
        if token is not None and not isinstance(token, str):
            raise ConfigurationError("token must be a string or None")
        if not isinstance(world_id, str) or not world_id:
            raise ConfigurationError("world_id must be a non-empty string")
        self.timeout = _check_timeout(timeout)
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
            raise ConfigurationError(f"pool_size must be an int >= 1, not {pool_size!r}")
        if (
            isinstance(max_retry_after, bool)
            or not isinstance(max_retry_after, (int, float))
            or not math.isfinite(max_retry_after)
            or max_retry_after < 0
        ):
            raise ConfigurationError("max_retry_after must be a finite number >= 0")
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ConfigurationError("retry must be a travian_repo.RetryPolicy")
        self.world_id = world_id
        self.retry = retry if retry is not None else DEFAULT_RETRY
        self.rate_limiter = rate_limiter
        self.metrics = metrics if metrics is not None else Metrics()
        self.max_retry_after = float(max_retry_after)
        self._sleep = sleep
        self._headers: dict[str, str] = {"Accept": "application/json", "X-World-Id": world_id}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._owns_session = session is None
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(
                pool_connections=pool_size,
                pool_maxsize=pool_size,
                max_retries=self._connect_retry(),
            )
            session.mount("http://", adapter)
            session.mount("https://", adapter)
        self.session = session
        self._closed = False

    def _connect_retry(self) -> urllib3.Retry:
        """urllib3 retries the connect phase only; tenacity does the rest."""
        return urllib3.Retry(
            total=None,
            connect=self.retry.retries,
            read=False,  # raise read errors as themselves (ReadTimeout), for tenacity to judge
            status=0,
            redirect=0,  # requests follows redirects itself; urllib3 never does here
            other=0,
            backoff_factor=self.retry.base_delay_s,
            backoff_max=self.retry.max_delay_s,
            backoff_jitter=self.retry.base_delay_s,
            raise_on_status=False,
            respect_retry_after_header=False,
        )

    # ---- the one entry point --------------------------------------------------------------

    def request(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        idempotent_write: bool | None = None,
    ) -> Any:
        """Send one logical call (retried as the module docstring says); decoded JSON back.

        ``operation`` names the call in metrics and errors (``"villages.get"``); ``path`` is
        joined to the base URL (``"/v1/village/1"``); ``params`` go in the query string
        (booleans as ``true``/``false``, ``None`` values dropped); ``json_body`` is sent as
        JSON. ``idempotent_write=False`` sends a write without an ``Idempotency-Key`` (and
        retries it only where the server cannot have acted); ``None`` or ``True``: writes
        carry a key.
        """
        if self._closed:
            raise ConfigurationError("this transport is closed")
        verb = method.upper() if isinstance(method, str) else ""
        if verb not in METHODS:
            raise InvalidRequest(f"{operation}: unsupported HTTP method {method!r}")
        url = self._url(path)
        headers = dict(self._headers)
        data: bytes | None = None
        if json_body is not None:
            try:
                data = json.dumps(
                    json_body, separators=(",", ":"), ensure_ascii=False, allow_nan=False
                ).encode("utf-8")
            except (TypeError, ValueError) as exc:
                raise InvalidRequest(f"{operation}: the request body is not JSON: {exc}") from None
            headers["Content-Type"] = "application/json"
        is_write = verb in WRITE_METHODS
        keyed = is_write and idempotent_write is not False
        if keyed:
            headers["Idempotency-Key"] = uuid.uuid4().hex  # once per call, reused by retries
        replay_safe = not is_write or keyed
        query = _query(params)

        started = time.monotonic()
        attempts = 0

        def attempt() -> Any:
            nonlocal attempts
            if self.rate_limiter is not None:
                remaining = self.retry.deadline_s - (time.monotonic() - started)
                self.rate_limiter.acquire(timeout=max(0.0, remaining))
            attempts += 1
            return self._send_once(operation, verb, url, headers, query, data)

        def should_retry(exc: BaseException) -> bool:
            if isinstance(exc, _ErrorAnswer):
                if exc.status == 429:  # refused before acting: safe for any method
                    return True
                if exc.key_in_progress:
                    # our own earlier attempt is still running: ask again with the same key
                    return keyed
                return exc.status in RETRYABLE_STATUSES and replay_safe
            if isinstance(exc, requests.RequestException):
                if _never_sent(exc):
                    # urllib3 already retried the connect phase on our own session.
                    return not self._owns_session
                return replay_safe and _transient(exc)
            return False

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome is not None else None
            if (
                isinstance(exc, _ErrorAnswer)
                and exc.honours_retry_after
                and exc.retry_after is not None
            ):
                return min(exc.retry_after, self.max_retry_after)
            return self.retry.backoff(state.attempt_number)

        def before_sleep(state: RetryCallState) -> None:
            self.metrics.retried(operation)
            exc = state.outcome.exception() if state.outcome is not None else None
            logger.info(
                "%s: %s %s attempt %d failed (%s); retrying in %.2fs",
                operation, verb, path, state.attempt_number, _describe(exc), state.upcoming_sleep,
            )

        retrying = self.retry.retrying(
            should_retry, sleep=self._sleep, before_sleep=before_sleep, wait=wait
        )
        try:
            for try_ in retrying:
                with try_:
                    return attempt()
        except _ErrorAnswer as answer:
            error = self._answer_error(answer, operation, verb, path, attempts, replay_safe)
            if error is answer.error:
                raise error from None  # the server's own error, as itself
            raise error from answer.error
        except (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema,
                requests.exceptions.MissingSchema, requests.exceptions.InvalidHeader) as exc:
            raise ConfigurationError(f"{operation}: cannot send the request: {exc}") from exc
        except requests.RequestException as exc:
            raise self._network_error(
                exc, operation, verb, path, attempts, replay_safe
            ) from exc
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    # ---- one attempt ----------------------------------------------------------------------

    def _send_once(
        self,
        operation: str,
        method: str,
        url: str,
        headers: Mapping[str, str],
        params: dict[str, Any] | None,
        data: bytes | None,
    ) -> Any:
        started = time.perf_counter()
        failed = True
        try:
            response = self.session.request(
                method,
                url,
                params=params,
                data=data,
                headers=dict(headers),
                timeout=self.timeout,
                allow_redirects=method == "GET",  # a redirected write would turn into a GET
            )
            result = _decode(response, operation)
            failed = False
            return result
        finally:
            self.metrics.record(operation, (time.perf_counter() - started) * 1000.0, error=failed)

    # ---- errors after the last attempt ----------------------------------------------------

    def _answer_error(
        self,
        answer: _ErrorAnswer,
        operation: str,
        method: str,
        path: str,
        attempts: int,
        replay_safe: bool,
    ) -> TravianError:
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

    def _network_error(
        self,
        exc: requests.RequestException,
        operation: str,
        method: str,
        path: str,
        attempts: int,
        replay_safe: bool,
    ) -> TravianError:
        why = ""
        details: dict[str, Any] = {
            "attempts": attempts, "last_status": None, "cause": type(exc).__name__
        }
        if _never_sent(exc) and self._owns_session:
            connects = self.retry.retries + 1
            why = f" (could not connect: {connects} connection attempts per try)"
            details["connect_attempts"] = connects
        elif not replay_safe and _transient(exc):
            why = (" (not retried: the server may have applied this write, and it has no "
                   "idempotency key)")
        return BackendUnavailable(
            f"{operation}: {method} {path} failed after {_attempts(attempts)}{why}; "
            f"last error {_describe(exc)}",
            details=details,
        )

    # ---- plumbing -------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        if not isinstance(path, str) or "://" in path:
            raise InvalidRequest(f"path must be a path under the API, not {path!r}")
        return self.base_url + "/" + path.lstrip("/")

    def close(self) -> None:
        """Release the pool, if the transport made the session (a caller's is left open)."""
        if self._closed:
            return
        self._closed = True
        if self._owns_session:
            self.session.close()

    def __enter__(self) -> Transport:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<Transport {_redact(self.base_url)} world={self.world_id!r}{state}>"


# ---- helpers ---------------------------------------------------------------------------------


def _decode(response: requests.Response, operation: str) -> Any:
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
    raise _ErrorAnswer(status, error, retry_after)


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
    text = _WHITESPACE.sub(" ", text).strip()
    if len(text) > QUOTE_LIMIT or len(response.content) > len(raw):
        return text[:QUOTE_LIMIT] + "…"
    return text


def _never_sent(exc: BaseException) -> bool:
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


def _transient(exc: BaseException) -> bool:
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


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "no error"
    if isinstance(exc, _ErrorAnswer):
        return f"HTTP {exc.status}"
    text = _WHITESPACE.sub(" ", str(exc)).strip()
    if len(text) > QUOTE_LIMIT:
        text = text[:QUOTE_LIMIT] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _attempts(n: int) -> str:
    return f"{n} attempt" if n == 1 else f"{n} attempts"


def _query(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not params:
        return None
    query: dict[str, Any] = {}
    for key, value in params.items():
        if value is None:
            continue
        query[key] = ("true" if value else "false") if isinstance(value, bool) else value
    return query


def _check_base_url(base_url: object) -> str:
    if not isinstance(base_url, str):
        raise ConfigurationError("api_url must be a string such as 'http://127.0.0.1:8080'")
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(
            f"api_url must be an http(s) URL such as 'http://127.0.0.1:8080', "
            f"not {_redact(base_url)!r}"
        )
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def _check_timeout(timeout: object) -> tuple[float, float]:
    if (
        isinstance(timeout, tuple)
        and len(timeout) == 2
        and all(
            not isinstance(t, bool) and isinstance(t, (int, float)) and math.isfinite(t) and t > 0
            for t in timeout
        )
    ):
        return (float(timeout[0]), float(timeout[1]))
    raise ConfigurationError(
        f"timeout must be (connect_seconds, read_seconds), both > 0, not {timeout!r}"
    )


def _redact(url: str) -> str:
    """The URL without a password (for reprs and messages)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


__all__ = ["Transport", "parse_retry_after"]

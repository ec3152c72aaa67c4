"""The transport: one pooled ``requests.Session`` that speaks v1 JSON, retries what is safe,
keeps the client rate limit and records every attempt into the metrics.

Its parts: ``session`` (settings and the pooled session), ``idempotency`` (which calls carry
an ``Idempotency-Key``), ``answers`` (reading one answer), ``failures`` (what a failed attempt
means: retry or not, and the final error). This module runs one call through them: the rate
limiter before every attempt, tenacity (through the one ``RetryPolicy``) between attempts.

Waits are full-jitter exponential backoff (``RetryPolicy.backoff``), except that 429, 503 and
an in-progress 409 honour ``Retry-After`` (seconds or an HTTP date), capped at
``max_retry_after``. A retry whose wait would run past the policy's deadline is not attempted.
"""

from __future__ import annotations

import json
import logging
import time
from types import TracebackType
from typing import Any, Callable, Mapping

import requests
from tenacity import RetryCallState

from travian_repo.domain.errors import ConfigurationError, InvalidRequest
from travian_repo.http.transport import idempotency
from travian_repo.http.transport.answers import ErrorAnswer, decode
from travian_repo.http.transport.failures import (
    answer_error,
    describe,
    network_error,
    retry_wait,
    should_retry,
)
from travian_repo.http.transport.idempotency import WRITE_METHODS
from travian_repo.http.transport.session import (
    check_base_url,
    check_max_retry_after,
    check_pool_size,
    check_timeout,
    make_session,
    redact,
)
from travian_repo.infra.metrics import Metrics
from travian_repo.infra.ratelimit import RateLimiter
from travian_repo.infra.retry import DEFAULT_RETRY, RetryPolicy

# The logger keeps the module's old name, which users filter retries on.
logger = logging.getLogger("travian_repo.http.transport")

METHODS = WRITE_METHODS | {"GET"}


class Transport:
    """One pooled session to a v1 API, used by every HTTP repository of a world.

    ``request()`` returns the decoded JSON of a 2xx answer (``None`` for 204 or a JSON
    ``null``) and raises a ``TravianError`` for anything else; ``failures`` says what is
    retried. The transport is thread-safe: share one among threads, with ``pool_size`` at
    least the number of threads.

    ``world_id``: sent as ``X-World-Id`` on every request; None sends none (the server then
    answers for its own world) until ``use_world`` names one.

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
        world_id: str | None,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = (3.05, 10.0),
        retry: RetryPolicy | None = None,
        rate_limiter: RateLimiter | None = None,
        metrics: Metrics | None = None,
        pool_size: int = 16,
        sleep: Callable[[float], None] = time.sleep,
        max_retry_after: float = 30.0,
    ) -> None:
        self.base_url = check_base_url(base_url)
        if token is not None and not isinstance(token, str):
            raise ConfigurationError("token must be a string or None")
        if world_id is not None:
            _check_world_id(world_id)
        self.timeout = check_timeout(timeout)
        pool_size = check_pool_size(pool_size)
        self.max_retry_after = check_max_retry_after(max_retry_after)
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ConfigurationError("retry must be a travian_repo.RetryPolicy")
        self.world_id = world_id
        self.retry = retry if retry is not None else DEFAULT_RETRY
        self.rate_limiter = rate_limiter
        self.metrics = metrics if metrics is not None else Metrics()
        self._sleep = sleep
        self._headers: dict[str, str] = {"Accept": "application/json"}
        if world_id is not None:  # without one the server answers for its own world
            self._headers["X-World-Id"] = world_id
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._owns_session = session is None
        self.session = session if session is not None else make_session(pool_size, self.retry)
        self._closed = False

    # ---- the one entry point --------------------------------------------------------------

    def request(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
    ) -> Any:
        """Send one logical call (retried as ``failures`` says); decoded JSON back.

        ``operation`` names the call in metrics and errors (``"villages.get"``); ``path`` is
        joined to the base URL (``"/v1/village/1"``); ``params`` go in the query string
        (booleans as ``true``/``false``, ``None`` values dropped); ``json_body`` is sent as
        JSON. Every write carries an ``Idempotency-Key``.
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
        key, replay_safe = idempotency.safety(verb)
        keyed = key is not None
        if key is not None:
            headers[idempotency.HEADER] = key  # once per call, reused by retries
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

        def retry(exc: BaseException) -> bool:
            return should_retry(exc, keyed=keyed, replay_safe=replay_safe,
                                owns_session=self._owns_session)

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome is not None else None
            return retry_wait(exc, state.attempt_number, self.retry, self.max_retry_after)

        def before_sleep(state: RetryCallState) -> None:
            self.metrics.retried(operation)
            exc = state.outcome.exception() if state.outcome is not None else None
            logger.info(
                "%s: %s %s attempt %d failed (%s); retrying in %.2fs",
                operation, verb, path, state.attempt_number, describe(exc), state.upcoming_sleep,
            )

        retrying = self.retry.retrying(
            retry, sleep=self._sleep, before_sleep=before_sleep, wait=wait
        )
        try:
            for try_ in retrying:
                with try_:
                    return attempt()
        except ErrorAnswer as answer:
            error = answer_error(answer, operation, verb, path, attempts, replay_safe)
            if error is answer.error:
                raise error from None  # the server's own error, as itself
            raise error from answer.error
        except (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema,
                requests.exceptions.MissingSchema, requests.exceptions.InvalidHeader) as exc:
            raise ConfigurationError(f"{operation}: cannot send the request: {exc}") from exc
        except requests.RequestException as exc:
            raise network_error(
                exc, operation, verb, path, attempts, replay_safe,
                connect_retries=self.retry.retries if self._owns_session else None,
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
            result = decode(response, operation)
            failed = False
            return result
        finally:
            self.metrics.record(operation, (time.perf_counter() - started) * 1000.0, error=failed)

    def use_world(self, world_id: str) -> None:
        """Name ``world_id`` in ``X-World-Id`` from now on."""
        _check_world_id(world_id)
        self.world_id = world_id
        self._headers["X-World-Id"] = world_id

    # ---- plumbing -------------------------------------------------------------------------

    @property
    def headers(self) -> dict[str, str]:
        """What every request carries (``Authorization``, ``X-World-Id``): a copy, for the
        event stream, which reads its answer as it comes instead of through ``request()``."""
        return dict(self._headers)

    @property
    def owns_session(self) -> bool:
        """Whether the session is the transport's own (then urllib3 retries the connect phase)."""
        return self._owns_session

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
        return f"<Transport {redact(self.base_url)} world={self.world_id!r}{state}>"


def _check_world_id(world_id: object) -> None:
    if not isinstance(world_id, str) or not world_id:
        raise ConfigurationError("world_id must be a non-empty string")


def _query(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not params:
        return None
    query: dict[str, Any] = {}
    for key, value in params.items():
        if value is None:
            continue
        query[key] = ("true" if value else "false") if isinstance(value, bool) else value
    return query


__all__ = ["METHODS", "Transport"]

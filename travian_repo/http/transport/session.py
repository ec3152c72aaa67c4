"""The transport's settings and its pooled ``requests.Session``: the API's base URL, the
timeouts, the pool, and urllib3's retries of the connect phase (the only ones urllib3 does)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

from travian_repo.domain.errors import ConfigurationError
from travian_repo.domain.validators import is_finite_number, is_int
from travian_repo.infra.retry import RetryPolicy


def make_session(pool_size: int, policy: RetryPolicy) -> requests.Session:
    """A session with ``pool_size`` keep-alive connections per host, whose adapter retries
    the connect phase as ``policy`` says."""
    session = requests.Session()
    adapter = HTTPAdapter(
        pool_connections=pool_size,
        pool_maxsize=pool_size,
        max_retries=connect_retry(policy),
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def connect_retry(policy: RetryPolicy) -> urllib3.Retry:
    """urllib3 retries the connect phase only (the server never saw the request, so any
    method may go again); tenacity does the rest."""
    return urllib3.Retry(
        total=None,
        connect=policy.retries,
        read=False,  # raise read errors as themselves (ReadTimeout), for tenacity to judge
        status=0,
        redirect=0,  # requests follows redirects itself; urllib3 never does here
        other=0,
        backoff_factor=policy.base_delay_s,
        backoff_max=policy.max_delay_s,
        backoff_jitter=policy.base_delay_s,
        raise_on_status=False,
        respect_retry_after_header=False,
    )


def check_base_url(base_url: object) -> str:
    if not isinstance(base_url, str):
        raise ConfigurationError("api_url must be a string such as 'http://127.0.0.1:8080'")
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(
            f"api_url must be an http(s) URL such as 'http://127.0.0.1:8080', "
            f"not {redact(base_url)!r}"
        )
    path = parts.path.rstrip("/")
    if path.endswith("/v1"):  # the URL `serve` prints; the routes add /v1 themselves
        path = path[: -len("/v1")]
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def check_timeout(timeout: object) -> tuple[float, float]:
    """``(connect_seconds, read_seconds)``, both finite and > 0."""
    if (
        isinstance(timeout, tuple)
        and len(timeout) == 2
        and all(is_finite_number(t) and t > 0 for t in timeout)
    ):
        return (float(timeout[0]), float(timeout[1]))
    raise ConfigurationError(
        f"timeout must be (connect_seconds, read_seconds), both > 0, not {timeout!r}"
    )


def check_pool_size(value: object) -> int:
    """Connections kept per host: an int >= 1."""
    if not is_int(value) or value < 1:
        raise ConfigurationError(f"pool_size must be an int >= 1, not {value!r}")
    return value


def check_max_retry_after(value: object) -> float:
    """The cap on a server's ``Retry-After``: a finite number of seconds >= 0."""
    if not is_finite_number(value) or value < 0:
        raise ConfigurationError("max_retry_after must be a finite number >= 0")
    return float(value)


def redact(url: str) -> str:
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


__all__ = [
    "check_base_url",
    "check_max_retry_after",
    "check_pool_size",
    "check_timeout",
    "connect_retry",
    "make_session",
    "redact",
]

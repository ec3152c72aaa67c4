"""The one retry policy: bounded attempts, a deadline, full-jitter exponential backoff.

Both backends use it: the SQL side retries serialization failures and deadlocks; the HTTP
side (its transport) retries what the server cannot have acted on, or what carries an
idempotency key. The policy says *how long and how often*; each caller says *what* is safe
to retry (the ``should_retry`` predicate) and may override the wait (Retry-After).

The deadline is checked before sleeping: a retry whose wait would end past the deadline is
not attempted, so a call never sleeps only to give up afterwards.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Callable, TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
)

from travian_repo.domain.errors import ConfigurationError
from travian_repo.domain.validators import is_finite_number, is_int

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry.

    ``attempts`` counts every try (the first one included); ``deadline_s`` bounds the time
    from the first try to the start of the last one; the wait before retry ``n`` (1-based)
    is uniform in ``[0, min(max_delay_s, base_delay_s * 2**(n-1))]`` ("full jitter").
    """

    attempts: int = 4
    deadline_s: float = 20.0
    base_delay_s: float = 0.05
    max_delay_s: float = 2.0

    def __post_init__(self) -> None:
        if not is_int(self.attempts) or self.attempts < 1:
            raise ConfigurationError(f"RetryPolicy.attempts must be an int >= 1, not {self.attempts!r}")
        for name in ("deadline_s", "base_delay_s", "max_delay_s"):
            value = getattr(self, name)
            if not is_finite_number(value) or value < 0:
                raise ConfigurationError(
                    f"RetryPolicy.{name} must be a finite number >= 0, not {value!r}"
                )
        if self.deadline_s <= 0:
            raise ConfigurationError("RetryPolicy.deadline_s must be > 0")

    @property
    def retries(self) -> int:
        """How many times a call may be repeated after its first try."""
        return self.attempts - 1

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**(attempt-1))]."""
        exponent = min(max(0, attempt - 1), 62)  # no float overflow for absurd attempt numbers
        ceiling = min(self.max_delay_s, self.base_delay_s * (2**exponent))
        return random.uniform(0.0, ceiling)

    def retrying(
        self,
        should_retry: Callable[[BaseException], bool],
        *,
        sleep: Callable[[float], None] = time.sleep,
        before_sleep: Callable[[RetryCallState], None] | None = None,
        wait: Callable[[RetryCallState], float] | None = None,
        spent_s: float = 0.0,
    ) -> Retrying:
        """A tenacity ``Retrying`` for this policy; always bounded and re-raising.

        It stops after ``attempts`` tries, or when the next try would start past
        ``deadline_s`` (wait included); the last exception is re-raised as itself.
        ``spent_s``: time the call already used before the loop began (``call``).
        """
        return Retrying(
            retry=retry_if_exception(should_retry),
            stop=(stop_after_attempt(self.attempts)
                  | stop_before_delay(max(0.0, self.deadline_s - spent_s))),
            wait=wait or (lambda state: self.backoff(state.attempt_number)),
            sleep=sleep,
            before_sleep=before_sleep,
            reraise=True,
        )

    def call(
        self,
        fn: Callable[[], T],
        should_retry: Callable[[BaseException], bool],
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> T:
        """Run ``fn`` under this policy; the last exception escapes unchanged.

        The first try runs before the tenacity loop is built (nearly every call succeeds at
        once, and the loop's per-call objects cost more than a quick database write); a
        failure it may retry hands over to the loop as that loop's own first try.
        """
        started = time.monotonic()
        try:
            return fn()
        except BaseException as exc:
            if self.attempts == 1 or not should_retry(exc):
                raise
            first: BaseException | None = exc

        def again() -> T:
            nonlocal first
            if first is not None:
                failed, first = first, None
                raise failed
            return fn()

        for attempt in self.retrying(should_retry, sleep=sleep,
                                     spent_s=time.monotonic() - started):
            with attempt:
                return again()
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover


DEFAULT_RETRY = RetryPolicy()

"""The one retry policy: bounded attempts, a deadline, full-jitter exponential backoff.

Both backends use it: the SQL side retries serialization failures and deadlocks; the HTTP
side (its transport) retries what the server cannot have acted on, or what carries an
idempotency key.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Callable, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, stop_after_delay

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    deadline_s: float = 20.0
    base_delay_s: float = 0.05
    max_delay_s: float = 2.0

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**(attempt-1))]."""
        ceiling = min(self.max_delay_s, self.base_delay_s * (2 ** max(0, attempt - 1)))
        return random.uniform(0.0, ceiling)

    def retrying(
        self,
        should_retry: Callable[[BaseException], bool],
        *,
        sleep: Callable[[float], None] = time.sleep,
        before_sleep: Callable[[RetryCallState], None] | None = None,
        wait: Callable[[RetryCallState], float] | None = None,
    ) -> Retrying:
        """A tenacity ``Retrying`` for this policy; always bounded and re-raising."""
        return Retrying(
            retry=retry_if_exception(should_retry),
            stop=stop_after_attempt(self.attempts) | stop_after_delay(self.deadline_s),
            wait=wait or (lambda state: self.backoff(state.attempt_number)),
            sleep=sleep,
            before_sleep=before_sleep,
            reraise=True,
        )

    def call(self, fn: Callable[[], T], should_retry: Callable[[BaseException], bool]) -> T:
        for attempt in self.retrying(should_retry):
            with attempt:
                return fn()
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover


DEFAULT_RETRY = RetryPolicy()

"""The one RetryPolicy: bounded, jittered, re-raising; nothing sleeps for real."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tenacity import RetryCallState

from travian_repo.domain.errors import ConfigurationError
from travian_repo.infra.retry import DEFAULT_RETRY, RetryPolicy


class Flaky:
    """Fails ``failures`` times with a fresh ``OSError``, then returns "done"."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0
        self.raised: list[OSError] = []

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            exc = OSError(f"failure #{self.calls}")
            self.raised.append(exc)
            raise exc
        return "done"


def retry_oserror(exc: BaseException) -> bool:
    return isinstance(exc, OSError)


@given(
    attempt=st.integers(1, 10_000),
    base=st.floats(0, 5, allow_nan=False),
    cap=st.floats(0, 60, allow_nan=False),
)
def test_backoff_is_full_jitter_under_the_capped_exponential(
    attempt: int, base: float, cap: float
) -> None:
    policy = RetryPolicy(base_delay_s=base, max_delay_s=cap)
    wait = policy.backoff(attempt)
    assert 0.0 <= wait <= min(cap, base * 2 ** min(attempt - 1, 62))


def test_backoff_ceiling_doubles_then_caps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("travian_repo.infra.retry.random.uniform", lambda lo, hi: hi)
    policy = RetryPolicy(base_delay_s=0.1, max_delay_s=1.0)
    assert [policy.backoff(n) for n in range(1, 7)] == pytest.approx(
        [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    )


def test_call_retries_until_success() -> None:
    sleeps: list[float] = []
    fn = Flaky(failures=2)
    assert RetryPolicy(attempts=3).call(fn, retry_oserror, sleep=sleeps.append) == "done"
    assert fn.calls == 3 and len(sleeps) == 2


def test_attempts_bound_the_tries_and_the_last_error_escapes_as_itself() -> None:
    sleeps: list[float] = []
    fn = Flaky(failures=10)
    with pytest.raises(OSError) as caught:
        RetryPolicy(attempts=4).call(fn, retry_oserror, sleep=sleeps.append)
    assert caught.value is fn.raised[-1]  # reraise=True: not a tenacity.RetryError
    assert fn.calls == 4 and len(sleeps) == 3


def test_errors_the_predicate_refuses_are_not_retried() -> None:
    fn = Flaky(failures=1)
    with pytest.raises(OSError):
        RetryPolicy(attempts=5).call(fn, lambda exc: False, sleep=lambda s: None)
    assert fn.calls == 1


def test_the_deadline_stops_before_a_wait_that_would_cross_it() -> None:
    policy = RetryPolicy(attempts=10, deadline_s=5.0)
    sleeps: list[float] = []
    fn = Flaky(failures=10)
    with pytest.raises(OSError):
        for attempt in policy.retrying(retry_oserror, sleep=sleeps.append, wait=lambda s: 6.0):
            with attempt:
                fn()
    assert fn.calls == 1 and sleeps == []  # it gave up instead of sleeping past the deadline


def test_waits_within_the_deadline_are_taken() -> None:
    policy = RetryPolicy(attempts=3, deadline_s=5.0)
    sleeps: list[float] = []
    seen: list[int] = []

    def before_sleep(state: RetryCallState) -> None:
        seen.append(state.attempt_number)

    fn = Flaky(failures=2)
    for attempt in policy.retrying(retry_oserror, sleep=sleeps.append, wait=lambda s: 1.0,
                                   before_sleep=before_sleep):
        with attempt:
            fn()
    assert fn.calls == 3 and sleeps == [1.0, 1.0] and seen == [1, 2]


def test_default_policy() -> None:
    assert DEFAULT_RETRY.attempts >= 2 and DEFAULT_RETRY.retries == DEFAULT_RETRY.attempts - 1
    assert 0 < DEFAULT_RETRY.base_delay_s <= DEFAULT_RETRY.max_delay_s < DEFAULT_RETRY.deadline_s


@pytest.mark.parametrize(
    "kwargs",
    [
        {"attempts": 0},
        {"attempts": -1},
        {"attempts": True},
        {"attempts": 2.5},
        {"deadline_s": 0},
        {"deadline_s": float("nan")},
        {"base_delay_s": -0.1},
        {"max_delay_s": float("inf")},
        {"max_delay_s": "1"},
    ],
)
def test_a_bad_policy_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]

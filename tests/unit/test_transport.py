"""The HTTP transport against scripted answers (``responses``); nothing sleeps, nothing waits."""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any, Iterator

import pytest
import requests
import responses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from responses import matchers
from responses.registries import OrderedRegistry

import travian_repo.http.transport as transport_module
import travian_repo.http.transport.answers as answers_module
from travian_repo.domain.errors import (
    BackendUnavailable,
    ConfigurationError,
    Conflict,
    Forbidden,
    InsufficientResources,
    InvalidRequest,
    NotFound,
    RateLimited,
    RuleViolation,
    SchemaMismatch,
    TravianError,
    Unauthorized,
)
from travian_repo.domain.values import Resources
from travian_repo.http.transport import Transport, parse_retry_after
from travian_repo.infra.metrics import Metrics
from travian_repo.infra.retry import RetryPolicy

BASE = "http://api.test"
PATH = "/v1/village/1"
URL = BASE + PATH
BUILD_PATH = "/v1/village/1/build"
BUILD_URL = BASE + BUILD_PATH
TOKEN = "tok-sekrit-123"
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
POLICY = RetryPolicy(attempts=4, deadline_s=120.0, base_delay_s=0.05, max_delay_s=2.0)
HTML_502 = (
    "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n<body>"
    "<center><h1>502 Bad Gateway</h1></center><hr><center>nginx/1.25.3</center>"
    + "<!-- padding -->" * 40
    + "</body></html>"
)


def error_json(code: str, message: str = "no", **details: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


class Sleeps(list[float]):
    """A stand-in for ``time.sleep`` that only writes down what it was asked."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(registry=OrderedRegistry) as mock:
        yield mock


@pytest.fixture
def transport(sleeps: Sleeps) -> Iterator[Transport]:
    with Transport(BASE, token=TOKEN, world_id="w1", retry=POLICY, sleep=sleeps) as t:
        yield t


def ok(rsps: responses.RequestsMock, method: str = responses.GET, url: str = URL,
       payload: Any = None, status: int = 200) -> None:
    rsps.add(method, url, json={"id": 1} if payload is None else payload, status=status)


# ---- the happy path, headers, metrics --------------------------------------------------------


def test_get_sends_bearer_world_and_accept_headers_and_decodes_json(
    rsps: responses.RequestsMock, transport: Transport
) -> None:
    rsps.add(responses.GET, URL, json={"id": 1, "name": "Home"},
             match=[matchers.query_param_matcher({"unread_only": "true", "limit": "5"})])
    result = transport.request("villages.get", "GET", PATH,
                               params={"unread_only": True, "limit": 5, "skip": None})
    assert result == {"id": 1, "name": "Home"}
    headers = rsps.calls[0].request.headers
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["X-World-Id"] == "w1"
    assert headers["Accept"] == "application/json"
    assert "Idempotency-Key" not in headers  # reads carry none
    assert rsps.calls[0].request.body is None  # GET parameters never travel in a body


def test_no_token_means_no_authorization_header(rsps: responses.RequestsMock) -> None:
    ok(rsps)
    with Transport(BASE, token=None, world_id="w1") as t:
        t.request("villages.get", "GET", PATH)
    assert "Authorization" not in rsps.calls[0].request.headers


def test_write_sends_json_body_and_an_idempotency_key(
    rsps: responses.RequestsMock, transport: Transport
) -> None:
    body = {"building": "woodcutter", "slot": None, "instant": False}
    rsps.add(responses.POST, BUILD_URL, json={"id": 7}, status=201,
             match=[matchers.json_params_matcher(body)])
    assert transport.request("villages.queue_building", "POST", BUILD_PATH, json_body=body) == {
        "id": 7
    }
    request = rsps.calls[0].request
    assert request.headers["Content-Type"] == "application/json"
    key = request.headers["Idempotency-Key"]
    assert len(key) == 32 and int(key, 16) >= 0


def test_each_logical_write_gets_its_own_key(
    rsps: responses.RequestsMock, transport: Transport
) -> None:
    ok(rsps, responses.POST, BUILD_URL)
    ok(rsps, responses.POST, BUILD_URL)
    transport.request("villages.queue_building", "POST", BUILD_PATH, json_body={"b": 1})
    transport.request("villages.queue_building", "POST", BUILD_PATH, json_body={"b": 1})
    keys = {call.request.headers["Idempotency-Key"] for call in rsps.calls}
    assert len(keys) == 2


def test_json_null_and_204_decode_to_none(
    rsps: responses.RequestsMock, transport: Transport
) -> None:
    rsps.add(responses.GET, BASE + "/v1/villages/at", body="null", content_type="application/json")
    rsps.add(responses.DELETE, BASE + "/v1/village/1/build_queue/1", status=204)
    assert transport.request("villages.at", "GET", "/v1/villages/at") is None
    assert transport.request("villages.cancel_building", "DELETE",
                             "/v1/village/1/build_queue/1") is None


def test_metrics_count_every_attempt_and_every_retry(
    rsps: responses.RequestsMock, sleeps: Sleeps
) -> None:
    metrics = Metrics()
    rsps.add(responses.GET, URL, status=503, json=error_json("backend_unavailable"))
    rsps.add(responses.GET, URL, body=requests.exceptions.ConnectionError("reset"))
    ok(rsps)
    ok(rsps, url=BASE + "/v1/player/1")
    with Transport(BASE, token=TOKEN, world_id="w1", retry=POLICY, sleep=sleeps,
                   metrics=metrics) as t:
        t.request("villages.get", "GET", PATH)
        t.request("players.get", "GET", "/v1/player/1")
    snap = metrics.snapshot()
    assert snap["total_requests"] == len(rsps.calls) == 4
    assert snap["retries"] == 2 == len(sleeps)
    assert snap["errors"] == 2
    assert snap["operations"]["villages.get"]["requests"] == 3
    assert snap["operations"]["villages.get"]["retries"] == 2
    assert snap["operations"]["players.get"] == {
        **snap["operations"]["players.get"], "requests": 1, "errors": 0, "retries": 0
    }


def test_sixteen_threads_share_one_transport_and_the_metrics_add_up() -> None:
    metrics = Metrics()
    threads, per_thread = 16, 20
    with responses.RequestsMock() as mock:  # one answer for everyone, repeated
        mock.add(responses.GET, URL, json={"id": 1})
        with Transport(BASE, token=TOKEN, world_id="w1", metrics=metrics, pool_size=16) as t:
            failures: list[BaseException] = []

            def work() -> None:
                try:
                    for _ in range(per_thread):
                        assert t.request("villages.get", "GET", PATH) == {"id": 1}
                except BaseException as exc:  # noqa: BLE001 - reported below
                    failures.append(exc)

            workers = [threading.Thread(target=work) for _ in range(threads)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
        assert failures == []
        assert metrics.snapshot()["total_requests"] == len(mock.calls) == threads * per_thread
        assert metrics.snapshot()["operations"]["villages.get"]["requests"] == threads * per_thread


# ---- 429 and Retry-After -------------------------------------------------------------------


def test_429_with_retry_after_seconds_then_200(
    rsps: responses.RequestsMock, transport: Transport, sleeps: Sleeps
) -> None:
    rsps.add(responses.GET, URL, status=429, json=error_json("rate_limited"),
             headers={"Retry-After": "3"})
    ok(rsps)
    assert transport.request("villages.get", "GET", PATH) == {"id": 1}
    assert sleeps == [3.0]
    assert len(rsps.calls) == 2


def test_429_with_retry_after_http_date_then_200(
    rsps: responses.RequestsMock, transport: Transport, sleeps: Sleeps,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(answers_module, "_utcnow", lambda: NOW)
    rsps.add(responses.GET, URL, status=429, json=error_json("rate_limited"),
             headers={"Retry-After": format_datetime(NOW + timedelta(seconds=7), usegmt=True)})
    rsps.add(responses.GET, URL, status=429, json=error_json("rate_limited"),
             headers={"Retry-After": format_datetime(NOW + timedelta(hours=1), usegmt=True)})
    ok(rsps)
    assert transport.request("villages.get", "GET", PATH) == {"id": 1}
    assert sleeps == [pytest.approx(7.0), 30.0]  # the date delta, then capped at 30 s


def test_retry_after_cap_is_configurable(
    rsps: responses.RequestsMock, sleeps: Sleeps
) -> None:
    rsps.add(responses.GET, URL, status=503, headers={"Retry-After": "50"},
             json=error_json("backend_unavailable"))
    ok(rsps)
    with Transport(BASE, token=TOKEN, world_id="w1", retry=POLICY, sleep=sleeps,
                   max_retry_after=5) as t:
        t.request("villages.get", "GET", PATH)
    assert sleeps == [5.0]


def test_503_honours_retry_after(
    rsps: responses.RequestsMock, transport: Transport, sleeps: Sleeps
) -> None:
    rsps.add(responses.GET, URL, status=503, headers={"Retry-After": "2"},
             json=error_json("backend_unavailable"))
    ok(rsps)
    transport.request("villages.get", "GET", PATH)
    assert sleeps == [2.0]


def test_429_exhausted_raises_rate_limited_with_retry_after(
    rsps: responses.RequestsMock, transport: Transport, sleeps: Sleeps
) -> None:
    for _ in range(POLICY.attempts):
        rsps.add(responses.GET, URL, status=429, json=error_json("rate_limited", "slow down"),
                 headers={"Retry-After": "2"})
    with pytest.raises(RateLimited) as caught:
        transport.request("villages.get", "GET", PATH)
    assert caught.value.retry_after == 2.0
    assert caught.value.details["attempts"] == POLICY.attempts
    assert len(rsps.calls) == POLICY.attempts
    assert sleeps == [2.0] * (POLICY.attempts - 1)


def test_a_retry_after_beyond_the_deadline_gives_up_at_once(
    rsps: responses.RequestsMock, sleeps: Sleeps
) -> None:
    rsps.add(responses.GET, URL, status=429, headers={"Retry-After": "25"},
             json=error_json("rate_limited"))
    policy = RetryPolicy(attempts=5, deadline_s=10.0)
    with Transport(BASE, token=TOKEN, world_id="w1", retry=policy, sleep=sleeps) as t:
        with pytest.raises(RateLimited) as caught:
            t.request("villages.get", "GET", PATH)
    assert caught.value.retry_after == 25.0  # what the server asked, uncapped
    assert sleeps == [] and len(rsps.calls) == 1


# ---- 5xx and network trouble -----------------------------------------------------------------


def test_503_503_200(
    rsps: responses.RequestsMock, transport: Transport, sleeps: Sleeps
) -> None:
    rsps.add(responses.GET, URL, status=503, json=error_json("backend_unavailable"))
    rsps.add(responses.GET, URL, status=503, json=error_json("backend_unavailable"))
    ok(rsps)
    assert transport.request("villages.get", "GET", PATH) == {"id": 1}
    assert len(rsps.calls) == 3
    # full jitter: retry n waits in [0, min(max, base * 2**(n-1))]
    assert len(sleeps) == 2
    assert 0.0 <= sleeps[0] <= 0.05 and 0.0 <= sleeps[1] <= 0.1


def test_read_timeout_on_a_post_is_retried_with_the_same_idempotency_key(
    rsps: responses.RequestsMock, transport: Transport
) -> None:
    body = {"target_village_id": 2, "troops": {"legionnaire": 5}, "attack_type": "raid"}
    rsps.add(responses.POST, BASE + "/v1/village/1/attack",
             body=requests.exceptions.ReadTimeout("read timed out"))
    rsps.add(responses.POST, BASE + "/v1/village/1/attack", status=503,
             json=error_json("backend_unavailable"))
    rsps.add(responses.POST, BASE + "/v1/village/1/attack", json={"id": 9}, status=201)
    result = transport.request("military.attack", "POST", "/v1/village/1/attack", json_body=body)
    assert result == {"id": 9}
    assert len(rsps.calls) == 3
    keys = [call.request.headers["Idempotency-Key"] for call in rsps.calls]
    assert len(set(keys)) == 1 and len(keys[0]) == 32
    assert {call.request.body for call in rsps.calls} == {json.dumps(body, separators=(",", ":"))
                                                          .encode()}


def test_connection_reset_then_200(
    rsps: responses.RequestsMock, transport: Transport, sleeps: Sleeps
) -> None:
    rsps.add(responses.GET, URL,
             body=requests.exceptions.ConnectionError("('Connection aborted.', "
                                                      "ConnectionResetError(104, 'reset'))"))
    ok(rsps)
    assert transport.request("villages.get", "GET", PATH) == {"id": 1}
    assert len(rsps.calls) == 2 and len(sleeps) == 1


def test_connection_reset_on_a_keyed_write_is_retried_with_its_key(
    rsps: responses.RequestsMock, transport: Transport
) -> None:
    rsps.add(responses.POST, BUILD_URL, body=requests.exceptions.ConnectionError("reset"))
    ok(rsps, responses.POST, BUILD_URL)
    transport.request("villages.queue_building", "POST", BUILD_PATH, json_body={"b": 1})
    assert len({c.request.headers["Idempotency-Key"] for c in rsps.calls}) == 1
    assert len(rsps.calls) == 2


# ---- 409 "idempotency key in progress": the first attempt is still running ------------------


def in_progress(rsps: responses.RequestsMock, retry_after: str | None = "1") -> None:
    rsps.add(responses.POST, BUILD_URL, status=409,
             json=error_json("conflict", "still being answered",
                             reason="idempotency_key_in_progress", idempotency_key="k"),
             headers={} if retry_after is None else {"Retry-After": retry_after})


def test_409_key_in_progress_is_retried_with_the_same_key_after_retry_after(
    rsps: responses.RequestsMock, sleeps: Sleeps
) -> None:
    # the first attempt's reply was lost; its retry arrives while the server still runs it
    rsps.add(responses.POST, BUILD_URL, body=requests.exceptions.ConnectionError("reset"))
    in_progress(rsps, "1")
    rsps.add(responses.POST, BUILD_URL, json={"id": 7}, status=201,
             headers={"Idempotent-Replayed": "true"})
    metrics = Metrics()
    with Transport(BASE, token=TOKEN, world_id="w1", retry=POLICY, sleep=sleeps,
                   metrics=metrics) as t:
        assert t.request("villages.queue_building", "POST", BUILD_PATH,
                         json_body={"b": 1}) == {"id": 7}
    assert len(rsps.calls) == 3
    assert len({c.request.headers["Idempotency-Key"] for c in rsps.calls}) == 1
    assert len(sleeps) == 2 and sleeps[1] == 1.0  # backoff after the reset, then Retry-After
    snap = metrics.snapshot()
    assert snap["retries"] == 2 and snap["total_requests"] == 3


def test_409_key_in_progress_honours_the_retry_after_cap_and_falls_back_to_backoff(
    rsps: responses.RequestsMock, sleeps: Sleeps
) -> None:
    in_progress(rsps, "50")
    in_progress(rsps, None)
    ok(rsps, responses.POST, BUILD_URL, status=201)
    with Transport(BASE, token=TOKEN, world_id="w1", retry=POLICY, sleep=sleeps,
                   max_retry_after=5) as t:
        t.request("villages.queue_building", "POST", BUILD_PATH, json_body={"b": 1})
    assert sleeps[0] == 5.0 and 0.0 <= sleeps[1] <= 0.1  # capped; then full jitter
    assert len(rsps.calls) == 3


def test_409_key_in_progress_is_bounded_like_other_retries(
    rsps: responses.RequestsMock, transport: Transport, sleeps: Sleeps
) -> None:
    for _ in range(POLICY.attempts):
        in_progress(rsps, "1")
    with pytest.raises(Conflict) as caught:
        transport.request("villages.queue_building", "POST", BUILD_PATH, json_body={"b": 1})
    assert type(caught.value) is Conflict
    assert caught.value.details["reason"] == "idempotency_key_in_progress"
    assert caught.value.details["attempts"] == POLICY.attempts
    assert len(rsps.calls) == POLICY.attempts and sleeps == [1.0] * (POLICY.attempts - 1)


def test_409_key_in_progress_past_the_deadline_is_not_waited_for(
    rsps: responses.RequestsMock, sleeps: Sleeps
) -> None:
    in_progress(rsps, "8")
    with Transport(BASE, token=TOKEN, world_id="w1", sleep=sleeps,
                   retry=RetryPolicy(attempts=5, deadline_s=5.0)) as t:
        with pytest.raises(Conflict):
            t.request("villages.queue_building", "POST", BUILD_PATH, json_body={"b": 1})
    assert sleeps == [] and len(rsps.calls) == 1


@pytest.mark.parametrize(
    "details",
    [
        {"reason": "idempotency_key_reused", "idempotency_key": "k"},  # same key, other body
        {"header": "X-World-Id", "given": "w2", "expected": "w1"},     # another world
        {},                                                            # a game conflict
    ],
)
def test_every_other_409_is_final(
    rsps: responses.RequestsMock, transport: Transport, sleeps: Sleeps, details: dict[str, Any]
) -> None:
    rsps.add(responses.POST, BUILD_URL, status=409, headers={"Retry-After": "1"},
             json=error_json("conflict", "no", **details))
    with pytest.raises(Conflict) as caught:
        transport.request("villages.queue_building", "POST", BUILD_PATH, json_body={"b": 1})
    assert len(rsps.calls) == 1 and sleeps == []
    assert "attempts" not in caught.value.details  # the server's error, untouched


def test_html_502_page_is_retried_then_exhausted_into_backend_unavailable(
    rsps: responses.RequestsMock, transport: Transport
) -> None:
    for _ in range(POLICY.attempts):
        rsps.add(responses.GET, URL, status=502, body=HTML_502, content_type="text/html")
    with pytest.raises(BackendUnavailable) as caught:
        transport.request("villages.get", "GET", PATH)
    error = caught.value
    assert len(rsps.calls) == POLICY.attempts
    assert "502 Bad Gateway" in str(error) and "HTTP 502" in str(error)
    assert error.details["attempts"] == POLICY.attempts
    assert error.details["last_status"] == 502
    assert len(error.details["body"]) <= transport_module.QUOTE_LIMIT + 1  # cut short
    assert isinstance(error.__cause__, BackendUnavailable)  # the last answer, as an error
    assert "502 Bad Gateway" in str(error.__cause__)


def test_retry_budget_exhausted_attaches_the_last_cause(
    rsps: responses.RequestsMock, transport: Transport, sleeps: Sleeps
) -> None:
    errors = [requests.exceptions.ConnectionError(f"reset #{i}") for i in range(POLICY.attempts)]
    for exc in errors:
        rsps.add(responses.GET, URL, body=exc)
    with pytest.raises(BackendUnavailable) as caught:
        transport.request("villages.get", "GET", PATH)
    assert caught.value.__cause__ is errors[-1]
    assert f"reset #{POLICY.attempts - 1}" in str(caught.value)
    assert caught.value.details == {
        "attempts": POLICY.attempts, "last_status": None, "cause": "ConnectionError"
    }
    assert len(rsps.calls) == POLICY.attempts and len(sleeps) == POLICY.attempts - 1


def test_read_timeouts_exhausted_name_the_timeout(
    rsps: responses.RequestsMock, transport: Transport
) -> None:
    for _ in range(POLICY.attempts):
        rsps.add(responses.GET, URL, body=requests.exceptions.ReadTimeout("read timed out"))
    with pytest.raises(BackendUnavailable, match="ReadTimeout") as caught:
        transport.request("villages.get", "GET", PATH)
    assert isinstance(caught.value.__cause__, requests.exceptions.ReadTimeout)


def test_500_is_not_retried(
    rsps: responses.RequestsMock, transport: Transport, sleeps: Sleeps
) -> None:
    rsps.add(responses.GET, URL, status=500, body="Internal Server Error",
             content_type="text/plain")
    with pytest.raises(BackendUnavailable, match="Internal Server Error"):
        transport.request("villages.get", "GET", PATH)
    assert len(rsps.calls) == 1 and sleeps == []


def test_a_500_with_a_v1_error_body_comes_back_as_its_class(
    rsps: responses.RequestsMock, transport: Transport
) -> None:
    rsps.add(responses.GET, URL, status=500, json=error_json("schema_mismatch", "old world"))
    with pytest.raises(SchemaMismatch, match="old world"):
        transport.request("villages.get", "GET", PATH)
    assert len(rsps.calls) == 1


def test_connect_failures_are_left_to_urllib3_on_the_transports_own_session(
    rsps: responses.RequestsMock, transport: Transport, sleeps: Sleeps
) -> None:
    # urllib3 already retried the connect phase below the adapter: no second layer on top.
    rsps.add(responses.GET, URL, body=requests.exceptions.ConnectTimeout("connect timed out"))
    with pytest.raises(BackendUnavailable, match="ConnectTimeout"):
        transport.request("villages.get", "GET", PATH)
    assert len(rsps.calls) == 1 and sleeps == []
    adapter = transport.session.get_adapter(URL)
    assert isinstance(adapter, requests.adapters.HTTPAdapter)
    retry = adapter.max_retries
    assert retry.connect == POLICY.attempts - 1
    assert retry.read is False and retry.status == 0 and retry.other == 0
    assert retry.redirect == 0 and retry.respect_retry_after_header is False


def test_on_a_callers_session_connect_failures_of_a_write_are_retried(
    rsps: responses.RequestsMock, sleeps: Sleeps
) -> None:
    rsps.add(responses.POST, BUILD_URL,
             body=requests.exceptions.ConnectTimeout("connect timed out"))
    ok(rsps, responses.POST, BUILD_URL)
    with requests.Session() as session:
        t = Transport(BASE, token=TOKEN, world_id="w1", session=session, retry=POLICY,
                      sleep=sleeps)
        t.request("villages.queue_building", "POST", BUILD_PATH, json_body={"b": 1})
    assert len(rsps.calls) == 2 and len(sleeps) == 1


def test_own_session_pool_is_sized() -> None:
    with Transport(BASE, token=None, world_id="w1", pool_size=32) as t:
        adapter = t.session.get_adapter(URL)
        assert isinstance(adapter, requests.adapters.HTTPAdapter)
        assert getattr(adapter, "_pool_connections") == 32
        assert getattr(adapter, "_pool_maxsize") == 32


# ---- answers that are not what they should be -------------------------------------------------


def test_truncated_json_on_200_is_a_travian_error_quoting_it(
    rsps: responses.RequestsMock, transport: Transport
) -> None:
    rsps.add(responses.GET, URL, body='{"id": 1, "name": "Ho', content_type="application/json")
    with pytest.raises(TravianError) as caught:
        transport.request("villages.get", "GET", PATH)
    assert not isinstance(caught.value, ValueError)  # never a bare JSONDecodeError
    assert '{"id": 1, "name": "Ho' in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert len(rsps.calls) == 1


def test_html_on_200_is_a_travian_error_quoting_it(
    rsps: responses.RequestsMock, transport: Transport
) -> None:
    rsps.add(responses.GET, URL, body="<html><body>Please log in</body></html>",
             content_type="text/html")
    with pytest.raises(TravianError, match="expected JSON.*text/html.*Please log in"):
        transport.request("villages.get", "GET", PATH)


def test_empty_200_is_a_travian_error(
    rsps: responses.RequestsMock, transport: Transport
) -> None:
    rsps.add(responses.GET, URL, body="", content_type="application/json")
    with pytest.raises(TravianError, match="empty answer"):
        transport.request("villages.get", "GET", PATH)


def test_empty_503_bodies_say_so(
    rsps: responses.RequestsMock, transport: Transport
) -> None:
    for _ in range(POLICY.attempts):
        rsps.add(responses.GET, URL, status=503, body="")
    with pytest.raises(BackendUnavailable, match="HTTP 503 with an empty answer"):
        transport.request("villages.get", "GET", PATH)


def test_a_long_answer_is_cut_short(
    rsps: responses.RequestsMock, transport: Transport
) -> None:
    rsps.add(responses.GET, URL, body="x" * 10_000, content_type="text/plain")
    with pytest.raises(TravianError) as caught:
        transport.request("villages.get", "GET", PATH)
    assert len(str(caught.value)) < 400
    assert caught.value.details["body"].endswith("…")


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    status=st.sampled_from([200, 201, 400, 404, 409, 422, 500, 501]),
    body=st.binary(max_size=300) | st.text(max_size=300).map(str.encode),
    content_type=st.sampled_from(["application/json", "text/html", "text/plain", ""]),
)
def test_whatever_comes_back_the_answer_is_a_value_or_a_travian_error(
    status: int, body: bytes, content_type: str
) -> None:
    with responses.RequestsMock() as mock:
        headers = {"Content-Type": content_type} if content_type else {}
        mock.add(responses.GET, URL, status=status, body=body, headers=headers)
        with Transport(BASE, token=None, world_id="w1", sleep=lambda s: None) as t:
            try:
                t.request("villages.get", "GET", PATH)
            except TravianError as exc:
                assert len(str(exc)) < 600
            # anything else (ValueError, JSONDecodeError, KeyError...) fails the test


# ---- the error table: mapped, never retried -------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (404, error_json("not_found", "no village 1"), NotFound),
        (403, error_json("forbidden", "not yours"), Forbidden),
        (401, error_json("forbidden", "bad token"), Forbidden),
        (401, error_json("unauthorized", "unknown API token"), Unauthorized),
        (401, "<html>Unauthorized</html>", Unauthorized),  # mapped by status
        (409, error_json("conflict", "same key, other body"), Conflict),
        (422, error_json("rule_violation", "queue full"), RuleViolation),
        (400, error_json("invalid_request", "unknown unit"), InvalidRequest),
        (404, "<html>Not Found</html>", NotFound),  # a proxy's page: mapped by status
    ],
)
def test_4xx_maps_to_its_class_with_no_retry(
    rsps: responses.RequestsMock, transport: Transport, sleeps: Sleeps,
    status: int, body: Any, expected: type[TravianError],
) -> None:
    if isinstance(body, str):
        rsps.add(responses.POST, BUILD_URL, status=status, body=body, content_type="text/html")
    else:
        rsps.add(responses.POST, BUILD_URL, status=status, json=body)
    with pytest.raises(expected) as caught:
        transport.request("villages.queue_building", "POST", BUILD_PATH, json_body={"b": 1})
    assert type(caught.value) is expected
    assert len(rsps.calls) == 1 and sleeps == []
    if isinstance(body, str):
        assert body.removeprefix("<html>").removesuffix("</html>") in str(caught.value)
    else:
        assert str(caught.value) == body["error"]["message"]


def test_422_insufficient_resources_crosses_the_wire_with_its_amounts(
    rsps: responses.RequestsMock, transport: Transport
) -> None:
    required, available = Resources(100, 80, 60, 20), Resources(10, 500, 60, 0)
    rsps.add(responses.POST, BUILD_URL, status=422, json=error_json(
        "insufficient_resources", "not enough", required=required.as_dict(),
        available=available.as_dict()))
    with pytest.raises(InsufficientResources) as caught:
        transport.request("villages.queue_building", "POST", BUILD_PATH, json_body={"b": 1})
    assert caught.value.required == required and caught.value.available == available
    assert len(rsps.calls) == 1


# ---- sessions, limiter, lifecycle -----------------------------------------------------------


class TrackingSession(requests.Session):
    closed = False

    def close(self) -> None:
        self.closed = True
        super().close()


def test_the_callers_session_is_used_and_never_closed(rsps: responses.RequestsMock) -> None:
    ok(rsps)
    session = TrackingSession()
    session.headers["X-Caller"] = "mine"
    with Transport(BASE, token=TOKEN, world_id="w1", session=session) as t:
        assert t.session is session
        t.request("villages.get", "GET", PATH)
    assert rsps.calls[0].request.headers["X-Caller"] == "mine"
    assert rsps.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert not session.closed
    assert "Authorization" not in session.headers  # the caller's session is not altered
    session.close()


def test_close_closes_the_session_it_made(monkeypatch: pytest.MonkeyPatch) -> None:
    t = Transport(BASE, token=None, world_id="w1")
    closed: list[bool] = []
    monkeypatch.setattr(t.session, "close", lambda: closed.append(True))
    t.close()
    t.close()  # idempotent
    assert closed == [True]
    with pytest.raises(ConfigurationError, match="closed"):
        t.request("villages.get", "GET", PATH)


class CountingLimiter:
    def __init__(self) -> None:
        self.timeouts: list[float | None] = []

    def acquire(self, timeout: float | None = None) -> None:
        self.timeouts.append(timeout)


def test_the_rate_limiter_is_acquired_before_every_attempt(
    rsps: responses.RequestsMock, sleeps: Sleeps
) -> None:
    limiter = CountingLimiter()
    rsps.add(responses.GET, URL, status=503, json=error_json("backend_unavailable"))
    rsps.add(responses.GET, URL, status=429, json=error_json("rate_limited"))
    ok(rsps)
    with Transport(BASE, token=None, world_id="w1", retry=POLICY, sleep=sleeps,
                   rate_limiter=limiter) as t:
        t.request("villages.get", "GET", PATH)
    assert len(limiter.timeouts) == 3 == len(rsps.calls)
    assert all(x is not None and 0 < x <= POLICY.deadline_s for x in limiter.timeouts)


def test_a_limiter_that_refuses_stops_the_call_before_sending(
    rsps: responses.RequestsMock,
) -> None:
    class Refusing:
        def acquire(self, timeout: float | None = None) -> None:
            raise RateLimited("client quota", retry_after=4.0)

    with Transport(BASE, token=None, world_id="w1", rate_limiter=Refusing()) as t:
        with pytest.raises(RateLimited) as caught:
            t.request("villages.get", "GET", PATH)
    assert caught.value.retry_after == 4.0 and len(rsps.calls) == 0


def test_bad_input_is_refused_before_anything_is_sent(
    rsps: responses.RequestsMock, transport: Transport
) -> None:
    with pytest.raises(InvalidRequest, match="not JSON"):
        transport.request("villages.queue_building", "POST", BUILD_PATH, json_body={"b": {1, 2}})
    with pytest.raises(InvalidRequest, match="not JSON"):
        transport.request("villages.queue_building", "POST", BUILD_PATH,
                          json_body={"b": float("nan")})
    with pytest.raises(InvalidRequest, match="method"):
        transport.request("villages.get", "TRACE", PATH)
    with pytest.raises(InvalidRequest):
        transport.request("villages.get", "GET", "http://elsewhere.test/v1/village/1")
    assert len(rsps.calls) == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_url": "api.test"},
        {"base_url": "ftp://api.test"},
        {"timeout": 5},
        {"timeout": (0, 5)},
        {"timeout": (1, float("inf"))},
        {"pool_size": 0},
        {"world_id": ""},
        {"max_retry_after": -1},
        {"retry": "twice"},
    ],
)
def test_bad_configuration(kwargs: dict[str, Any]) -> None:
    args: dict[str, Any] = {"base_url": BASE, "token": None, "world_id": "w1", **kwargs}
    base_url = args.pop("base_url")
    with pytest.raises(ConfigurationError):
        Transport(base_url, **args)


def test_no_secret_in_repr_or_logs(
    rsps: responses.RequestsMock, sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    rsps.add(responses.GET, "http://user:pw-secret@api.test/v1/village/1", status=503,
             json=error_json("backend_unavailable"))
    ok(rsps, url="http://user:pw-secret@api.test/v1/village/1")
    caplog.set_level(logging.DEBUG, logger="travian_repo")
    with Transport("http://user:pw-secret@api.test/", token=TOKEN, world_id="w1",
                   retry=POLICY, sleep=sleeps) as t:
        assert "pw-secret" not in repr(t) and TOKEN not in repr(t)
        t.request("villages.get", "GET", PATH)
    assert "retrying" in caplog.text
    assert TOKEN not in caplog.text and "pw-secret" not in caplog.text


# ---- Retry-After parsing -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 5 ", 5.0),
        ("1.5", 1.5),
        ("0", 0.0),
        (format_datetime(NOW + timedelta(seconds=42), usegmt=True), 42.0),
        ("Thu, 01 Jan 2026 12:00:10 GMT", 10.0),
        ("Thursday, 01-Jan-26 12:00:20 GMT", 20.0),  # RFC 850, obsolete but allowed
        (format_datetime(NOW - timedelta(minutes=5), usegmt=True), 0.0),  # already past
        ("soon", None),
        ("-3", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=lambda: NOW) == (
        None if expected is None else pytest.approx(expected)
    )

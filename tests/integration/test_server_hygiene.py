"""The server's contract hygiene on a real loopback server: 401 versus 403, answer headers,
ASCII path ids, the per-token rate limit (local and shared through Redis) and the purge of
old idempotency keys under a moved clock."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any, Iterator

import pytest
import requests
import sqlalchemy as sa

import travian_repo as tr
from travian_repo.sandbox import Clock
from travian_repo.sandbox.idempotency import IdempotencyStore
from travian_repo.sandbox.server import ServerThread, app_world, create_app
from travian_repo.sql import schema
from travian_repo.wire.routes import PREFIX

from tests.conftest import START, MakeWorld, PrivateRedis

TIMEOUT = 10
UNBOUNDED = (1_000_000, 60_000_000)  # a client limit that never waits


class Server:
    """A ServerThread over its own app (options given), with player tokens."""

    def __init__(self, database_url: str, tokens: dict[int, str], **options: Any) -> None:
        self.app = create_app(database_url, **options)
        self.thread = ServerThread(self.app).start()
        self.url = self.thread.url
        self.tokens = tokens

    def headers(self, player: int | None = 1, **extra: str) -> dict[str, str]:
        headers = {"X-World-Id": "default", **extra}
        if player is not None:
            headers["Authorization"] = f"Bearer {self.tokens[player]}"
        return headers

    def get(self, path: str, player: int | None = 1, **extra: str) -> requests.Response:
        return requests.get(self.url + PREFIX + path, headers=self.headers(player, **extra),
                            timeout=TIMEOUT)

    def post(self, path: str, body: Any, player: int | None = 1, **extra: str) -> requests.Response:
        return requests.post(self.url + PREFIX + path, json=body,
                             headers=self.headers(player, **extra), timeout=TIMEOUT)

    def close(self) -> None:
        self.thread.stop()
        app_world(self.app).close()


@pytest.fixture
def start(make_world: MakeWorld, database_url: str, clock: Clock) -> Iterator[Any]:
    summary = make_world()
    servers: list[Server] = []

    def make(**options: Any) -> Server:
        options.setdefault("clock", clock)
        server = Server(database_url, summary.tokens, **options)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


def rows(database_url: str, table: sa.Table) -> list[Any]:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.select(table))]
    finally:
        engine.dispose()


def json_error(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code, error
    return dict(error)


# ---- 401 versus 403 -----------------------------------------------------------------------

def test_no_or_unknown_token_is_401_and_not_yours_is_403(start: Any) -> None:
    server = start()
    for response in (server.get("/village/1/troops", player=None),
                     server.get("/me", player=None),
                     server.post("/village/1/build", {"building": "woodcutter"}, player=None),
                     server.get("/village/1/troops", player=None,
                                Authorization="Bearer not-a-token")):
        json_error(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"].startswith('Bearer realm="travian_repo"')
    not_yours = server.get("/village/2/troops")
    json_error(not_yours, 403, "forbidden")
    assert "WWW-Authenticate" not in not_yours.headers


def test_the_http_client_raises_unauthorized_a_forbidden(start: Any) -> None:
    server = start()
    with pytest.raises(tr.Unauthorized) as caught:  # connect asks the server who it is
        tr.connect(api_url=server.url, token="not-a-token")
    assert isinstance(caught.value, tr.Forbidden)  # `except Forbidden` still catches it
    with tr.connect(api_url=server.url, token=server.tokens[1]) as world:
        with pytest.raises(tr.Forbidden) as refused:
            world.military.troops(2)
        assert type(refused.value) is tr.Forbidden


def test_acting_as_nobody_is_unauthorized_on_the_sql_side_too(world: tr.World) -> None:
    with tr.connect(world.database.engine, clock=world.database.clock) as nobody:
        with pytest.raises(tr.Unauthorized):
            nobody.military.troops(1)


# ---- headers --------------------------------------------------------------------------------

def test_private_answers_are_no_store_and_nosniff(start: Any) -> None:
    server = start()
    answers = [
        server.get("/me"),
        server.get("/village/1"),
        server.get("/village/1", player=None),  # public face, still per caller
        server.post("/player/1/messages/send", {"to": 2, "subject": "s", "body": "b"}),
        server.get("/village/999"),
        server.get("/village/1/troops", player=None),
        server.post("/village/1/build", {"building": "\udbff"}),  # JSON of a lone surrogate
        requests.get(server.url + PREFIX + "/no/such/route", timeout=TIMEOUT),
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 200, 404, 401, 400, 404]
    for answer in answers:
        assert answer.headers["Cache-Control"] == "no-store", answer.request.url
        assert answer.headers["X-Content-Type-Options"] == "nosniff", answer.request.url
    spec = requests.get(server.url + PREFIX + "/openapi.yaml", timeout=TIMEOUT)
    assert spec.headers["X-Content-Type-Options"] == "nosniff"
    assert "no-store" not in spec.headers.get("Cache-Control", "")  # public and static


# ---- ids in paths -----------------------------------------------------------------------------

@pytest.mark.parametrize("digit", ["\uff11", "\u0661", "\U0001d7cf", "\u0967"])
def test_unicode_digits_in_a_path_id_act_on_nothing(start: Any, database_url: str,
                                                    digit: str) -> None:
    server = start()
    before = rows(database_url, schema.build_queue)
    json_error(server.get(f"/village/{digit}"), 404, "not_found")
    json_error(server.post(f"/village/{digit}/build", {"building": "woodcutter"}), 404,
               "not_found")
    assert rows(database_url, schema.build_queue) == before
    # the ASCII id still works
    assert server.get("/village/1").json()["id"] == 1


# ---- the rate limit ------------------------------------------------------------------------

def test_a_token_over_its_rate_gets_429_with_retry_after(start: Any) -> None:
    server = start(rate_limit=2, rate_burst=3)
    answers = [server.get("/me") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    refused = server.get("/me")
    error = json_error(refused, 429, "rate_limited")
    assert int(refused.headers["Retry-After"]) >= 1
    assert 0 < error["details"]["retry_after"] <= 0.5 + 0.05
    assert refused.headers["Cache-Control"] == "no-store"
    # another token has a bucket of its own; the refused one comes back after the wait
    assert server.get("/me", player=2).status_code == 200
    time.sleep(error["details"]["retry_after"] + 0.05)
    assert server.get("/me").status_code == 200
    # requests without a token count per address
    anonymous = [server.get("/village/1", player=None).status_code for _ in range(4)]
    assert anonymous == [200, 200, 200, 429]


@pytest.mark.slow  # hundreds of requests
def test_no_rate_limit_when_turned_off(start: Any) -> None:
    server = start(rate_limit=None)
    assert {server.get("/me").status_code for _ in range(50)} == {200}


@pytest.mark.slow  # it waits out Retry-After twice
def test_a_throttled_client_gets_through_or_a_typed_rate_limited(start: Any) -> None:
    server = start(rate_limit=2, rate_burst=2)
    with tr.connect(api_url=server.url, token=server.tokens[1], rate_limit=UNBOUNDED,
                    cache=False) as world:
        started = time.monotonic()
        ids = [world.players.get(1).id for _ in range(6)]  # 2 at once, then 429s and waits
        elapsed = time.monotonic() - started
        assert ids == [1] * 6
        assert world.metrics["retries"] >= 1
        assert elapsed >= 1.0  # it waited, as Retry-After said
    # One try, against a server that refills a token every 5 s: the burst of 2 is spent by
    # connecting (GET /v1/me) and one call, and the next is refused, however slow the
    # machine (at 2 per second a slow pair of calls would have earned the third its token).
    slow = start(rate_limit=0.2, rate_burst=2)
    one_try = tr.RetryPolicy(attempts=1)
    with tr.connect(api_url=slow.url, token=slow.tokens[1], rate_limit=UNBOUNDED,
                    retry=one_try, cache=False) as world:  # connecting asks GET /v1/me
        world.players.get(1)
        with pytest.raises(tr.RateLimited) as caught:
            world.players.get(1)
    assert caught.value.retry_after is not None and 0 < caught.value.retry_after <= 5


@pytest.mark.redis
def test_the_rate_limit_is_shared_through_redis(start: Any, private_redis: PrivateRedis) -> None:
    a = start(rate_limit=1, rate_burst=4, redis_url=private_redis.url)
    b = start(rate_limit=1, rate_burst=4, redis_url=private_redis.url)
    statuses = [server.get("/me").status_code for server in (a, b, a, b, a, b)]
    assert statuses == [200, 200, 200, 200, 429, 429]
    # without Redis each server counts on its own
    c = start(rate_limit=1, rate_burst=4)
    assert c.get("/me").status_code == 200


# ---- idempotency keys are purged after the retention window --------------------------------

def test_old_idempotency_keys_are_purged_on_later_writes(
    start: Any, database_url: str, clock: Clock
) -> None:
    server = start(idempotency_retention=timedelta(hours=24))
    message = {"to": 2, "subject": "s", "body": "b"}

    def send(key: str) -> int:
        response = server.post("/player/1/messages/send", message, **{"Idempotency-Key": key})
        assert response.status_code == 200, response.text
        return int(response.json()["id"])

    def keys() -> set[str]:
        return {row[1] for row in rows(database_url, schema.idempotency_keys)}

    first = send("k1")
    clock.advance(23 * 3600)
    assert send("k2") != first
    assert send("k1") == first  # within the window: replayed
    assert keys() == {"k1", "k2"}
    clock.advance(2 * 3600)  # k1 is 25 h old, k2 2 h
    send("k3")
    assert keys() == {"k2", "k3"}
    assert send("k1") != first  # forgotten: acts again
    assert len(rows(database_url, schema.messages)) == 4


def test_a_purge_is_bounded_and_catches_up(world: tr.World) -> None:
    engine = world.database.engine
    t = schema.idempotency_keys
    with engine.begin() as conn:
        conn.execute(t.insert(), [
            dict(player_id=1, key=f"old{i}", request_hash="x" * 64, status_code=201,
                 response_body="{}", created_at=START) for i in range(5)])
        conn.execute(t.insert().values(player_id=1, key="new", request_hash="x" * 64,
                                       status_code=201, response_body="{}",
                                       created_at=START + timedelta(hours=30)))
    store = IdempotencyStore(timedelta(hours=24), purge_interval=timedelta(minutes=1), batch=2)
    now = START + timedelta(hours=30)
    # a full batch leaves the next purge due at once; a short one waits the interval
    assert [store.purge_due(engine, now) for _ in range(4)] == [2, 2, 1, 0]
    assert store.purge_due(engine, now + timedelta(seconds=61)) == 0
    with engine.connect() as conn:
        assert [r.key for r in conn.execute(sa.select(t.c.key))] == ["new"]
    assert IdempotencyStore(None).purge_due(engine, now + timedelta(days=999)) == 0

"""Database faults through a TCP proxy in front of PostgreSQL (tests/pgproxy.py).

Reset (mid-write, before COMMIT arrives, after COMMIT was run), refuse, stall and blip. After
each: every error is a ``BackendUnavailable`` (never a SQLAlchemy exception), no acknowledged
write is lost and none is doubled (counted on the database directly, not through the proxy),
a lost COMMIT answer is resolved by the outcome key, a stall answers within the configured
bound, and the next call succeeds by itself once the fault clears. Through the server: 503
with ``Retry-After``, never 500.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any, Callable, Iterator

import pytest
import requests
import sqlalchemy as sa
from sqlalchemy.engine import make_url

import travian_repo as tr
from travian_repo.sandbox import Clock
from travian_repo.sandbox.server import ServerThread, create_app
from travian_repo.sql.database import REPLY_GRACE_S, make_engine
from tests.conftest import MakeWorld
from tests.pgproxy import PgProxy, once

pytestmark = pytest.mark.parametrize("backend", ["postgresql"])

CONNECT_TIMEOUT = 2
STATEMENT_TIMEOUT = 1
BOUNDS: dict[str, Any] = dict(connect_timeout=CONNECT_TIMEOUT, statement_timeout=STATEMENT_TIMEOUT,
                              pool_timeout=2)
# What one call may wait on a stalled database: the reply deadline of the statement it was
# in, then (the pool's pre-ping having dropped the connection) one fresh connect attempt.
STALL_BOUND_S = STATEMENT_TIMEOUT + REPLY_GRACE_S + CONNECT_TIMEOUT + 1.5
RETRY = tr.RetryPolicy(attempts=3, deadline_s=2.0, base_delay_s=0.05, max_delay_s=0.2)
TRAIN = {"legionnaire": 1}  # player 1 (romans) has barracks in the developed world


def is_commit(sql: str) -> bool:
    return sql.strip().upper() == "COMMIT"


def is_training_insert(sql: str) -> bool:
    # Plain (alone, or as a CTE of the lines) or its prepared statement run; not the
    # definitions a connection's first round trip carries.
    parts = [part.strip().upper() for part in sql.split(";")]
    return any(part.startswith("EXECUTE TR_TRAINING_ORDER(")
               or ("INSERT INTO TRAINING_ORDERS" in part and not part.startswith("PREPARE"))
               for part in parts)


class Direct:
    """The database as it is, read around the proxy."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")

    def scalar(self, sql: str) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(sa.text(sql)).scalar_one()

    def orders(self) -> int:
        return int(self.scalar("SELECT count(*) FROM training_orders"))

    def builds(self) -> int:
        return int(self.scalar("SELECT count(*) FROM build_queue"))

    def messages(self, subject: str) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.text("SELECT body FROM messages WHERE subject = :s"),
                                     {"s": subject}).scalars())

    def wood(self) -> int:
        return int(self.scalar("SELECT wood FROM village_resources WHERE village_id = 1"))


@pytest.fixture
def proxy() -> Iterator[PgProxy]:
    faulty = PgProxy()
    yield faulty
    faulty.close()


@pytest.fixture
def direct(database_url: str) -> Iterator[Direct]:
    db = Direct(database_url)
    yield db
    db.engine.dispose()


@pytest.fixture
def faulty(make_world: MakeWorld, database_url: str, clock: Clock, proxy: PgProxy) -> Iterator[tr.World]:
    """Player 1's world on PostgreSQL, through the proxy, with short bounds."""
    make_world()
    with tr.connect(proxy.url(database_url), player_id=1, clock=clock, retry=RETRY,
                    pool_size=4, **BOUNDS) as world:
        yield world


def typed(call: Callable[[], Any]) -> tr.BackendUnavailable:
    """Run ``call``; it must fail with BackendUnavailable (anything else fails the test)."""
    try:
        call()
    except tr.BackendUnavailable as error:
        return error
    except Exception as error:  # noqa: BLE001 - the point: name what leaked
        pytest.fail(f"{type(error).__module__}.{type(error).__name__} leaked: {error}")
    pytest.fail("the call succeeded through the fault")


def bounded(call: Callable[[], Any], limit: float) -> tuple[Any, float]:
    """Run ``call`` in a thread; fail if it is still waiting after ``limit`` seconds."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as error:  # noqa: BLE001 - handed back to the test
            outcome.append(error)

    started = time.monotonic()
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(limit + 10)
    elapsed = time.monotonic() - started
    assert outcome, f"the call was still waiting after {elapsed:.1f} s (bound {limit:.1f} s)"
    return outcome[0], elapsed


# ---- reset ---------------------------------------------------------------------------------

def test_a_drop_mid_write_is_typed_and_applies_nothing(
    faulty: tr.World, proxy: PgProxy, direct: Direct
) -> None:
    orders, wood = direct.orders(), direct.wood()
    # the library runs a dropped first step once more on a fresh connection: drop both
    proxy.on_query = once(is_training_insert, "reset", times=2)

    def write() -> None:
        with faulty.unit_of_work() as uow:
            uow.military.train(1, TRAIN)

    error = typed(write)
    assert error.details.get("outcome") == "not_applied", error.details
    assert "safe to run it again" in error.message
    assert (direct.orders(), direct.wood()) == (orders, wood)
    faulty.military.train(1, TRAIN)  # no reconnect by the caller
    assert direct.orders() == orders + 1


def test_a_first_step_dropped_once_is_run_again_once(
    faulty: tr.World, proxy: PgProxy, direct: Direct
) -> None:
    orders = direct.orders()
    proxy.on_query = once(is_training_insert, "reset")
    faulty.military.train(1, TRAIN)
    assert direct.orders() == orders + 1
    assert sum(map(is_training_insert, proxy.queries)) == 2  # dropped, then run again


def test_a_unit_of_work_that_lost_its_transaction_cannot_commit_half(
    faulty: tr.World, proxy: PgProxy, direct: Direct
) -> None:
    orders, builds = direct.orders(), direct.builds()
    proxy.on_query = once(is_training_insert, "reset")
    with faulty.unit_of_work() as uow:
        uow.villages.queue_building(1, "woodcutter")
        first = typed(lambda: uow.military.train(1, TRAIN))
        assert first.details.get("outcome") == "not_applied"
        # a caller that goes on writing in the same unit must not commit half of it
        again = typed(lambda: uow.military.train(1, TRAIN))
        assert "dropped in the middle of the unit of work's transaction" in again.message
        ending = typed(uow.commit)
        assert ending.details.get("outcome") == "not_applied"
    assert (direct.orders(), direct.builds()) == (orders, builds)


def test_a_lost_commit_answer_is_resolved_as_committed(
    faulty: tr.World, proxy: PgProxy, direct: Direct
) -> None:
    orders = direct.orders()
    proxy.on_query = once(is_commit, "lose_reply")
    order = faulty.military.train(1, TRAIN)  # the COMMIT ran; its answer never came
    assert order.village_id == 1 and order.id > 0
    assert direct.orders() == orders + 1
    assert proxy.on_query("COMMIT") is None, "the fault never fired"


def test_a_commit_that_never_arrived_is_reported_not_applied(
    faulty: tr.World, proxy: PgProxy, direct: Direct
) -> None:
    orders, wood = direct.orders(), direct.wood()
    proxy.on_query = once(is_commit, "reset")
    error = typed(lambda: faulty.military.train(1, TRAIN))
    assert error.details.get("outcome") == "not_applied", error.details
    assert "did not commit" in error.message
    assert (direct.orders(), direct.wood()) == (orders, wood)
    faulty.military.train(1, TRAIN)  # the retry the message allows: one order in all
    assert direct.orders() == orders + 1


def test_writes_through_a_flaky_connection_land_exactly_once(
    faulty: tr.World, proxy: PgProxy, direct: Direct
) -> None:
    """Random resets and lost answers (COMMIT included); the caller retries only what the
    library says was not applied. Every acknowledged write is there, once."""
    rng = random.Random(8)
    lock = threading.Lock()

    def flaky(sql: str) -> str | None:
        with lock:
            roll = rng.random()
        if roll < 0.08:
            return "reset"
        if roll < 0.16 and is_commit(sql):
            return "lose_reply"
        return None

    acknowledged: list[str] = []
    unknown = faults = 0
    proxy.on_query = flaky
    for n in range(40):
        body = f"write {n}"
        for _attempt in range(6):
            try:
                faulty.diplomacy.send_message(1, 2, "flaky", body)
                acknowledged.append(body)
                break
            except tr.BackendUnavailable as error:
                faults += 1
                if error.details.get("outcome") != "not_applied":
                    unknown += 1  # not safe to retry: never written twice
                    break
    proxy.on_query = None
    assert faults > 0, "the proxy never broke anything"
    assert unknown == 0
    assert sorted(direct.messages("flaky")) == sorted(acknowledged)


# ---- refuse, blip, stall -------------------------------------------------------------------

def test_a_refusing_database_is_typed_and_recovered_from(
    faulty: tr.World, proxy: PgProxy, direct: Direct
) -> None:
    orders = direct.orders()
    faulty.villages.get(1)
    proxy.refuse()
    started = time.monotonic()
    typed(lambda: faulty.villages.get(1))
    typed(lambda: faulty.military.train(1, TRAIN))
    assert time.monotonic() - started < STALL_BOUND_S
    proxy.restore()
    assert faulty.villages.get(1).id == 1  # the next call works, no reconnect by the caller
    faulty.military.train(1, TRAIN)
    assert direct.orders() == orders + 1


def test_a_blip_is_recovered_from_by_the_next_call(
    faulty: tr.World, proxy: PgProxy, direct: Direct
) -> None:
    orders = direct.orders()
    barrier = threading.Barrier(3)

    def hold() -> None:  # three pooled connections, all about to die
        with faulty.unit_of_work() as uow:
            uow.villages.get(1)
            barrier.wait(10)

    workers = [threading.Thread(target=hold) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(10)
    # a unit of work whose connection dies before its COMMIT
    with pytest.raises(tr.BackendUnavailable) as caught:
        with faulty.unit_of_work() as uow:
            uow.military.train(1, TRAIN)
            proxy.blip()
    assert caught.value.details.get("outcome") == "not_applied", caught.value.message
    assert direct.orders() == orders
    proxy.blip()  # and every pooled connection dies too
    for _ in range(4):
        assert faulty.villages.get(1).id == 1
    faulty.military.train(1, TRAIN)
    assert direct.orders() == orders + 1


@pytest.mark.slow
def test_a_stalled_database_answers_within_the_bound(
    faulty: tr.World, proxy: PgProxy, direct: Direct
) -> None:
    orders = direct.orders()
    faulty.villages.get(1)
    proxy.stall()
    for call in (lambda: faulty.villages.get(1), lambda: faulty.military.train(1, TRAIN)):
        result, elapsed = bounded(call, STALL_BOUND_S)
        assert isinstance(result, tr.BackendUnavailable), f"{type(result).__name__}: {result}"
        assert elapsed < STALL_BOUND_S, f"{elapsed:.1f} s, bound {STALL_BOUND_S:.1f} s"
    proxy.unstall()
    assert faulty.villages.get(1).id == 1
    faulty.military.train(1, TRAIN)
    assert direct.orders() == orders + 1


@pytest.mark.slow
def test_a_stall_during_commit_says_the_outcome_is_unknown(
    faulty: tr.World, proxy: PgProxy, direct: Direct
) -> None:
    orders = direct.orders()
    def stall_at_commit(sql: str) -> str | None:
        if is_commit(sql):
            proxy.stall()
        return None

    proxy.on_query = stall_at_commit

    def write() -> None:
        with faulty.unit_of_work() as uow:
            uow.military.train(1, TRAIN)

    limit = STALL_BOUND_S + RETRY.deadline_s + CONNECT_TIMEOUT + 2
    result, elapsed = bounded(write, limit)
    assert isinstance(result, tr.BackendUnavailable), f"{type(result).__name__}: {result}"
    assert result.details.get("outcome") == "unknown", result.message
    assert elapsed < limit
    proxy.on_query = None
    proxy.unstall()
    assert direct.orders() in (orders, orders + 1)  # at most once, whatever happened
    assert faulty.villages.get(1).id == 1


# ---- through the server --------------------------------------------------------------------

def test_the_server_answers_503_with_retry_after_never_500(
    make_world: MakeWorld, database_url: str, clock: Clock, proxy: PgProxy, direct: Direct
) -> None:
    summary = make_world()
    engine = make_engine(proxy.url(database_url), pool_size=4, **BOUNDS)
    app = create_app(engine, clock=clock)
    headers = {"Authorization": f"Bearer {summary.tokens[1]}", "X-World-Id": summary.world_id}
    try:
        with ServerThread(app) as server:
            url = f"{server.url}/v1/village/1/train"

            def post(key: str | None = None) -> requests.Response:
                extra = {"Idempotency-Key": key} if key else {}
                return requests.post(url, json={"troops": TRAIN}, headers={**headers, **extra},
                                     timeout=STALL_BOUND_S + 10)

            orders = direct.orders()
            answers = []
            for fault in ("reset", "lose_reply"):
                proxy.on_query = once(is_training_insert if fault == "reset" else is_commit, fault)
                answers.append(post(f"key-{fault}"))
            proxy.refuse()
            answers.append(post())
            proxy.restore()
            bad = [(a.status_code, a.text[:200]) for a in answers if a.status_code >= 500
                   and (a.status_code != 503 or a.headers.get("Retry-After") is None
                        or a.json()["error"]["code"] != "backend_unavailable")]
            assert not bad, bad
            assert answers[0].status_code == 503  # nothing applied: the client may retry
            assert answers[1].status_code == 200  # the lost COMMIT answer was resolved
            assert answers[2].status_code == 503
            assert direct.orders() == orders + 1
            retried = post("key-reset")  # the 503'd key runs again, once
            assert retried.status_code == 200
            replay = post("key-lose_reply")
            assert replay.status_code == 200 and replay.headers.get("Idempotent-Replayed") == "true"
            assert direct.orders() == orders + 2
    finally:
        app.extensions["travian_repo"].world.close()
        engine.dispose()


# ---- the options ---------------------------------------------------------------------------

def test_the_bounds_reach_the_server_and_keep_the_urls_own_options(
    make_world: MakeWorld, database_url: str, clock: Clock
) -> None:
    make_world()
    with tr.connect(database_url, player_id=1, clock=clock, statement_timeout=1.5,
                    connect_timeout=3, pool_pre_ping=0) as world:
        with world.database.engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "1500ms"
            assert conn.exec_driver_sql("SHOW search_path").scalar().startswith("travian_test_")
        assert world.villages.get(1).id == 1  # the world's tables: the URL's search_path holds
    with tr.connect(database_url, player_id=1, statement_timeout=None) as world:
        with world.database.engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "0"
            # Short statements: compiling them costs more than it saves.
            assert conn.exec_driver_sql("SHOW jit").scalar() == "off"
    chosen = make_url(database_url)
    chosen = chosen.update_query_dict(
        {"options": f"{chosen.query.get('options', '')} -c jit=on".strip()})
    with tr.connect(chosen.render_as_string(hide_password=False), player_id=1) as world:
        with world.database.engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW jit").scalar() == "on"  # the URL's choice wins
            assert conn.exec_driver_sql("SHOW search_path").scalar().startswith("travian_test_")
    for bad in ({"statement_timeout": -1}, {"connect_timeout": "5"}, {"pool_pre_ping": "yes"},
                {"pool_timeout": float("nan")}):
        with pytest.raises(tr.ConfigurationError):
            tr.connect(database_url, **bad)
    engine = make_engine(database_url)
    try:
        with pytest.raises(tr.ConfigurationError, match="engine built from a URL"):
            tr.connect(engine, statement_timeout=5)
    finally:
        engine.dispose()


def test_outcome_keys_of_confirmed_commits_do_not_pile_up(
    make_world: MakeWorld, database_url: str, clock: Clock, direct: Direct
) -> None:
    make_world()
    with tr.connect(database_url, player_id=1, clock=clock) as world:
        for n in range(70):
            world.diplomacy.send_message(1, 2, "keys", f"message {n}")
    assert len(direct.messages("keys")) == 70
    left = direct.scalar("SELECT count(*) FROM idempotency_keys WHERE player_id = 0")
    assert left == 70 - 64  # two batches of 32 deleted; the rest wait for the next batch

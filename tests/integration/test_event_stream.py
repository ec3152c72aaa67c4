"""Events over HTTP: the server's event stream (``GET /v1/player/{id}/events``, Server-Sent
Events) and ``world.events()`` reading it. A real server on loopback, real databases, real
Redis; connections cut by the loopback proxy of the server-fault tests."""

from __future__ import annotations

import gc
import threading
import time
import uuid
from typing import Any, Iterator

import pytest
import redis
import requests

import travian_repo as tr
from tests.conftest import START, MakeWorld
from tests.integration.test_events import Collector
from tests.integration.test_server_faults import TcpProxy
from travian_repo.domain import events as kinds
from travian_repo.domain.errors import BackendUnavailable, Forbidden, Unauthorized
from travian_repo.domain.values import Event
from travian_repo.http.events import HttpEventSubscription
from travian_repo.http.sse import SseParser
from travian_repo.infra.event_log import MemoryEventLog, RedisEventLog
from travian_repo.sandbox import Clock
from travian_repo.sandbox.server import ServerThread, create_app
from travian_repo.sandbox.server.events_stream import app_streams

# Real-time streams: heartbeats, cut connections and reconnects take seconds each.
pytestmark = pytest.mark.slow

FAST = tr.RetryPolicy(attempts=3, deadline_s=3.0, base_delay_s=0.01, max_delay_s=0.1)


@pytest.fixture(params=["memory", "redis"])
def log_redis(request: pytest.FixtureRequest) -> str | None:
    """The server's event log: its in-memory ring, or Redis streams."""
    if request.param == "memory":
        return None
    return str(request.getfixturevalue("redis_url"))


class Served:
    def __init__(self, server: ServerThread, tokens: dict[int, str], world_id: str) -> None:
        self.server = server
        self.tokens = tokens
        self.world_id = world_id
        self.url = server.url

    def connect(self, player_id: int, url: str | None = None, **options: Any) -> tr.World:
        options.setdefault("retry", FAST)
        return tr.connect(api_url=url or self.url, token=self.tokens[player_id],
                          world_id=self.world_id, prefer="http", **options)

    def headers(self, player_id: int | None, **extra: str) -> dict[str, str]:
        headers = {"X-World-Id": self.world_id, **extra}
        if player_id is not None:
            headers["Authorization"] = f"Bearer {self.tokens[player_id]}"
        return headers

    def advance(self, player_id: int, seconds: float) -> None:
        answer = requests.post(self.url + "/v1/sandbox/advance", json={"seconds": seconds},
                               headers=self.headers(player_id), timeout=30)
        assert answer.status_code == 200, answer.text


def serve(make_world: MakeWorld, database_url: str, redis_url: str | None,
          **app_options: Any) -> Iterator[Served]:
    world_id = f"test-sse-{uuid.uuid4().hex[:10]}"
    summary = make_world(world_id=world_id, players=4)
    app_options.setdefault("heartbeat_s", 0.5)
    threads = app_options.pop("threads", 8)
    app = create_app(database_url, clock=Clock(START), manual_clock=True, redis_url=redis_url,
                     **app_options)
    with ServerThread(app, threads=threads) as server:
        yield Served(server, summary.tokens, world_id)
    from travian_repo.sandbox.server import app_world

    app_world(app).close()


@pytest.fixture
def served(make_world: MakeWorld, database_url: str, log_redis: str | None) -> Iterator[Served]:
    yield from serve(make_world, database_url, log_redis)


def village_of(world: tr.World, player_id: int) -> int:
    return world.villages.list_by_player(player_id)[0].id


def message_ids(events: list[Event]) -> list[int]:
    return [e.data["message_id"] for e in events if e.kind == kinds.MESSAGE_RECEIVED]


# ---- a player listening through the server ---------------------------------------------------

def test_a_player_hears_a_message_and_a_raid_landing_in_order(served: Served) -> None:
    with served.connect(1) as attacker, served.connect(2) as defender:
        listening = defender.events(2, timeout=3.0)
        assert isinstance(listening, HttpEventSubscription)
        heard = Collector(listening)
        source, target = village_of(attacker, 1), village_of(attacker, 2)
        attacker.military.attack(source, target, {"legionnaire": 5}, kind="raid")
        attacker.diplomacy.send_message(1, 2, "hello", "a raid is on its way")
        served.advance(1, 6 * 3600)  # the raid lands (the engine runs on the server)
        seen = heard.finish(30)
    kinds_seen = [e.kind for e in seen]
    assert kinds_seen[:2] == [kinds.ATTACK_INCOMING, kinds.MESSAGE_RECEIVED]
    assert kinds.REPORT_CREATED in kinds_seen[2:]
    assert all(e.player_id == 2 for e in seen)
    assert seen[0].data["kind"] == "raid" and seen[0].data["to_village_id"] == target
    assert seen[1].data["from_player_id"] == 1
    report = next(e for e in seen if e.kind == kinds.REPORT_CREATED)
    assert report.data["village_id"] == target


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_cut_connection_resumes_with_nothing_lost_or_repeated(
    make_world: MakeWorld, database_url: str, log_redis: str | None,
) -> None:
    for served in serve(make_world, database_url, log_redis):
        host, port = served.url.removeprefix("http://").split(":")
        proxy = TcpProxy((host, int(port)))
        try:
            with served.connect(1) as sender, served.connect(2, url=proxy.url) as listener:
                subscription = listener.events(2, timeout=5.0)
                assert isinstance(subscription, HttpEventSubscription)
                heard = Collector(subscription)
                sender.diplomacy.send_message(1, 2, "m", "1")
                sender.diplomacy.send_message(1, 2, "m", "2")
                assert len(heard.wait_for(2)) == 2
                proxy.refuse()  # the stream's connection is reset; no new one gets through
                for n in (3, 4, 5):
                    sender.diplomacy.send_message(1, 2, "m", str(n))
                time.sleep(0.3)
                proxy.restore()
                sender.diplomacy.send_message(1, 2, "m", "6")
                assert len(heard.wait_for(6)) >= 6
                proxy.blip()  # cut mid-stream again, with nothing pending
                sender.diplomacy.send_message(1, 2, "m", "7")
                seen = heard.finish(30)
                assert subscription.reconnects >= 2
                assert subscription.lost == 0
        finally:
            proxy.close()
        assert len(message_ids(seen)) == 7
        assert message_ids(seen) == sorted(set(message_ids(seen)))  # in order, once each
        assert [e.kind for e in seen] == [kinds.MESSAGE_RECEIVED] * 7


# ---- the checks of every route ---------------------------------------------------------------

@pytest.mark.parametrize("backend", ["sqlite"])
def test_only_the_player_itself_may_stream_its_events(served: Served) -> None:
    url = served.url + "/v1/player/2/events"
    other = requests.get(url, headers=served.headers(1), stream=True, timeout=5)
    assert other.status_code == 403 and other.json()["error"]["code"] == "forbidden"
    nobody = requests.get(url, headers=served.headers(None), stream=True, timeout=5)
    assert nobody.status_code == 401 and "Bearer" in nobody.headers["WWW-Authenticate"]
    wrong_world = requests.get(url, headers={**served.headers(2), "X-World-Id": "elsewhere"},
                               stream=True, timeout=5)
    assert wrong_world.status_code == 409
    bad_id = requests.get(url, headers=served.headers(2, **{"Last-Event-ID": "x y"}),
                          stream=True, timeout=5)
    assert bad_id.status_code == 400 and bad_id.json()["error"]["code"] == "invalid_request"
    with served.connect(1) as world:
        with pytest.raises(Forbidden):
            world.events(2)  # refused before asking
        transport = world.backend.transport  # type: ignore[attr-defined]
        with pytest.raises(Forbidden):  # and the server refuses too
            HttpEventSubscription(transport, 2, timeout=1.0)
    with tr.connect(api_url=served.url, world_id=served.world_id, prefer="http",
                    retry=FAST) as anonymous:
        with pytest.raises(Unauthorized):
            anonymous.events(2)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_heartbeats_keep_an_idle_stream_talking(served: Served) -> None:
    answer = requests.get(served.url + "/v1/player/2/events", headers=served.headers(2),
                          stream=True, timeout=5)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/event-stream")
    assert answer.headers["Cache-Control"] == "no-store"
    parser = SseParser()
    started = time.monotonic()
    opening = []
    for chunk in answer.iter_content(chunk_size=None):
        opening += parser.feed(chunk)
        if parser.comments >= 3:
            break
    answer.close()
    assert 0.9 < time.monotonic() - started < 5  # three heartbeats 0.5 s apart
    assert opening and opening[0].id is not None and opening[0].data == ""
    assert parser.retry_ms is not None
    with served.connect(2) as world:
        subscription = world.events(2, timeout=1.6)
        assert list(subscription) == []
        assert subscription.heartbeats >= 2  # type: ignore[attr-defined]


# ---- bounds and threads ------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_stream_bound_and_other_routes_answer_while_it_is_reached(
    make_world: MakeWorld, database_url: str, log_redis: str | None,
) -> None:
    # more streams than worker threads: streams have threads of their own
    for served in serve(make_world, database_url, log_redis, max_streams=3, threads=1):
        streams = app_streams(served.server.app)
        assert streams is not None and streams.max_streams == 3
        worlds = [served.connect(p) for p in (1, 2, 3)]
        try:
            subscriptions = [w.events(p, timeout=None) for w, p in zip(worlds, (1, 2, 3))]
            assert streams.open == 3
            over = requests.get(served.url + "/v1/player/4/events", headers=served.headers(4),
                                stream=True, timeout=5)
            assert over.status_code == 503
            assert over.headers["Retry-After"] == "2"
            assert over.json()["error"]["details"]["reason"] == "too_many_streams"
            with served.connect(4) as fourth:
                with pytest.raises(BackendUnavailable):
                    fourth.events(4)

            answered: list[float] = []

            def read() -> None:
                started = time.monotonic()
                worlds[0].villages.get(village_of(worlds[0], 1))
                answered.append(time.monotonic() - started)

            readers = [threading.Thread(target=read) for _ in range(6)]
            for thread in readers:
                thread.start()
            for thread in readers:
                thread.join(20)
            assert len(answered) == 6 and max(answered) < 5
            # a stream in use still delivers while the routes are busy
            worlds[0].diplomacy.send_message(1, 2, "still", "here")
            assert [e.kind for e in _next(subscriptions[1])] == [kinds.MESSAGE_RECEIVED]

            subscriptions[0].close()  # type: ignore[attr-defined]
            deadline = time.monotonic() + 5
            while streams.open > 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert streams.open == 2  # the server let go of the closed stream's slot
            with served.connect(4) as fourth:
                with fourth.events(4, timeout=0.2) as now_there:  # type: ignore[attr-defined]
                    assert list(now_there) == []
            for subscription in subscriptions[1:]:
                subscription.close()  # type: ignore[attr-defined]
        finally:
            for world in worlds:
                world.close()


def _next(subscription: Iterator[Event], timeout: float = 10.0) -> list[Event]:
    box: list[Event] = []
    thread = threading.Thread(target=lambda: box.append(next(subscription)), daemon=True)
    thread.start()
    thread.join(timeout)
    return box


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_closed_subscription_ends_its_thread_and_its_stream_at_once(served: Served) -> None:
    streams = app_streams(served.server.app)
    assert streams is not None
    with served.connect(2) as world:
        subscription = world.events(2)
        assert isinstance(subscription, HttpEventSubscription)
        waiting = Collector(subscription)
        assert streams.open == 1
        subscription.close()
        assert waiting.done.wait(2.0)  # the blocked iteration ends
        assert not subscription._thread.is_alive() or _joined(subscription._thread)
        deadline = time.monotonic() + 3
        while streams.open and time.monotonic() < deadline:
            time.sleep(0.05)
        assert streams.open == 0
        dropped = world.events(2)  # never closed, just forgotten
        reader = dropped._thread  # type: ignore[attr-defined]
        assert streams.open == 1
        del dropped
        gc.collect()
        assert _joined(reader)
        deadline = time.monotonic() + 3
        while streams.open and time.monotonic() < deadline:
            time.sleep(0.05)
        assert streams.open == 0


def _joined(thread: threading.Thread) -> bool:
    thread.join(2.0)
    return not thread.is_alive()


# ---- retention ----------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_reader_behind_the_retention_is_told_and_goes_on_with_the_oldest(
    make_world: MakeWorld, database_url: str,
) -> None:
    for served in serve(make_world, database_url, None, event_retention=3):
        host, port = served.url.removeprefix("http://").split(":")
        proxy = TcpProxy((host, int(port)))
        try:
            with served.connect(1) as sender, served.connect(2, url=proxy.url) as listener:
                subscription = listener.events(2, timeout=4.0)
                heard = Collector(subscription)
                sender.diplomacy.send_message(1, 2, "m", "1")
                assert len(heard.wait_for(1)) == 1
                proxy.refuse()
                for n in range(2, 8):  # six while away; the ring keeps three
                    sender.diplomacy.send_message(1, 2, "m", str(n))
                proxy.restore()
                seen = heard.finish(30)
        finally:
            proxy.close()
        assert [e.kind for e in seen] == [kinds.MESSAGE_RECEIVED, kinds.EVENTS_LOST] + [
            kinds.MESSAGE_RECEIVED] * 3
        first = message_ids(seen)[0]
        assert message_ids(seen)[1:] == [first + 4, first + 5, first + 6]
        assert seen[1].data["last_event_id"]
        assert subscription.lost == 1  # type: ignore[attr-defined]
        # an id of another server life is lost too, and the stream goes on
        answer = requests.get(served.url + "/v1/player/2/events", stream=True, timeout=5,
                              headers=served.headers(2, **{"Last-Event-ID": "feedbeef-12"}))
        parser, messages = SseParser(), []
        for chunk in answer.iter_content(chunk_size=None):
            messages += parser.feed(chunk)
            if len([m for m in messages if m.data]) >= 4:
                break
        answer.close()
        assert [m.event for m in messages if m.data] == [kinds.EVENTS_LOST] + [
            kinds.MESSAGE_RECEIVED] * 3
        # nothing to go on with: the notice itself moves the reader's id on
        answer = requests.get(served.url + "/v1/player/3/events", stream=True, timeout=5,
                              headers=served.headers(3, **{"Last-Event-ID": "feedbeef-12"}))
        parser = SseParser()
        notice = []
        for chunk in answer.iter_content(chunk_size=None):
            notice += [m for m in parser.feed(chunk) if m.data]
            if notice:
                break
        answer.close()
        assert notice[0].event == kinds.EVENTS_LOST
        assert notice[0].id not in (None, "feedbeef-12")


def test_the_memory_log_keeps_a_bounded_ring_per_player() -> None:
    log = MemoryEventLog(size=2)
    start = log.position(7)
    for n in range(4):
        log.append([_event(7, n), _event(8, n)])
    found = log.read(7, start, 0)
    assert found.lost and [e.data["n"] for _, e in found.entries] == [2, 3]
    again = log.read(7, found.cursor, 0.05)
    assert not again.lost and again.entries == []
    assert log.read(7, found.entries[0][0], 0).entries == found.entries[1:]
    foreign = log.read(9, "feedbeef-3", 0)  # another log's id, nothing since
    assert foreign.lost and foreign.entries == []
    assert log.read(9, foreign.cursor, 0).lost is False


@pytest.mark.redis
def test_the_redis_log_is_trimmed_and_says_when_a_reader_fell_behind(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    log = RedisEventLog(client, f"test-sse-{uuid.uuid4().hex[:10]}", size=3, ttl_s=60)
    try:
        start = log.position(7)
        assert start == "0-0"
        log.append([_event(7, 0)])
        first = log.read(7, start, 0.1)
        assert not first.lost and [e.data["n"] for _, e in first.entries] == [0]
        log.append([_event(7, n) for n in range(1, 400)])
        assert client.xlen(log.key(7)) < 400  # MAXLEN ~ trims whole nodes
        behind = log.read(7, first.cursor, 0.1)
        assert behind.lost and behind.entries[0][1].data["n"] > 1
        fresh = log.read(7, log.position(7), 0.1)
        assert not fresh.lost and fresh.entries == []
        assert 0 < client.ttl(log.key(7)) <= 60
    finally:
        client.delete(log.key(7))
        log.close()
        client.close()


def _event(player_id: int, n: int) -> Event:
    return Event(kinds.MESSAGE_RECEIVED, player_id, START, {"n": n})


# ---- Redis: what any process commits is in the stream -------------------------------------------

@pytest.mark.redis
@pytest.mark.parametrize("backend", ["sqlite"])
def test_with_redis_the_stream_carries_what_other_processes_commit(
    make_world: MakeWorld, database_url: str, redis_url: str,
) -> None:
    for served in serve(make_world, database_url, redis_url):
        with served.connect(2) as listener, tr.connect(
                database_url, player_id=1, redis_url=redis_url, clock=Clock(START)) as direct:
            heard = Collector(listener.events(2, timeout=2.0))
            direct.diplomacy.send_message(1, 2, "from", "a SQL writer beside the server")
            assert message_ids(heard.finish(20)) != []


@pytest.mark.parametrize("backend", ["sqlite"])
def test_an_auto_world_hears_the_servers_stream_too(
    make_world: MakeWorld, database_url: str,
) -> None:
    for served in serve(make_world, database_url, None):
        with tr.connect(database_url, served.url, token=served.tokens[2], retry=FAST) as auto:
            assert auto.prefer == "auto"
            subscription = auto.events(2, timeout=2.0)
            assert isinstance(subscription, HttpEventSubscription)
            heard = Collector(subscription)
            with served.connect(1) as sender:
                sender.diplomacy.send_message(1, 2, "to", "an auto world")
            assert [e.kind for e in heard.finish(20)] == [kinds.MESSAGE_RECEIVED]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_streams_may_hold_at_most_half_of_the_connections(
    make_world: MakeWorld, database_url: str, caplog: pytest.LogCaptureFixture,
) -> None:
    summary = make_world(players=2)
    app = create_app(database_url, max_streams=8, heartbeat_s=0.5)
    try:
        with ServerThread(app, connection_limit=10) as server:
            streams = app_streams(app)
            assert streams is not None and streams.max_streams == 5
            assert "max_streams 8 lowered to 5" in caplog.text
            headers = {"Authorization": f"Bearer {summary.tokens[1]}",
                       "X-World-Id": summary.world_id}
            opened = [requests.get(server.url + "/v1/player/1/events", headers=headers,
                                   stream=True, timeout=5) for _ in range(6)]
            assert [r.status_code for r in opened] == [200] * 5 + [503]
            assert requests.get(server.url + "/v1/player/1", headers=headers,
                                timeout=5).status_code == 200
            for answer in opened:
                answer.close()
    finally:
        from travian_repo.sandbox.server import app_world

        app_world(app).close()

"""The LIBRARY's HTTP client (``tr.connect(api_url=..., token=...)``) against the real local
server on a loopback port, on SQLite and PostgreSQL:

- lost replies: a TCP proxy between the client and the server lets a write reach the server,
  waits for the server's answer, then drops the client's connection without forwarding it
  (a reset or a plain close). The client must retry by itself with the same
  ``Idempotency-Key``, get the stored answer replayed, and the write must exist once;
- a retry that arrives while the first attempt is still running gets ``409`` "in progress",
  waits ``Retry-After`` and then gets the stored answer;
- 16 threads sharing one client keep the client rate limit, and the metrics add up to the
  requests the server saw;
- bad input is refused with ``InvalidRequest`` before anything is sent, where the client
  can tell; the server refuses the rest with the same class.

``test_server.py`` drives the server with raw ``requests``; this file drives the client.
"""

from __future__ import annotations

import bisect
import collections
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import pytest
import sqlalchemy as sa

import travian_repo as tr
from travian_repo.domain.values import BuildOrder, Message, Movement, Troops
from travian_repo.sandbox import Clock
from travian_repo.sandbox.server import ServerThread, app_world, create_app
from travian_repo.sql import schema

from tests.conftest import MakeWorld

TIMEOUT = 10.0
# Tiny waits: a lost reply is retried at once (the server has already answered it).
FAST = tr.RetryPolicy(attempts=4, deadline_s=15.0, base_delay_s=0.001, max_delay_s=0.01)


# ---- the server, with a log of every request it received -------------------------------------

@dataclass
class ServerLog:
    """What the server received: (monotonic time, method, path) per request, in order."""

    entries: list[tuple[float, str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def hook(self) -> None:  # a Flask before_request hook
        from flask import request

        stamp = time.monotonic()
        with self.lock:
            self.entries.append((stamp, request.method, request.path))

    def __len__(self) -> int:
        with self.lock:
            return len(self.entries)

    def times(self) -> list[float]:
        with self.lock:
            return sorted(t for t, _, _ in self.entries)


@dataclass
class Served:
    url: str
    tokens: dict[int, str]
    log: ServerLog
    app: Any
    engine: sa.Engine

    def count(self, table: sa.Table) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())

    def rows(self, table: sa.Table) -> list[Any]:
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.select(table).order_by(table.c.id))]


@pytest.fixture
def served(make_world: MakeWorld, database_url: str, clock: Clock) -> Iterator[Served]:
    summary = make_world()
    app = create_app(database_url, clock=clock)
    log = ServerLog()
    app.before_request(log.hook)
    engine = sa.create_engine(database_url)
    try:
        # 16 server threads: 16 client threads never queue behind each other at the server
        with ServerThread(app, threads=16) as server:
            yield Served(server.url, summary.tokens, log, app, engine)
    finally:
        engine.dispose()
        app_world(app).close()  # ServerThread closes only the apps it made itself


# ---- a TCP proxy that loses replies ---------------------------------------------------------

@dataclass
class Exchange:
    """One request that went through the proxy, and what became of its reply."""

    method: str
    path: str
    key: str | None
    attempt: int  # how many earlier requests carried the same Idempotency-Key
    action: str | None  # None: reply forwarded; "reset", "close" or "early": reply lost
    status: int | None = None  # the server's answer (read even when it is not forwarded)
    replayed: bool = False  # the answer carried Idempotent-Replayed: true


Fault = Callable[[Exchange], "str | None"]


class FaultProxy:
    """A loopback HTTP/1.1 proxy with keep-alive, one upstream connection per client one.

    ``fault(exchange)`` decides, per request, what happens to the reply:

    - ``None``: forwarded to the client;
    - ``"reset"``: the server's whole answer is read (so the server has committed), then the
      client's connection is reset (RST) without it;
    - ``"close"``: the same, but the client's connection is closed cleanly (FIN);
    - ``"early"``: the client's connection is reset as soon as the request is forwarded,
      before the server has answered (the retry may race the original).
    """

    def __init__(self, upstream_url: str, fault: Fault | None = None) -> None:
        host, port = upstream_url.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.fault: Fault = fault or (lambda exchange: None)
        self.exchanges: list[Exchange] = []
        self._keys: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._handlers: list[threading.Thread] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True, name="fault-proxy")
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except (socket.timeout, OSError):
                continue
            handler = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            with self._lock:
                self._open.add(conn)
                self._handlers.append(handler)
            handler.start()

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            while True:
                request = read_http_message(client)
                if not request:
                    return  # the client closed its (idle) connection
                method, path, headers = parse_head(request)
                key = headers.get("idempotency-key")
                with self._lock:
                    attempt = self._keys[key] if key else 0
                    if key:
                        self._keys[key] += 1
                    exchange = Exchange(method, path, key, attempt, None)
                    self.exchanges.append(exchange)
                exchange.action = self.fault(exchange)
                if upstream is None:
                    upstream = socket.create_connection(self.upstream, timeout=TIMEOUT)
                    with self._lock:
                        self._open.add(upstream)
                upstream.sendall(request)
                if exchange.action == "early":
                    reset(client)
                    note_answer(exchange, read_http_message(upstream))
                    return
                answer = read_http_message(upstream)
                note_answer(exchange, answer)
                if not answer:
                    reset(client)
                    return
                if exchange.action == "reset":
                    reset(client)
                    return
                if exchange.action == "close":
                    client.shutdown(socket.SHUT_RDWR)
                    return
                client.sendall(answer)
                if parse_head(answer)[2].get("connection", "").lower() == "close":
                    return
        except OSError:
            return
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    sock.close()
                    with self._lock:
                        self._open.discard(sock)

    # -- what went through --

    def by_key(self) -> dict[str, list[Exchange]]:
        with self._lock:
            grouped: dict[str, list[Exchange]] = collections.defaultdict(list)
            for exchange in self.exchanges:
                if exchange.key:
                    grouped[exchange.key].append(exchange)
            return dict(grouped)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._listener.close()
        with self._lock:
            sockets, handlers = list(self._open), list(self._handlers)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for handler in handlers:
            handler.join(TIMEOUT)


def reset(sock: socket.socket) -> None:
    """Close with a TCP reset, as a dropped connection would."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def read_http_message(sock: socket.socket) -> bytes:
    """One HTTP/1.1 message with a Content-Length body (what requests and waitress send);
    ``b""`` when the peer closed before sending anything."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return b"" if not data else data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    headers = parse_head(data)[2]
    assert "chunked" not in headers.get("transfer-encoding", ""), "chunked bodies not handled"
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def parse_head(message: bytes) -> tuple[str, str, dict[str, str]]:
    """(method or status, path or reason, lower-cased headers) of a request or an answer."""
    head = message.partition(b"\r\n\r\n")[0].decode("latin-1")
    first, *lines = head.split("\r\n")
    parts = first.split(" ", 2)
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return parts[0], parts[1] if len(parts) > 1 else "", headers


def note_answer(exchange: Exchange, answer: bytes) -> None:
    if answer:
        _, status, headers = parse_head(answer)
        exchange.status = int(status)
        exchange.replayed = headers.get("idempotent-replayed") == "true"


def drop_first_attempt(action: str = "reset", *, only: Callable[[Exchange], bool] | None = None
                       ) -> Fault:
    """Lose the reply to the first attempt of every keyed write (or of those ``only`` picks)."""

    def fault(exchange: Exchange) -> str | None:
        if exchange.key and exchange.attempt == 0 and (only is None or only(exchange)):
            return action
        return None

    return fault


@pytest.fixture
def proxy(served: Served) -> Iterator[FaultProxy]:
    lossy = FaultProxy(served.url)
    yield lossy
    lossy.close()


def client(url: str, token: str, **options: Any) -> tr.World:
    options.setdefault("retry", FAST)
    options.setdefault("timeout", (2.0, TIMEOUT))
    return tr.connect(api_url=url, token=token, **options)


# ---- 1. lost replies ------------------------------------------------------------------------

@pytest.mark.parametrize("action", ["reset", "close"])
def test_a_lost_reply_is_retried_by_the_client_and_acts_once(
    served: Served, proxy: FaultProxy, action: str
) -> None:
    proxy.fault = drop_first_attempt(action)
    with client(proxy.url, served.tokens[1]) as world:
        order = world.villages.queue_building(1, "woodcutter")
        movement = world.military.attack(1, 2, {"legionnaire": 3})
        message = world.diplomacy.send_message(1, 2, "lost", "and found")
        # what the client got back is what the server stored
        assert isinstance(order, BuildOrder) and order.building == "woodcutter"
        assert isinstance(movement, Movement) and movement.troops == Troops(legionnaire=3)
        assert isinstance(message, Message) and message.subject == "lost"
        assert world.villages.build_queue(1) == [order]
        assert world.military.outgoing(1) == [movement]
        metrics = world.metrics

    # exactly one of each, checked on the database itself
    assert served.count(schema.build_queue) == 1
    assert served.count(schema.movements) == 1
    assert served.count(schema.messages) == 1
    assert served.count(schema.idempotency_keys) == 3

    # each write went twice with one key; the first reply was lost, the second replayed
    writes = proxy.by_key()
    assert len(writes) == 3
    for exchanges in writes.values():
        assert [e.action for e in exchanges] == [action, None]
        assert [e.status for e in exchanges] == [200, 200]
        assert [e.replayed for e in exchanges] == [False, True]
    assert metrics["retries"] == 3
    for op in ("villages.queue_building", "military.attack", "diplomacy.send_message"):
        assert metrics["operations"][op]["retries"] == 1
        assert metrics["operations"][op]["requests"] == 2
    # the proxy passed everything it received, and the server received it all
    assert len(proxy.exchanges) == len(served.log) == metrics["total_requests"]


@pytest.mark.slow  # waits for a slow first attempt
def test_a_retry_that_finds_the_first_attempt_still_running_waits_and_gets_its_answer(
    served: Served, proxy: FaultProxy
) -> None:
    """The reply is lost *before* the server answers, and the server is slow: the client's
    retry gets 409 "idempotency_key_in_progress" with Retry-After, waits, and gets the
    first attempt's stored answer."""
    service = served.app.extensions["travian_repo"]
    enter = service.writes.in_flight.enter
    slowed: set[str] = set()

    def slow_enter(player_id: int, key: str) -> bool:
        entered = enter(player_id, key)
        if entered and key not in slowed:  # the first attempt holds its key a while
            slowed.add(key)
            time.sleep(0.3)
        return entered

    service.writes.in_flight.enter = slow_enter
    proxy.fault = drop_first_attempt("early")
    with client(proxy.url, served.tokens[1]) as world:
        message = world.diplomacy.send_message(1, 2, "slow", "but once")
        metrics = world.metrics
    assert message.subject == "slow"
    assert served.count(schema.messages) == 1
    [exchanges] = proxy.by_key().values()
    statuses = [e.status for e in exchanges]
    assert statuses[0] == 200 and statuses[-1] == 200 and exchanges[-1].replayed
    assert 409 in statuses[1:-1]  # at least one "in progress" in between, retried
    assert metrics["operations"]["diplomacy.send_message"]["retries"] == len(exchanges) - 1


@pytest.mark.slow  # two hundred retried writes
def test_two_hundred_lost_replies_in_a_row_leave_no_duplicate(
    served: Served, proxy: FaultProxy
) -> None:
    started = time.monotonic()
    # alternate a reset and a clean close; every write loses its first reply
    actions = iter(["reset", "close"] * 200)
    proxy.fault = lambda e: next(actions) if e.key and e.attempt == 0 else None
    ids: list[int] = []
    with client(proxy.url, served.tokens[1], rate_limit=(1000, 100_000)) as world:
        for i in range(200):
            ids.append(world.diplomacy.send_message(1, 2, f"n{i}", "once").id)
        metrics = world.metrics

    rows = served.rows(schema.messages)
    assert len(rows) == 200
    assert sorted(ids) == [row[0] for row in rows] and len(set(ids)) == 200
    subjects = sorted(row[3] for row in rows)
    assert subjects == sorted(f"n{i}" for i in range(200))

    writes = proxy.by_key()
    assert len(writes) == 200
    assert all([e.replayed for e in exchanges] == [False, True] for exchanges in writes.values())
    sends = metrics["operations"]["diplomacy.send_message"]
    # every attempt is a request; each lost reply is an attempt in error, then one retry
    assert (sends["requests"], sends["retries"], sends["errors"]) == (400, 200, 200)
    assert time.monotonic() - started < 30


# ---- 2. one client, 16 threads: the rate limit and the metrics --------------------------------

def max_in_one_second(times: list[float], window: float = 1.0) -> int:
    """The most requests any window [t, t + window) holds (t running over the request times)."""
    return max((bisect.bisect_left(times, t + window) - i for i, t in enumerate(times)), default=0)


# The server sees arrival times: sends inside one second may arrive up to the network's
# jitter apart. Counting over 0.95 s absorbs 50 ms of jitter on a loaded machine.
ARRIVAL_WINDOW = 0.95


@pytest.mark.slow  # sixteen threads under a rate limit
def test_sixteen_threads_sharing_one_client_keep_the_rate_limit_and_the_metrics_add_up(
    served: Served,
) -> None:
    per_second = 20
    reads: list[tuple[str, Callable[[tr.World], Any]]] = [
        ("villages.get", lambda w: w.villages.get(1)),
        ("villages.list_by_player", lambda w: w.villages.list_by_player(1)),
        ("military.troops", lambda w: w.military.troops(1)),
        ("players.get", lambda w: w.players.get(2)),
        ("diplomacy.messages", lambda w: w.diplomacy.messages(1)),
        ("villages.build_queue", lambda w: w.villages.build_queue(1)),
    ]
    calls: collections.Counter[str] = collections.Counter()
    failures: list[BaseException] = []
    lock = threading.Lock()
    stop = threading.Event()

    with client(served.url, served.tokens[1], rate_limit=(per_second, 5000),
                pool_size=16) as world:
        def worker(n: int) -> None:
            i = n
            while not stop.is_set():
                name, read = reads[i % len(reads)]
                i += 1
                try:
                    read(world)
                except BaseException as exc:  # noqa: BLE001 - reported below
                    with lock:
                        failures.append(exc)
                    return
                with lock:
                    calls[name] += 1

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
        for t in threads:
            t.start()
        time.sleep(2.5)
        stop.set()
        for t in threads:
            t.join(TIMEOUT)
        assert not any(t.is_alive() for t in threads)
        metrics = world.metrics

    assert failures == []
    times = served.log.times()
    # connect() asked /v1/world (which world) and /v1/me once; the rest came from the threads
    assert len(times) == sum(calls.values()) + 2
    assert len(times) > 2 * per_second, "the threads never pushed past one bucket"
    busiest = max_in_one_second(times, ARRIVAL_WINDOW)
    assert busiest <= per_second + per_second, (busiest, len(times))

    assert metrics["total_requests"] == len(times)
    assert metrics["errors"] == 0 and metrics["retries"] == 0
    ops = metrics["operations"]
    assert sum(op["requests"] for op in ops.values()) == metrics["total_requests"]
    assert ops.pop("session.me")["requests"] == 1
    assert ops.pop("world.settings")["requests"] == 1
    assert {name: op["requests"] for name, op in ops.items()} == dict(calls)


def test_the_window_counter_itself() -> None:
    assert max_in_one_second([]) == 0
    assert max_in_one_second([0.0, 0.5, 0.999, 1.0, 1.5]) == 3
    assert max_in_one_second([0.0] * 5 + [2.0]) == 5


# ---- 3. bad input: refused before sending, or by the server with the same class ---------------

CLIENT_REFUSES: list[tuple[str, Callable[[tr.World], Any]]] = [
    ("villages.get('1')", lambda w: w.villages.get("1")),
    ("villages.get(0)", lambda w: w.villages.get(0)),
    ("villages.get(True)", lambda w: w.villages.get(True)),
    ("military.train negative", lambda w: w.military.train(1, {"legionnaire": -1})),
    ("military.train empty", lambda w: w.military.train(1, {})),
    ("send_message 1 MB body", lambda w: w.diplomacy.send_message(1, 2, "s", "x" * 1_000_001)),
    ("send_message empty subject", lambda w: w.diplomacy.send_message(1, 2, " ", "x")),
    ("send_resources gold", lambda w: w.trade.send_resources(1, 2, {"gold": 5})),
    ("attack bad kind", lambda w: w.military.attack(1, 2, {"legionnaire": 1}, kind="nuke")),
    ("create_offer bad resource", lambda w: w.trade.create_offer(1, "gems", 5, "wood", 5)),
    # building names are in the rules the client ships with
    ("unknown building", lambda w: w.villages.queue_building(1, "spaceport")),
]

SERVER_REFUSES: list[tuple[str, Callable[[tr.World], Any]]] = [
    ("unknown unit", lambda w: w.military.train(1, {"dragon": 5})),
    ("unknown unit in an attack", lambda w: w.military.attack(1, 2, {"dragon": 1})),
    ("x out of the map", lambda w: w.villages.at(500, 0)),
    ("y out of the map", lambda w: w.villages.at(0, -201)),
]


def test_bad_input_the_client_can_tell_never_leaves_the_process(served: Served) -> None:
    with client(served.url, served.tokens[1]) as world:
        before, sent = len(served.log), world.metrics["total_requests"]
        for label, call in CLIENT_REFUSES:
            with pytest.raises(tr.InvalidRequest) as caught:
                call(world)
            assert type(caught.value) is tr.InvalidRequest, label
            assert len(served.log) == before, f"{label}: a request reached the server"
        assert world.metrics["total_requests"] == sent


def test_bad_input_only_the_server_can_tell_is_refused_with_the_same_class(
    served: Served,
) -> None:
    with client(served.url, served.tokens[1]) as world:
        for label, call in SERVER_REFUSES:
            before = len(served.log)
            with pytest.raises(tr.InvalidRequest) as caught:
                call(world)
            assert type(caught.value) is tr.InvalidRequest, label
            assert len(served.log) == before + 1, f"{label}: sent once, never retried"
        metrics = world.metrics
    assert metrics["retries"] == 0 and metrics["errors"] == len(SERVER_REFUSES)
    assert served.count(schema.training_orders) == 0
    assert served.count(schema.movements) == 0
    assert served.count(schema.build_queue) == 0

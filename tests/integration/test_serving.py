"""The server holds: slow and idle clients do not lock out a normal one, requests that need
no database answer while the database is stalled, and waitress's own errors are JSON.

Real servers on loopback; every loop is bounded in count and time."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
import sqlalchemy as sa

import travian_repo as tr
from travian_repo.apps.cli import build_parser
from travian_repo.sandbox import WorldSummary, create_world
from travian_repo.sandbox.server import ServerThread, app_world, create_app
from travian_repo.sandbox.serving import ServingOptions

from tests.conftest import START

SLOW_HEAD = (b"GET /v1/village/1 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-World-Id: default\r\nX-Pad: "
             + b"a" * 2000)


# ---- helpers ------------------------------------------------------------------------------

@pytest.fixture
def sqlite_world(tmp_path: Path) -> tuple[str, WorldSummary]:
    url = f"sqlite:///{tmp_path / 'world.db'}"
    return url, create_world(url, players=2, seed=7, start="developed", now=START)


def me(url: str, summary: WorldSummary, timeout: float) -> requests.Response:
    """GET /v1/me on a fresh connection: a normal client (reads the database)."""
    return requests.get(url + "/v1/me", timeout=timeout, headers={
        "Authorization": f"Bearer {summary.tokens[1]}", "X-World-Id": summary.world_id,
        "Connection": "close"})


def raw(port: int, data: bytes, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """Send bytes on a fresh connection; the status, headers and body of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1."), received[:200]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def json_error(status: int, headers: dict[str, str], body: bytes, expected: int) -> dict[str, Any]:
    assert status == expected, body[:300]
    assert headers["content-type"].startswith("application/json"), headers
    payload = json.loads(body)
    assert set(payload) == {"error"}
    assert set(payload["error"]) == {"code", "message", "details"}
    return dict(payload["error"])


class Dribblers:
    """``count`` connections sending the start of a request a byte every 0.5 s, never done;
    a connection the server lets go is opened again (the attacker keeps trying)."""

    def __init__(self, port: int, count: int) -> None:
        self.port = port
        self.count = count
        self.let_go = 0
        self.answers: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Dribblers:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(5)

    def _open(self, socks: dict[socket.socket, int]) -> None:
        sock = socket.socket()
        sock.setblocking(False)
        try:
            sock.connect(("127.0.0.1", self.port))
        except BlockingIOError:
            pass
        socks[sock] = 0

    def _run(self) -> None:
        socks: dict[socket.socket, int] = {}
        for _ in range(self.count):
            self._open(socks)
        deadline = time.monotonic() + 60  # bounded whatever happens
        while not self._stop.is_set() and time.monotonic() < deadline:
            for sock in list(socks):
                try:
                    data: bytes | None = sock.recv(65536)
                except BlockingIOError:
                    data = None
                except OSError:
                    data = b""
                if data is None:
                    try:
                        sent = socks[sock]
                        sock.send(SLOW_HEAD[sent % len(SLOW_HEAD):][:1])
                        socks[sock] = sent + 1
                        continue
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b""
                if data:
                    self.answers.append(data)
                self.let_go += 1
                sock.close()
                del socks[sock]
                self._open(socks)
            self._stop.wait(0.5)
        for sock in socks:
            sock.close()


# ---- slow and idle clients ----------------------------------------------------------------

@pytest.mark.slow
def test_slow_header_clients_do_not_starve_a_normal_client(
    sqlite_world: tuple[str, WorldSummary],
) -> None:
    """120 clients dribbling headers against the default connection limit (100): a normal
    client is still answered, and the dribblers get a JSON 408."""
    url, summary = sqlite_world
    with ServerThread(url) as server, Dribblers(server.port, 120) as dribblers:
        time.sleep(1.5)  # every slot taken, the rest waiting in the accept queue
        answered = 0
        started = time.monotonic()
        for _ in range(2):
            try:
                answered += me(server.url, summary, timeout=8).status_code == 200
            except requests.RequestException:
                pass
        took = time.monotonic() - started
        deadline = time.monotonic() + 6
        while dribblers.let_go < 100 and time.monotonic() < deadline:
            time.sleep(0.2)
    assert answered == 2, f"the normal client got {answered} of 2 answers in {took:.1f} s"
    assert dribblers.let_go >= 100, dribblers.let_go  # every slot turned over at least once
    first = dribblers.answers[0]
    assert first.startswith(b"HTTP/1.0 408 ") or first.startswith(b"HTTP/1.1 408 "), first[:100]
    assert b"application/json" in first
    assert json.loads(first.partition(b"\r\n\r\n")[2])["error"]["code"] == "invalid_request"


@pytest.mark.slow
def test_idle_keep_alive_flood_does_not_lock_out_new_clients(
    sqlite_world: tuple[str, WorldSummary],
) -> None:
    """110 keep-alive connections, each answered once and then idle, against the default
    connection limit (100): a new client is answered within seconds, not after 120 s."""
    url, summary = sqlite_world
    headers = {"Authorization": f"Bearer {summary.tokens[1]}", "X-World-Id": summary.world_id}
    with ServerThread(url) as server:
        socks: list[socket.socket] = []
        try:
            request = (b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
            for _ in range(110):
                sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
                sock.sendall(request)
                socks.append(sock)
            time.sleep(1.0)
            started = time.monotonic()
            response = requests.get(server.url + "/v1/me", headers=headers, timeout=8)
            took = time.monotonic() - started
        finally:
            for sock in socks:
                sock.close()
    assert response.status_code == 200
    assert took < 6, took


@pytest.mark.slow  # waits out the request timeout
def test_a_late_request_is_answered_408_json(sqlite_world: tuple[str, WorldSummary]) -> None:
    """Headers too slow (header_timeout) and a body too slow (request_timeout), no pressure."""
    url, _ = sqlite_world
    with ServerThread(url, header_timeout=0.5, request_timeout=1.5) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=6) as sock:
            started = time.monotonic()
            sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")  # never the blank line
            ready, _, _ = select.select([sock], [], [], 5)
            assert ready, "no answer to headers that never finished"
            head = sock.recv(65536)
            assert head.split(b"\r\n", 1)[0].split()[1] == b"408", head[:100]
            assert time.monotonic() - started < 4
        with socket.create_connection(("127.0.0.1", server.port), timeout=6) as sock:
            sock.sendall(b"POST /v1/village/1/build HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 50\r\n\r\n{")
            deadline = time.monotonic() + 5
            answer = b""
            while time.monotonic() < deadline:
                if not answer:
                    sock.send(b" ")  # a byte every 0.2 s: never idle, never done
                ready, _, _ = select.select([sock], [], [], 0.2)
                if ready:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break  # the server closed the connection after its answer
                    answer += chunk
            status, headers, body = _parse(answer)
            error = json_error(status, headers, body, 408)
            assert "1.5 s" in error["message"]


def _parse(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1."), answer[:200]
    headers = {k.strip().lower(): v.strip() for k, _, v in
               (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


@pytest.mark.slow  # a hundred connections
def test_under_pressure_answers_close_their_connection(
    sqlite_world: tuple[str, WorldSummary],
) -> None:
    """At three quarters of the connection limit, an answer on a connection open for a
    second closes it, so clients take turns instead of holding every slot; a new connection
    keeps alive for its first second, and below the mark keep-alive is as usual."""
    url, _ = sqlite_world
    with ServerThread(url, connection_limit=20) as server:  # pressure from 15 connections
        with requests.Session() as old, requests.Session() as new:
            calm = old.get(server.url + "/v1/health", timeout=5)
            assert calm.status_code == 200 and calm.headers.get("Connection") != "close"
            time.sleep(1.1)
            calm = old.get(server.url + "/v1/health", timeout=5)
            assert calm.status_code == 200 and calm.headers.get("Connection") != "close"
            held = [socket.create_connection(("127.0.0.1", server.port), timeout=5)
                    for _ in range(15)]
            try:
                time.sleep(0.3)
                young = new.get(server.url + "/v1/health", timeout=5)
                pressed = old.get(server.url + "/v1/health", timeout=5)
            finally:
                for sock in held:
                    sock.close()
    assert young.status_code == 200 and young.headers.get("Connection") != "close"
    assert pressed.status_code == 200
    assert pressed.headers.get("Connection") == "close"


# ---- the database stalls ------------------------------------------------------------------

class StallingProxy:
    """A TCP proxy on loopback in front of PostgreSQL; ``stalled`` holds every byte."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.stalled = threading.Event()
        self._closed = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._socks: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target, timeout=5)
            upstream.settimeout(None)
            self._socks += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                while self.stalled.is_set() and not self._closed.is_set():
                    time.sleep(0.05)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        for sock in self._socks:
            sock.close()


@pytest.fixture
def stalling_world(postgres_url: str) -> Iterator[tuple[str, WorldSummary, StallingProxy]]:
    summary = create_world(postgres_url, players=2, seed=7, start="developed", now=START,
                           replace=True)
    url = sa.make_url(postgres_url)
    proxy = StallingProxy((url.host or "127.0.0.1", url.port or 5432))
    try:
        yield url.set(port=proxy.port).render_as_string(hide_password=False), summary, proxy
    finally:
        proxy.stalled.clear()
        proxy.close()


@pytest.mark.slow
def test_database_free_routes_answer_while_the_database_is_stalled(
    stalling_world: tuple[str, WorldSummary, StallingProxy],
) -> None:
    """8 requests stuck on a stalled database hold all 4 worker threads and queue behind
    them; /v1/health and /v1/openapi.yaml still answer at once."""
    url, summary, proxy = stalling_world
    server = ServerThread(url, threads=4)
    pool = ThreadPoolExecutor(8)
    try:
        server.start()
        assert me(server.url, summary, timeout=5).status_code == 200  # pool warm, all well
        proxy.stalled.set()
        stuck = [pool.submit(me, server.url, summary, 20) for _ in range(8)]
        time.sleep(1.0)
        assert not any(f.done() for f in stuck), "the database was not stalled"
        for path in ("/v1/health", "/v1/openapi.yaml", "/v1/health"):
            started = time.monotonic()
            response = requests.get(server.url + path, timeout=3)
            assert response.status_code == 200, response.text
            assert time.monotonic() - started < 2
        health = requests.get(server.url + "/v1/health", timeout=3)
        assert health.headers["Content-Type"].startswith("application/json")
        assert health.json() == {"status": "ok", "world_id": summary.world_id}
    finally:
        proxy.stalled.clear()  # the stuck requests finish; the server stops cleanly
        for future in stuck if "stuck" in locals() else []:
            try:
                future.result(timeout=20)
            except Exception:  # noqa: BLE001 - answered or not, they are done
                pass
        pool.shutdown(wait=False)
        server.stop()


# ---- JSON errors, waitress's own included -------------------------------------------------

@pytest.fixture
def served(sqlite_world: tuple[str, WorldSummary]) -> Iterator[ServerThread]:
    url, _ = sqlite_world
    with ServerThread(url, threads=2) as server:
        yield server


@pytest.mark.parametrize("request_bytes, status", [
    (b"GARBAGE\r\n\r\n", 400),  # not a request line
    (b"GET /v1/health HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n", 400),
    (b"GET /v1/health HTTP/1.1\r\nHost: x\r\nContent-Length: many\r\n\r\n", 400),
    (b"GET /v1/health HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
     400),
    (b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n", 431),
    (b"POST /v1/village/1/build HTTP/1.1\r\nHost: x\r\nContent-Length: 3000000\r\n\r\n", 413),
    (b"POST /v1/village/1/build HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
])
def test_waitress_errors_answer_json(served: ServerThread, request_bytes: bytes,
                                     status: int) -> None:
    got, headers, body = raw(served.port, request_bytes)
    error = json_error(got, headers, body, status)
    assert error["code"] == "invalid_request"
    assert headers.get("connection") == "close"
    assert "waitress" not in body.decode()


def test_options_and_unknown_routes_answer_json(served: ServerThread) -> None:
    for path, allowed in (("/v1/village/1", {"GET", "HEAD"}),
                          ("/v1/village/1/build", {"POST"}),
                          ("/v1/health", {"GET", "HEAD"})):
        response = requests.options(served.url + path, timeout=5)
        assert response.status_code == 405, response.text
        assert response.headers["Content-Type"].startswith("application/json")
        assert response.json()["error"]["code"] == "method_not_allowed"
        assert set(response.headers["Allow"].replace(" ", "").split(",")) == allowed
    got, headers, body = raw(served.port, b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert got in (400, 404, 405)
    json_error(got, headers, body, got)
    missing = requests.get(served.url + "/v1/nowhere", timeout=5)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    wrong = requests.delete(served.url + "/v1/health", timeout=5)
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"


def test_health_needs_no_token(served: ServerThread) -> None:
    response = requests.get(served.url + "/v1/health", timeout=5)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "world_id": "default"}
    assert response.headers["Cache-Control"] == "no-store"
    assert requests.head(served.url + "/v1/health", timeout=5).status_code == 200


# ---- options ------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [
    {"threads": 0}, {"connection_limit": 2}, {"header_timeout": 0},
    {"request_timeout": float("nan")}, {"idle_timeout": -1}, {"threads": True},
])
def test_serving_options_are_checked(bad: dict[str, Any]) -> None:
    with pytest.raises(tr.ConfigurationError):
        ServingOptions(**bad)


def test_serve_command_has_the_options() -> None:
    args = build_parser().parse_args([
        "serve", "--database-url", "sqlite:///x.db", "--threads", "3",
        "--connection-limit", "50", "--header-timeout", "4", "--request-timeout", "9",
        "--idle-timeout", "12"])
    assert (args.threads, args.connection_limit, args.header_timeout, args.request_timeout,
            args.idle_timeout) == (3, 50, 4.0, 9.0, 12.0)
    defaults = build_parser().parse_args(["serve", "--database-url", "sqlite:///x.db"])
    options = ServingOptions()
    assert (defaults.threads, defaults.connection_limit, defaults.header_timeout,
            defaults.request_timeout, defaults.idle_timeout) == (
        options.threads, options.connection_limit, options.header_timeout,
        options.request_timeout, options.idle_timeout)


def test_server_thread_refuses_bad_options_and_closes_its_world(
    sqlite_world: tuple[str, WorldSummary],
) -> None:
    url, _ = sqlite_world
    with pytest.raises(tr.ConfigurationError):
        ServerThread(url, header_timeout=0)
    app = create_app(url)
    try:
        with ServerThread(app, connection_limit=10, threads=1) as server:
            assert server.options.connection_limit == 10
            assert requests.get(server.url + "/v1/health", timeout=5).status_code == 200
    finally:
        app_world(app).close()

"""Faults between the HTTP client and a real server: refused, stalled, blipped connections.

A plain loopback TCP proxy stands in front of the server. Whatever it does to the
connections, every acknowledged write is stored exactly once, no write is stored that the
client was told failed as "not applied", every error is a ``TravianError``, and the client
recovers by itself once the fault clears.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Iterator

import pytest
import sqlalchemy as sa

import travian_repo as tr
from travian_repo.sandbox.server import ServerThread
from travian_repo.sql import schema

from tests.conftest import MakeWorld
from tests.pgproxy import reset

FAST = tr.RetryPolicy(attempts=4, deadline_s=8.0, base_delay_s=0.01, max_delay_s=0.05)


class TcpProxy:
    """Forwards bytes both ways; ``refuse()``/``restore()``, ``stall()``/``unstall()`` and
    ``blip()`` (reset every open connection) break it on demand."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.stalled = False
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.port = 0
        self._listen()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def refuse(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            try:  # wakes the accept() blocked on it; close() alone would not
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()
        self.blip()

    def restore(self) -> None:
        if self._listener is None:
            self._listen()

    def stall(self) -> None:
        self.stalled = True

    def unstall(self) -> None:
        self.stalled = False
        self.blip()

    def blip(self) -> None:
        with self._lock:
            sockets = list(self._open)
            self._open.clear()
        for sock in sockets:
            reset(sock)

    def close(self) -> None:
        self.refuse()

    def _listen(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            if self.stalled:
                with self._lock:
                    self._open.add(client)  # held open, never answered, until unstall/blip
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
                upstream.settimeout(None)
            except OSError:
                reset(client)
                continue
            with self._lock:
                self._open.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data or self.stalled:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            with self._lock:
                self._open.discard(sock)
            reset(sock)


@pytest.fixture
def through_proxy(make_world: MakeWorld, database_url: str) -> Iterator[tuple[TcpProxy, str, sa.Engine]]:
    summary = make_world(players=3)
    engine = sa.create_engine(database_url)
    with ServerThread(database_url, threads=8) as server:
        host, port = server.url.removeprefix("http://").split(":")
        proxy = TcpProxy((host, int(port)))
        try:
            yield proxy, summary.tokens[1], engine
        finally:
            proxy.close()
            engine.dispose()


def _bodies(engine: sa.Engine) -> list[str]:
    m = schema.messages
    with engine.connect() as conn:
        return [str(b) for b in conn.execute(sa.select(m.c.body).where(m.c.subject == "fault")).scalars()]


def _send(world: tr.World, text: str) -> None:
    world.diplomacy.send_message(1, 2, "fault", text)


@pytest.mark.parametrize("backend", ["postgresql"])
def test_refused_then_restored(through_proxy: tuple[TcpProxy, str, sa.Engine]) -> None:
    proxy, token, engine = through_proxy
    with tr.connect(api_url=proxy.url, token=token, retry=FAST, timeout=(1.0, 5.0)) as world:
        _send(world, "before")
        proxy.refuse()
        with pytest.raises(tr.BackendUnavailable):
            _send(world, "refused")
        proxy.restore()
        _send(world, "after")  # the same client, no reconnect by the caller
    assert sorted(_bodies(engine)) == ["after", "before"]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_stalled_server_is_a_typed_error_within_the_timeout(
    through_proxy: tuple[TcpProxy, str, sa.Engine],
) -> None:
    proxy, token, engine = through_proxy
    policy = tr.RetryPolicy(attempts=2, deadline_s=4.0, base_delay_s=0.01, max_delay_s=0.05)
    with tr.connect(api_url=proxy.url, token=token, retry=policy, timeout=(1.0, 1.0)) as world:
        _send(world, "before")
        world.backend.transport.session.close()  # idle keep-alives would bypass the stall
        proxy.stall()
        started = time.monotonic()
        with pytest.raises(tr.BackendUnavailable):
            _send(world, "stalled")
        assert time.monotonic() - started < 6.0
        proxy.unstall()
        _send(world, "after")
    assert sorted(_bodies(engine)) == ["after", "before"]  # the stalled request never arrived


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql"])
def test_blips_lose_no_acknowledged_write_and_double_none(
    through_proxy: tuple[TcpProxy, str, sa.Engine],
) -> None:
    proxy, token, engine = through_proxy
    stop = threading.Event()

    def blipper() -> None:
        while not stop.wait(0.02):
            proxy.blip()

    acknowledged: list[str] = []
    failed: list[tuple[str, BaseException]] = []
    thread = threading.Thread(target=blipper, daemon=True)
    with tr.connect(api_url=proxy.url, token=token, retry=FAST, timeout=(1.0, 5.0)) as world:
        thread.start()
        try:
            for n in range(40):
                text = f"write {n}"
                try:
                    _send(world, text)
                    acknowledged.append(text)
                except Exception as exc:  # noqa: BLE001 - checked below: typed, and not stored twice
                    failed.append((text, exc))
        finally:
            stop.set()
            thread.join()
        _send(world, "after")  # recovery by itself once the blips stop
    untyped = [(text, exc) for text, exc in failed if not isinstance(exc, tr.TravianError)]
    assert untyped == []
    stored = _bodies(engine)
    assert len(stored) == len(set(stored)), "a write was stored twice"
    assert set(acknowledged) <= set(stored), "an acknowledged write was lost"
    assert "after" in stored
    # A failed call may still have committed (its answer was lost every time), but at most once.
    assert set(stored) - set(acknowledged) - {"after"} <= {text for text, _ in failed}
    assert len(acknowledged) >= 20, f"only {len(acknowledged)} of 40 got through the blips"

"""A loopback TCP proxy in front of PostgreSQL that breaks on demand (for the fault tests).

It reads the client's side of the wire protocol (startup, then typed messages) so a fault
can hit one exact statement; the server's side is forwarded as it comes. Faults:

- ``on_query(sql) -> action`` per simple Query message: ``None`` forwards; ``"reset"`` drops
  the connection (RST) without forwarding the statement; ``"lose_reply"`` forwards it, waits
  for the server's first answer bytes (so the server has run it: a COMMIT has committed), and
  drops the connection (RST) instead of passing them on.
- ``refuse()``: stop listening and reset every connection (the port refuses); ``restore()``
  listens again on the same port.
- ``stall()``: accept, forward nothing either way (what comes in is swallowed); ``unstall()``
  resets the stalled connections and forwards again.
- ``blip()``: reset every open connection at once; new ones go through.

Needs ``sslmode=disable`` on the client (``url()`` adds it) to read the messages.
"""

from __future__ import annotations

import socket
import struct
import threading
from typing import Callable

import sqlalchemy as sa

Action = Callable[[str], "str | None"]
_SSL_OR_GSS_REQUEST = {80877103, 80877104}
_IO_TIMEOUT_S = 30.0


def reset(sock: socket.socket) -> None:
    """Close with a TCP reset. SHUT_RD first: close() alone does not wake a thread blocked in
    recv() on the socket, and the connection would stay open until that recv returned."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RD)
    except OSError:
        pass
    sock.close()


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


class _Pair:
    """One client connection and its upstream one."""

    def __init__(self, proxy: PgProxy, client: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream: socket.socket | None = None
        self.lose_reply = False
        self.stalled = proxy.stalled
        self.closed = False
        self._lock = threading.Lock()

    def start(self) -> None:
        threading.Thread(target=self._client_to_server, daemon=True, name="pgproxy-c2s").start()

    def kill(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
        reset(self.client)
        if self.upstream is not None:
            reset(self.upstream)
        self.proxy._forget(self)

    def _send_up(self, data: bytes) -> None:
        if self.stalled or self.proxy.stalled:
            self.stalled = True
            return  # swallowed
        assert self.upstream is not None
        self.upstream.sendall(data)

    def _client_to_server(self) -> None:
        try:
            self.client.settimeout(_IO_TIMEOUT_S * 4)
            if self.proxy.stalled:
                self.stalled = True
            else:
                self.upstream = socket.create_connection(self.proxy.upstream, timeout=_IO_TIMEOUT_S)
                self.upstream.settimeout(None)
                threading.Thread(target=self._server_to_client, daemon=True,
                                 name="pgproxy-s2c").start()
            # Untyped: SSL/GSS requests (answered by one byte), then the startup message.
            while True:
                head = _recv_exactly(self.client, 8)
                length, code = struct.unpack("!ii", head)
                body = _recv_exactly(self.client, length - 8)
                self._send_up(head + body)
                if code not in _SSL_OR_GSS_REQUEST:
                    break
            while True:
                head = _recv_exactly(self.client, 5)
                kind = head[:1]
                (length,) = struct.unpack("!i", head[1:])
                body = _recv_exactly(self.client, length - 4)
                action = None
                if kind == b"Q" and not self.stalled:
                    action = self.proxy._decide(body[:-1].decode("utf-8", "replace"))
                if action == "reset":
                    self.kill()
                    return
                if action == "lose_reply":
                    self.lose_reply = True
                self._send_up(head + body)
        except (OSError, ConnectionError, struct.error):
            pass
        if not self.stalled:
            self.kill()

    def _server_to_client(self) -> None:
        assert self.upstream is not None
        try:
            while True:
                data = self.upstream.recv(65536)
                if not data:
                    break
                if self.stalled or self.proxy.stalled:
                    self.stalled = True
                    continue  # swallowed
                if self.lose_reply:
                    break  # the server answered; the client never hears it
                self.client.sendall(data)
        except OSError:
            pass
        if not self.stalled:
            self.kill()


class PgProxy:
    def __init__(self, upstream: tuple[str, int] = ("127.0.0.1", 5432)) -> None:
        self.upstream = upstream
        self.on_query: Action | None = None
        self.stalled = False
        self.queries: list[str] = []
        self._lock = threading.Lock()
        self._pairs: set[_Pair] = set()
        self._listener: socket.socket | None = None
        self.port = 0
        self._listen()

    # -- the URL to give the client --

    def url(self, database_url: str) -> str:
        """``database_url`` pointed at the proxy (with ``sslmode=disable``)."""
        parsed = sa.make_url(database_url).set(host="127.0.0.1", port=self.port)
        return parsed.update_query_dict({"sslmode": "disable"}).render_as_string(
            hide_password=False)

    # -- faults --

    def refuse(self) -> None:
        self._close_listener()
        self.blip()

    def restore(self) -> None:
        if self._listener is None:
            self._listen()

    def stall(self) -> None:
        self.stalled = True

    def unstall(self) -> None:
        with self._lock:
            stuck = [pair for pair in self._pairs if pair.stalled]
        for pair in stuck:
            pair.kill()
        self.stalled = False

    def blip(self) -> None:
        with self._lock:
            pairs = list(self._pairs)
        for pair in pairs:
            pair.kill()

    def close(self) -> None:
        self._close_listener()
        self.stalled = False
        self.blip()

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._pairs)

    # -- internals --

    def _decide(self, sql: str) -> str | None:
        with self._lock:
            self.queries.append(sql)
            decide = self.on_query
        return decide(sql) if decide is not None else None

    def _forget(self, pair: _Pair) -> None:
        with self._lock:
            self._pairs.discard(pair)

    def _listen(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True,
                         name="pgproxy-accept").start()

    def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            if listener is not self._listener:
                reset(client)
                return
            pair = _Pair(self, client)
            with self._lock:
                self._pairs.add(pair)
            pair.start()


def once(match: Callable[[str], bool], action: str, times: int = 1) -> Action:
    """A fault that hits the first ``times`` statements ``match`` picks, then never again."""
    lock = threading.Lock()
    left = times

    def decide(sql: str) -> str | None:
        nonlocal left
        with lock:
            if left <= 0 or not match(sql):
                return None
            left -= 1
            return action

    return decide

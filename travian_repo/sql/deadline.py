"""A client-side bound on every PostgreSQL reply.

``statement_timeout`` is enforced by the server, so it cannot help when the server (or the
network to it) stops answering at all: libpq then waits on its socket for ever, and TCP
keepalives do not fire while a middlebox still acknowledges. This watchdog drops a
connection whose reply is overdue: it shuts the socket down, libpq reports "server closed
the connection unexpectedly", and the caller gets ``BackendUnavailable`` instead of a hang.

One daemon thread per engine, started on first use and gone after a quiet spell; arming and
disarming a statement is a dictionary update under a lock.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

from sqlalchemy import Engine, event

from travian_repo.sql.listeners import count_own

_QUIET_S = 10.0  # the thread stops after this long with nothing armed


class ReplyDeadline:
    """Drops a connection that has not answered within ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self._armed: dict[int, tuple[float, Any, int]] = {}  # id(conn): (due, conn, thread)
        self._fired: dict[int, float] = {}  # thread ident: when its connection was dropped
        self._thread: threading.Thread | None = None
        self._tick = min(0.25, max(0.02, seconds / 8))

    def arm(self, dbapi_connection: Any) -> None:
        due = time.monotonic() + self.seconds
        with self._lock:
            self._armed[id(dbapi_connection)] = (due, dbapi_connection, threading.get_ident())
            if self._thread is None:
                self._start()

    def _start(self) -> None:  # under the lock
        self._thread = threading.Thread(
            target=self._watch, name="travian-reply-deadline", daemon=True
        )
        self._thread.start()

    def disarm(self, dbapi_connection: Any) -> None:
        with self._lock:
            self._armed.pop(id(dbapi_connection), None)

    def fired_here(self, *, keep: bool = False) -> bool:
        """True when the calling thread's connection was dropped for being late (the mark
        is cleared unless ``keep``)."""
        with self._lock:
            if keep:
                return threading.get_ident() in self._fired
            return self._fired.pop(threading.get_ident(), None) is not None

    def _watch(self) -> None:
        quiet_since = time.monotonic()
        while True:
            time.sleep(self._tick)
            now = time.monotonic()
            with self._lock:
                if not self._armed:
                    if now - quiet_since > _QUIET_S:
                        self._thread = None
                        return
                    continue
                quiet_since = now
                # Under the lock: an entry still armed is a statement still waiting, so its
                # connection (and socket) cannot have been closed and reused meanwhile.
                for key, (due, conn, thread) in list(self._armed.items()):
                    if due <= now:
                        del self._armed[key]
                        if _drop(conn):
                            self._fired[thread] = now

    def install(self, engine: Engine) -> None:
        """Arm around every statement of ``engine``."""

        # arm() and disarm() inlined: these run around every statement.
        lock, armed, seconds = self._lock, self._armed, self.seconds
        monotonic, get_ident = time.monotonic, threading.get_ident

        # retval=True: without it SQLAlchemy wraps the listener in one more call per statement.
        @event.listens_for(engine, "before_cursor_execute", retval=True)
        def _before(_conn: Any, cursor: Any, statement: str, parameters: Any,
                    *_args: Any) -> tuple[str, Any]:
            dbapi_connection = cursor.connection
            due = monotonic() + seconds
            with lock:
                armed[id(dbapi_connection)] = (due, dbapi_connection, get_ident())
                if self._thread is None:
                    self._start()
            return statement, parameters

        @event.listens_for(engine, "after_cursor_execute")
        def _after(_conn: Any, cursor: Any, *_args: Any) -> None:
            with lock:
                armed.pop(id(cursor.connection), None)

        @event.listens_for(engine, "handle_error")
        def _error(context: Any) -> None:
            cursor = getattr(context.execution_context, "cursor", None)
            if cursor is not None:
                self.disarm(cursor.connection)

        @event.listens_for(engine, "checkin")
        def _checkin(dbapi_connection: Any, _record: Any) -> None:
            # Usually nothing is armed (each statement disarms itself): no lock taken then.
            # Nothing runs on a connection being checked in, so none can be armed meanwhile.
            if dbapi_connection is not None and id(dbapi_connection) in armed:
                self.disarm(dbapi_connection)

        for name in ("before_cursor_execute", "after_cursor_execute", "handle_error"):
            count_own(engine, name)


def _drop(dbapi_connection: Any) -> bool:
    """Shut the connection's socket down so libpq's wait ends; True when it was done."""
    try:
        if dbapi_connection.closed:
            return False
        fd = dbapi_connection.fileno()
        sock = socket.socket(fileno=os.dup(fd))
    except Exception:  # noqa: BLE001 - already gone: nothing to drop
        return False
    try:
        sock.shutdown(socket.SHUT_RDWR)
        return True
    except OSError:
        return False
    finally:
        sock.close()


__all__ = ["ReplyDeadline"]

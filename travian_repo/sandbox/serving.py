"""waitress, configured so that slow or idle clients cannot starve the others.

waitress reads every connection on one event loop and hands a request to a worker thread
only once it has arrived in full, so a slow client holds a connection slot, never a thread.
The slots are what this module guards (``connection_limit``, default 100):

- **Deadlines for a request to arrive**: its headers within ``header_timeout`` seconds of its
  first byte, the whole request (headers and body) within ``request_timeout``. waitress's own
  ``channel_timeout`` is an inactivity timeout, which a client sending a byte every half
  second never meets. A late request is answered ``408`` (JSON) and its connection closed.
- **Idle keep-alive connections** are closed after ``idle_timeout`` seconds.
- **Under pressure** (open connections at three quarters of ``connection_limit`` or more):
  a request still arriving after ``PRESSED_REQUEST_TIMEOUT`` seconds is answered ``408``, a
  keep-alive connection idle for ``PRESSED_IDLE_TIMEOUT`` seconds is closed, and an answer on
  a connection open for ``PRESSED_CONNECTION_AGE`` seconds or more closes it (``Connection:
  close``), so clients take turns in the accept queue instead of the first
  ``connection_limit`` of them holding every slot.
- **Database-free requests in their own lane**: ``light_paths`` (GET/HEAD), ``OPTIONS`` and
  waitress's own error answers run on ``LIGHT_THREADS`` threads of their own, so requests
  stuck on a stalled database, holding every worker thread, do not hold them up.
- **Streams in their own lane**: requests ``stream_lane`` picks (the event streams, which
  stay open) run on ``stream_threads`` threads of their own, so open streams never hold the
  threads of the other routes; the app bounds the open streams below ``stream_threads``.
- **JSON errors from waitress too**: a malformed request line or header (400), headers or a
  body over the limits (431, 413), an unsupported transfer coding (501) and waitress's
  internal 500 answer with the server's JSON error envelope instead of waitress's text
  (code ``invalid_request``; ``internal_error`` for the 500).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Collection

from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask, ThreadedTaskDispatcher, WSGITask
from waitress.utilities import Error

from travian_repo.domain.errors import ConfigurationError
from travian_repo.domain.validators import is_finite_number, is_int

# Open connections from which the server is "under pressure", as a share of the limit.
PRESSURE_SHARE = 0.75
# Under pressure: a request must arrive within this, an idle keep-alive connection is closed
# after this (seconds).
PRESSED_REQUEST_TIMEOUT = 2.0
PRESSED_IDLE_TIMEOUT = 1.0
# Under pressure, an answer on a connection this old (seconds) closes it: every slot turns
# over about once a second, and a client reconnects once a second, not on every request.
PRESSED_CONNECTION_AGE = 1.0
# A connection answered 408 that has not taken its answer by then is closed anyway.
SHED_GRACE = 2.0
# Threads for requests that never touch the database.
LIGHT_THREADS = 2
# waitress refuses larger requests itself (431 / 413) before buffering them.
MAX_HEADER_BYTES = 64 * 1024

# (status, message) -> the JSON error body, as the application writes its own errors.
ErrorBody = Callable[[int, str], str]


class _RequestTimeout(Error):
    code = 408
    reason = "Request Timeout"


@dataclass(frozen=True)
class ServingOptions:
    """How the server holds up: see the module's docstring. Seconds are floats."""

    threads: int = 8
    connection_limit: int = 100
    header_timeout: float = 10.0
    request_timeout: float = 30.0
    idle_timeout: float = 30.0
    max_body_bytes: int = 2 * 1024 * 1024

    def __post_init__(self) -> None:
        for name in ("threads", "connection_limit", "max_body_bytes"):
            value = getattr(self, name)
            if not is_int(value) or value < 1:
                raise ConfigurationError(f"{name} must be a whole number of at least 1, "
                                         f"got {value!r}")
        for name in ("header_timeout", "request_timeout", "idle_timeout"):
            value = getattr(self, name)
            if not is_finite_number(value) or value <= 0:
                raise ConfigurationError(f"{name} must be a positive number of seconds, "
                                         f"got {value!r}")
        if self.connection_limit < 4:
            raise ConfigurationError("connection_limit must be at least 4")


class JsonErrorTask(ErrorTask):
    """waitress's own error answers (400, 408, 413, 431, 500, 501) as JSON."""

    def execute(self) -> None:
        # typed loosely here and below: waitress's stubs miss or mistype these attributes
        request: Any = self.request
        error = request.error
        server: Any = self.channel.server
        if error.code == 500:  # a failure of the server's own: the log has it
            message = "internal server error; the server log has the cause"
        else:
            detail = str(error.body).strip()
            message = f"{error.reason}: {detail}" if detail else str(error.reason)
        body = server.error_body(int(error.code), message).encode("utf-8")
        self.status = f"{error.code} {error.reason}"
        headers: Any = self.response_headers
        headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class TurnTakingTask(WSGITask):
    """An application answer; under pressure it closes an older connection after it."""

    def execute(self) -> None:
        channel: Any = self.channel
        if (channel.server.pressed()
                and time.time() - channel.creation_time >= PRESSED_CONNECTION_AGE):
            self.set_close_on_finish()
        super().execute()


class GuardedChannel(HTTPChannel):
    """A connection that knows when the request it is receiving began."""

    task_class = TurnTakingTask
    error_task_class = JsonErrorTask

    request_began: float | None = None  # time.time() of the partial request's first bytes
    shed_at: float | None = None  # when it was answered 408

    def received(self, data: bytes) -> bool:
        partial_before = self.request is not None
        result = bool(super().received(data))
        if self.request is None:
            self.request_began = None
        elif not partial_before or self.request_began is None:
            self.request_began = time.time()
        return result

    def shed(self, seconds: float) -> None:
        """Answer the request still arriving 408 and close the connection (loop thread)."""
        request: Any = self.request
        if request is None:
            request = HTTPRequestParser(self.adj)
        request.error = _RequestTimeout(f"the request did not arrive in full within {seconds:g} s")
        self.request = None
        self.request_began = None
        self.shed_at = time.time()
        task = JsonErrorTask(self, request)
        try:
            task.service()  # a few hundred bytes into the out buffer; the loop sends them
        except Exception:  # noqa: BLE001 - the client is gone: close instead
            self.will_close = True
            return
        self.close_when_flushed = True


class GuardedServer(TcpWSGIServer):
    """waitress's TCP server with the guards of this module."""

    channel_class = GuardedChannel

    def __init__(self, application: Any, *, options: ServingOptions, error_body: ErrorBody,
                 light_paths: Collection[str], map: dict[int, Any],
                 stream_lane: Callable[[str], bool] | None = None, stream_threads: int = 0,
                 **adjustments: Any) -> None:
        self.options = options
        self.stream_lane = stream_lane
        self.stream_dispatcher: ThreadedTaskDispatcher | None = None
        if stream_lane is not None and stream_threads > 0:
            self.stream_dispatcher = ThreadedTaskDispatcher()
            self.stream_dispatcher.set_thread_count(stream_threads)
        self.socket_map = map
        self.error_body = error_body
        self.light_paths = frozenset(light_paths)
        self.pressure_at = max(2, int(options.connection_limit * PRESSURE_SHARE))
        dispatcher = ThreadedTaskDispatcher()
        dispatcher.set_thread_count(options.threads)
        self.light_dispatcher = ThreadedTaskDispatcher()
        self.light_dispatcher.set_thread_count(LIGHT_THREADS)
        super().__init__(
            application, map=map, dispatcher=dispatcher,
            threads=options.threads,
            connection_limit=options.connection_limit,
            channel_timeout=max(1, math.ceil(max(options.idle_timeout, options.request_timeout))),
            cleanup_interval=1,
            asyncore_use_poll=True,  # select() stops at file descriptor 1024
            max_request_header_size=MAX_HEADER_BYTES,
            max_request_body_size=options.max_body_bytes,
            **adjustments,
        )

    # -- which threads answer --

    def add_task(self, task: Any) -> None:
        request = task.requests[0] if getattr(task, "requests", None) else None
        if request is not None and self._is_light(request):
            self.light_dispatcher.add_task(task)
        elif request is not None and self._is_stream(request):
            assert self.stream_dispatcher is not None
            self.stream_dispatcher.add_task(task)
        else:
            self.task_dispatcher.add_task(task)

    def _is_light(self, request: Any) -> bool:
        if request.error is not None:
            return True
        command = request.command
        return command == "OPTIONS" or (command in ("GET", "HEAD")
                                        and request.path in self.light_paths)

    def _is_stream(self, request: Any) -> bool:
        return (self.stream_dispatcher is not None and self.stream_lane is not None
                and request.command == "GET" and self.stream_lane(request.path))

    # -- the guards, run by waitress's loop about once a second --

    def pressed(self) -> bool:
        channels: Any = self.active_channels
        return len(channels) >= self.pressure_at

    def maintenance(self, now: float) -> None:
        options = self.options
        pressed = self.pressed()
        channels: Any = self.active_channels
        for channel in list(channels.values()):
            if channel.requests or channel.will_close:
                continue  # being answered, or closing already
            if channel.close_when_flushed:
                if channel.shed_at is not None and now - channel.shed_at > SHED_GRACE:
                    channel.will_close = True  # it does not read its 408: let go
                continue
            if channel.request is not None and channel.request_began is not None:
                limit = (options.header_timeout if not channel.request.headers_finished
                         else options.request_timeout)
                limit = min(limit, options.request_timeout)
                if pressed:
                    limit = min(limit, PRESSED_REQUEST_TIMEOUT)
                if now - channel.request_began > limit:
                    channel.shed(limit)
                continue
            idle = options.idle_timeout
            if pressed:
                idle = min(idle, PRESSED_IDLE_TIMEOUT)
            if now - channel.last_activity > idle:
                channel.will_close = True
        waitress_server: Any = super()
        waitress_server.maintenance(now)  # waitress's channel_timeout, as a last resort

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop the thread pools (the loop must be stopped first)."""
        self.task_dispatcher.shutdown(timeout=int(timeout))
        self.light_dispatcher.shutdown(timeout=int(timeout))
        if self.stream_dispatcher is not None:
            self.stream_dispatcher.shutdown(timeout=int(timeout))

    def run(self) -> None:
        try:
            wasyncore.loop(timeout=self.adj.asyncore_loop_timeout, map=self.socket_map,
                           use_poll=self.adj.asyncore_use_poll)
        except (SystemExit, KeyboardInterrupt):  # as waitress does: stop, return
            self.shutdown()


def make_server(
    application: Any, *, host: str, port: int, options: ServingOptions, error_body: ErrorBody,
    light_paths: Collection[str] = (), map: dict[int, Any] | None = None, ident: str = "waitress",
    stream_lane: Callable[[str], bool] | None = None, stream_threads: int = 0,
) -> GuardedServer:
    """A listening GuardedServer (not running yet: call ``.run()``)."""
    return GuardedServer(application, options=options, error_body=error_body,
                         light_paths=light_paths, map={} if map is None else map,
                         stream_lane=stream_lane, stream_threads=stream_threads,
                         host=host, port=port, ident=ident)


__all__ = ["GuardedServer", "ServingOptions", "make_server"]

"""Running the app under waitress: ``serve`` (blocking) and ``ServerThread`` (background)."""

from __future__ import annotations

import logging
import threading
from types import TracebackType
from typing import Any

from flask import Flask
from sqlalchemy import Engine
from waitress import wasyncore

from travian_repo.domain.errors import ConfigurationError
from travian_repo.sandbox.limits import DEFAULT_RATE
from travian_repo.sandbox.server.answers import error_text
from travian_repo.sandbox.server.app import DATABASE_FREE_PATHS, app_world, create_app
from travian_repo.sandbox.server.events_stream import (
    DEFAULT_HEARTBEAT_S,
    DEFAULT_MAX_STREAMS,
    app_streams,
    is_stream_path,
)
from travian_repo.sandbox.serving import ServingOptions, make_server
from travian_repo.sql.database import TimeSource
from travian_repo.wire.routes import PREFIX

log = logging.getLogger(__name__)


def _listen(app: Flask, host: str, port: int, options: ServingOptions,
            socket_map: dict[int, Any]) -> Any:
    # typed loosely: the waitress stubs miss effective_port and the trigger's thunks
    streams = app_streams(app)
    if streams is not None and streams.max_streams > options.connection_limit // 2:
        # each stream holds a connection: leave at least half of them to the other clients
        log.warning("max_streams %d lowered to %d, half of connection_limit %d",
                    streams.max_streams, options.connection_limit // 2,
                    options.connection_limit)
        streams.max_streams = max(1, options.connection_limit // 2)
    server: Any = make_server(app, host=host, port=port, options=options,
                              error_body=error_text, light_paths=DATABASE_FREE_PATHS,
                              map=socket_map, ident="travian_repo",
                              stream_lane=is_stream_path if streams is not None else None,
                              stream_threads=streams.threads if streams is not None else 0)
    return server


def _end_streams(app: Flask) -> None:
    streams = app_streams(app)
    if streams is not None:
        streams.close()


def serve(
    database_url: str | Engine,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    threads: int = 8,
    connection_limit: int = ServingOptions.connection_limit,
    header_timeout: float = ServingOptions.header_timeout,
    request_timeout: float = ServingOptions.request_timeout,
    idle_timeout: float = ServingOptions.idle_timeout,
    clock: TimeSource | None = None,
    redis_url: Any = None,
    manual_clock: bool = False,
    speed: float | None = None,
    rate_limit: float | None = DEFAULT_RATE,
    rate_burst: float | None = None,
    max_streams: int = DEFAULT_MAX_STREAMS,
    heartbeat_s: float = DEFAULT_HEARTBEAT_S,
    engine_workers: int = 1,
    engine: bool = True,
) -> None:
    """Serve v1 over the world at ``database_url`` until interrupted (blocking).

    ``threads`` answer requests (GET /v1/health, /v1/world and /v1/openapi.yaml have two
    threads of their own); at most ``connection_limit`` connections are open at once; a request's
    headers must arrive within ``header_timeout`` seconds of its first byte and the whole
    request within ``request_timeout``; a keep-alive connection idle for ``idle_timeout``
    seconds is closed. See ``travian_repo.sandbox.serving``.

    The engine runs by itself in real time, or with ``speed`` the world's time going
    ``speed`` times real time from now; ``manual_clock`` leaves time to the clients (POST
    /v1/sandbox/advance). ``engine=False``: no engine thread, for a world whose engine runs
    elsewhere (each request still processes what is due first, see ``connect(catch_up=)``).
    ``engine_workers``: engine threads sharing the due events.
    ``rate_limit`` / ``rate_burst``: the per-token limit, ``max_streams`` / ``heartbeat_s``:
    the event streams, as for ``create_app``.
    """
    from travian_repo.sandbox.engine import AcceleratedClock, EngineThread

    options = ServingOptions(threads=threads, connection_limit=connection_limit,
                             header_timeout=header_timeout, request_timeout=request_timeout,
                             idle_timeout=idle_timeout)
    if speed is not None and manual_clock:
        raise ConfigurationError("choose a speed or a manual clock, not both")
    if speed is not None:
        clock = AcceleratedClock(speed)
    app = create_app(database_url, clock=clock, redis_url=redis_url, manual_clock=manual_clock,
                     rate_limit=rate_limit, rate_burst=rate_burst, max_streams=max_streams,
                     heartbeat_s=heartbeat_s)
    database = app_world(app).database
    # The engine commits through the server's own Database, so its events reach the same
    # commit listeners (event bus, cache) as the players' writes.
    thread = None
    try:
        server = _listen(app, host, port, options, {})
        if engine and not manual_clock:
            thread = EngineThread(database, clock=clock, interval=1.0,
                                  workers=engine_workers).start()
        log.info("serving world %r on http://%s:%s%s", database.settings.world_id, host,
                 server.effective_port, PREFIX)
        server.run()
    finally:
        _end_streams(app)
        if thread is not None:
            thread.stop()
        app_world(app).close()


class ServerThread:
    """The server on a loopback port in a background thread, for tests and notebooks.

        with ServerThread(create_app(url)) as server:
            requests.get(server.url + "/v1/me", headers=...)

    ``port=0`` picks a free port; ``.url`` is ``http://host:port`` (without ``/v1``).
    ``threads``, ``connection_limit``, ``header_timeout``, ``request_timeout`` and
    ``idle_timeout`` as for ``serve``.
    """

    def __init__(
        self,
        app: Flask | str | Engine,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        threads: int = 8,
        clock: TimeSource | None = None,
        redis_url: Any = None,
        connection_limit: int = ServingOptions.connection_limit,
        header_timeout: float = ServingOptions.header_timeout,
        request_timeout: float = ServingOptions.request_timeout,
        idle_timeout: float = ServingOptions.idle_timeout,
    ) -> None:
        options = ServingOptions(threads=threads, connection_limit=connection_limit,
                                 header_timeout=header_timeout, request_timeout=request_timeout,
                                 idle_timeout=idle_timeout)
        self._owns_app = not isinstance(app, Flask)
        self.app = (app if isinstance(app, Flask)
                    else create_app(app, clock=clock, redis_url=redis_url))
        self._map: dict[int, Any] = {}
        try:
            server = _listen(self.app, host, port, options, self._map)
        except BaseException:
            if self._owns_app:
                app_world(self.app).close()
            raise
        self._server = server
        self.options = options
        self.host = host
        self.port = int(server.effective_port)
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=server.run, name=f"travian-server-{self.port}",
                                        daemon=True)
        self._started = False

    def start(self) -> ServerThread:
        if not self._started:
            self._started = True
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Close the listening socket and every connection, stop the worker threads."""
        server = self._server
        _end_streams(self.app)  # open streams end within a second, freeing their threads
        if self._started and self._thread.is_alive():
            # close_all runs in the server's own loop thread (the trigger's thunk), which
            # then finds its map empty and returns
            try:
                server.trigger.pull_trigger(lambda: wasyncore.close_all(self._map))
            except OSError:  # the loop closed its trigger on its own meanwhile
                wasyncore.close_all(self._map)
            self._thread.join(timeout)
        else:
            wasyncore.close_all(self._map)
        server.shutdown(timeout)
        if self._owns_app:
            app_world(self.app).close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<ServerThread {self.url}>"


__all__ = ["ServerThread", "serve"]

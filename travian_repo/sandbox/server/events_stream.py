"""``GET /v1/player/{player_id}/events``: a player's events as Server-Sent Events.

Behind the same checks as every v1 route (rate limit, token, ``X-World-Id``); a player
streams its own events only (``403`` otherwise). The stream reads the world's event log
(``infra/event_log.py``: Redis streams when the server has Redis, else an in-memory ring):

- it opens with ``retry:`` and ``id:`` (the log's position at connect: a client that
  reconnects with that ``Last-Event-ID`` loses nothing even if no event came meanwhile);
- every event is ``id: <id>``, ``event: <kind>``, ``data: <the Event as JSON>``;
- ``Last-Event-ID`` resumes after that id; when the log no longer holds the events after it
  (older than the retention, or an id of another server life) the stream first sends
  ``event: events_lost`` (an ``Event`` of kind ``events_lost``) and goes on with the oldest
  event it still has;
- a comment line (``: heartbeat``) every ``heartbeat_s`` seconds keeps proxies from closing
  an idle stream, and tells the server when the client has gone.

At most ``max_streams`` are open at once; one more is ``503 backend_unavailable`` with
``Retry-After``. Streams are answered by threads of their own (``serving.py``'s stream lane,
``max_streams`` plus two for the refusals), never by the API's worker threads.
"""

from __future__ import annotations

import re
import threading
import time
from datetime import datetime, timezone
from typing import Callable, Iterator

from flask import Flask, Response, request

from travian_repo.domain import events as kinds
from travian_repo.domain.errors import (
    BackendUnavailable,
    ConfigurationError,
    Forbidden,
    TravianError,
)
from travian_repo.domain.validators import is_finite_number, is_int
from travian_repo.domain.values import Event
from travian_repo.infra.event_log import EventLog, LogRead, check_event_id, encode_event
from travian_repo.sandbox.server.answers import Refused, error_answer, unauthorized
from travian_repo.sandbox.server.auth import authenticate, check_world
from travian_repo.sql.database import Database
from travian_repo.wire.routes import PREFIX

EVENTS_RULE = f"{PREFIX}/player/<int:player_id>/events"
_STREAM_PATH = re.compile(rf"^{re.escape(PREFIX)}/player/[0-9]+/events$")
DEFAULT_MAX_STREAMS = 32
DEFAULT_HEARTBEAT_S = 15.0
MAX_HEARTBEAT_S = 30.0  # the client reconnects after 45 s of silence
SPARE_THREADS = 2  # beyond max_streams: they answer the 503s of a full server at once
RETRY_AFTER_S = 2
_SLICE_S = 1.0  # the longest single wait on the log, so a closing server is not held up
_EXTENSION = "travian_repo.event_streams"


def is_stream_path(path: str) -> bool:
    """Whether ``path`` is an event stream's (the server gives those a thread lane of their own)."""
    return bool(_STREAM_PATH.match(path))


class EventStreams:
    """The open streams of one app: their bound, their heartbeat, and the log they read."""

    def __init__(self, log: EventLog, *, max_streams: int = DEFAULT_MAX_STREAMS,
                 heartbeat_s: float = DEFAULT_HEARTBEAT_S) -> None:
        if not is_int(max_streams) or max_streams < 1:
            raise ConfigurationError(f"max_streams must be a whole number of at least 1, "
                                     f"got {max_streams!r}")
        if not is_finite_number(heartbeat_s) or not 0 < heartbeat_s <= MAX_HEARTBEAT_S:
            raise ConfigurationError(f"heartbeat_s must be a number of seconds above 0 and at "
                                     f"most {MAX_HEARTBEAT_S:g}, got {heartbeat_s!r}")
        self.log = log
        self.max_streams = max_streams
        self.heartbeat_s = float(heartbeat_s)
        self._lock = threading.Lock()
        self._open = 0
        self._closing = threading.Event()

    @property
    def threads(self) -> int:
        """Threads the server gives the stream lane."""
        return self.max_streams + SPARE_THREADS

    @property
    def open(self) -> int:
        with self._lock:
            return self._open

    def _take_slot(self) -> bool:
        with self._lock:
            if self._open >= self.max_streams or self._closing.is_set():
                return False
            self._open += 1
            return True

    def _slot_releaser(self) -> Callable[[], None]:
        released = False

        def release() -> None:
            nonlocal released
            with self._lock:
                if not released:
                    released = True
                    self._open -= 1

        return release

    def close(self) -> None:
        """End every open stream within a second (the server is stopping)."""
        self._closing.set()
        self.log.close()  # a read blocked on Redis returns at once

    # ---- one request ----------------------------------------------------------------------

    def answer(self, player_id: int, last_event_id: str | None) -> Response:
        """The stream for ``player_id`` (already authorized), after ``last_event_id``."""
        after = None if last_event_id is None else check_event_id(last_event_id.strip())
        if not self._take_slot():
            raise _too_many(self.max_streams)
        release = self._slot_releaser()
        try:
            cursor = self.log.position(player_id) if after is None else after
        except BaseException:
            release()
            raise
        response = Response(self._frames(player_id, cursor, release),
                            status=200, content_type="text/event-stream; charset=utf-8",
                            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
        response.call_on_close(release)  # also when the body is never read (HEAD, an error)
        return response

    def _frames(self, player_id: int, cursor: str,
                release: Callable[[], None]) -> Iterator[bytes]:
        try:
            retry_ms = int(RETRY_AFTER_S * 1000)
            yield f"retry: {retry_ms}\nid: {cursor}\n\n".encode()
            beat = time.monotonic() + self.heartbeat_s
            while not self._closing.is_set():
                wait = min(_SLICE_S, beat - time.monotonic())
                if wait <= 0:
                    yield b": heartbeat\n\n"
                    beat = time.monotonic() + self.heartbeat_s
                    continue
                try:
                    found = self.log.read(player_id, cursor, wait)
                except BackendUnavailable:
                    time.sleep(min(wait, _SLICE_S))  # Redis away: heartbeats go on meanwhile
                    continue
                frames = _frames_of(player_id, cursor, found)
                cursor = found.cursor
                if frames:
                    yield frames
        finally:
            release()


def _too_many(max_streams: int) -> Refused:
    answer = error_answer(BackendUnavailable(
        f"this server streams at most {max_streams} event streams at once; retry in "
        f"{RETRY_AFTER_S} s", details={"reason": "too_many_streams", "max_streams": max_streams}))
    return Refused(type(answer)(answer.status, answer.body,
                                {**answer.headers, "Retry-After": str(RETRY_AFTER_S)}))


def _frames_of(player_id: int, cursor: str, found: LogRead) -> bytes:
    parts: list[str] = []
    if found.lost:
        notice = Event(kinds.EVENTS_LOST, player_id, datetime.now(timezone.utc),
                       {"last_event_id": cursor,
                        "reason": "the server's event log no longer holds the events after "
                                  "this id; the stream goes on with the oldest it has"})
        # with no event after it, the notice carries the position the stream goes on from
        moved = "" if found.entries else f"id: {found.cursor}\n"
        parts.append(f"{moved}event: {kinds.EVENTS_LOST}\ndata: {encode_event(notice)}\n\n")
    for event_id, event in found.entries:
        parts.append(f"id: {event_id}\nevent: {event.kind}\ndata: {encode_event(event)}\n\n")
    return "".join(parts).encode("utf-8", "backslashreplace")


def add_event_stream_route(app: Flask, database: Database, world_id: str,
                           check_rate: Callable[[], None], streams: EventStreams) -> None:
    """Register ``GET /v1/player/{player_id}/events`` on ``app``, served by ``streams``."""

    def events(player_id: int) -> Response:
        try:
            check_rate()
            caller = authenticate(database)
            if caller is None:
                raise Refused(unauthorized(
                    f"GET {request.path} needs Authorization: Bearer <token>"))
            check_world(world_id)
            if caller != player_id:
                raise Forbidden(f"player {caller} may not read player {player_id}'s events",
                                details={"player_id": player_id})
            return streams.answer(player_id, request.headers.get("Last-Event-ID"))
        except Refused as refused:
            return refused.answer.response()
        except TravianError as failure:
            return error_answer(failure).response()

    app.add_url_rule(EVENTS_RULE, endpoint="events.stream", view_func=events, methods=["GET"])
    app.extensions[_EXTENSION] = streams


def app_streams(app: Flask) -> EventStreams | None:
    """The event streams of an app made by ``create_app`` (None for another Flask app)."""
    streams = app.extensions.get(_EXTENSION)
    return streams if isinstance(streams, EventStreams) else None


__all__ = ["DEFAULT_HEARTBEAT_S", "DEFAULT_MAX_STREAMS", "EVENTS_RULE", "EventStreams",
           "add_event_stream_route", "app_streams", "is_stream_path"]

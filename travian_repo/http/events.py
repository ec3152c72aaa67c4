"""``world.events(player_id)`` over HTTP: the server's event stream
(``GET /v1/player/{player_id}/events``, Server-Sent Events) read as an iterator of ``Event``.

- ``subscribe`` connects before it returns (retried by the transport's ``RetryPolicy``; a
  refusal is its typed error: ``Forbidden`` for another player's events, ``Unauthorized``
  without a token, ``BackendUnavailable`` once the policy gives up), and reads the server's
  opening ``id:``, so every event committed after it returns is delivered.
- A thread of the subscription's own reads the stream into a bounded queue (a slow reader
  holds the stream back; the server's log, not this queue, is what may drop events).
- A dropped connection, a stream the server ended, or ``STREAM_READ_TIMEOUT_S`` without a
  byte (the server sends a heartbeat well within it) is reconnected with ``Last-Event-ID``:
  nothing is lost or repeated while the server's log still holds the events. The waits are
  the policy's backoff (``Retry-After`` where the server sends one), retried until the
  subscription is closed or its idle ``timeout`` passes; a refusal that no retry can change
  (401, 403, 404, 400) ends the iteration with its error.
- When the server says events were lost (its log no longer held them), the iterator yields
  that ``Event`` of kind ``events_lost`` and goes on.
- ``close()`` (or ``with``, or collection) shuts the connection at once.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any, Iterator

import requests

from travian_repo.domain import events as kinds
from travian_repo.domain.errors import TravianError
from travian_repo.domain.values import Event
from travian_repo.http.sse import SseMessage, SseParser
from travian_repo.http.transport import Transport
from travian_repo.http.transport.answers import ErrorAnswer, decode
from travian_repo.http.transport.failures import (
    answer_error,
    describe,
    network_error,
    never_sent,
    retry_wait,
    should_retry,
    transient,
)
from travian_repo.infra.event_bus import Subscription
from travian_repo.infra.event_log import decode_event
from travian_repo.wire.routes import PREFIX

log = logging.getLogger(__name__)

OPERATION = "events.stream"
STREAM_READ_TIMEOUT_S = 45.0  # the server's heartbeat is at most 30 s
QUEUE_SIZE = 1000
_PUT_SLICE_S = 0.5


def events_path(player_id: int) -> str:
    return f"{PREFIX}/player/{player_id}/events"


class _StreamReader:
    """The state the reading thread works on (it never holds the subscription itself, so an
    abandoned subscription is collected and closes the stream)."""

    def __init__(self, transport: Transport, player_id: int) -> None:
        self.transport = transport
        self.path = events_path(player_id)
        self.queue: queue.Queue[Event | TravianError] = queue.Queue(QUEUE_SIZE)
        self.closed = threading.Event()
        self.parser = SseParser()
        self.last_event_id: str | None = None
        self.reconnects = 0
        self.lost = 0
        self._lock = threading.Lock()
        self._response: requests.Response | None = None

    # ---- connecting ------------------------------------------------------------------------

    def open(self) -> tuple[requests.Response, Iterator[bytes]]:
        """One attempt: the stream's answer, read up to its opening ``id:`` (ErrorAnswer,
        TravianError or a requests exception otherwise)."""
        transport = self.transport
        headers = transport.headers
        headers["Accept"] = "text/event-stream"
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        if transport.rate_limiter is not None:
            transport.rate_limiter.acquire(timeout=transport.retry.deadline_s)
        response = transport.session.get(
            transport.base_url + self.path, headers=headers, stream=True,
            timeout=(transport.timeout[0], STREAM_READ_TIMEOUT_S))
        try:
            if response.status_code != 200:
                decode(response, OPERATION)  # raises ErrorAnswer for an error answer
                raise TravianError(f"{OPERATION}: expected 200, got HTTP {response.status_code}",
                                   details={"status": response.status_code})
            content_type = response.headers.get("Content-Type", "")
            if not content_type.startswith("text/event-stream"):
                raise TravianError(f"{OPERATION}: expected text/event-stream, got "
                                   f"{content_type!r}", details={"content_type": content_type})
            with self._lock:
                if self.closed.is_set():
                    raise _Closed()
                self._response = response
            chunks = response.iter_content(chunk_size=None)
            self.parser.reset()
            while True:  # up to the opening id: from then on the stream is live
                chunk = next(chunks, None)
                if chunk is None:
                    raise requests.ConnectionError("the server ended the stream before its "
                                                   "opening id")
                opened = [self.take(m) for m in self.parser.feed(chunk)]
                if any(m.id is not None for m in opened):
                    return response, chunks
        except BaseException:
            response.close()
            raise

    def connect_first(self) -> tuple[requests.Response, Iterator[bytes]]:
        """``open`` under the transport's retry policy; its typed error when it gives up."""
        transport = self.transport
        attempts = 0

        def retry(exc: BaseException) -> bool:
            return should_retry(exc, keyed=False, replay_safe=True,
                                owns_session=transport.owns_session)

        def wait(state: Any) -> float:
            exc = state.outcome.exception() if state.outcome is not None else None
            return retry_wait(exc, state.attempt_number, transport.retry,
                              transport.max_retry_after)

        try:
            for attempt in transport.retry.retrying(retry, wait=wait):
                with attempt:
                    attempts += 1
                    return self.open()
        except ErrorAnswer as answer:
            raise answer_error(answer, OPERATION, "GET", self.path, attempts, True) from None
        except requests.RequestException as exc:
            raise network_error(exc, OPERATION, "GET", self.path, attempts, True,
                                connect_retries=transport.retry.retries
                                if transport.owns_session else None) from exc
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    def reconnect(self) -> tuple[requests.Response, Iterator[bytes]] | None:
        """``open`` again until it works, the subscription closes (None), or a refusal no
        retry can change (delivered to the iterator; None)."""
        failed = 0
        while not self.closed.is_set():
            try:
                return self.open()
            except _Closed:
                return None
            except ErrorAnswer as answer:
                if not should_retry(answer, keyed=False, replay_safe=True, owns_session=False):
                    self.fail(answer_error(answer, OPERATION, "GET", self.path, 1, True))
                    return None
                exc: BaseException = answer
            except requests.RequestException as error:
                if not (transient(error) or never_sent(error)):
                    self.fail(network_error(error, OPERATION, "GET", self.path, 1, True,
                                            connect_retries=None))
                    return None
                exc = error
            except TravianError as error:
                self.fail(error)
                return None
            failed += 1
            delay = retry_wait(exc, failed, self.transport.retry, self.transport.max_retry_after)
            if failed == 1:
                log.warning("event stream %s: reconnecting (%s)", self.path, describe(exc))
            self.closed.wait(delay)
        return None

    # ---- reading ---------------------------------------------------------------------------

    def run(self, response: requests.Response, chunks: Iterator[bytes]) -> None:
        """The thread's body: read, and reconnect whenever the stream breaks."""
        try:
            while not self.closed.is_set():
                try:
                    for chunk in chunks:
                        for message in self.parser.feed(chunk):
                            self.take(message)
                        if self.closed.is_set():
                            return
                    cause = "the server ended the stream"
                except Exception as exc:  # noqa: BLE001 - any break of the stream: reconnect
                    if self.closed.is_set():
                        return
                    cause = describe(exc)
                finally:
                    response.close()
                log.info("event stream %s: connection lost (%s); resuming after %s",
                         self.path, cause, self.last_event_id)
                try:
                    opened = self.reconnect()
                except Exception as exc:  # noqa: BLE001 - the iterator must hear of it
                    self.fail(TravianError(f"{OPERATION}: reconnecting failed: {describe(exc)}"))
                    return
                if opened is None:
                    return
                response, chunks = opened
                self.reconnects += 1
        finally:
            self.shutdown()

    def take(self, message: SseMessage) -> SseMessage:
        """Queue a message's event (if it has one), then remember its id."""
        if message.data:
            try:
                event = decode_event(message.data)
            except Exception as exc:  # noqa: BLE001 - a foreign message is skipped, not fatal
                log.warning("event stream %s: skipping an undecodable message (%s)",
                            self.path, exc)
            else:
                if event.kind == kinds.EVENTS_LOST:
                    self.lost += 1
                    log.warning("event stream %s: the server's log no longer held the events "
                                "after %s; some were lost", self.path,
                                event.data.get("last_event_id"))
                self.put(event)
        if message.id is not None:
            self.last_event_id = message.id
        return message

    def put(self, item: Event | TravianError) -> None:
        while not self.closed.is_set():
            try:
                self.queue.put(item, timeout=_PUT_SLICE_S)
                return
            except queue.Full:
                continue

    def fail(self, error: TravianError) -> None:
        log.warning("event stream %s: %s", self.path, error)
        self.put(error)

    def shutdown(self) -> None:
        """Close the connection now, from any thread (it unblocks a read in progress)."""
        with self._lock:
            response, self._response = self._response, None
        if response is None:
            return
        raw = getattr(response, "raw", None)
        try:
            if raw is not None and hasattr(raw, "shutdown"):
                raw.shutdown()
        except Exception:  # noqa: BLE001 - closed already, or not a socket: close below
            pass
        response.close()


class _Closed(Exception):
    """The subscription closed while a connection was being opened."""


class HttpEventSubscription(Subscription):
    """A live event stream from the server; see the module's docstring."""

    def __init__(self, transport: Transport, player_id: int, timeout: float | None) -> None:
        super().__init__(player_id, timeout)
        self._reader = _StreamReader(transport, player_id)
        response, chunks = self._reader.connect_first()
        self._thread = threading.Thread(target=self._reader.run, args=(response, chunks),
                                        name=f"travian-events-{player_id}", daemon=True)
        self._thread.start()

    @property
    def last_event_id(self) -> str | None:
        """The id of the last event received (where a reconnect resumes)."""
        return self._reader.last_event_id

    @property
    def reconnects(self) -> int:
        return self._reader.reconnects

    @property
    def heartbeats(self) -> int:
        """Heartbeat comments received so far."""
        return self._reader.parser.comments

    @property
    def lost(self) -> int:
        """How many times the server said events were lost."""
        return self._reader.lost

    def _next_event(self, wait: float) -> Event | None:
        try:
            item = self._reader.queue.get(timeout=wait)
        except queue.Empty:
            return None
        if isinstance(item, TravianError):
            self.close()
            raise item
        return item

    def close(self) -> None:
        self.closed = True
        reader = getattr(self, "_reader", None)
        if reader is not None:
            reader.closed.set()
            reader.shutdown()


__all__ = ["OPERATION", "STREAM_READ_TIMEOUT_S", "HttpEventSubscription", "events_path"]

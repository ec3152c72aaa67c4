"""The event log: each player's recent events, in order, each with an id, for readers that
come back (the server's event stream resumes a client at its ``Last-Event-ID``).

Two implementations of one ``EventLog`` interface, kept by the event bus beside its live
delivery (``EventBus.event_log()``):

- ``RedisEventLog``: one Redis stream per player (``XADD ... MAXLEN ~ size``); ids are the
  stream's (``1767268800000-0``). Every process of the world that publishes through Redis
  appends, so the log holds what the engine and the SQL writers commit too. A player's stream
  expires ``ttl_s`` after its last event.
- ``MemoryEventLog``: a ring of ``size`` events per player in this process; ids are
  ``{epoch}-{sequence}``, the epoch new for every log, so an id of a previous server life is
  recognised as such.

A read after an id the log no longer holds events after (trimmed, expired, another log's id)
says so (``LogRead.lost``) and continues with the oldest event it still has.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import redis

from travian_repo.domain.errors import BackendUnavailable, InvalidRequest
from travian_repo.domain.values import Event
from travian_repo.infra.keys import events_log_key
from travian_repo.wire.serializer import decode, encode

DEFAULT_LOG_SIZE = 1000  # events kept per player
DEFAULT_LOG_TTL_S = 86_400.0  # a Redis stream without a new event for this long expires
READ_BATCH = 200  # events handed out by one read at most
MAX_ID_LENGTH = 64
_ID_SHAPE = re.compile(r"^[0-9A-Za-z]{1,40}-[0-9]{1,20}$")
_FIELD = "e"


@dataclass(frozen=True)
class LogRead:
    """What one read found: ``entries`` (id, event) in order; ``lost`` when events after the
    reader's id were dropped before it read them; ``cursor`` to read after next time."""

    entries: list[tuple[str, Event]] = field(default_factory=list)
    lost: bool = False
    cursor: str = ""


def encode_event(event: Event) -> str:
    """An event as JSON text, by the one serializer (the bus, the log and the stream)."""
    return json.dumps(encode(event), separators=(",", ":"), ensure_ascii=False)


def decode_event(payload: str | bytes) -> Event:
    if isinstance(payload, bytes):
        payload = payload.decode("utf-8")
    return decode(Event, json.loads(payload))


def check_event_id(value: str) -> str:
    """A ``Last-Event-ID`` as sent: visible ASCII ``word-number``; InvalidRequest otherwise."""
    if len(value) > MAX_ID_LENGTH or not _ID_SHAPE.match(value):
        raise InvalidRequest("Last-Event-ID must be an event id this server sent "
                             "(letters and digits, a dash, digits)",
                             details={"header": "Last-Event-ID"})
    return value


class EventLog(ABC):
    """Each player's last ``size`` events, in order, with ids."""

    size: int

    @abstractmethod
    def append(self, events: list[Event]) -> None:
        """Log ``events`` under their players (the bus calls this on publish)."""

    @abstractmethod
    def position(self, player_id: int) -> str:
        """The id to read after for ``player_id``'s events from now on."""

    @abstractmethod
    def read(self, player_id: int, after: str, wait: float) -> LogRead:
        """The events after ``after`` (an id of this log, or one it recognises as foreign),
        waiting up to ``wait`` seconds for one. ``BackendUnavailable`` when the log cannot be
        read."""

    def close(self) -> None:
        """Release what the log holds for its readers."""


# ---- in process ---------------------------------------------------------------------------

class MemoryEventLog(EventLog):
    """A bounded ring per player; ids ``{epoch}-{sequence}`` (the sequence is global to the
    log, so ids of different players never collide)."""

    def __init__(self, size: int = DEFAULT_LOG_SIZE) -> None:
        self.size = size
        self.epoch = secrets.token_hex(4)
        self._seq = 0
        self._rings: dict[int, deque[tuple[int, Event]]] = {}
        self._dropped: dict[int, int] = {}  # the sequence of the last event a ring let go
        self._changed = threading.Condition()

    def append(self, events: list[Event]) -> None:
        with self._changed:
            for event in events:
                self._seq += 1
                ring = self._rings.get(event.player_id)
                if ring is None:
                    ring = self._rings[event.player_id] = deque(maxlen=self.size)
                if len(ring) == ring.maxlen:
                    self._dropped[event.player_id] = ring[0][0]
                ring.append((self._seq, event))
            self._changed.notify_all()

    def position(self, player_id: int) -> str:
        with self._changed:
            return f"{self.epoch}-{self._seq}"

    def read(self, player_id: int, after: str, wait: float) -> LogRead:
        epoch, _, number = after.partition("-")
        deadline = time.monotonic() + max(0.0, wait)
        with self._changed:
            mine = epoch == self.epoch and number.isdigit() and int(number) <= self._seq
            seq = int(number) if mine else 0
            while True:
                lost = not mine or self._dropped.get(player_id, 0) > seq
                ring = self._rings.get(player_id, ())
                entries = [(f"{self.epoch}-{n}", event) for n, event in ring if n > seq]
                if entries or lost:
                    entries = entries[:READ_BATCH]
                    cursor = entries[-1][0] if entries else f"{self.epoch}-{seq}"
                    return LogRead(entries, lost, cursor)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return LogRead([], False, after)
                self._changed.wait(remaining)


# ---- Redis --------------------------------------------------------------------------------

def _stream_id(value: str | bytes | None) -> tuple[int, int] | None:
    if value is None:
        return None
    text = value.decode() if isinstance(value, bytes) else value
    ms, _, seq = text.partition("-")
    if not (ms.isdigit() and seq.isdigit()):
        return None
    return int(ms), int(seq)


class RedisEventLog(EventLog):
    """A Redis stream per player, trimmed to about ``size`` entries (``MAXLEN ~``)."""

    # A read blocks Redis for at most this long, so a closing server is never kept waiting.
    BLOCK_S = 1.0

    def __init__(self, client: redis.Redis, world_id: str, *, size: int = DEFAULT_LOG_SIZE,
                 ttl_s: float = DEFAULT_LOG_TTL_S) -> None:
        self.client = client
        self.world_id = world_id
        self.size = size
        self.ttl_s = ttl_s
        self._readers: redis.Redis | None = None
        self._lock = threading.Lock()

    def key(self, player_id: int) -> str:
        return events_log_key(self.world_id, player_id)

    def add_to(self, pipe: Any, encoded: list[tuple[Event, str]]) -> None:
        """Queue the commands that log these (event, JSON) pairs on ``pipe`` (the bus's
        publishing pipeline): one ``XADD`` each, one ``EXPIRE`` per player."""
        keys: dict[str, None] = {}
        for event, text in encoded:
            key = self.key(event.player_id)
            pipe.xadd(key, {_FIELD: text}, maxlen=self.size, approximate=True)
            keys[key] = None
        for key in keys:
            pipe.expire(key, max(1, int(self.ttl_s)))

    def append(self, events: list[Event]) -> None:
        pipe = self.client.pipeline(transaction=False)
        self.add_to(pipe, [(event, encode_event(event)) for event in events])
        pipe.execute()

    def _reader_client(self) -> redis.Redis:
        """A client of its own for blocking reads: the shared one's socket timeout is far
        shorter than a blocking XREAD."""
        with self._lock:
            if self._readers is None:
                pool = self.client.connection_pool
                kwargs = {k: v for k, v in pool.connection_kwargs.items()
                          if k in ("host", "port", "db", "username", "password", "path",
                                   "ssl", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile",
                                   "ssl_cert_reqs", "client_name", "protocol")}
                kwargs["socket_timeout"] = self.BLOCK_S + 5.0
                kwargs["socket_connect_timeout"] = 2.0
                self._readers = redis.Redis(
                    connection_pool=redis.ConnectionPool(
                        connection_class=pool.connection_class, **kwargs))
            return self._readers

    def position(self, player_id: int) -> str:
        try:
            last: Any = self._reader_client().xrevrange(self.key(player_id), count=1)
        except redis.RedisError as exc:
            raise _unavailable(exc) from None
        return str(last[0][0].decode()) if last else "0-0"

    def read(self, player_id: int, after: str, wait: float) -> LogRead:
        key = self.key(player_id)
        wanted = _stream_id(after)
        cursor = after if wanted is not None else "0-0"
        client = self._reader_client()
        pipe = client.pipeline(transaction=False)
        pipe.xinfo_stream(key)
        block_ms = max(1, int(min(wait, self.BLOCK_S) * 1000))
        pipe.xread({key: cursor}, count=READ_BATCH, block=block_ms)
        try:
            info, found = pipe.execute(raise_on_error=False)
        except redis.RedisError as exc:
            raise _unavailable(exc) from None
        if isinstance(found, Exception):
            raise _unavailable(found)
        lost = wanted is None or _trimmed_after(info, wanted)
        entries: list[tuple[str, Event]] = []
        streams = found.items() if isinstance(found, dict) else (found or ())
        for _, items in streams:
            for entry_id, fields in items:
                entries.append((entry_id.decode(), _decode_entry(fields)))
        if wanted is not None and isinstance(info, dict):
            newest = _stream_id(info.get("last-generated-id"))
            if newest is not None and wanted > newest:  # an id this stream never gave out
                lost = True
                entries = _all_entries(client, key)
        if entries:
            cursor = entries[-1][0]
        elif lost:
            cursor = "0-0"  # no stream left: read whatever is written from here on
        return LogRead(entries, lost, cursor)

    def close(self) -> None:
        with self._lock:
            readers, self._readers = self._readers, None
        if readers is not None:
            readers.close()


def _trimmed_after(info: Any, wanted: tuple[int, int]) -> bool:
    """Whether the stream let go of an entry after ``wanted``: its oldest entry is younger than
    ``wanted`` and entries were trimmed (or a deleted entry is recorded after it)."""
    if not isinstance(info, dict):  # no stream: none ever written, or expired
        return wanted != (0, 0)
    deleted = _stream_id(info.get("max-deleted-entry-id"))
    if deleted is not None and deleted > wanted:
        return True
    first = info.get("first-entry")
    oldest = _stream_id(first[0]) if first else None
    trimmed = int(info.get("entries-added") or 0) > int(info.get("length") or 0)
    return trimmed and oldest is not None and oldest > wanted


def _all_entries(client: redis.Redis, key: str) -> list[tuple[str, Event]]:
    found: Any = client.xrange(key, count=READ_BATCH)
    return [(entry_id.decode(), _decode_entry(fields)) for entry_id, fields in found]


def _decode_entry(fields: dict[bytes, bytes]) -> Event:
    return decode_event(fields[_FIELD.encode()])


def _unavailable(exc: BaseException) -> BackendUnavailable:
    return BackendUnavailable(f"the event log in Redis cannot be read ({type(exc).__name__}: "
                              f"{str(exc)[:200]})", details={"cause": type(exc).__name__})


__all__ = [
    "DEFAULT_LOG_SIZE",
    "DEFAULT_LOG_TTL_S",
    "EventLog",
    "LogRead",
    "MemoryEventLog",
    "RedisEventLog",
    "check_event_id",
    "decode_event",
    "encode_event",
]

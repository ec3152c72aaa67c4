"""The event bus: domain events published after commit, read with ``world.events(player_id)``.

Two implementations of one ``EventBus`` interface:

- ``InProcessEventBus`` (the embedded default, no Redis): thread-safe; every subscriber has
  its own bounded queue; a publish reaches the subscribers of the same world in this process
  (``InProcessEventBus.for_world`` gives every ``World`` of one world id in a process the same
  bus, so a ``ServerThread`` and a client in one notebook see each other's events).
- ``RedisEventBus``: ``PUBLISH`` on the player's channel ``travian_repo:v1:{world_id}:events:
  {player_id}``, the event encoded as JSON by the one serializer; a subscription is a redis-py
  ``PubSub`` read in the calling thread. Pub/sub is at most once: a subscriber that is not
  connected when an event is published (Redis restarting, the network down) misses it.

Publishing never raises into the committing caller: a failure is logged (one warning per
outage) and the events are dropped; the commit stands.

A subscription is an iterator of ``Event``. ``timeout`` is the idle limit: the iteration stops
(``StopIteration``) after that many seconds without an event; ``None`` blocks forever. The
subscription is live from the moment ``subscribe()`` returns (not from the first ``next``),
and it releases its queue or its Redis connection when it is exhausted, closed (``close()``,
``with``, ``break`` out of a ``with`` block) or garbage-collected.

Beside the live delivery, a bus keeps an ordered, bounded log of each player's recent events
(``event_log()``, see ``event_log.py``): the Redis bus appends every event to the player's
Redis stream in the same pipeline as the ``PUBLISH``; the in-process bus keeps a ring once a
server asks for it. The server's event stream reads it to resume a reader.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import weakref
from types import TracebackType
from typing import Any, Iterator, Protocol, runtime_checkable

import redis

from travian_repo.domain.validators import check_timeout
from travian_repo.domain.values import Event
from travian_repo.infra.event_log import (
    DEFAULT_LOG_SIZE,
    EventLog,
    MemoryEventLog,
    RedisEventLog,
    decode_event,
    encode_event,
)
from travian_repo.infra.keys import events_channel
from travian_repo.infra.redis_breaker import RedisBreaker

log = logging.getLogger(__name__)

DEFAULT_QUEUE_SIZE = 10_000  # events a slow in-process subscriber may fall behind by
_POLL_S = 1.0  # longest single wait, so a closed subscription notices soon
_RECONNECT_MAX_S = 5.0


def channel_name(world_id: str, player_id: int) -> str:
    """The Redis pub/sub channel of one player's events in one world."""
    return events_channel(world_id, player_id)


@runtime_checkable
class EventBus(Protocol):
    """Where committed domain events go, and where ``world.events()`` reads them."""

    def publish(self, events: list[Event]) -> None:
        """Deliver ``events`` (each to its ``player_id``'s subscribers); never raises."""
        ...

    def subscribe(self, player_id: int, *, timeout: float | None = None) -> Subscription:
        """An iterator of the events published for ``player_id`` from now on."""
        ...

    def event_log(self, size: int | None = None) -> EventLog:
        """The bus's ordered log of each player's last ``size`` events (default
        ``DEFAULT_LOG_SIZE``), which the server's event stream resumes readers from."""
        ...


class Subscription(Iterator[Event]):
    """A live subscription: iterate it, and ``close()`` it (or use ``with``) when done."""

    def __init__(self, player_id: int, timeout: float | None) -> None:
        self.player_id = player_id
        self.timeout = check_timeout(timeout)
        self.closed = False

    def __iter__(self) -> Subscription:
        return self

    def __next__(self) -> Event:
        if self.closed:
            raise StopIteration
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while True:
            wait = _POLL_S if deadline is None else min(_POLL_S, deadline - time.monotonic())
            if wait <= 0:
                self.close()
                raise StopIteration
            event = self._next_event(wait)
            if event is not None:
                return event
            if self.closed:
                raise StopIteration

    def _next_event(self, wait: float) -> Event | None:
        """The next event within ``wait`` seconds, or None."""
        raise NotImplementedError

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - nothing useful to do at collection time
            pass


# ---- in process ---------------------------------------------------------------------------

class _QueueSubscription(Subscription):
    def __init__(self, bus: InProcessEventBus, player_id: int, timeout: float | None,
                 maxsize: int) -> None:
        super().__init__(player_id, timeout)
        self.queue: queue.Queue[Event] = queue.Queue(maxsize)
        self.dropped = 0
        self._bus = weakref.ref(bus)

    def _next_event(self, wait: float) -> Event | None:
        try:
            return self.queue.get(timeout=wait)
        except queue.Empty:
            return None

    def offer(self, event: Event) -> None:
        """Queue ``event``; a full queue drops its oldest event (the newest matter most)."""
        while True:
            try:
                self.queue.put_nowait(event)
                return
            except queue.Full:
                try:
                    self.queue.get_nowait()
                except queue.Empty:
                    continue
                self.dropped += 1
                if self.dropped == 1:
                    log.warning("event subscriber of player %d is not keeping up; dropping its "
                                "oldest events", self.player_id)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            bus = self._bus()
            if bus is not None:
                bus._remove(self)


class InProcessEventBus(EventBus):
    """Per-player queues for each subscriber, in this process; thread-safe and bounded."""

    _worlds: dict[str, InProcessEventBus] = {}
    _worlds_lock = threading.Lock()

    def __init__(self, *, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        self.queue_size = queue_size
        self._log: MemoryEventLog | None = None  # kept once a server asks for it
        self._lock = threading.Lock()
        # weak: a subscription dropped by its reader is collected, and closes itself
        self._subscribers: dict[int, list[weakref.ref[_QueueSubscription]]] = {}

    @classmethod
    def for_world(cls, world_id: str) -> InProcessEventBus:
        """The process-wide bus of ``world_id`` (every World of that world shares it)."""
        with cls._worlds_lock:
            bus = cls._worlds.get(world_id)
            if bus is None:
                bus = cls._worlds[world_id] = cls()
            return bus

    def event_log(self, size: int | None = None) -> EventLog:
        """The in-memory ring, kept from the first call on (a bus nobody streams from keeps
        none)."""
        with self._lock:
            if self._log is None:
                self._log = MemoryEventLog(size or DEFAULT_LOG_SIZE)
            elif size is not None:
                self._log.size = size  # new players' rings take it
            return self._log

    def publish(self, events: list[Event]) -> None:
        try:
            log_ = self._log
            if log_ is not None and events:
                log_.append(events)
            for event in events:
                with self._lock:
                    targets = [ref() for ref in self._subscribers.get(event.player_id, ())]
                for subscription in targets:
                    if subscription is not None and not subscription.closed:
                        subscription.offer(event)
        except Exception:  # noqa: BLE001 - never into the committing caller
            log.exception("publishing %d event(s) in process failed", len(events))

    def subscribe(self, player_id: int, *, timeout: float | None = None) -> Subscription:
        subscription = _QueueSubscription(self, player_id, timeout, self.queue_size)
        with self._lock:
            self._subscribers.setdefault(player_id, []).append(weakref.ref(subscription))
        return subscription

    def subscriber_count(self, player_id: int | None = None) -> int:
        with self._lock:
            lists = ([self._subscribers.get(player_id, [])] if player_id is not None
                     else list(self._subscribers.values()))
            return sum(1 for subs in lists for ref in subs if ref() is not None)

    def _remove(self, subscription: _QueueSubscription) -> None:
        with self._lock:
            subs = self._subscribers.get(subscription.player_id)
            if subs is None:
                return
            subs[:] = [ref for ref in subs if ref() is not None and ref() is not subscription]
            if not subs:
                del self._subscribers[subscription.player_id]


# ---- Redis --------------------------------------------------------------------------------

class _RedisSubscription(Subscription):
    """A PubSub on the player's channel, read in the calling thread; re-subscribes after a
    lost connection (events published while it was away are lost: pub/sub is at most once)."""

    def __init__(self, client: redis.Redis, channel: str, player_id: int,
                 timeout: float | None) -> None:
        super().__init__(player_id, timeout)
        self._client = client
        self.channel = channel
        self._pubsub: Any = None
        self._lock = threading.Lock()
        self._backoff = 0.0
        self._retry_at = 0.0
        self.reconnects = 0
        try:
            self._connect(self._connect_wait())
        except redis.RedisError as exc:
            # Not fatal: the iteration keeps trying (and honours its timeout meanwhile).
            self._lost(exc)

    def _connect_wait(self) -> float:
        return 2.0 if self.timeout is None else max(0.25, min(2.0, self.timeout))

    def _connect(self, wait: float) -> None:
        """Subscribe and wait for Redis to confirm, so events from now on are delivered."""
        pubsub = self._client.pubsub(ignore_subscribe_messages=False)  # type: ignore[no-untyped-call]
        try:
            pubsub.subscribe(self.channel)
            deadline = time.monotonic() + wait
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise redis.exceptions.TimeoutError("no subscribe confirmation from Redis")
                message = pubsub.get_message(timeout=remaining)
                if message is not None and message.get("type") == "subscribe":
                    break
        except BaseException:
            _close_quietly(pubsub)
            raise
        with self._lock:
            if self.closed:
                _close_quietly(pubsub)
                return
            self._pubsub = pubsub
        self._backoff = 0.0

    def _lost(self, exc: BaseException) -> None:
        with self._lock:
            pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            _close_quietly(pubsub)
        self._backoff = min(_RECONNECT_MAX_S, max(0.1, self._backoff * 2))
        self._retry_at = time.monotonic() + self._backoff
        log.warning("event subscription %s: Redis connection lost (%s: %s); retrying in %.1fs",
                    self.channel, type(exc).__name__, str(exc)[:200], self._backoff)

    def _next_event(self, wait: float) -> Event | None:
        end = time.monotonic() + wait
        while not self.closed:
            remaining = end - time.monotonic()
            if remaining <= 0:
                return None
            pubsub = self._pubsub
            if pubsub is None:
                delay = self._retry_at - time.monotonic()
                if delay > 0:
                    time.sleep(min(delay, remaining))
                    continue
                try:
                    self._connect(max(0.25, min(remaining, 2.0)))
                    self.reconnects += 1
                    log.warning("event subscription %s: subscribed again", self.channel)
                except redis.RedisError as exc:
                    self._lost(exc)
                continue
            try:
                message = pubsub.get_message(timeout=remaining)
            except (redis.RedisError, OSError, ValueError, AttributeError) as exc:
                if self.closed:
                    return None
                self._lost(exc)
                continue
            if message is None or message.get("type") != "message":
                continue
            try:
                return decode_event(message["data"])
            except Exception as exc:  # noqa: BLE001 - a foreign message is skipped, not fatal
                log.warning("event subscription %s: skipping an undecodable message (%s)",
                            self.channel, exc)
        return None

    def close(self) -> None:
        with self._lock:
            self.closed = True
            pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            _close_quietly(pubsub)


def _close_quietly(pubsub: Any) -> None:
    try:
        pubsub.close()
    except Exception:  # noqa: BLE001
        pass


class RedisEventBus(EventBus):
    """Per-player Redis pub/sub channels: every process of the world sees every event."""

    def __init__(self, client: redis.Redis, world_id: str, *, recheck_s: float = 1.0) -> None:
        self.client = client
        self.world_id = world_id
        self._breaker = RedisBreaker(
            recheck_s, log=log,
            down_message="event bus: Redis unavailable (%s: %s); events are dropped until it "
                         "is back",
            back_message="event bus: Redis is back; events are published again",
        )
        self._lock = threading.Lock()
        self.published = 0
        self.dropped = 0
        # Every publisher logs too, so the log holds what any process of the world commits.
        self.log = RedisEventLog(client, world_id)

    @property
    def recheck_s(self) -> float:
        """Seconds between tries of Redis while it is down."""
        return self._breaker.retry_s

    @recheck_s.setter
    def recheck_s(self, value: float) -> None:
        self._breaker.retry_s = value

    def channel(self, player_id: int) -> str:
        return channel_name(self.world_id, player_id)

    def publish(self, events: list[Event]) -> None:
        if not events:
            return
        if not self._breaker.allow():
            self._drop(len(events))  # Redis known down: do not make every commit wait for it
            return
        try:
            pipe = self.client.pipeline(transaction=False)
            encoded = [(event, encode_event(event)) for event in events]
            for event, text in encoded:
                pipe.publish(self.channel(event.player_id), text)
            self.log.add_to(pipe, encoded)
            pipe.execute()
        except redis.RedisError as exc:
            self._drop(len(events))
            self._breaker.failed(exc)
            return
        except Exception:  # noqa: BLE001 - never into the committing caller
            self._drop(len(events))
            log.exception("event bus: publishing %d event(s) failed", len(events))
            return
        with self._lock:
            self.published += len(events)
        self._breaker.succeeded()

    def _drop(self, count: int) -> None:
        with self._lock:
            self.dropped += count

    def subscribe(self, player_id: int, *, timeout: float | None = None) -> Subscription:
        return _RedisSubscription(self.client, self.channel(player_id), player_id, timeout)

    def event_log(self, size: int | None = None) -> EventLog:
        """The per-player Redis streams this bus appends to on every publish."""
        if size is not None:
            self.log.size = size
        return self.log


def event_bus_for(redis_client: redis.Redis | None, world_id: str) -> EventBus:
    """The bus a World uses: Redis pub/sub with a Redis client, else the in-process one."""
    if redis_client is not None:
        return RedisEventBus(redis_client, world_id)
    return InProcessEventBus.for_world(world_id)


__all__ = [
    "EventBus",
    "InProcessEventBus",
    "RedisEventBus",
    "Subscription",
    "channel_name",
    "decode_event",
    "encode_event",
    "event_bus_for",
]

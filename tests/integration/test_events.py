"""Domain events after commit: the in-process bus, Redis pub/sub across processes, and the
local server publishing for its HTTP clients. Real databases (sqlite, postgresql), real Redis."""

from __future__ import annotations

import gc
import logging
import multiprocessing
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

import travian_repo as tr
from tests.conftest import PrivateRedis, free_port
from travian_repo.domain import events as kinds
from travian_repo.domain.errors import Forbidden, InvalidRequest
from travian_repo.domain.values import Event
from travian_repo.infra.event_bus import (
    InProcessEventBus,
    RedisEventBus,
    channel_name,
    decode_event,
    encode_event,
)
from travian_repo.sandbox import Clock
from travian_repo.sandbox.server import ServerThread

MakeWorld = Callable[..., Any]


def unique_world() -> str:
    return f"test-ev-{uuid.uuid4().hex[:12]}"


class Collector:
    """Iterates a subscription in a thread, collecting what it sees."""

    def __init__(self, subscription: Iterator[Event]) -> None:
        self.subscription = subscription
        self.events: list[Event] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for event in self.subscription:
                self.events.append(event)
        finally:
            self.done.set()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Event]:
        deadline = time.monotonic() + timeout
        while len(self.events) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return list(self.events)

    def finish(self, timeout: float = 10.0) -> list[Event]:
        assert self.done.wait(timeout), "the subscription did not stop on its timeout"
        return list(self.events)


def villages_of(world: tr.World, player_id: int) -> int:
    return world.villages.list_by_player(player_id)[0].id


def attack_and_message(world: tr.World) -> None:
    """Player 1 attacks player 2's village and writes to player 2, in one unit of work."""
    source, target = villages_of(world, 1), villages_of(world, 2)
    with world.unit_of_work(1) as uow:
        uow.military.attack(source, target, {"legionnaire": 5})
        uow.diplomacy.send_message(1, 2, "hello", "incoming!")


@pytest.fixture
def local_world(make_world: MakeWorld, database_url: str, clock: Clock) -> Iterator[tr.World]:
    world_id = unique_world()
    make_world(world_id=world_id)
    with tr.connect(database_url, player_id=1, clock=clock) as world:
        assert world.redis is None
        yield world


# ---- the in-process bus (the embedded default) -----------------------------------------------

@pytest.mark.slow  # a battle and its events
def test_a_player_sees_the_attack_on_their_village_and_the_message(local_world: tr.World) -> None:
    defender = Collector(local_world.events(2, timeout=1.0))
    bystander = Collector(local_world.events(3, timeout=1.0))
    attacker = Collector(local_world.events(1, timeout=1.0))
    attack_and_message(local_world)

    seen = defender.finish()
    assert [e.kind for e in seen] == [kinds.ATTACK_INCOMING, kinds.MESSAGE_RECEIVED]
    assert all(e.player_id == 2 for e in seen)
    incoming = seen[0]
    assert incoming.data["to_village_id"] == villages_of(local_world, 2)
    assert incoming.data["from_village_id"] == villages_of(local_world, 1)
    assert incoming.occurred_at.tzinfo is not None
    assert seen[1].data["from_player_id"] == 1
    assert bystander.finish() == []  # nothing for other players
    assert [e.kind for e in attacker.finish()] == [kinds.MOVEMENT_SENT]


@pytest.mark.slow  # waits to see that nothing comes
def test_events_are_published_only_after_the_commit(local_world: tr.World) -> None:
    defender = Collector(local_world.events(2, timeout=5.0))
    with local_world.unit_of_work(1) as uow:
        uow.diplomacy.send_message(1, 2, "one", "1")
        time.sleep(0.3)
        assert defender.events == []  # the unit is still open
    assert [e.kind for e in defender.wait_for(1)] == [kinds.MESSAGE_RECEIVED]
    defender.subscription.close()  # type: ignore[attr-defined]
    defender.finish()


@pytest.mark.slow  # waits to see that nothing comes
def test_a_rolled_back_unit_publishes_nothing(local_world: tr.World) -> None:
    defender = Collector(local_world.events(2, timeout=0.8))
    with pytest.raises(RuntimeError):
        with local_world.unit_of_work(1) as uow:
            uow.diplomacy.send_message(1, 2, "lost", "never sent")
            raise RuntimeError("changed my mind")
    # a write that fails inside a unit that then commits publishes nothing for it either
    with local_world.unit_of_work(1) as uow:
        with pytest.raises(tr.TravianError):
            uow.military.attack(villages_of(local_world, 1), villages_of(local_world, 2),
                                {"legionnaire": 10_000})
    assert defender.finish() == []


@pytest.mark.slow  # waits out timeouts
def test_the_timeout_is_an_idle_limit_and_none_blocks(local_world: tr.World) -> None:
    started = time.monotonic()
    assert list(local_world.events(2, timeout=0.3)) == []
    assert 0.25 <= time.monotonic() - started < 2.0
    forever = Collector(local_world.events(2))  # timeout=None
    time.sleep(1.3)  # longer than the internal poll: still waiting
    assert not forever.done.is_set()
    local_world.diplomacy.send_message(1, 2, "late", "but seen")
    assert [e.kind for e in forever.wait_for(1)] == [kinds.MESSAGE_RECEIVED]
    forever.subscription.close()  # type: ignore[attr-defined]
    forever.finish()
    with pytest.raises(InvalidRequest):
        local_world.events(2, timeout=-1)


def test_an_in_process_subscription_is_released_when_dropped() -> None:
    bus = InProcessEventBus(queue_size=3)
    subscription = bus.subscribe(7, timeout=0)
    assert bus.subscriber_count(7) == 1
    del subscription
    gc.collect()
    assert bus.subscriber_count(7) == 0
    with bus.subscribe(7, timeout=0.1) as kept:
        for n in range(5):  # bounded: the oldest are dropped
            bus.publish([Event(kinds.MESSAGE_RECEIVED, 7, _when(), {"message_id": n})])
        assert [e.data["message_id"] for e in kept] == [2, 3, 4]
    assert bus.subscriber_count() == 0


def _when() -> Any:
    from datetime import datetime, timezone

    return datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_the_serializer_round_trips_an_event() -> None:
    event = Event(kinds.ATTACK_INCOMING, 2, _when(), {"movement_id": 4, "kind": "raid",
                                                      "arrives_at": "2026-01-01T13:00:00Z"})
    assert decode_event(encode_event(event)) == event
    assert decode_event(encode_event(event).encode()) == event


# ---- Redis pub/sub -------------------------------------------------------------------------

@pytest.fixture
def redis_world(
    make_world: MakeWorld, database_url: str, clock: Clock, redis_url: str
) -> Iterator[tr.World]:
    make_world(world_id=unique_world())
    with tr.connect(database_url, player_id=1, clock=clock, redis_url=redis_url) as world:
        yield world


def _subscriber(database_url: str, redis_url: str, player_id: int, ready: Any,
                out: Any) -> None:
    """Another process: subscribe through its own World and report what arrives."""
    with tr.connect(database_url, redis_url=redis_url) as world:
        with world.events(player_id, timeout=10) as subscription:  # type: ignore[attr-defined]
            ready.set()
            for event in subscription:
                out.put(encode_event(event))
                if event.kind == kinds.MESSAGE_RECEIVED:
                    break
    out.put(None)


@pytest.mark.slow  # a Python process of its own
@pytest.mark.redis
def test_a_subscriber_in_another_process_receives_a_committed_write(
    redis_world: tr.World, database_url: str, redis_url: str
) -> None:
    ctx = multiprocessing.get_context("spawn")
    ready, out = ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=_subscriber, args=(database_url, redis_url, 2, ready, out))
    proc.start()
    try:
        assert ready.wait(60), "the subscriber process did not start"
        with redis_world.unit_of_work(1) as uow:
            uow.diplomacy.send_message(1, 2, "one", "uncommitted for now")
            time.sleep(0.3)
        attack_and_message(redis_world)
        received = []
        while (item := out.get(timeout=20)) is not None:
            received.append(decode_event(item))
    finally:
        proc.join(20)
    assert proc.exitcode == 0
    # the first message (its own unit), then the attack; stops at the first message
    assert [e.kind for e in received] == [kinds.MESSAGE_RECEIVED]
    assert received[0].data["from_player_id"] == 1


@pytest.mark.slow  # waits to see that nothing comes
@pytest.mark.redis
def test_redis_bus_delivers_per_player_and_after_commit_only(redis_world: tr.World) -> None:
    assert isinstance(redis_world._event_bus, RedisEventBus)
    defender = Collector(redis_world.events(2, timeout=1.0))
    bystander = Collector(redis_world.events(4, timeout=1.0))
    with pytest.raises(RuntimeError):
        with redis_world.unit_of_work(1) as uow:
            uow.diplomacy.send_message(1, 2, "lost", "rolled back")
            raise RuntimeError
    attack_and_message(redis_world)
    assert [e.kind for e in defender.finish()] == [kinds.ATTACK_INCOMING,
                                                   kinds.MESSAGE_RECEIVED]
    assert bystander.finish() == []


@pytest.mark.redis
def test_a_redis_subscription_closes_its_pubsub(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    bus = RedisEventBus(client, unique_world())
    channel = bus.channel(9)
    assert channel == channel_name(bus.world_id, 9)
    assert channel.startswith("travian_repo:v1:") and channel.endswith(":events:9")

    def subscribers() -> int:
        return int(dict(client.pubsub_numsub(channel))[channel.encode()])

    subscription = bus.subscribe(9, timeout=5)
    assert subscribers() == 1  # live as soon as subscribe() returns
    subscription.close()
    assert subscribers() == 0
    dropped = bus.subscribe(9, timeout=5)
    assert subscribers() == 1
    del dropped
    gc.collect()
    deadline = time.monotonic() + 5
    while subscribers() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert subscribers() == 0
    # a message that is not an event is skipped, not fatal
    with bus.subscribe(9, timeout=0.5) as subscription:
        client.publish(channel, b"not json")
        bus.publish([Event(kinds.MESSAGE_RECEIVED, 9, _when(), {"message_id": 1})])
        assert [e.data["message_id"] for e in subscription] == [1]
    client.close()


def test_publishing_to_a_dead_redis_never_raises_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead = redis.Redis(port=free_port(), socket_timeout=0.25, socket_connect_timeout=0.25,
                       retry=Retry(NoBackoff(), 0))
    bus = RedisEventBus(dead, unique_world(), recheck_s=0)
    caplog.set_level(logging.WARNING, logger="travian_repo.infra.event_bus")
    for n in range(3):
        bus.publish([Event(kinds.MESSAGE_RECEIVED, 2, _when(), {"message_id": n})])
    assert bus.dropped == 3
    assert len([r for r in caplog.records if "Redis unavailable" in r.getMessage()]) == 1


@pytest.mark.redis
def test_writes_commit_when_the_event_redis_is_down(
    make_world: MakeWorld, database_url: str, clock: Clock
) -> None:
    make_world(world_id=unique_world())
    dead = redis.Redis(port=free_port(), socket_timeout=0.25, socket_connect_timeout=0.25,
                       retry=Retry(NoBackoff(), 0))
    with tr.connect(database_url, player_id=1, clock=clock, redis_url=dead) as world:
        message = world.diplomacy.send_message(1, 2, "still", "delivered")
        with world.unit_of_work(2) as uow:
            assert message.id in [m.id for m in uow.diplomacy.messages(2)]
    dead.close()


# ---- a subscription survives a Redis restart -------------------------------------------------

@pytest.mark.slow  # restarts Redis
def test_a_subscription_survives_a_redis_restart(tmp_path: Path) -> None:
    server = PrivateRedis(tmp_path)
    server.start()
    port = server.port
    client = redis.Redis(port=port, socket_timeout=0.25, socket_connect_timeout=0.25,
                         retry=Retry(NoBackoff(), 0))
    bus = RedisEventBus(client, unique_world(), recheck_s=0)
    try:
        subscription = bus.subscribe(2, timeout=15)
        reader = Collector(subscription)
        bus.publish([Event(kinds.MESSAGE_RECEIVED, 2, _when(), {"message_id": 1})])
        assert len(reader.wait_for(1)) == 1
        server.stop()
        time.sleep(0.5)  # the reader notices and keeps retrying
        server.start()
        deadline = time.monotonic() + 15
        while len(reader.events) < 2 and time.monotonic() < deadline:
            # published until the re-subscribed reader sees one (pub/sub is at most once)
            bus.publish([Event(kinds.MESSAGE_RECEIVED, 2, _when(), {"message_id": 2})])
            time.sleep(0.1)
        assert [e.data["message_id"] for e in reader.events][:2] == [1, 2]
        subscription.close()
        reader.finish()
    finally:
        server.stop()
        client.close()


# ---- through the local server --------------------------------------------------------------

@pytest.mark.slow  # a server and a subscriber
@pytest.mark.redis
def test_the_local_server_publishes_an_http_clients_write(
    make_world: MakeWorld, database_url: str, clock: Clock, redis_url: str
) -> None:
    world_id = unique_world()
    summary = make_world(world_id=world_id)
    client = redis.Redis.from_url(redis_url)
    watcher = RedisEventBus(client, world_id)  # e.g. player 2's NPC on another machine
    with ServerThread(database_url, clock=clock, redis_url=redis_url) as server, \
            tr.connect(api_url=server.url, token=summary.tokens[1], redis_url=redis_url,
                       world_id=world_id, prefer="http") as http_world:
        assert http_world.world_id == world_id
        defender = Collector(watcher.subscribe(2, timeout=2.0))
        attacker = Collector(http_world.events(1, timeout=2.0))  # its own, from the server
        with pytest.raises(Forbidden):
            http_world.events(2)  # the token is player 1's
        source = http_world.villages.list_by_player(1)[0].id
        target = http_world.villages.list_by_player(2)[0].id
        http_world.military.attack(source, target, {"legionnaire": 3}, kind="raid")
        seen = defender.finish()
        assert [e.kind for e in seen] == [kinds.ATTACK_INCOMING]
        assert seen[0].data["kind"] == "raid" and seen[0].data["to_village_id"] == target
        assert [e.kind for e in attacker.finish()] == [kinds.MOVEMENT_SENT]
    client.close()

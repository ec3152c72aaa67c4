"""What a user reads: reprs of the world, a unit of work and the engine; a closed world's
refusal; an error message that ends with its cause; counts in the CLI's words."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import requests

import travian_repo as tr
from travian_repo.apps.cli import counted
from travian_repo.http.transport.failures import describe, root_cause
from travian_repo.sandbox import Clock, Engine, create_world


@pytest.fixture
def url(tmp_path: Path, clock: Clock) -> str:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    create_world(url, players=2, now=clock())
    return url


def test_reprs_say_backend_player_and_whether_open(url: str, clock: Clock) -> None:
    world = tr.connect(url, player_id=1, clock=clock)
    assert repr(world).endswith("player_id=1 open>") and "prefer=sql" in repr(world)
    unit = world.unit_of_work(2)
    assert repr(unit) == "<UnitOfWork sql player_id=2 open>"
    unit.close()
    assert repr(unit) == "<UnitOfWork sql player_id=2 ended>"
    with Engine(world.database, clock=clock) as engine:
        text = repr(engine)
    assert text.startswith("<Engine on sqlite:///") and text.endswith(
        f"now=2026-01-01 12:00:00 UTC batch={engine.batch} idle>")
    world.close()
    assert repr(world).endswith("player_id=1 closed>") and world.closed


def test_a_closed_world_refuses_every_call(url: str, clock: Clock) -> None:
    world = tr.connect(url, player_id=1, clock=clock)
    assert world.villages.get(1).id == 1
    world.close()
    world.close()  # a second close does nothing
    calls = [
        lambda: world.villages.get(1),
        lambda: world.players.ranking(),
        lambda: world.unit_of_work(),
        lambda: world.npc(1),
        lambda: world.events(1, timeout=0.01),
    ]
    for call in calls:
        with pytest.raises(tr.WorldClosed, match="closed") as info:
            call()
        assert isinstance(info.value, tr.TravianError)
    with tr.connect(url, player_id=1, clock=clock) as again:  # a new connection works
        assert again.villages.get(1).id == 1
    with pytest.raises(tr.WorldClosed):
        again.villages.get(1)  # the with block closed it


def test_server_down_names_its_cause_at_the_end() -> None:
    """A real closed port: the message ends with the refusal, not cut before it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed when the block ends: nobody listens there
    with pytest.raises(tr.BackendUnavailable) as info:
        tr.connect(api_url=f"http://127.0.0.1:{port}/v1", token="t", player_id=1,
                   timeout=(2, 2))
    message = str(info.value)
    assert f"port={port}" in message, message
    assert message.endswith("Connection refused"), message
    assert "ConnectionRefusedError" in message


def test_describe_keeps_the_cause_of_a_long_error() -> None:
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError as inner:
            raise requests.ConnectionError("x" * 1000) from inner
    except requests.ConnectionError as exc:
        outer = exc
    assert isinstance(root_cause(outer), ConnectionRefusedError)
    text = describe(outer)
    assert text.startswith("ConnectionError: xxx") and len(text) < 300
    assert text.endswith("cause: ConnectionRefusedError: [Errno 111] Connection refused")
    assert describe(ValueError("short")) == "ValueError: short"  # no cause: as it was
    plain = requests.ConnectionError("y" * 1000)
    assert describe(plain).endswith("…") and len(describe(plain)) < 250


def test_counts_read_as_english() -> None:
    assert counted(1, "day") == "1 day"
    assert counted(2, "day") == "2 days"
    assert counted(0.5, "day") == "0.5 days"
    assert counted(0, "event") == "0 events"
    assert counted(1, "NPC player") == "1 NPC player"

"""The NPC interface on both backends: True paths, False paths with their error, and
infrastructure failures that still raise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import travian_repo as tr
from travian_repo.npc import NPCGameInterface
from travian_repo.sql.villages import SqlVillageRepository

# In the conftest world (6 players, seed 7): player i owns village i; tribes cycle
# romans, teutons, gauls, so player 1 is Roman with 20 legionnaires and 5 equites_legati.
ME = 1


@pytest.fixture
def npc(world: tr.World) -> NPCGameInterface:
    interface: NPCGameInterface = world.npc(ME)
    interface.initialize()
    return interface


def stock(world: tr.World, village_id: int = ME) -> tr.Resources:
    resources = world.villages.get(village_id).resources
    assert resources is not None
    return resources


def test_initialize_loads_own_villages_with_private_state(world: tr.World) -> None:
    npc = world.npc(ME)
    assert isinstance(npc, NPCGameInterface) and npc.villages == [] and npc.last_error is None
    loaded = npc.initialize()
    assert loaded is npc.villages
    assert [v.id for v in npc.villages] == [1]
    assert npc.villages[0].player_id == ME and npc.villages[0].resources is not None


def test_world_npc_rejects_a_bad_player_id(world: tr.World) -> None:
    with pytest.raises(tr.InvalidRequest):
        world.npc(0)


def test_build_in_village_queues_and_spends(world: tr.World, npc: NPCGameInterface) -> None:
    before = stock(world)
    assert npc.build_in_village(1, "main_building") is True
    assert npc.last_error is None
    order = npc.last_result
    assert isinstance(order, tr.BuildOrder) and order.building == "main_building"
    assert world.villages.build_queue(1) == [order]
    assert stock(world) == before - order.cost


@pytest.mark.parametrize(
    ("village_id", "building", "error"),
    [
        (1, "moon_base", tr.InvalidRequest),
        (1, "", tr.InvalidRequest),
        (1, "'; DROP TABLE villages; --", tr.InvalidRequest),
        (2, "woodcutter", tr.Forbidden),
        (999, "woodcutter", tr.NotFound),
        (1, "wonder_of_the_world", tr.RuleViolation),
    ],
)
def test_build_in_village_refused(
    world: tr.World, npc: NPCGameInterface, village_id: int, building: str,
    error: type[tr.TravianError],
) -> None:
    before = stock(world)
    assert npc.build_in_village(village_id, building) is False
    assert isinstance(npc.last_error, error)
    assert npc.last_result is None
    assert stock(world) == before and world.villages.build_queue(1) == []


def test_full_queue_is_refused_and_success_resets_last_error(
    world: tr.World, npc: NPCGameInterface
) -> None:
    assert npc.build_in_village(1, "woodcutter")
    assert npc.build_in_village(1, "clay_pit")
    assert npc.build_in_village(1, "iron_mine") is False  # the queue holds 2 orders
    assert isinstance(npc.last_error, tr.RuleViolation)
    assert "queue" in str(npc.last_error)
    assert len(world.villages.build_queue(1)) == 2
    # A refusal leaves nothing open: the next action gets its own unit of work.
    assert npc.train_army(1, "legionnaire", 1) is True
    assert npc.last_error is None


def test_train_army(world: tr.World, npc: NPCGameInterface) -> None:
    before = stock(world)
    assert npc.train_army(1, "legionnaire", 3) is True
    order = npc.last_result
    assert isinstance(order, tr.TrainingOrder) and dict(order.troops) == {"legionnaire": 3}
    assert stock(world) == before - order.cost


@pytest.mark.parametrize(
    ("unit", "count", "error"),
    [
        ("clubswinger", 1, tr.InvalidRequest),  # a Teuton unit in a Roman village
        ("legionnaire", 0, tr.InvalidRequest),
        ("legionnaire", -5, tr.InvalidRequest),
        ("legionnaire", 2.5, tr.InvalidRequest),
        ("legionnaire", 10**12, tr.InvalidRequest),
        ("legionnaire", 100_000, tr.InsufficientResources),
    ],
)
def test_train_army_refused(
    world: tr.World, npc: NPCGameInterface, unit: str, count: Any,
    error: type[tr.TravianError],
) -> None:
    before = stock(world)
    assert npc.train_army(1, unit, count) is False
    assert isinstance(npc.last_error, error)
    assert stock(world) == before


def test_insufficient_resources_carries_amounts(npc: NPCGameInterface) -> None:
    assert npc.train_army(1, "legionnaire", 100_000) is False
    error = npc.last_error
    assert isinstance(error, tr.InsufficientResources) and isinstance(error, tr.RuleViolation)
    assert not error.available.covers(error.required)


def test_launch_raid_finds_the_target_by_coordinates(
    world: tr.World, npc: NPCGameInterface
) -> None:
    target = world.villages.get(2)
    assert npc.launch_raid(1, target.x, target.y, {"legionnaire": 5}) is True
    movement = npc.last_result
    assert isinstance(movement, tr.Movement)
    assert (movement.kind, movement.from_village_id, movement.to_village_id) == ("raid", 1, 2)
    assert dict(movement.troops) == {"legionnaire": 5}
    assert world.military.troops(1).get("legionnaire") == 15
    assert world.military.outgoing(1) == [movement]


def _empty_spot(world: tr.World) -> tuple[int, int]:
    for x in range(-10, 11):
        if world.villages.at(x, 0) is None:
            return x, 0
    raise AssertionError("no empty spot near the middle")


def test_launch_raid_on_an_empty_spot_is_not_found(
    world: tr.World, npc: NPCGameInterface
) -> None:
    x, y = _empty_spot(world)
    assert npc.launch_raid(1, x, y, {"legionnaire": 5}) is False
    assert isinstance(npc.last_error, tr.NotFound)
    assert world.military.troops(1).get("legionnaire") == 20


@pytest.mark.parametrize(
    ("troops", "error"),
    [
        ({"legionnaire": 500}, tr.RuleViolation),  # more than at home
        ({"legionnaire": 0}, tr.InvalidRequest),
        ({}, tr.InvalidRequest),
        ({"phalanx": 1}, tr.InvalidRequest),
    ],
)
def test_launch_raid_refused(
    world: tr.World, npc: NPCGameInterface, troops: dict[str, int],
    error: type[tr.TravianError],
) -> None:
    target = world.villages.get(3)
    assert npc.launch_raid(1, target.x, target.y, troops) is False
    assert isinstance(npc.last_error, error)
    assert world.military.troops(1).get("legionnaire") == 20
    assert world.military.outgoing(1) == []


def test_launch_raid_off_the_map_or_on_itself_is_refused(
    world: tr.World, npc: NPCGameInterface
) -> None:
    assert npc.launch_raid(1, 10_000, 0, {"legionnaire": 1}) is False
    assert isinstance(npc.last_error, tr.InvalidRequest)
    home = npc.villages[0]
    assert npc.launch_raid(1, home.x, home.y, {"legionnaire": 1}) is False
    assert isinstance(npc.last_error, (tr.RuleViolation, tr.InvalidRequest))
    other = world.villages.get(4)
    assert npc.launch_raid(4, home.x, home.y, {"clubswinger": 1}) is False
    assert isinstance(npc.last_error, tr.Forbidden)
    assert other.player_id == 4


def test_send_diplomatic_message(world: tr.World, npc: NPCGameInterface) -> None:
    assert npc.send_diplomatic_message(2, "Hello", "Peace? \"quotes\" and 'more'") is True
    sent = npc.last_result
    assert isinstance(sent, tr.Message) and sent.to_player_id == 2
    with world.unit_of_work(2) as uow:
        inbox = uow.diplomacy.messages(2)
    assert [m.subject for m in inbox] == ["Hello"]
    assert inbox[0].body == "Peace? \"quotes\" and 'more'"


@pytest.mark.parametrize(
    ("to", "subject", "body", "error"),
    [
        (999, "Hi", "there", tr.NotFound),
        (2, "", "there", tr.InvalidRequest),
        (2, "Hi", "x" * 1_000_000, tr.InvalidRequest),
        (ME, "Hi", "me", tr.InvalidRequest),
    ],
)
def test_send_diplomatic_message_refused(
    world: tr.World, npc: NPCGameInterface, to: int, subject: str, body: str,
    error: type[tr.TravianError],
) -> None:
    assert npc.send_diplomatic_message(to, subject, body) is False
    assert isinstance(npc.last_error, error)
    with world.unit_of_work(2) as uow:
        assert uow.diplomacy.messages(2) == []


def test_act_runs_any_operation_in_its_own_unit_of_work(
    world: tr.World, npc: NPCGameInterface
) -> None:
    assert npc.act(lambda uow: uow.diplomacy.create_alliance(ME, "Northmen", "NM")) is True
    assert isinstance(npc.last_result, tr.Alliance)
    other = world.npc(2)
    # The same name again: the game answers Conflict, which is a refusal too.
    assert other.act(lambda uow: uow.diplomacy.create_alliance(2, "Northmen", "NM2")) is False
    assert isinstance(other.last_error, tr.Conflict)


def test_a_refused_action_writes_nothing_of_itself(world: tr.World, npc: NPCGameInterface) -> None:
    before = stock(world)

    def build_then_fail(uow: tr.UnitOfWork) -> None:
        uow.villages.queue_building(1, "woodcutter")
        raise tr.RuleViolation("changed my mind")

    assert npc.act(build_then_fail) is False
    assert world.villages.build_queue(1) == [] and stock(world) == before


@pytest.mark.parametrize(
    "failure",
    [
        tr.BackendUnavailable("database down"),
        tr.RateLimited(retry_after=3.0),
        tr.ConfigurationError("misconfigured"),
        tr.SchemaMismatch("not a world"),
        tr.TravianError("database error: something odd"),
    ],
)
def test_infrastructure_failures_raise(
    world: tr.World, npc: NPCGameInterface, monkeypatch: pytest.MonkeyPatch,
    failure: tr.TravianError,
) -> None:
    def broken(self: object, *args: object, **kwargs: object) -> None:
        raise failure

    monkeypatch.setattr(SqlVillageRepository, "queue_building", broken)
    npc.last_error = None
    with pytest.raises(type(failure)):
        npc.build_in_village(1, "woodcutter")
    assert npc.last_error is None


def test_a_database_gone_after_connect_raises_backend_unavailable(tmp_path: Path) -> None:
    import shutil

    from travian_repo.sandbox import create_world

    folder = tmp_path / "gone"
    folder.mkdir()
    create_world(f"sqlite:///{folder / 'world.db'}", players=2, start="developed")
    with tr.connect(f"sqlite:///{folder / 'world.db'}", player_id=1) as w:
        npc = w.npc(1)
        w.database.engine.dispose()
        shutil.rmtree(folder)
        with pytest.raises(tr.BackendUnavailable):
            npc.build_in_village(1, "woodcutter")
        assert npc.last_error is None


def test_connecting_to_what_is_not_a_world_raises(tmp_path: Path) -> None:
    (tmp_path / "empty.db").touch()
    with pytest.raises(tr.SchemaMismatch):
        tr.connect(f"sqlite:///{tmp_path / 'empty.db'}", player_id=1)
    with pytest.raises(tr.ConfigurationError, match="does not exist"):
        tr.connect(f"sqlite:///{tmp_path / 'missing' / 'dir' / 'world.db'}", player_id=1)

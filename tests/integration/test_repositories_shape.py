"""The repositories are plain objects a user can explore: real methods with their real
signatures and docstrings, instances of the public contracts, on SQL, HTTP and auto; and a
unit of work refuses every call once its block is over."""

from __future__ import annotations

import inspect
import threading
import time
from typing import Iterator

import pytest
import sqlalchemy as sa

import travian_repo as tr
from travian_repo.repositories.base import CONTRACTS, operations
from travian_repo.sandbox import Clock
from travian_repo.sandbox.server import ServerThread, app_world, create_app
from travian_repo.sql import schema
from tests.conftest import MakeWorld

DOMAINS = {
    "villages": tr.VillageRepository,
    "military": tr.MilitaryRepository,
    "trade": tr.TradeRepository,
    "intel": tr.IntelRepository,
    "diplomacy": tr.DiplomacyRepository,
    "players": tr.PlayerRepository,
}


@pytest.fixture
def worlds(make_world: MakeWorld, database_url: str, clock: Clock) -> Iterator[dict[str, tr.World]]:
    """The same world three ways: on the database, over the API, and auto (both)."""
    summary = make_world()
    app = create_app(database_url, clock=clock)
    try:
        with ServerThread(app, threads=4) as server:
            token = summary.tokens[1]
            with tr.connect(database_url, player_id=1, clock=clock, prefer="sql") as sql, \
                    tr.connect(api_url=server.url, token=token, prefer="http") as http, \
                    tr.connect(database_url, server.url, token=token, clock=clock) as auto:
                assert (sql.prefer, http.prefer, auto.prefer) == ("sql", "http", "auto")
                yield {"sql": sql, "http": http, "auto": auto}
    finally:
        app_world(app).close()


def test_the_contracts_are_public_and_declare_every_operation() -> None:
    assert set(CONTRACTS) == set(DOMAINS.values())
    assert "get" in operations(tr.VillageRepository)
    assert "scout_reports" in operations(tr.IntelRepository)
    for contract in CONTRACTS:
        assert inspect.isabstract(contract)
        with pytest.raises(TypeError):
            contract()  # type: ignore[abstract]


def test_every_repository_is_explorable(worlds: dict[str, tr.World]) -> None:
    for mode, world in worlds.items():
        with world.unit_of_work() as uow:
            for domain, contract in DOMAINS.items():
                for holder in (world, uow):
                    repo = getattr(holder, domain)
                    assert isinstance(repo, contract), (mode, domain, repo)
                    assert isinstance(repo, tr.Repository)
                    listed = dir(repo)
                    for name in operations(contract):
                        assert name in listed, (mode, domain, name)
                        method = getattr(repo, name)
                        declared = getattr(contract, name)
                        assert method.__name__ == name
                        assert method.__doc__ == declared.__doc__ and method.__doc__
                        assert inspect.signature(method) == inspect.signature(
                            declared.__get__(repo)), (mode, domain, name)


def test_the_signatures_are_the_real_ones(worlds: dict[str, tr.World]) -> None:
    for world in worlds.values():
        with world.unit_of_work() as uow:
            assert str(inspect.signature(uow.intel.scout_reports)) == (
                "(player_id: 'int', limit: 'int' = 20) -> 'list[Report]'")
        assert world.villages.get.__doc__ == tr.VillageRepository.get.__doc__
        assert "private fields only for its owner" in (world.villages.get.__doc__ or "")


def test_a_misspelt_name_fails_at_once(worlds: dict[str, tr.World]) -> None:
    for world in worlds.values():
        with pytest.raises(AttributeError):
            world.villages.gett  # type: ignore[attr-defined]
        with world.unit_of_work() as uow:
            with pytest.raises(AttributeError):
                uow.villages.gett  # type: ignore[attr-defined]
            with pytest.raises(AttributeError):
                uow.vilages  # type: ignore[attr-defined]


def test_all_three_read_the_same_world(worlds: dict[str, tr.World]) -> None:
    seen = {mode: world.villages.get(1) for mode, world in worlds.items()}
    assert seen["sql"] == seen["http"] == seen["auto"]
    assert seen["sql"].resources is not None  # the owner's view, on every side


def _queue_count(world: tr.World, database_url: str) -> int:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(
                sa.select(sa.func.count()).select_from(schema.build_queue)).scalar_one())
    finally:
        engine.dispose()


def test_a_unit_of_work_refuses_every_call_after_its_block(
    worlds: dict[str, tr.World], database_url: str
) -> None:
    for mode, world in worlds.items():
        before = _queue_count(world, database_url)
        with world.unit_of_work() as uow:
            villages = uow.villages
            villages.get(1)
        with pytest.raises(tr.UnitOfWorkEnded, match="has ended") as caught:
            villages.queue_building(1, "woodcutter")
        assert isinstance(caught.value, tr.TravianError)
        with pytest.raises(tr.TravianError, match="has ended"):
            villages.get(1)
        with pytest.raises(tr.TravianError, match="has ended"):
            uow.military  # a repository not made yet is refused too
        with pytest.raises(tr.TravianError, match="has ended"):
            with uow:
                pass
        assert _queue_count(world, database_url) == before, mode  # nothing written


def test_after_its_block_a_unit_holds_no_write_lock(world: tr.World, backend: str) -> None:
    """On SQLite a write after the block used to open a transaction nobody would end: the
    next writer then waited for the lock and failed. Now the late call is refused and the
    next unit writes at once."""
    with world.unit_of_work() as uow:
        villages = uow.villages
    with pytest.raises(tr.UnitOfWorkEnded):
        villages.queue_building(1, "woodcutter")
    done: list[float] = []

    def write() -> None:
        started = time.monotonic()
        with world.unit_of_work() as other:
            other.villages.queue_building(1, "woodcutter")
        done.append(time.monotonic() - started)

    writer = threading.Thread(target=write)
    writer.start()
    writer.join(timeout=20)
    assert done and done[0] < 5.0, (backend, done)
    assert len(world.villages.build_queue(1)) >= 1


def test_the_route_table_and_the_ttls_come_from_the_declarations() -> None:
    from abc import abstractmethod

    from travian_repo.infra.cache import DEFAULT_TTLS
    from travian_repo.repositories.base import declared_operations
    from travian_repo.wire.routes import BY_OPERATION

    declared = declared_operations()
    for contract in CONTRACTS:
        for name in operations(contract):
            op = declared[f"{contract.domain}.{name}"]
            assert contract.declarations[name] is op
            route = BY_OPERATION[op.name]
            assert (route.method, route.path) == (op.method, op.path)
            assert DEFAULT_TTLS.get(op.name) == op.ttl
            assert op.returns == getattr(contract, name).__annotations__["return"]
    assert set(BY_OPERATION) == set(declared) | {"session.me"}
    assert DEFAULT_TTLS["players.ranking"] == 300 and declared["trade.offers"].visibility == "public"

    with pytest.raises(TypeError, match="no @operation declaration"):
        class Undeclared(tr.Repository):
            domain = "undeclared"

            @abstractmethod
            def thing(self) -> None:
                """Not declared."""


def test_every_cached_read_is_cached_once_on_both_sides() -> None:
    from travian_repo.http.repositories import HTTP_REPOSITORIES
    from travian_repo.sql.villages import SqlVillageRepository

    for cls in (SqlVillageRepository, HTTP_REPOSITORIES["villages"]):
        specs = []
        fn = cls.get
        while fn is not None:
            spec = getattr(fn, "__cache_spec__", None)
            if spec is not None and (not specs or specs[-1] is not spec):
                specs.append(spec)
            fn = getattr(fn, "__wrapped__", None)
        assert [s.operation for s in specs] == ["villages.get"], cls
        assert specs[0].depends == ("village:{village_id}",)
        assert getattr(cls.queue_building, "__cache_spec__", None) is None

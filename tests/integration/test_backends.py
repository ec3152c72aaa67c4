"""Backends are one small interface registered under a name ``connect(prefer=...)`` takes."""

from __future__ import annotations

from typing import Callable, Iterator

import pytest

import travian_repo as tr
from travian_repo.backend import BACKENDS, Backend, BackendRequest, register_backend
from travian_repo.domain.values import Event
from travian_repo.infra.cache import Cache
from travian_repo.sql.backend import SqlBackend
from travian_repo.sql.database import WorldSettings
from travian_repo.unit_of_work import UnitOfWork
from tests.conftest import MakeWorld


class CountingBackend(Backend):
    """A third backend: the SQL one, counting the units of work it opens."""

    opened = 0

    def __init__(self, inner: SqlBackend) -> None:
        self.inner = inner
        self.database = inner.database
        self.world_id = inner.world_id
        self.player_id = inner.player_id

    @classmethod
    def open(cls, request: BackendRequest) -> CountingBackend:
        return cls(SqlBackend.open(request))

    def unit_of_work(self, player_id: int | None, cache: Cache | None) -> UnitOfWork:
        type(self).opened += 1
        return self.inner.unit_of_work(player_id, cache)

    @property
    def settings(self) -> WorldSettings:
        return self.inner.settings

    def add_commit_listener(self, listener: Callable[[list[Event]], None]) -> None:
        self.inner.add_commit_listener(listener)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def counting() -> Iterator[type[CountingBackend]]:
    register_backend("counting", CountingBackend.open)
    CountingBackend.opened = 0
    try:
        yield CountingBackend
    finally:
        del BACKENDS["counting"]


def test_the_built_in_backends_are_registered() -> None:
    assert {"sql", "http", "auto"} <= set(BACKENDS)


def test_a_registered_backend_serves_connect(
    counting: type[CountingBackend], make_world: MakeWorld, database_url: str
) -> None:
    make_world()
    with tr.connect(database_url, player_id=1, prefer="counting") as world:
        assert world.prefer == "counting"
        assert isinstance(world.backend, CountingBackend)
        assert world.villages.get(1).id == 1
        with world.unit_of_work() as uow:
            assert isinstance(uow.villages, tr.VillageRepository)
            uow.villages.queue_building(1, "woodcutter")
        assert counting.opened == 2
        assert len(world.villages.build_queue(1)) >= 1
        assert world.backend.settings is not None
        assert world.backend.settings.world_id == world.world_id


def test_an_unknown_backend_is_a_configuration_error(database_url: str) -> None:
    with pytest.raises(tr.ConfigurationError, match="prefer must be one of auto, sql, http"):
        tr.connect(database_url, prefer="carrier-pigeon")

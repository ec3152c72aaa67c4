"""The cache without Redis: options, the mappings, the decorator, the in-process store."""

from __future__ import annotations

import inspect
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

import travian_repo as tr
from travian_repo.domain import events
from travian_repo.domain.values import Player
from travian_repo.http.repositories import HTTP_REPOSITORIES
from travian_repo.infra.cache import (
    DEFAULT_TTLS,
    EVENT_INVALIDATES,
    WORLD,
    Cache,
    cached,
    MemoryStore,
    entities_of_event,
    entities_of_write,
    resolve_ttls,
)
from travian_repo.infra.metrics import Metrics
from travian_repo.sandbox import Clock, create_world
from travian_repo.sql import diplomacy as sd, intel as si, military as sm, players as sp
from travian_repo.sql import trade as st, villages as sv
from travian_repo.repositories.base import declared_operations
from travian_repo.wire.routes import ROUTES

START = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)

PAIRS = [
    (sv.SqlVillageRepository, HTTP_REPOSITORIES["villages"]),
    (sm.SqlMilitaryRepository, HTTP_REPOSITORIES["military"]),
    (st.SqlTradeRepository, HTTP_REPOSITORIES["trade"]),
    (si.SqlIntelRepository, HTTP_REPOSITORIES["intel"]),
    (sd.SqlDiplomacyRepository, HTTP_REPOSITORIES["diplomacy"]),
    (sp.SqlPlayerRepository, HTTP_REPOSITORIES["players"]),
]


def specs(cls: type) -> dict[str, Any]:
    return {
        spec.operation: (spec.scope, spec.depends, spec.names)
        for _, fn in inspect.getmembers(cls, inspect.isfunction)
        if (spec := getattr(fn, "__cache_spec__", None)) is not None
    }


def test_sql_and_http_cache_the_same_reads_alike() -> None:
    every: dict[str, Any] = {}
    for sql, http in PAIRS:
        assert specs(sql) == specs(http)
        every.update(specs(sql))
    assert set(every) == set(DEFAULT_TTLS)  # every TTL belongs to a cached read
    reads = {r.operation for r in ROUTES if not r.is_write and r.operation != "session.me"}
    # Every read is cached but these, on purpose: the engine writes reports, often in
    # another process whose commits no client cache hears of; a batch of villages depends
    # on each of them, and an entry depends on entities named one per template.
    never_cached = {"intel.reports", "intel.scout_reports", "villages.get_many"}
    assert set(every) == reads - never_cached


def test_every_event_kind_and_every_write_has_invalidations() -> None:
    kinds = {v for k, v in vars(events).items() if k.isupper() and isinstance(v, str)}
    assert kinds == set(EVENT_INVALIDATES)
    for op in declared_operations().values():  # every write says what it changes
        assert bool(op.invalidates) == op.is_write, op.name


def test_mappings() -> None:
    assert entities_of_event(events.BUILD_QUEUED, 3, {"village_id": 7}) == {
        "village:7", "villages_of:3"}
    assert entities_of_event(events.MOVEMENT_SENT, 3, {"from_village_id": 7, "to_village_id": 9,
                                                        "movement_id": 1}) == {
        "village:7", "village:9", "villages_of:3"}
    assert entities_of_event(events.MESSAGE_RECEIVED, 5, {"message_id": 1}) == {"mail:5"}
    assert entities_of_event("something_new", 5, {}) == {WORLD}
    assert entities_of_event(events.BUILD_QUEUED, 3, {}) == {WORLD}  # a field missing
    # HTTP writes map to the same entities as the SQL side's events, from the declarations.
    ops = declared_operations()
    assert entities_of_write(ops["military.attack"], 3, (7, 9, {"a": 1}, "normal")) == {
        "village:7", "village:9", "villages_of:3"}
    assert entities_of_write(ops["villages.queue_building"], 3, (7, "smithy", None, True)) == {
        "village:7", "villages_of:3", "player:3", "rank"}
    assert entities_of_write(ops["villages.queue_building"], 3, (7, "smithy", None, False)) == {
        "village:7", "villages_of:3"}
    assert entities_of_write(ops["diplomacy.send_message"], 3, (3, 4, "s", "b")) == {"mail:4"}
    assert entities_of_write(ops["trade.create_offer"], 3, (7, "wood", 1, "clay", 1)) == {
        "village:7", "villages_of:3", "market"}
    assert entities_of_write(ops["villages.get"], 3, (7,)) == {WORLD}  # declares nothing
    shipment = tr.Shipment(id=1, from_village_id=7, to_village_id=9, resources=tr.Resources(),
                           merchants=1, departed_at=START, arrives_at=START)
    assert entities_of_write(ops["trade.accept_offer"], 3, (7, 1), shipment) == {
        "village:7", "village:9", "villages_of:3", "market"}
    assert entities_of_write(ops["trade.accept_offer"], 3, (7, 1), None) == {
        WORLD}  # failed: no answer, everything


def test_ttl_options() -> None:
    assert resolve_ttls(None) == DEFAULT_TTLS
    assert resolve_ttls({"villages.get": 5})["villages.get"] == 5
    for bad in ({"villages.gett": 5}, {"villages.get": -1}, {"villages.get": "5"}, [1]):
        with pytest.raises(tr.ConfigurationError):
            resolve_ttls(bad)


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    create_world(url, players=4, seed=3, start="developed", now=START)
    return url


def test_connect_options(url: str) -> None:
    with pytest.raises(tr.ConfigurationError, match="villages.gett"):
        tr.connect(url, cache_ttls={"villages.gett": 5})
    with pytest.raises(tr.ConfigurationError):
        tr.connect(url, cache="yes")
    with tr.connect(url) as w:
        assert w.cache is None  # no Redis: the in-process cache is opt-in
    with tr.connect(url, cache=False) as w:
        assert w.cache is None
    with tr.connect(url, cache=True, cache_ttls={"villages.get": 0}) as w:
        assert w.cache is not None and isinstance(w.cache.store, MemoryStore)
        assert w.cache.ttls["villages.get"] == 0


def test_in_process_cache(url: str) -> None:
    clock = Clock(START)
    with tr.connect(url, player_id=1, clock=clock, cache=True) as w:
        vid = w.villages.list_by_player(1)[0].id
        first = w.villages.get(vid)
        assert w.villages.get(vid) == first
        assert (w.metrics["cache_hits"], w.metrics["cache_misses"]) == (1, 2)
        with pytest.raises(RuntimeError):
            with w.unit_of_work() as uow:
                uow.villages.queue_building(vid, "woodcutter")
                assert len(uow.villages.build_queue(vid)) == 1  # its own write
                raise RuntimeError
        assert w.villages.get(vid) == first  # rolled back: still a hit, still right
        assert w.metrics["cache_hits"] == 2
        with w.unit_of_work() as uow:
            uow.villages.queue_building(vid, "woodcutter")
        assert len(w.villages.get(vid).build_queue or ()) == 1  # committed: invalidated
        assert w.metrics["cache_misses"] == 3
        # Errors are not cached; other players' keys are separate.
        with w.unit_of_work(2) as uow:
            with pytest.raises(tr.Forbidden):
                uow.villages.build_queue(vid)
            assert uow.villages.get(vid) == w.villages.get(vid).public()


def test_undecodable_entries_are_misses() -> None:
    store = MemoryStore()
    cache = Cache(store, world_id="w", metrics=Metrics())

    class Repo:
        _actor = 1

        def __init__(self) -> None:
            self.loads = 0
            self._cache = cache.view()

    class Players(Repo):
        @cached("players.get", scope="public", depends=("player:{player_id}",))
        def get(self, player_id: int) -> Player:
            self.loads += 1
            return Player(player_id, "p", "romans", None, None, 1, 1, 1)

    repo = Players()
    assert repo.get(4) == repo.get(player_id=4)
    assert repo.loads == 1
    (key,) = [k for k in store._entries]
    for garbage in (b"", b"[]", b'{"g": 1}', b"\xff\xfe"):
        store.put(key, garbage, 30)
        assert repo.get(4).id == 4
    assert repo.loads == 5
    cache.invalidate(["player:4"])
    repo.get(4)
    assert repo.loads == 6
    repo.get(4.0)  # type: ignore[arg-type]  # not a key-able argument: goes around the cache
    assert repo.loads == 7

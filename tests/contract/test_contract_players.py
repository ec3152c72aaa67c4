"""Players: the contract on prefer="sql" and prefer="http" (sqlite and postgresql)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

import travian_repo as tr
from travian_repo.domain.values import Player, RankingEntry
from travian_repo.repositories.base import RANKING_METRICS
from travian_repo.repositories.validation import MAX_LIMIT
from travian_repo.sql import schema

from tests.conftest import START
from tests.contract.conftest import AsPlayer, execute, refuses


def set_population(raw: sa.Engine, village_id: int, population: int) -> None:
    v = schema.villages
    execute(raw, sa.update(v).where(v.c.id == village_id).values(population=population))


def add_village(raw: sa.Engine, player_id: int, x: int, population: int) -> None:
    execute(raw, schema.villages.insert().values(
        name=f"extra {x}", player_id=player_id, x=x, y=50, population=population,
        is_capital=False, created_at=START))


def test_get_player(world: tr.World, as_player: AsPlayer) -> None:
    player = world.players.get(3)
    assert isinstance(player, Player)
    assert (player.id, player.tribe, player.alliance_id, player.alliance_tag) == (
        3, "gauls", None, None)
    assert player.name and player.villages == 1 and player.rank == 3
    assert player.population == world.villages.get(3).population
    assert as_player(5).players.get(3) == player


def test_get_player_sums_villages_and_ranks(world: tr.World, raw: sa.Engine) -> None:
    base = world.players.get(5).population
    add_village(raw, 5, 50, 300)
    add_village(raw, 5, 51, 2)
    set_population(raw, 2, 400)
    five = world.players.get(5)
    assert (five.population, five.villages, five.rank) == (base + 302, 3, 1)
    assert [world.players.get(i).rank for i in (2, 1, 6)] == [2, 3, 6]


def test_get_player_in_an_alliance(world: tr.World) -> None:
    alliance = world.diplomacy.create_alliance(1, "Legion", "LEG")
    player = world.players.get(1)
    assert (player.alliance_id, player.alliance_tag) == (alliance.id, "LEG")


def test_get_player_without_villages(world: tr.World, raw: sa.Engine) -> None:
    execute(raw, sa.insert(schema.players).values(
        id=7, username="Newcomer", tribe="gauls", rank=0, population=0, created_at=START))
    player = world.players.get(7)
    assert (player.population, player.villages, player.rank) == (0, 0, 7)
    assert world.players.ranking("villages")[-1] == RankingEntry(7, 7, "Newcomer", "gauls", None, 0)


def test_get_player_errors(world: tr.World, raw: sa.Engine) -> None:
    players: Any = world.players
    (missing,) = refuses(raw, tr.NotFound, lambda: players.get(999))
    assert "player 999" in str(missing)
    refuses(raw, tr.InvalidRequest,
            *[(lambda b=b: players.get(b)) for b in (0, -1, "1", 1.0, None, True, 2**63)])


def test_ranking(world: tr.World, raw: sa.Engine) -> None:
    set_population(raw, 4, 1000)
    set_population(raw, 6, 700)
    set_population(raw, 2, 700)
    base = world.players.get(3).population
    add_village(raw, 1, 40, 100)
    legion = world.diplomacy.create_alliance(1, "Legion", "LEG")
    ranking = world.players.ranking()
    assert [(e.rank, e.player_id, e.value) for e in ranking] == [
        (1, 4, 1000), (2, 2, 700), (3, 6, 700), (4, 1, base + 100), (5, 3, base), (6, 5, base),
    ]
    assert ranking[3].alliance_tag == legion.tag and ranking[0].alliance_tag is None
    assert [e.tribe for e in ranking] == ["romans", "teutons", "gauls", "romans", "gauls",
                                          "teutons"]
    assert [e.rank for e in world.players.ranking("population", 4)] == [1, 2, 3, 4]
    by_villages = world.players.ranking("villages", limit=2)
    assert [(e.rank, e.player_id, e.value) for e in by_villages] == [(1, 1, 2), (2, 2, 1)]
    assert len(world.players.ranking(limit=MAX_LIMIT)) == 6


def test_ranking_errors(world: tr.World, raw: sa.Engine) -> None:
    players: Any = world.players
    metrics = refuses(raw, tr.InvalidRequest,
                      *[(lambda m=m: players.ranking(m))
                        for m in ("gold", "Population", "", None, 1, ("population",))])
    for error in metrics:
        assert all(name in str(error) for name in RANKING_METRICS), str(error)
    refuses(raw, tr.InvalidRequest,
            *[(lambda b=b: players.ranking(limit=b))
              for b in (0, -1, MAX_LIMIT + 1, 10**20, 1.5, "10", None, True)])


def test_players_are_public(request: pytest.FixtureRequest, prefer: str, world: tr.World,
                            as_player: AsPlayer) -> None:
    anonymous = as_player(None)
    assert anonymous.players.get(2) == world.players.get(2)
    assert anonymous.players.ranking() == world.players.ranking()

"""Players on both SQL backends: profiles and rankings, one query each.

The developed world: 6 players with one village of population 129 each; tribes cycle
romans, teutons, gauls.
"""

from __future__ import annotations

from typing import Any, Iterator

import pytest
import sqlalchemy as sa

import travian_repo as tr
from travian_repo.domain.values import Player, RankingEntry
from travian_repo.repositories.base import RANKING_METRICS
from travian_repo.repositories.validation import MAX_LIMIT
from travian_repo.sandbox import Clock
from travian_repo.sql import schema
from tests.conftest import START

START_POPULATION = 129


def bad_values(*values: Any) -> tuple[Any, ...]:
    """Arguments of the wrong type or range (typed Any on purpose)."""
    return values



def set_population(world: tr.World, village_id: int, population: int) -> None:
    v = schema.villages
    with world.database.engine.begin() as conn:
        conn.execute(sa.update(v).where(v.c.id == village_id).values(population=population))


def add_village(world: tr.World, player_id: int, x: int, y: int, population: int) -> None:
    with world.database.engine.begin() as conn:
        conn.execute(
            sa.insert(schema.villages).values(
                name=f"outpost {x}|{y}", player_id=player_id, x=x, y=y, population=population,
                is_capital=False, created_at=START,
            )
        )


@pytest.fixture
def statements(world: tr.World) -> Iterator[list[str]]:
    """The SQL statements the library sends while the test runs."""
    sent: list[str] = []

    def record(*args: Any) -> None:
        sent.append(args[2])

    engine = world.database.engine
    sa.event.listen(engine, "before_cursor_execute", record)
    yield sent
    sa.event.remove(engine, "before_cursor_execute", record)


def test_get_player(world: tr.World) -> None:
    player = world.players.get(3)
    assert isinstance(player, Player)
    assert (player.id, player.tribe) == (3, "gauls")
    assert (player.alliance_id, player.alliance_tag) == (None, None)
    assert player.name and isinstance(player.name, str)
    assert (player.population, player.villages) == (START_POPULATION, 1)
    assert player.rank == 3  # all tied: lower ids first


def test_get_player_sums_villages_and_ranks(world: tr.World) -> None:
    add_village(world, 5, 50, 50, 300)
    add_village(world, 5, 51, 50, 2)
    set_population(world, 2, 400)
    five = world.players.get(5)
    assert (five.population, five.villages, five.rank) == (START_POPULATION + 302, 3, 1)
    assert world.players.get(2).rank == 2
    assert world.players.get(1).rank == 3
    assert world.players.get(6).rank == 6


def test_get_player_in_an_alliance(world: tr.World) -> None:
    alliance = world.diplomacy.create_alliance(1, "Legion", "LEG")
    player = world.players.get(1)
    assert (player.alliance_id, player.alliance_tag) == (alliance.id, "LEG")


def test_get_player_without_villages(world: tr.World) -> None:
    with world.database.engine.begin() as conn:
        conn.execute(
            sa.insert(schema.players).values(
                id=7, username="Newcomer", tribe="gauls", rank=0, population=0, created_at=START
            )
        )
    player = world.players.get(7)
    assert (player.population, player.villages, player.rank) == (0, 0, 7)
    assert world.players.ranking("villages")[-1] == RankingEntry(7, 7, "Newcomer", "gauls", None, 0)


def test_get_player_errors(world: tr.World) -> None:
    with pytest.raises(tr.NotFound, match="player 999"):
        world.players.get(999)
    for bad in bad_values(0, -1, "1", 1.0, None, True, 2**63):
        with pytest.raises(tr.InvalidRequest):
            world.players.get(bad)


def test_players_are_public(world: tr.World, database_url: str, clock: Clock) -> None:
    with tr.connect(database_url, clock=clock) as anonymous:
        assert anonymous.players.get(2) == world.players.get(2)
        assert anonymous.players.ranking() == world.players.ranking()


def test_get_and_ranking_are_one_query(world: tr.World, statements: list[str]) -> None:
    def own() -> list[str]:  # less the world's "anything due?" read (at most once a second)
        return [s for s in statements if "min(build_queue.completes_at)" not in s]

    with world.unit_of_work() as uow:
        uow.players.get(4)
    assert len(own()) == 1
    statements.clear()
    with world.unit_of_work() as uow:
        uow.players.ranking("villages", limit=3)
    assert len(own()) == 1


def test_ranking_by_population(world: tr.World) -> None:
    set_population(world, 4, 1000)
    set_population(world, 6, 700)
    set_population(world, 2, 700)
    add_village(world, 1, 40, 40, 100)
    legion = world.diplomacy.create_alliance(1, "Legion", "LEG")
    ranking = world.players.ranking()
    assert [(e.rank, e.player_id, e.value) for e in ranking] == [
        (1, 4, 1000),
        (2, 2, 700),  # a tie: the lower id first
        (3, 6, 700),
        (4, 1, START_POPULATION + 100),
        (5, 3, START_POPULATION),
        (6, 5, START_POPULATION),
    ]
    assert ranking[3].alliance_tag == legion.tag and ranking[0].alliance_tag is None
    tribes = [e.tribe for e in ranking]
    assert tribes == ["romans", "teutons", "gauls", "romans", "gauls", "teutons"]
    assert ranking[0].name == world.players.get(4).name
    # a player's rank is their place in the ranking
    for entry in ranking:
        assert world.players.get(entry.player_id).rank == entry.rank


def test_ranking_by_villages(world: tr.World) -> None:
    add_village(world, 6, 60, 60, 1)
    add_village(world, 6, 61, 60, 1)
    add_village(world, 3, 62, 60, 1)
    ranking = world.players.ranking("villages")
    assert [(e.rank, e.player_id, e.value) for e in ranking] == [
        (1, 6, 3), (2, 3, 2), (3, 1, 1), (4, 2, 1), (5, 4, 1), (6, 5, 1),
    ]


def test_ranking_limits(world: tr.World) -> None:
    assert [e.player_id for e in world.players.ranking(limit=1)] == [1]
    assert [e.rank for e in world.players.ranking("population", 4)] == [1, 2, 3, 4]
    assert len(world.players.ranking(limit=MAX_LIMIT)) == 6
    for bad in bad_values(0, -1, MAX_LIMIT + 1, 10**20, 1.5, "10", None, True):
        with pytest.raises(tr.InvalidRequest):
            world.players.ranking(limit=bad)


@pytest.mark.parametrize("metric", ["gold", "Population", "", None, 1, ("population",)])
def test_ranking_unknown_metric(world: tr.World, metric: Any) -> None:
    with pytest.raises(tr.InvalidRequest) as info:
        world.players.ranking(metric)
    for name in RANKING_METRICS:
        assert name in str(info.value)

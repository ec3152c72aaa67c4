"""Morale in the engine's battles: on by default, a world setting, on SQLite and PostgreSQL.

The developed 6-player sandbox: player N owns village N (one village each); players 1/4 are
romans, 2/5 teutons, 3/6 gauls; 20 of the first unit and 5 scouts at home, no wall.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

import travian_repo as tr
from travian_repo.rules import battle
from travian_repo.sandbox import Clock, Engine
from travian_repo.sql import schema

from tests.conftest import START, MakeWorld


def _set_population(world: tr.World, village_id: int, population: int) -> None:
    v = schema.villages
    with world.database.engine.begin() as conn:
        conn.execute(sa.update(v).where(v.c.id == village_id).values(population=population))


def _report(world: tr.World, player_id: int, kind: str) -> Any:
    r = schema.reports
    with world.database.engine.connect() as conn:
        [row] = conn.execute(sa.select(r).where(r.c.player_id == player_id, r.c.kind == kind))
    return row


def _raid(make_world: MakeWorld, database_url: str, **settings: Any) -> Any:
    """Player 1 (900 population) raids player 2 (300) with its 20 legionnaires."""
    make_world(**settings)
    clock = Clock(START)
    with tr.connect(database_url, player_id=1, clock=clock) as world:
        _set_population(world, 1, 900)
        _set_population(world, 2, 300)
        with world.unit_of_work(player_id=1) as uow:
            sent = uow.military.attack(1, 2, {"legionnaire": 20}, kind="raid")
        assert Engine(world.database, clock=clock).run_until(sent.arrives_at) == 1
        return _report(world, 1, "attack").payload


def test_morale_is_on_by_default(make_world: MakeWorld, database_url: str) -> None:
    # 20 legionnaires (A 800) raid 20 clubswingers + 5 scouts (Di 20 x 20 + 5 x 10 = 450,
    # + 10 = 460): ratio 1.739 >= 1, morale (900/300)**-0.2 = 0.803; 800 x 0.803 = 642.4
    expected = battle.fight(battle.Army("romans", {"legionnaire": 20}),
                            [battle.Army("teutons", {"clubswinger": 20, "scout": 5})],
                            kind=battle.RAID, attacker_population=900, defender_population=300)
    plain = battle.fight(battle.Army("romans", {"legionnaire": 20}),
                         [battle.Army("teutons", {"clubswinger": 20, "scout": 5})],
                         kind=battle.RAID)
    assert expected.morale == 0.803
    assert expected.attacker.survivors != plain.attacker.survivors
    payload = _raid(make_world, database_url)
    assert payload["morale"] == 0.803
    assert payload["attacker"]["survivors"] == {
        u: n for u, n in expected.attacker.survivors.items() if n}
    assert payload["defenders"][0]["lost"] == {
        u: n for u, n in expected.defenders[0].lost.items() if n}


def test_a_world_without_morale(make_world: MakeWorld, database_url: str) -> None:
    plain = battle.fight(battle.Army("romans", {"legionnaire": 20}),
                         [battle.Army("teutons", {"clubswinger": 20, "scout": 5})],
                         kind=battle.RAID)
    payload = _raid(make_world, database_url, morale=False)
    assert payload["morale"] == 1.0
    assert payload["attacker"]["survivors"] == {
        u: n for u, n in plain.attacker.survivors.items() if n}


def test_the_setting_is_read_back(make_world: MakeWorld, database_url: str) -> None:
    make_world(morale=False)
    with tr.connect(database_url, player_id=1) as world:
        assert world.database.settings.morale is False

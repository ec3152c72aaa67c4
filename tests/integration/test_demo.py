"""The demo as a game: the same seed plays the same game on SQLite, PostgreSQL and through
HTTP; a simulated week on PostgreSQL keeps the world's books (stock, troops, the clock)."""

from __future__ import annotations

import time
from datetime import timedelta
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from travian_repo.apps.demo import DEMO_START, HttpSandbox, SqlSandbox, run_demo
from travian_repo.sandbox import Clock, Engine, create_world
from travian_repo.sandbox.server import ServerThread, create_app
from travian_repo.sql import schema

PLAYERS = 4
SEED = 11


def _sql_rows(url: str, days: float = 1) -> list[list[str]]:
    sandbox = SqlSandbox(url, players=PLAYERS, seed=SEED)
    try:
        result = run_demo(sandbox, sandbox.player_ids, days=days, seed=SEED,
                          map_radius=sandbox.map_radius)
    finally:
        sandbox.close()
    return result.rows


def _http_rows(url: str, days: float = 1) -> list[list[str]]:
    summary = create_world(url, players=PLAYERS, seed=SEED, start="developed", replace=True,
                           now=DEMO_START)
    app = create_app(url, clock=Clock(DEMO_START), manual_clock=True)
    with ServerThread(app) as server:
        sandbox = HttpSandbox(server.url, summary.tokens)
        try:
            result = run_demo(sandbox, sandbox.player_ids, days=days, seed=SEED)
        finally:
            sandbox.close()
    return result.rows


@pytest.mark.slow  # three demo games
@pytest.mark.postgres
def test_the_same_seed_gives_the_same_table_on_sqlite_postgresql_and_http(
    tmp_path: Path, postgres_url: str
) -> None:
    on_sqlite = _sql_rows(f"sqlite:///{tmp_path / 'a.db'}")
    on_postgres = _sql_rows(postgres_url)
    through_http = _http_rows(f"sqlite:///{tmp_path / 'b.db'}")
    assert on_sqlite == on_postgres == through_http
    # a game happened: people grew, fought or traded
    assert len(on_sqlite) == PLAYERS
    assert any(int(row[6]) + int(row[7]) > 0 for row in on_sqlite), "nobody raided"
    assert any(int(row[8]) > 0 for row in on_sqlite), "nobody traded"


@pytest.mark.slow  # two demo games
def test_another_seed_plays_another_game(tmp_path: Path) -> None:
    one = _sql_rows(f"sqlite:///{tmp_path / 'a.db'}", days=0.5)
    sandbox = SqlSandbox(f"sqlite:///{tmp_path / 'b.db'}", players=PLAYERS, seed=SEED + 1)
    try:
        two = run_demo(sandbox, sandbox.player_ids, days=0.5, seed=SEED + 1).rows
    finally:
        sandbox.close()
    assert one != two


def _troops(value: Any) -> Counter[str]:
    return Counter({str(u): int(n) for u, n in (value or {}).items()})


@pytest.mark.postgres
@pytest.mark.slow
def test_a_week_of_the_demo_world_on_postgresql_keeps_the_books(postgres_url: str) -> None:
    started = time.perf_counter()
    sandbox = SqlSandbox(postgres_url, players=6, seed=1)
    engine = sandbox.world.database.engine
    village_owner: dict[int, int] = {}
    with engine.connect() as conn:
        for vid, pid in conn.execute(select(schema.villages.c.id, schema.villages.c.player_id)):
            village_owner[int(vid)] = int(pid)
        initial: dict[int, Counter[str]] = {pid: Counter() for pid in set(village_owner.values())}
        for vid, unit, count in conn.execute(
                select(schema.troops.c.village_id, schema.troops.c.unit, schema.troops.c.count)):
            initial[village_owner[int(vid)]][str(unit)] += int(count)
    try:
        result = run_demo(sandbox, sandbox.player_ids, days=7, seed=1,
                          map_radius=sandbox.map_radius)
        assert Engine(sandbox.world.database, clock=sandbox.clock).overdue() == 0
        assert sandbox.engine.overdue() == 0
        ordered = {p.player_id: p for p in result.players}

        with engine.connect() as conn:
            # no negative stock, as stored ...
            for row in conn.execute(select(schema.village_resources)):
                assert min(row.wood, row.clay, row.iron, row.wheat) >= 0, row
            # ... nor as the players see it now
            for pid in ordered:
                with sandbox.world.unit_of_work(pid) as uow:
                    villages = uow.villages.list_by_player(pid)
                for village in villages:
                    assert village.resources is not None and min(village.resources) >= 0

            now: dict[int, Counter[str]] = {pid: Counter() for pid in initial}
            for vid, unit, count in conn.execute(
                    select(schema.troops.c.village_id, schema.troops.c.unit, schema.troops.c.count)):
                now[village_owner[int(vid)]][str(unit)] += int(count)
            moving = conn.execute(
                select(schema.movements.c.player_id, schema.movements.c.troops,
                       schema.movements.c.state)
                .where(schema.movements.c.state.in_(("underway", "stationed")))
            ).all()
            for pid, troops, _state in moving:
                now[int(pid)] += _troops(troops)

            untrained: dict[int, int] = Counter()
            for vid, count, trained in conn.execute(
                    select(schema.training_queue.c.village_id, schema.training_queue.c.count,
                           schema.training_queue.c.trained)):
                untrained[village_owner[int(vid)]] += int(count) - int(trained)

            lost: dict[int, int] = Counter()
            battles: set[int] = set()
            for kind, payload in conn.execute(
                    select(schema.reports.c.kind, schema.reports.c.payload)
                    .order_by(schema.reports.c.id)):
                if kind == "attack" or kind == "scout":  # the attacker's own losses
                    lost[int(payload["attacker"]["player_id"])] += sum(
                        payload["attacker"].get("lost", {}).values())
                elif kind == "defense" and payload["movement_id"] not in battles:
                    battles.add(payload["movement_id"])  # each defender got the same list
                    for group in payload["defenders"]:
                        lost[int(group["player_id"])] += sum(group.get("lost", {}).values())
    finally:
        sandbox.close()

    fought = sum(p.raids_won + p.raids_lost for p in result.players)
    assert fought > 0 and battles, "a week without a battle proves little"
    for pid, player in ordered.items():
        trained = player.trained - untrained[pid]
        assert trained >= 0
        expected = sum(initial[pid].values()) + trained - lost[pid]
        assert sum(now[pid].values()) == expected, (player.name, now[pid], initial[pid],
                                                   trained, lost[pid])
        # the table's troops column is the same count, read through the public API
        row = next(r for r in result.rows if r[0] == player.name)
        assert int(row[5]) == sum(now[pid].values())
    assert time.perf_counter() - started < 90


@pytest.mark.slow  # a demo game over HTTP
def test_the_sandbox_clock_route(tmp_path: Path) -> None:
    """POST /v1/sandbox/advance: only with a manual clock; a token and the world id; seconds."""
    import requests

    url = f"sqlite:///{tmp_path / 'w.db'}"
    summary = create_world(url, players=2, start="developed", now=DEMO_START)
    headers = {"Authorization": f"Bearer {summary.tokens[1]}", "X-World-Id": "default"}
    with ServerThread(url) as plain:
        answer = requests.post(f"{plain.url}/v1/sandbox/advance", json={"seconds": 60},
                               headers=headers, timeout=10)
        assert answer.status_code == 404
    clock = Clock(DEMO_START)
    with ServerThread(create_app(url, clock=clock, manual_clock=True)) as server:
        route = f"{server.url}/v1/sandbox/advance"
        assert requests.post(route, json={"seconds": 60}, timeout=10).status_code == 401
        for bad in ({}, {"seconds": -1}, {"seconds": "1"}, {"seconds": 1, "x": 2}):
            answer = requests.post(route, json=bad, headers=headers, timeout=10)
            assert answer.status_code == 400, bad
            assert answer.json()["error"]["code"] == "invalid_request"
        order = requests.post(f"{server.url}/v1/village/1/build", json={"building": "cropland"},
                              headers=headers, timeout=10)
        assert order.status_code == 200, order.text
        answer = requests.post(route, json={"seconds": 6 * 3600}, headers=headers, timeout=10)
        assert answer.status_code == 200
        assert answer.json() == {"processed": 1, "now": (DEMO_START + timedelta(hours=6)).isoformat()}
        assert clock() == DEMO_START + timedelta(hours=6)

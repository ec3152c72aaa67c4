"""World settings on both backends, the environment's place in connect(), files that are
not worlds, and the sandbox clock moved from Python."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

import travian_repo as tr
from travian_repo.sandbox import Clock, create_world
from travian_repo.sandbox.server import ServerThread, create_app

from tests.conftest import MakeWorld


def test_settings_are_the_same_on_both_backends(make_world: MakeWorld, database_url: str,
                                                clock: Clock) -> None:
    summary = make_world(map_radius=40)
    with ServerThread(create_app(database_url, clock=clock, rate_limit=None)) as server, \
            tr.connect(database_url, player_id=1, clock=clock) as sql, \
            tr.connect(api_url=server.url + "/v1/", token=summary.tokens[1]) as http:
        assert sql.settings == http.settings
        assert sql.settings.map_radius == 40 and sql.settings.server_time == clock()
        assert sql.settings.world_id == summary.world_id


@pytest.mark.parametrize("morale", [True, False])
def test_the_morale_setting_is_in_the_settings_on_both_backends(
        make_world: MakeWorld, database_url: str, clock: Clock, morale: bool) -> None:
    import requests

    summary = make_world(morale=morale)
    with ServerThread(create_app(database_url, clock=clock, rate_limit=None)) as server, \
            tr.connect(database_url, player_id=1, clock=clock) as sql, \
            tr.connect(api_url=server.url, token=summary.tokens[1]) as http:
        assert sql.settings.morale is morale
        assert http.settings.morale is morale
        assert requests.get(server.url + "/v1/world", timeout=10).json()["morale"] is morale


def test_explicit_arguments_win_over_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    database_url = f"sqlite:///{tmp_path / 'w.db'}"  # the database does not matter here
    create_world(database_url, players=2, seed=1)
    monkeypatch.setenv("TRAVIAN_API_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("TRAVIAN_API_TOKEN", "someone-elses")
    with tr.connect(database_url, player_id=1) as world:
        assert world.prefer == "sql"
        order = world.villages.queue_building(1, "woodcutter")  # lands in the file, not the API
    with tr.connect(database_url, player_id=1) as again:
        assert list(again.villages.build_queue(1)) == [order]


def test_a_missing_sqlite_file_is_an_error_and_no_file_is_made(tmp_path: Path) -> None:
    path = tmp_path / "typo.db"
    with pytest.raises(tr.ConfigurationError, match="does not exist"):
        tr.connect(f"sqlite:///{path}", player_id=1)
    assert not path.exists()


def test_create_world_never_drops_a_users_own_tables(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'mine.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE players (name TEXT)")
        conn.exec_driver_sql("INSERT INTO players VALUES ('mine')")
    for replace in (False, True):
        with pytest.raises(tr.Conflict, match="not a travian_repo world"):
            create_world(url, players=2, replace=replace)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT name FROM players").scalars().all() == ["mine"]
    engine.dispose()


def test_demo_refuses_a_database_that_is_not_a_world(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from travian_repo.apps.cli import main

    url = f"sqlite:///{tmp_path / 'mine.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE players (name TEXT)")
    code = main(["demo", "--database-url", url, "--days", "1", "--quiet"])
    assert code != 0
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM players").scalar() == 0
    engine.dispose()


def test_advance_moves_a_manual_clock_on_both_backends(make_world: MakeWorld,
                                                       database_url: str, clock: Clock) -> None:
    summary = make_world()
    with tr.connect(database_url, player_id=1, clock=clock) as world:
        order = world.villages.queue_building(1, "woodcutter")
        now = world.advance((order.completes_at - clock()).total_seconds())
        assert now == order.completes_at == clock()
        assert world.villages.build_queue(1) == []
    with ServerThread(create_app(database_url, manual_clock=True, rate_limit=None)) as server, \
            tr.connect(api_url=server.url, token=summary.tokens[1]) as http:
        before = http.settings.server_time
        assert http.advance(60) == http.settings.server_time
        assert (http.settings.server_time - before).total_seconds() == 60
    with tr.connect(database_url, player_id=1) as real_time:
        with pytest.raises(tr.ConfigurationError):
            real_time.advance(60)
    with ServerThread(create_app(database_url, rate_limit=None)) as server, \
            tr.connect(api_url=server.url, token=summary.tokens[1]) as http:
        with pytest.raises(tr.ConfigurationError, match="manual"):
            http.advance(60)


def test_auto_refuses_a_database_and_an_api_of_different_worlds(
    make_world: MakeWorld, database_url: str, clock: Clock, tmp_path: Path
) -> None:
    summary = make_world()
    other = f"sqlite:///{tmp_path / 'other.db'}"
    create_world(other, players=6, seed=7, start="developed")  # same name, same map
    with ServerThread(create_app(database_url, clock=clock, rate_limit=None)) as server:
        with pytest.raises(tr.ConfigurationError, match="different worlds"):
            tr.connect(other, api_url=server.url, token=summary.tokens[1])
        with tr.connect(database_url, api_url=server.url, token=summary.tokens[1],
                        clock=clock) as same:
            assert same.prefer == "auto" and same.villages.get(1).id == 1


def test_advance_with_the_same_idempotency_key_moves_the_clock_once(
        make_world: MakeWorld, database_url: str, clock: Clock) -> None:
    """A retry after a lost answer replays it: the manual clock moves once."""
    import requests

    summary = make_world()
    with ServerThread(create_app(database_url, manual_clock=True, clock=clock,
                                 rate_limit=None)) as server:
        url = server.url + "/v1/sandbox/advance"
        headers = {"Authorization": f"Bearer {summary.tokens[1]}", "Idempotency-Key": "tick-1"}
        before = clock()
        first = requests.post(url, json={"seconds": 60}, headers=headers, timeout=10)
        again = requests.post(url, json={"seconds": 60}, headers=headers, timeout=10)
        assert first.status_code == again.status_code == 200, again.text
        assert again.content == first.content
        assert again.headers.get("Idempotent-Replayed") == "true"
        assert (clock() - before).total_seconds() == 60
        other = requests.post(url, json={"seconds": 30}, headers=headers, timeout=10)
        assert other.status_code == 409 and other.json()["error"]["code"] == "conflict"
        fresh = requests.post(url, json={"seconds": 60}, timeout=10,
                              headers={**headers, "Idempotency-Key": "tick-2"})
        assert fresh.status_code == 200 and (clock() - before).total_seconds() == 120
        with tr.connect(api_url=server.url, token=summary.tokens[1]) as http:
            assert http.advance(60) == clock()  # the client's own key, once per call
            assert (clock() - before).total_seconds() == 180


def test_the_http_client_learns_the_servers_world_when_none_is_given(
        make_world: MakeWorld, database_url: str, clock: Clock) -> None:
    summary = make_world(world_id="w7")
    app = create_app(database_url, clock=clock, rate_limit=None)
    with ServerThread(app) as server:
        with tr.connect(api_url=server.url, token=summary.tokens[1], cache=True) as world:
            assert world.world_id == "w7" and world.settings.world_id == "w7"
            assert world.villages.get(1).id == 1
            assert world.cache is not None and world.cache.world_id == "w7"
        with tr.connect(api_url=server.url, token=summary.tokens[1], world_id="w7") as given:
            assert given.world_id == "w7" and given.villages.get(1).id == 1
        with pytest.raises(tr.Conflict, match="w7"):  # a world asked for is checked, never changed
            tr.connect(api_url=server.url, token=summary.tokens[1], world_id="other")

"""connect(): where the configuration comes from, and what it says when something is wrong."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest
import sqlalchemy as sa

import travian_repo as tr
from travian_repo.sql import schema

ENV_VARS = (
    "TRAVIAN_DATABASE_URL", "TRAVIAN_API_URL", "TRAVIAN_API_TOKEN", "TRAVIAN_PLAYER_ID",
    "TRAVIAN_REDIS_URL", "TRAVIAN_WORLD_ID",
)

@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def world_url(make_world, database_url: str) -> str:  # type: ignore[no-untyped-def]
    make_world()
    return database_url


@pytest.fixture
def not_a_world_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """An empty SQLite file, or a PostgreSQL schema with no tables in it."""
    if backend == "sqlite":
        path = tmp_path / "empty.db"
        path.touch()
        yield f"sqlite:///{path}"
        return
    base = sa.make_url(str(request.getfixturevalue("postgres_url")))
    name = f"travian_empty_{os.getpid()}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {name} CASCADE"))
        conn.execute(sa.text(f"CREATE SCHEMA {name}"))
    try:
        yield base.update_query_dict({"options": f"-csearch_path={name}"}).render_as_string(
            hide_password=False
        )
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {name} CASCADE"))
        admin.dispose()


# ---- where the configuration comes from ---------------------------------------------

def test_url_and_player_from_the_environment(
    world_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAVIAN_DATABASE_URL", world_url)
    monkeypatch.setenv("TRAVIAN_PLAYER_ID", "2")
    with tr.connect() as world:
        assert world.player_id == 2
        assert world.villages.get(2).resources is not None  # acting as player 2: private
        assert world.villages.get(1).resources is None


def test_arguments_win_over_the_environment(world_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAVIAN_DATABASE_URL", "sqlite:////nonexistent/dir/never.db")
    monkeypatch.setenv("TRAVIAN_PLAYER_ID", "2")
    with tr.connect(world_url, player_id=3) as world:
        assert world.player_id == 3
        assert world.villages.get(3).resources is not None


def test_world_id_from_the_environment(
    make_world, database_url: str, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
) -> None:
    make_world(world_id="w7")
    monkeypatch.setenv("TRAVIAN_WORLD_ID", "w7")
    with tr.connect(database_url) as world:
        assert world.world_id == "w7"
    monkeypatch.setenv("TRAVIAN_WORLD_ID", "w8")
    with pytest.raises(tr.ConfigurationError, match="w7"):
        tr.connect(database_url)
    with tr.connect(database_url, world_id="w7") as world:  # the argument wins
        assert world.world_id == "w7"


def test_a_non_integer_player_in_the_environment_is_a_configuration_error(
    world_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAVIAN_PLAYER_ID", "one")
    with pytest.raises(tr.ConfigurationError, match="TRAVIAN_PLAYER_ID"):
        tr.connect(world_url)


@pytest.mark.parametrize("bad", [0, -1, "1", 1.0, True])
def test_a_bad_player_id_argument_is_a_configuration_error(world_url: str, bad: object) -> None:
    with pytest.raises(tr.ConfigurationError):
        tr.connect(world_url, player_id=bad)  # type: ignore[arg-type]


def test_a_ready_engine_is_accepted_and_left_open(world_url: str) -> None:
    engine = sa.create_engine(world_url)
    try:
        with tr.connect(engine, player_id=1) as world:
            assert world.database.engine is engine
            assert world.villages.get(1).resources is not None
        # the caller's engine is the caller's: still usable after the world closed
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(schema.players)).scalar() == 6
    finally:
        engine.dispose()


def test_nothing_given_says_what_to_set() -> None:
    with pytest.raises(tr.ConfigurationError) as info:
        tr.connect()
    message = str(info.value)
    assert "TRAVIAN_DATABASE_URL" in message
    assert "database_url" in message


def test_an_unknown_option_is_a_configuration_error(world_url: str) -> None:
    with pytest.raises(tr.ConfigurationError, match="bogus_option"):
        tr.connect(world_url, player_id=1, bogus_option=1)


def test_a_bad_prefer_is_a_configuration_error(world_url: str) -> None:
    with pytest.raises(tr.ConfigurationError, match="prefer"):
        tr.connect(world_url, prefer="fastest")


def test_a_non_url_database_is_a_configuration_error() -> None:
    with pytest.raises(tr.ConfigurationError):
        tr.connect(12345)  # type: ignore[arg-type]


# ---- a database that is not a world ---------------------------------------------------

def test_a_database_that_is_not_a_world_is_a_schema_mismatch_saying_what_to_do(
    not_a_world_url: str,
) -> None:
    # connect() may raise it, or the first call; either way it must be SchemaMismatch.
    with pytest.raises(tr.SchemaMismatch) as info:
        with tr.connect(not_a_world_url, player_id=1) as world:
            world.villages.get(1)
    assert "create_world" in str(info.value)


def test_a_write_on_a_database_that_is_not_a_world_is_a_schema_mismatch(
    not_a_world_url: str,
) -> None:
    with pytest.raises(tr.SchemaMismatch):
        with tr.connect(not_a_world_url, player_id=1) as world:
            world.villages.queue_building(1, "woodcutter")


def test_a_database_that_is_not_a_world_fails_with_a_travian_error_at_least(
    not_a_world_url: str,
) -> None:
    with pytest.raises(tr.TravianError):
        with tr.connect(not_a_world_url, player_id=1) as world:
            world.villages.get(1)


def test_connect_itself_says_a_non_world_is_a_schema_mismatch(not_a_world_url: str) -> None:
    with pytest.raises(tr.SchemaMismatch, match="create_world"):
        tr.connect(not_a_world_url, player_id=1)


def _set_schema_version(url: str, version: int) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(schema.world_settings.update().values(schema_version=version))
    finally:
        engine.dispose()


def test_another_schema_version_is_a_schema_mismatch_on_a_write(world_url: str) -> None:
    _set_schema_version(world_url, schema.SCHEMA_VERSION + 98)
    with pytest.raises(tr.SchemaMismatch) as info:
        with tr.connect(world_url, player_id=1) as world:
            world.villages.queue_building(1, "woodcutter")
    assert str(schema.SCHEMA_VERSION + 98) in str(info.value)
    assert "upgrade" in str(info.value) or "recreate" in str(info.value)
    assert info.value.details == {"found": schema.SCHEMA_VERSION + 98, "expected": schema.SCHEMA_VERSION}


def test_another_schema_version_is_a_schema_mismatch_on_connect_or_first_read(world_url: str) -> None:
    _set_schema_version(world_url, schema.SCHEMA_VERSION + 98)
    with pytest.raises(tr.SchemaMismatch):
        with tr.connect(world_url, player_id=1) as world:
            world.villages.get(1)


def test_an_empty_world_settings_table_is_a_schema_mismatch(world_url: str) -> None:
    engine = sa.create_engine(world_url)
    with engine.begin() as conn:
        conn.execute(schema.world_settings.delete())
    engine.dispose()
    with pytest.raises(tr.SchemaMismatch, match="create_world"):
        with tr.connect(world_url, player_id=1) as world:
            world.villages.get(1)


# ---- the World object -------------------------------------------------------------------

def test_world_is_a_context_manager(world_url: str) -> None:
    with tr.connect(world_url, player_id=1) as world:
        assert isinstance(world, tr.World)
        assert world.villages.get(1).id == 1
    with pytest.raises(RuntimeError, match="boom"):
        with tr.connect(world_url, player_id=1) as world:
            raise RuntimeError("boom")
    world.close()  # closing twice is harmless


@pytest.mark.parametrize("backend", ["postgresql"])  # make_world must make the world it reads
def test_repr_hides_the_password(make_world, postgres_url: str) -> None:  # type: ignore[no-untyped-def]
    """On PostgreSQL (the test server trusts local connections, so any password does)."""
    url = sa.make_url(postgres_url)
    if url.password is None:
        url = url.set(password="s3cr3t-pw")
    make_world()
    secret = url.password
    with tr.connect(url.render_as_string(hide_password=False), player_id=4) as world:
        text = repr(world)
        assert str(secret) not in text
        assert "***" in text and "player_id=4" in text and str(url.host) in text
        assert world.villages.get(4).resources is not None


def test_an_unreachable_database_is_backend_unavailable_without_the_password() -> None:
    with pytest.raises(tr.BackendUnavailable) as info:
        with tr.connect("postgresql+psycopg2://someone:s3cr3t-pw@127.0.0.1:1/db", player_id=1) as world:
            world.villages.get(1)
    assert "s3cr3t-pw" not in str(info.value)


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_bare_postgresql_url_uses_the_shipped_driver(world_url: str) -> None:
    """SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3, which is not installed."""
    bare = sa.make_url(world_url).set(drivername="postgresql").render_as_string(hide_password=False)
    assert bare.startswith("postgresql://")
    with tr.connect(bare, player_id=1) as world:
        assert world.villages.list_by_player(1)[0].player_id == 1
        assert world.database is not None
        assert world.database.engine.dialect.driver == "psycopg2"


@pytest.mark.parametrize("url", ["mysql://root@127.0.0.1/test", "oracle://u@h/db"])
def test_an_unsupported_database_url_is_one_configuration_error(url: str) -> None:
    with pytest.raises(tr.ConfigurationError, match="unsupported database"):
        tr.connect(url)


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/"])
def test_the_api_url_may_end_in_v1(suffix: str) -> None:
    from travian_repo.http.transport.session import check_base_url

    assert check_base_url("http://127.0.0.1:8080" + suffix) == "http://127.0.0.1:8080"
    assert check_base_url("http://h/game" + suffix) == "http://h/game"


@pytest.mark.parametrize("backend", ["sqlite"])
def test_opening_a_sql_world_loads_the_engine_but_not_world_generation(world_url: str) -> None:
    # The engine comes in for catching up; world generation and Alembic are not its business.
    import subprocess
    import sys

    code = (
        "import sys, travian_repo as tr\n"
        f"with tr.connect({world_url!r}, player_id=1) as world:\n"
        "    world.villages.get(1)\n"
        "print(sorted(m for m in ('travian_repo.sandbox.engine', 'travian_repo.sandbox.worldgen',"
        " 'alembic', 'travian_repo.sandbox.server') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['travian_repo.sandbox.engine']"

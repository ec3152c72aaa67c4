"""Upgrading worlds of schema version 1 in place (Alembic), on SQLite and PostgreSQL.

A version-1 world is built from the version-1 DDL kept in tests/data/schema_v1.py: a world
made by today's create_world (same seed, so the same map) is copied row by row into the old
tables, with the plain tokens version 1 stored.
"""

from __future__ import annotations

import io
import threading
from contextlib import redirect_stderr, redirect_stdout
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

import pytest
import requests
import sqlalchemy as sa

import travian_repo as tr
from travian_repo.apps import cli
from travian_repo.sandbox import Clock, Engine, create_world, player_tokens, upgrade_world
from travian_repo.sandbox.server import ServerThread
from travian_repo.sql import schema
from travian_repo.sql.database import translate
from travian_repo.sql.migrate import REVISIONS

from tests.conftest import START
from tests.data import schema_v1

HEAD = REVISIONS[schema.SCHEMA_VERSION]
# Every test builds an old world and upgrades it through Alembic: seconds each.
pytestmark = pytest.mark.slow


def make_v1_world(url: str, tmp_path: Path, *, players: int = 4,
                  extra: Callable[[sa.Connection], None] | None = None) -> dict[int, str]:
    """A version-1 world at ``url`` (replacing whatever is there); its plain tokens."""
    source_url = f"sqlite:///{tmp_path / 'v2-source.db'}"
    summary = create_world(source_url, players=players, seed=5, start="developed", now=START,
                           replace=True)
    with tr.connect(source_url, player_id=1, clock=Clock(START)) as world:
        world.villages.queue_building(1, "main_building")
        world.villages.queue_building(1, "warehouse")
    source = sa.create_engine(source_url)
    target = sa.create_engine(url)
    try:
        with source.connect() as src, target.begin() as dst:
            schema.metadata.drop_all(dst)
            dst.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
            schema_v1.metadata.create_all(dst)
            for table in schema_v1.metadata.sorted_tables:
                if table.name == "api_tokens":
                    rows: list[dict[str, Any]] = [
                        {"token": token, "player_id": pid, "created_at": START}
                        for pid, token in summary.tokens.items()
                    ]
                else:
                    rows = [{k: v for k, v in r.items() if k in table.c} for r in src.execute(
                        sa.select(schema.metadata.tables[table.name])).mappings()]
                if table.name == "world_settings":
                    rows = [{**r, "schema_version": 1} for r in rows]
                if rows:
                    dst.execute(table.insert(), rows)
            if dst.dialect.name == "postgresql":
                for table in schema_v1.metadata.sorted_tables:
                    if "id" in table.c and table.name != "world_settings":
                        dst.execute(sa.text(
                            f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                            f"coalesce((SELECT max(id) FROM {table.name}), 0) + 1, false)"))
            if extra is not None:
                extra(dst)
    finally:
        source.dispose()
        target.dispose()
    return dict(summary.tokens)


def snapshot(url: str) -> dict[str, Any]:
    """Every table's columns, constraints, indexes and rows, for "nothing changed"."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            shot: dict[str, Any] = {}
            for name in sorted(inspector.get_table_names()):
                table = sa.Table(name, sa.MetaData(), autoload_with=conn)
                shot[name] = {
                    "columns": [(c["name"], str(c["type"])) for c in inspector.get_columns(name)],
                    "unique": sorted(str(u["column_names"])
                                     for u in inspector.get_unique_constraints(name)),
                    "checks": sorted(str(c["sqltext"])
                                     for c in inspector.get_check_constraints(name)),
                    "indexes": sorted(str(i["name"]) for i in inspector.get_indexes(name)),
                    "rows": sorted(repr(tuple(r)) for r in conn.execute(sa.select(table))),
                }
            return shot
    finally:
        engine.dispose()


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


def settings_row(url: str) -> tuple[int, str | None]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            version = conn.execute(sa.text("SELECT schema_version FROM world_settings")).scalar()
            revision = None
            if sa.inspect(conn).has_table("alembic_version"):
                revision = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
            return int(version), revision
    finally:
        engine.dispose()


def me(base: str, token: str) -> requests.Response:
    return requests.get(f"{base}/v1/me", timeout=10,
                        headers={"Authorization": f"Bearer {token}", "X-World-Id": "default"})


def test_create_world_is_stamped_current(database_url: str) -> None:
    create_world(database_url, players=2, replace=True, now=START)
    assert settings_row(database_url) == (schema.SCHEMA_VERSION, HEAD)
    code, out, err = run_cli("upgrade-world", "--database-url", database_url)
    assert code == 0, err
    assert "already; nothing to do" in out


def test_a_version_1_world_is_refused_with_the_upgrade_command(
    database_url: str, tmp_path: Path
) -> None:
    make_v1_world(database_url, tmp_path)
    with pytest.raises(tr.SchemaMismatch) as refused:
        tr.connect(database_url, player_id=1)
    message = str(refused.value)
    assert "schema version 1" in message
    assert "travian-repo upgrade-world --database-url" in message
    assert refused.value.details == {"found": 1, "expected": schema.SCHEMA_VERSION}
    with pytest.raises(tr.SchemaMismatch, match="upgrade-world"):
        player_tokens(database_url)


@pytest.mark.slow
def test_upgrade_world_keeps_the_data_and_the_tokens_and_adds_the_rules(
    database_url: str, tmp_path: Path
) -> None:
    tokens = make_v1_world(database_url, tmp_path)
    before = snapshot(database_url)

    code, out, err = run_cli("upgrade-world", "--database-url", database_url)
    assert code == 0, err
    assert f"from schema version 1 to {schema.SCHEMA_VERSION}" in out
    assert settings_row(database_url) == (schema.SCHEMA_VERSION, HEAD)

    after = snapshot(database_url)
    for name, table in before.items():  # every row is still there (tokens now hashed)
        if name not in ("api_tokens", "world_settings"):
            assert after[name]["rows"] == table["rows"], name
    assert len(after["api_tokens"]["rows"]) == len(tokens)
    assert not any(token in row for token in tokens.values()
                   for row in after["api_tokens"]["rows"])

    with tr.connect(database_url, player_id=1, clock=Clock(START)) as world:
        queue = world.villages.build_queue(1)
        assert [(o.position, o.building) for o in queue] == [(1, "main_building"),
                                                             (2, "warehouse")]
    with ServerThread(database_url, clock=Clock(START)) as server:
        for pid, token in tokens.items():
            answer = me(server.url, token)
            assert answer.status_code == 200, answer.text
            assert answer.json()["id"] == pid
        assert me(server.url, "0" * 40).status_code == 401

    # The database itself now refuses what the rules say cannot be.
    engine = sa.create_engine(database_url)
    q = schema.build_queue
    order = dict(village_id=1, slot=30, building_name="cranny", target_level=1, wood=1,
                 clay=1, iron=1, wheat=1, started_at=START, completes_at=START)
    refused = [
        q.insert().values(**{**order, "queue_position": 2}),  # position 2 is taken
        q.insert().values(**{**order, "queue_position": 3, "slot": 26, "building_name":
                             "main_building", "target_level": 6}),  # main building 6 queued
        schema.alliances.insert().values(name="Dup", tag="D2", founder_id=2, created_at=START),
        schema.villages.insert().values(name="second capital", player_id=1, x=199, y=199,
                                        population=2, is_capital=True, created_at=START),
        q.insert().values(**{**order, "queue_position": 3, "wood": -1}),
        schema.village_resources.update().where(
            schema.village_resources.c.village_id == 1).values(wood=-5),
        schema.api_tokens.insert().values(token_hash="x" * 64, player_id=1, created_at=START),
    ]
    try:
        with engine.begin() as conn:
            conn.execute(schema.alliances.insert().values(name="Dup", tag="D1", founder_id=1,
                                                          created_at=START))
        for statement in refused:
            with engine.connect() as conn, conn.begin():
                with pytest.raises(sa.exc.IntegrityError) as caught:
                    conn.execute(statement)
            assert isinstance(translate(caught.value), tr.Conflict), statement
        with engine.begin() as conn:  # the next position is fine
            conn.execute(q.insert().values(**{**order, "queue_position": 3}))
    finally:
        engine.dispose()

    settled = snapshot(database_url)
    code, out, err = run_cli("upgrade-world", "--database-url", database_url)
    assert code == 0, err
    assert "already; nothing to do" in out
    assert snapshot(database_url) == settled
    assert upgrade_world(database_url).changed is False


@pytest.mark.slow
def test_an_upgrade_refuses_data_that_breaks_a_new_rule_and_changes_nothing(
    database_url: str, tmp_path: Path
) -> None:
    def duplicate_orders(conn: sa.Connection) -> None:
        q = schema_v1.build_queue
        row = dict(village_id=2, slot=26, building_name="main_building", target_level=6,
                   wood=1, clay=1, iron=1, wheat=1, started_at=START,
                   completes_at=START + timedelta(hours=1))
        conn.execute(q.insert(), [dict(row, queue_position=1), dict(row, queue_position=1)])

    tokens = make_v1_world(database_url, tmp_path, extra=duplicate_orders)
    before = snapshot(database_url)

    code, out, err = run_cli("upgrade-world", "--database-url", database_url)
    assert code == 2 and out == ""
    assert "cannot be upgraded to schema version 2" in err
    assert "1 build orders sharing a queue position: (village_id=2 queue_position=1" in err
    assert "1 build orders for the same slot and target level" in err
    assert "Nothing was changed" in err and "Traceback" not in err
    with pytest.raises(tr.Conflict, match="sharing a queue position"):
        upgrade_world(database_url)

    assert snapshot(database_url) == before
    assert settings_row(database_url) == (1, None)
    with pytest.raises(tr.SchemaMismatch, match="upgrade-world"):
        tr.connect(database_url, player_id=1)

    # Once the operator removes the extra order, the upgrade goes through.
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            extra = conn.execute(sa.text(
                "SELECT max(id) FROM build_queue WHERE village_id = 2")).scalar()
            conn.execute(sa.text("DELETE FROM build_queue WHERE id = :id"), {"id": extra})
    finally:
        engine.dispose()
    result = upgrade_world(database_url)
    assert (result.from_version, result.to_version, result.changed) == (
        1, schema.SCHEMA_VERSION, True)
    with ServerThread(database_url) as server:
        assert me(server.url, tokens[3]).json()["id"] == 3


def test_two_upgrades_at_once_run_one_after_the_other(
    database_url: str, tmp_path: Path
) -> None:
    make_v1_world(database_url, tmp_path, players=2)
    for _ in range(2):  # bounded: two rounds of two upgraders
        barrier = threading.Barrier(2)
        outcomes: list[Any] = []

        def upgrade() -> None:
            barrier.wait(timeout=10)
            try:
                outcomes.append(upgrade_world(database_url).changed)
            except Exception as exc:  # noqa: BLE001 - recorded for the assertion
                outcomes.append(exc)

        threads = [threading.Thread(target=upgrade) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert sorted(map(repr, outcomes)) == ["False", "True"], outcomes
        assert settings_row(database_url) == (schema.SCHEMA_VERSION, HEAD)
        make_v1_world(database_url, tmp_path, players=2)


def make_v2_world(url: str) -> None:
    """A version-2 world at ``url``: today's, without the morale setting version 3 added nor
    the identity version 4 added."""
    create_world(url, players=2, seed=5, start="developed", now=START, replace=True)
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE world_settings DROP COLUMN morale"))
            conn.execute(sa.text("ALTER TABLE world_settings DROP COLUMN world_uid"))
            conn.execute(sa.text("UPDATE world_settings SET schema_version = 2"))
            conn.execute(sa.text("UPDATE alembic_version SET version_num = '0002'"))
    finally:
        engine.dispose()


def test_a_version_2_world_gets_morale_on(database_url: str) -> None:
    make_v2_world(database_url)
    with pytest.raises(tr.SchemaMismatch, match="schema version 2"):
        tr.connect(database_url, player_id=1)
    result = upgrade_world(database_url)
    assert (result.from_version, result.to_version) == (2, schema.SCHEMA_VERSION)
    assert settings_row(database_url) == (schema.SCHEMA_VERSION, HEAD)
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.select(schema.world_settings.c.morale)).scalar() is True
    finally:
        engine.dispose()
    with tr.connect(database_url, player_id=1, clock=Clock(START)) as world:
        assert world.villages.build_queue(1) == []
    assert upgrade_world(database_url).changed is False


def test_upgrade_world_says_what_is_not_a_world(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    sa.create_engine(url).connect().close()
    with pytest.raises(tr.SchemaMismatch, match="not a travian_repo world"):
        upgrade_world(url)
    code, _, err = run_cli("upgrade-world", "--database-url", url)
    assert code == 2 and "not a travian_repo world" in err
    code, out, _ = run_cli("upgrade-world", "--help")
    text = " ".join(out.split())
    assert code == 0 and "--database-url URL" in text
    assert "A world already current is left alone" in text


def test_a_world_newer_than_the_library_is_left_alone(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'newer.db'}"
    create_world(url, players=2, now=START)
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE world_settings SET schema_version = 99"))
    finally:
        engine.dispose()
    with pytest.raises(tr.SchemaMismatch, match="upgrade travian_repo to read it"):
        tr.connect(url, player_id=1)
    with pytest.raises(tr.SchemaMismatch, match="newer than this library"):
        upgrade_world(url)
    assert settings_row(url) == (99, HEAD)


def test_tokens_are_stored_hashed_and_reissuing_replaces_them(database_url: str) -> None:
    summary = create_world(database_url, players=3, replace=True, now=START)
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            stored = set(conn.execute(sa.select(schema.api_tokens.c.token_hash)).scalars())
    finally:
        engine.dispose()
    assert len(stored) == 3 and not stored & set(summary.tokens.values())

    fresh = player_tokens(database_url)
    assert sorted(fresh) == [1, 2, 3]
    assert not set(fresh.values()) & set(summary.tokens.values())
    with ServerThread(database_url) as server:
        assert me(server.url, fresh[2]).json()["id"] == 2
        assert me(server.url, summary.tokens[2]).status_code == 401


def test_the_engine_shifts_a_long_queue_down_under_the_unique_positions(
    database_url: str, backend: str
) -> None:
    """Completing the first of several orders closes up the rest; stored out of position
    order, a constraint checked row by row (SQLite's) would see any transient duplicate."""
    create_world(database_url, players=2, seed=3, start="developed", now=START, replace=True,
                 build_queue_limit=5)
    q = schema.build_queue
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            for position, slot in ((4, 4), (3, 3), (2, 2), (1, 1)):
                conn.execute(q.insert().values(
                    village_id=1, queue_position=position, slot=slot, building_name="x",
                    target_level=4, wood=0, clay=0, iron=0, wheat=0, started_at=START,
                    completes_at=START + timedelta(minutes=position)))
            conn.execute(q.update().where(q.c.village_id == 1).values(
                building_name=sa.select(schema.village_buildings.c.building_name).where(
                    schema.village_buildings.c.village_id == 1,
                    schema.village_buildings.c.slot == q.c.slot).scalar_subquery()))
    finally:
        engine.dispose()
    clock = Clock(START + timedelta(minutes=1, seconds=30))
    url = sa.make_url(database_url)
    if backend == "postgresql":  # a plan that visits the rows as stored, not by position
        options = url.query.get("options", "")
        url = url.update_query_dict({"options": f"{options} -cenable_indexscan=off "
                                                 "-cenable_bitmapscan=off".strip()})
    with tr.connect(url.render_as_string(hide_password=False), player_id=1,
                    clock=clock) as world:
        assert Engine(world.database, clock=clock).run_due() == 1
        left = world.villages.build_queue(1)
        assert [(o.position, o.slot) for o in left] == [(1, 2), (2, 3), (3, 4)]


def test_the_library_keeps_the_queue_dense_under_the_unique_positions(database_url: str) -> None:
    create_world(database_url, players=2, seed=3, start="developed", now=START, replace=True,
                 build_queue_limit=5)
    clock = Clock(START)
    with tr.connect(database_url, player_id=1, clock=clock) as world:
        for building in ("woodcutter", "clay_pit", "iron_mine", "cropland", "warehouse"):
            world.villages.queue_building(1, building)
        world.villages.cancel_building(1, 2)  # positions 1, 3, 4, 5 close up to 1..4
        queue = world.villages.build_queue(1)
        assert [o.position for o in queue] == [1, 2, 3, 4]
        clock.set(queue[1].completes_at)
        assert Engine(world.database, clock=clock).run_due() == 2
        assert [(o.position, o.building) for o in world.villages.build_queue(1)] == [
            (1, "cropland"), (2, "warehouse")]


def test_a_version_3_world_gets_an_identity_of_its_own(database_url: str,
                                                       tmp_path: Path) -> None:
    """Upgrading a version-3 world adds world_settings.world_uid; two upgraded worlds (both
    called "default") are told apart by it."""
    uids = []
    for url in (database_url, f"sqlite:///{tmp_path / 'second.db'}"):
        create_world(url, players=2, seed=3, replace=True, now=START)
        engine = sa.create_engine(url)
        try:
            with engine.begin() as conn:  # back to version 3: no identity column
                with conn.begin_nested():
                    conn.execute(sa.text("UPDATE world_settings SET schema_version = 3"))
                    conn.execute(sa.text("UPDATE alembic_version SET version_num = '0003'"))
                conn.execute(sa.text("ALTER TABLE world_settings DROP COLUMN world_uid"))
        finally:
            engine.dispose()
        with pytest.raises(tr.SchemaMismatch, match="upgrade-world"):
            tr.connect(url, player_id=1)
        assert upgrade_world(url).to_version == schema.SCHEMA_VERSION
        with tr.connect(url, player_id=1) as world:
            uids.append(world.settings.world_uid)
            assert world.settings.world_id == "default"
    assert len(set(uids)) == 2 and all(len(uid) == 32 for uid in uids)

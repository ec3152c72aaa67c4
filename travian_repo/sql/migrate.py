"""Bringing a world database to this library's schema version (Alembic, sql/migrations/).

A world records its version twice: ``world_settings.schema_version`` (what ``connect()``
checks) and Alembic's ``alembic_version`` (which revisions ran). Worlds of version 1 predate
the second; the upgrade stamps them with the revision of the version they record.

The whole upgrade is one transaction (PostgreSQL's DDL is transactional; on SQLite batch
mode copies each altered table inside it), taken with the world's write lock first, so a
failed upgrade leaves the world exactly as it was and two upgrades at once run one after
the other (the second finds nothing to do).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, select
from sqlalchemy import exc as sa_exc

from travian_repo.domain.errors import BackendUnavailable, Conflict, SchemaMismatch
from travian_repo.sql import schema
from travian_repo.sql.database import make_engine
from travian_repo.sql.engines import check_sqlite_file

MIGRATIONS = Path(__file__).with_name("migrations")

# world_settings.schema_version -> the Alembic revision that leaves a world at it.
REVISIONS: dict[int, str] = {1: "0001", 2: "0002", 3: "0003", 4: "0004"}

UPGRADE_COMMAND = "travian-repo upgrade-world --database-url URL"


@dataclass(frozen=True)
class UpgradeResult:
    url: str
    from_version: int
    to_version: int

    @property
    def changed(self) -> bool:
        return self.from_version != self.to_version


def _config(conn: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    return config


def stamp_head(conn: Connection) -> None:
    """Record in a freshly created world (in the caller's transaction) that it is current."""
    MigrationContext.configure(conn).stamp(ScriptDirectory.from_config(_config(conn)), "head")


def upgrade_world(url: str | Engine) -> UpgradeResult:
    """Upgrade the world at ``url`` in place to this library's schema version.

    Idempotent: a current world is left alone. SchemaMismatch when the database is not a
    world or is newer than this library; Conflict (and nothing changed) when the world's
    data breaks a rule the new version enforces; BackendUnavailable when the database
    cannot be reached.
    """
    if isinstance(url, str):
        check_sqlite_file(url)  # a missing file: say so, and create none
    engine = make_engine(url) if isinstance(url, str) else url
    shown = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as base:
            conn = base.execution_options(isolation_level="AUTOCOMMIT")
            found = _run(conn, shown)
    except sa_exc.IntegrityError as exc:
        raise Conflict(
            f"the world at {shown} cannot be upgraded to schema version "
            f"{schema.SCHEMA_VERSION}: the database refused it ({_first_line(exc)}); "
            "nothing was changed"
        ) from exc
    except sa_exc.DBAPIError as exc:
        raise BackendUnavailable(
            f"cannot upgrade the world at {shown}: {_first_line(exc)}"
        ) from exc
    finally:
        if isinstance(url, str):
            engine.dispose()
    return UpgradeResult(shown, found, schema.SCHEMA_VERSION)


def _run(conn: Connection, shown: str) -> int:
    """The upgrade in one transaction we open and close ourselves; the version found."""
    sqlite = conn.dialect.name == "sqlite"
    foreign_keys = False
    if sqlite:
        # Batch mode drops and renames tables; checking foreign keys row by row meanwhile
        # would refuse that. They are checked as a whole before the commit.
        foreign_keys = bool(conn.exec_driver_sql("PRAGMA foreign_keys").scalar())
        conn.exec_driver_sql("PRAGMA foreign_keys = OFF")
    try:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if sqlite else "BEGIN")
        try:
            found = _upgrade_locked(conn, shown)
            if sqlite:
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
                if broken:
                    raise Conflict(
                        f"the world at {shown} has rows pointing at rows that do not exist "
                        f"({len(broken)}, first in table {broken[0][0]}); nothing was changed"
                    )
            conn.exec_driver_sql("COMMIT")
        except BaseException:
            try:
                conn.exec_driver_sql("ROLLBACK")
            except sa_exc.DBAPIError:
                conn.invalidate()  # the connection is gone, and the transaction with it
            raise
    finally:
        if sqlite and foreign_keys:
            conn.exec_driver_sql("PRAGMA foreign_keys = ON")
    return found


def _upgrade_locked(conn: Connection, shown: str) -> int:
    if not inspect(conn).has_table("world_settings"):
        raise SchemaMismatch(f"{shown} is not a travian_repo world (no world_settings table)")
    if conn.dialect.name == "postgresql":
        # Lock, then read: a second upgrade waits here and then finds the world current.
        conn.exec_driver_sql("LOCK TABLE world_settings IN SHARE ROW EXCLUSIVE MODE")
    found = conn.execute(select(schema.world_settings.c.schema_version)).scalar()
    if found is None:
        raise SchemaMismatch(f"{shown} has an empty world_settings table; recreate the world")
    found = int(found)
    if found > schema.SCHEMA_VERSION:
        raise SchemaMismatch(
            f"the world at {shown} has schema version {found}, newer than this library's "
            f"{schema.SCHEMA_VERSION}; upgrade travian_repo",
            details={"found": found, "expected": schema.SCHEMA_VERSION},
        )
    if found not in REVISIONS:
        raise SchemaMismatch(f"the world at {shown} has unknown schema version {found}")
    context = MigrationContext.configure(conn)
    config = _config(conn)
    if context.get_current_revision() is None:  # made before the migrations existed
        context.stamp(ScriptDirectory.from_config(config), REVISIONS[found])
    command.upgrade(config, "head")
    return found


def _first_line(exc: sa_exc.DBAPIError) -> str:
    text_ = str(exc.orig if exc.orig is not None else exc).strip()
    return text_.splitlines()[0][:300] if text_ else type(exc).__name__


__all__ = ["REVISIONS", "UPGRADE_COMMAND", "UpgradeResult", "stamp_head", "upgrade_world"]

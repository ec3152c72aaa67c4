"""Engines and the world settings row: bounded waits, SQLite's write lock, the pool's checks."""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from sqlalchemy import Engine, create_engine, event, inspect, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

from travian_repo.domain.errors import BackendUnavailable, ConfigurationError, SchemaMismatch
from travian_repo.sql import schema
from travian_repo.sql.deadline import ReplyDeadline

# Any callable answering the current time (aware UTC): utc_now, a sandbox Clock, ...
TimeSource = Callable[[], datetime]

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Bounded waits on PostgreSQL (seconds); connect(), make_engine() and serve take others.
CONNECT_TIMEOUT_S = 5.0
STATEMENT_TIMEOUT_S = 30.0
POOL_TIMEOUT_S = 10.0
KEEPALIVES_IDLE_S = 30
# The client waits this much longer than statement_timeout for the server's own timeout
# error before it decides the server (or the path to it) has stalled and drops the connection.
REPLY_GRACE_S = 2.0
# pool_pre_ping=True tests a pooled connection that sat idle this long before handing it out;
# one used more recently costs no round trip, and if it died meanwhile its first statement
# is run again on a fresh connection (see SqlSession.read / write).
PRE_PING_IDLE_S = 5.0


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class WorldSettings:
    world_id: str
    world_uid: str
    schema_version: int
    speed: int
    map_radius: int
    tournament_square_bonus_percent: int
    build_queue_limit: int
    instant_builds: bool
    morale: bool = True


def make_engine(
    url: str,
    *,
    pool_size: int | None = None,
    connect_timeout: float | None = CONNECT_TIMEOUT_S,
    statement_timeout: float | None = STATEMENT_TIMEOUT_S,
    pool_timeout: float | None = POOL_TIMEOUT_S,
    pool_pre_ping: bool | float = True,
    keepalives_idle: int | None = KEEPALIVES_IDLE_S,
    **kwargs: Any,
) -> Engine:
    """An engine set up for the library: WAL and a busy timeout on SQLite; on PostgreSQL a
    sized pool and bounded waits (None or 0 turns a bound off):

    - ``connect_timeout``: seconds to open a connection (libpq counts whole seconds, at least 2);
    - ``statement_timeout``: seconds a statement may run on the server; the client gives up
      on a reply ``REPLY_GRACE_S`` later (a stalled server or network) and drops the connection;
    - ``pool_timeout``: seconds to wait for a free pooled connection;
    - ``pool_pre_ping``: test a pooled connection that sat idle ``PRE_PING_IDLE_S`` or more
      before use, replacing it when dead (a number: that idle time instead, 0: every time);
    - ``keepalives_idle``: seconds of silence before TCP keepalive probes start.
    """
    try:
        parsed = make_url(url)
        if parsed.drivername == "postgresql":
            # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; the library ships psycopg2.
            parsed = parsed.set(drivername="postgresql+psycopg2")
        if parsed.get_backend_name() not in ("sqlite", "postgresql"):
            raise ConfigurationError(
                f"unsupported database {parsed.get_backend_name()!r}: use a postgresql:// or "
                "sqlite:/// URL"
            )
        parsed.get_dialect()
    except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError) as exc:
        raise ConfigurationError(f"not a usable database URL: {exc}") from None
    for name, value in (("connect_timeout", connect_timeout), ("statement_timeout", statement_timeout),
                        ("pool_timeout", pool_timeout), ("keepalives_idle", keepalives_idle)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or value < 0):
            raise ConfigurationError(f"{name} must be a number of seconds >= 0 (or None), got {value!r}")
    if not isinstance(pool_pre_ping, (bool, int, float)) or (
            not isinstance(pool_pre_ping, bool)
            and (not math.isfinite(pool_pre_ping) or pool_pre_ping < 0)):
        raise ConfigurationError(
            f"pool_pre_ping must be True, False or an idle time in seconds >= 0, got {pool_pre_ping!r}")
    # The library sends BEGIN/COMMIT itself; a driver in autocommit means a read is one
    # statement on the wire, with no isolation reset when the connection goes back.
    kwargs.setdefault("isolation_level", "AUTOCOMMIT")
    if parsed.get_backend_name() == "sqlite":
        memory = parsed.database in (None, "", ":memory:")
        if memory:
            kwargs.setdefault("poolclass", StaticPool)
        kwargs.setdefault("connect_args", {"check_same_thread": False})
        engine = create_engine(parsed, **kwargs)
        prepare_sqlite(engine)
        engine._travian_autocommit = kwargs["isolation_level"] == "AUTOCOMMIT"  # type: ignore[attr-defined]
        return engine
    deadline: ReplyDeadline | None = None
    if parsed.get_backend_name() == "postgresql":
        # A driver connection in autocommit has no transaction of its own to roll back on
        # its way back to the pool (the reset guard below ends one the library opened).
        kwargs.setdefault("skip_autocommit_rollback", True)
        if kwargs["isolation_level"] == "AUTOCOMMIT":
            # Nothing for the pool to roll back on check-in (the reset listener below ends
            # a transaction the library left open): no per-check-in rollback decision.
            kwargs.setdefault("pool_reset_on_return", None)
        kwargs.setdefault("pool_size", pool_size or 10)
        kwargs.setdefault("max_overflow", 2 * (pool_size or 10))
        kwargs.setdefault("pool_recycle", 1800)
        if pool_timeout:
            kwargs.setdefault("pool_timeout", pool_timeout)
        if parsed.get_driver_name() == "psycopg2":
            kwargs["connect_args"] = _bounded_connect_args(
                parsed.query, dict(kwargs.get("connect_args") or {}),
                connect_timeout=connect_timeout, statement_timeout=statement_timeout,
                keepalives_idle=keepalives_idle,
            )
            if statement_timeout:
                deadline = ReplyDeadline(statement_timeout + REPLY_GRACE_S)
    engine = create_engine(parsed, **kwargs)
    if parsed.get_backend_name() == "postgresql":
        _guard_checkin(engine, deadline)
        if parsed.get_driver_name() == "psycopg2":
            _fast_json(engine)
    if deadline is not None:
        deadline.install(engine)
    if parsed.get_backend_name() == "postgresql" and pool_pre_ping is not False:
        _pre_ping(engine, PRE_PING_IDLE_S if pool_pre_ping is True else float(pool_pre_ping),
                  deadline)
    engine._travian_deadline = deadline  # type: ignore[attr-defined]
    engine._travian_autocommit = kwargs["isolation_level"] == "AUTOCOMMIT"  # type: ignore[attr-defined]
    return engine


def _bounded_connect_args(
    query: Any, connect_args: dict[str, Any], *, connect_timeout: float | None,
    statement_timeout: float | None, keepalives_idle: int | None,
) -> dict[str, Any]:
    """libpq parameters for the bounds; what the caller set in the URL or connect_args wins."""
    given = {**dict(query), **connect_args}
    if connect_timeout and "connect_timeout" not in given:
        connect_args["connect_timeout"] = max(2, math.ceil(connect_timeout))
    if keepalives_idle and "keepalives" not in given:
        connect_args.update(keepalives=1, keepalives_idle=max(1, int(keepalives_idle)),
                            keepalives_interval=max(1, min(10, int(keepalives_idle))),
                            keepalives_count=3)
    options = given.get("options") or ""
    if isinstance(options, tuple):
        options = " ".join(options)
    # Startup parameters: no extra round trip, and the URL's own options are kept.
    if statement_timeout and "statement_timeout" not in options:
        options = f"{options} -c statement_timeout={max(1, int(statement_timeout * 1000))}"
    if "jit" not in options:
        # The library's statements are short; compiling them (tens of ms for a batch of
        # villages) costs more than it saves.
        options = f"{options} -c jit=off"
    connect_args["options"] = options.strip()
    return connect_args


def _guard_checkin(engine: Engine, deadline: ReplyDeadline | None = None) -> None:
    """In driver autocommit the pool's rollback does nothing: end any open transaction.
    (A failure here makes the pool discard the connection.)"""

    @event.listens_for(engine, "reset")
    def _on_reset(dbapi_connection: Any, _record: Any, _state: Any) -> None:
        if dbapi_connection.get_transaction_status() != 0:  # not idle
            if deadline is not None:
                deadline.arm(dbapi_connection)
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("ROLLBACK")
            finally:
                cursor.close()
                if deadline is not None:
                    deadline.disarm(dbapi_connection)


# The C scanner json.loads ends in (not in the stubs): text and start index -> (value, end).
_JSON_SCAN: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _json_value(text: str | None, _cursor: Any) -> Any:
    # The C scanner alone: json.loads adds three Python frames per value, and a village's
    # buildings and queue come back as JSON on every read.
    if text is None:
        return None
    try:
        value, end = _JSON_SCAN(text, 0)
    except StopIteration:
        return json.loads(text)  # leading blanks, or not JSON: the full decoder says what
    return value if end == len(text) else json.loads(text)


def _fast_json(engine: Engine) -> None:
    """psycopg2 decodes ``json``/``jsonb`` columns by the C scanner on this engine's connections."""
    import psycopg2.extensions as ext

    json_type = ext.new_type((114,), "TRAVIAN_JSON", _json_value)
    jsonb_type = ext.new_type((3802,), "TRAVIAN_JSONB", _json_value)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        ext.register_type(json_type, dbapi_connection)
        ext.register_type(jsonb_type, dbapi_connection)


def _pre_ping(engine: Engine, idle_s: float, deadline: ReplyDeadline | None) -> None:
    """Test a connection that sat in the pool ``idle_s`` or longer before handing it out
    (bounded by the reply deadline); a dead one is replaced by the pool."""

    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_connection: Any, record: Any) -> None:
        record.info["travian_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("travian_idle_since")
        if since is None or time.monotonic() - since < idle_s:
            return  # new, or in use a moment ago
        if deadline is not None:
            deadline.arm(dbapi_connection)
        try:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("SELECT 1")
            finally:
                cursor.close()
        except Exception as exc:  # noqa: BLE001 - any failure: the pool replaces it
            raise sa_exc.DisconnectionError(f"pre-ping failed: {exc}") from exc
        finally:
            if deadline is not None:
                deadline.disarm(dbapi_connection)


def prepare_sqlite(engine: Engine) -> None:
    """WAL, a busy timeout, foreign keys; the driver leaves transactions to us."""
    if getattr(engine, "_travian_sqlite_ready", False):
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we send BEGIN IMMEDIATE ourselves
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    engine._travian_sqlite_ready = True  # type: ignore[attr-defined]


def check_sqlite_file(url: str) -> None:
    """A SQLite URL names a file that exists: opening one never creates it (only
    ``create_world`` makes a world); ConfigurationError otherwise."""
    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - make_engine says what is wrong with the URL
        return
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return
    if parsed.database.startswith("file:"):
        return  # a URI filename: its own mode= decides
    if not os.path.exists(parsed.database):
        raise ConfigurationError(
            f"no SQLite world at {os.path.abspath(parsed.database)} (the file does not exist); "
            "create one with travian_repo.sandbox.create_world(url) or `travian-repo "
            "create-world --database-url URL`", details={"path": parsed.database})


def read_settings(engine: Engine) -> WorldSettings:
    """The world settings row, or SchemaMismatch saying what to do."""
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("world_settings"):
                raise SchemaMismatch(
                    f"{_safe_url(engine)} is not a travian_repo world (no world_settings table); "
                    "create one with travian_repo.sandbox.create_world(url) or "
                    "`travian-repo create-world --database-url URL`",
                )
            # The version first: another version's row may lack this one's columns.
            found = conn.execute(select(schema.world_settings.c.schema_version)).scalar()
            row = None
            if found == schema.SCHEMA_VERSION:
                row = conn.execute(select(schema.world_settings)).mappings().first()
    except sa_exc.SQLAlchemyError as exc:
        cause = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
        raise BackendUnavailable(
            f"cannot read the world database {_safe_url(engine)}: {str(cause).strip()[:200]}"
        ) from exc
    if found is None:
        raise SchemaMismatch(
            f"{_safe_url(engine)} has an empty world_settings table; recreate the world with "
            "travian_repo.sandbox.create_world(url)"
        )
    if found != schema.SCHEMA_VERSION or row is None:
        shown = _safe_url(engine)
        if found < schema.SCHEMA_VERSION:
            advice = (f"upgrade the world in place with `travian-repo upgrade-world "
                      f"--database-url {shown}` (or travian_repo.sandbox.upgrade_world(url))")
        else:
            advice = "upgrade travian_repo to read it"
        raise SchemaMismatch(
            f"world schema version {found} at {shown}, this library reads version "
            f"{schema.SCHEMA_VERSION}; {advice}",
            details={"found": found, "expected": schema.SCHEMA_VERSION},
        )
    return WorldSettings(
        world_id=row["world_id"],
        world_uid=row["world_uid"],
        schema_version=row["schema_version"],
        speed=row["speed"],
        map_radius=row["map_radius"],
        tournament_square_bonus_percent=row["tournament_square_bonus_percent"],
        build_queue_limit=row["build_queue_limit"],
        instant_builds=bool(row["instant_builds"]),
        morale=bool(row["morale"]),
    )


def read_created_at(engine: Engine) -> datetime | None:
    """When the world at ``engine`` was created (UTC); None when that cannot be read
    (not a world, or no database): whoever opens the world next says why."""
    try:
        with engine.connect() as conn:
            created = conn.execute(select(schema.world_settings.c.created_at)).scalar()
    except sa_exc.SQLAlchemyError:
        return None
    return None if created is None else schema.as_utc(created)


def _safe_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


__all__ = ["CONNECT_TIMEOUT_S", "KEEPALIVES_IDLE_S", "POOL_TIMEOUT_S", "PRE_PING_IDLE_S",
           "REPLY_GRACE_S", "SQLITE_BUSY_TIMEOUT_MS", "STATEMENT_TIMEOUT_S", "TimeSource",
           "WorldSettings", "check_sqlite_file", "make_engine", "prepare_sqlite",
           "read_created_at", "read_settings", "utc_now"]

"""Shared fixtures: the two SQL backends, fresh sandbox worlds, a driven clock.

PostgreSQL and Redis come from TRAVIAN_TEST_DATABASE_URL / TRAVIAN_TEST_REDIS_URL. When a
service is absent its tests skip with the reason, unless TRAVIAN_REQUIRE_SERVICES=1 (CI),
which turns the skip into a failure.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sqlite3
import socket
import subprocess
import time
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import sqlalchemy as sa

import travian_repo as tr
from travian_repo.sandbox import Clock, WorldSummary, create_world

DEFAULT_DATABASE_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
REQUIRE_SERVICES = os.environ.get("TRAVIAN_REQUIRE_SERVICES") == "1"
START = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test's PostgreSQL run is ``slow``: its SQLite run stays in the fast subset
    (``-m "not slow"``), and each PostgreSQL world costs a schema of its own."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("backend") == "postgresql":
            item.add_marker(pytest.mark.slow)


def service_missing(message: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{message} (TRAVIAN_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The test database, in a schema of this test run's own (runs may overlap)."""
    url = sa.make_url(os.environ.get("TRAVIAN_TEST_DATABASE_URL", DEFAULT_DATABASE_URL))
    schema_name = f"travian_test_{os.getpid()}"
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema_name} CASCADE"))
            conn.execute(sa.text(f"CREATE SCHEMA {schema_name}"))
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        engine.dispose()
        service_missing(f"PostgreSQL not reachable at {url!r}: {type(exc).__name__}; "
                        "set TRAVIAN_TEST_DATABASE_URL")
    scoped = url.update_query_dict({"options": f"-csearch_path={schema_name}"})
    yield scoped.render_as_string(hide_password=False)
    with engine.connect() as conn:
        conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema_name} CASCADE"))
    engine.dispose()


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    url = os.environ.get("TRAVIAN_TEST_REDIS_URL", DEFAULT_REDIS_URL)
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001
        service_missing(f"Redis not reachable at {url}: {type(exc).__name__}; set TRAVIAN_TEST_REDIS_URL")
    finally:
        client.close()
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A database URL for the backend (an empty SQLite file, or the PostgreSQL test database)."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'world.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


MakeWorld = Callable[..., WorldSummary]


class WorldTemplates:
    """SQLite worlds made once per run and copied: a test's first world on SQLite is a copy
    of the world the same arguments made before (create_world is deterministic for them),
    not a new one; that is most of a fast test's time saved."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.made: dict[str, tuple[Path, WorldSummary]] = {}

    def copy(self, target: Path, url: str, kwargs: dict[str, Any]) -> WorldSummary:
        key = repr(sorted(kwargs.items()))
        if key not in self.made:
            path = self.folder / f"template-{len(self.made)}.db"
            self.made[key] = (path, create_world(f"sqlite:///{path}", **kwargs))
        path, summary = self.made[key]
        # the backup API copies a consistent snapshot, the WAL's pages included
        with closing(sqlite3.connect(path)) as source, closing(sqlite3.connect(target)) as copy:
            source.backup(copy)
        return dataclasses.replace(summary, url=url)


@pytest.fixture(scope="session")
def world_templates(tmp_path_factory: pytest.TempPathFactory) -> WorldTemplates:
    return WorldTemplates(tmp_path_factory.mktemp("world-templates"))


@pytest.fixture
def make_world(database_url: str, world_templates: WorldTemplates) -> MakeWorld:
    """Create a fresh world (replacing any) on the test's backend; kwargs go to create_world."""

    def make(**kwargs: Any) -> WorldSummary:
        kwargs.setdefault("players", 6)
        kwargs.setdefault("seed", 7)
        kwargs.setdefault("start", "developed")
        kwargs.setdefault("now", START)
        target = sa.make_url(database_url).database if database_url.startswith("sqlite") else None
        if target and target != ":memory:" and not Path(target).exists():
            return world_templates.copy(Path(target), database_url, kwargs)
        return create_world(database_url, replace=True, **kwargs)

    return make


@pytest.fixture
def world(make_world: MakeWorld, database_url: str, clock: Clock) -> Iterator[tr.World]:
    """A developed 6-player world; acting as player 1; the clock stands still until told."""
    make_world()
    with tr.connect(database_url, player_id=1, clock=clock) as connected:
        yield connected


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateRedis:
    """A redis-server of the test's own on a free port (nothing on disk): to kill and start
    again, for the tests of what happens when Redis goes away and comes back."""

    def __init__(self, tmp: Path, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            service_missing("redis-server binary not found")
        self.binary = str(binary)
        self.tmp = tmp
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        if self.proc is not None and self.proc.poll() is None:
            return  # already running: a second process could not bind, and the first would leak
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--dir", str(self.tmp)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        probe = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        try:
            while True:
                try:
                    probe.ping()
                    return
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        self.stop()
                        raise
                    time.sleep(0.05)
        finally:
            probe.close()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()

"""A world on PostgreSQL that many threads write to at once, through the SQL side or the
server, and the invariants checked after every race.

``Arena.race(count, fn)`` starts ``count`` threads on a barrier; each calls ``fn(index, act)``
where ``act(player)`` opens a unit of work acting as ``player`` (SQL: the shared world;
HTTP: a client of that thread's own with the player's token, through the real server on
loopback). The outcome of each call is ("ok", value) or ("error", the typed exception).
The clock stands still, so stock changes only by what the writes do.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Iterator

import pytest
import sqlalchemy as sa

import travian_repo as tr
from travian_repo.domain.values import Resources
from travian_repo.sandbox import Clock, WorldSummary
from travian_repo.sandbox.server import ServerThread, app_world
from travian_repo.sql import schema
from travian_repo.sql.trade import BUSY_SHIPMENT_STATES
from tests.conftest import MakeWorld

NAMES = ("wood", "clay", "iron", "wheat")
RATE_LIMIT = (10_000, 1_000_000)  # never sleep on the client side
RACE_TIMEOUT = 60.0  # seconds for one race's threads, a bound, not an expectation

Outcome = tuple[str, Any]
Act = Callable[[int], ContextManager[Any]]


@dataclass
class Arena:
    side: str  # "sql" or "http"
    url: str
    clock: Clock
    summary: WorldSummary
    raw: sa.Engine
    sql_world: tr.World
    server: ServerThread | None = None
    _clients: list[tr.World] = field(default_factory=list)
    _idle: dict[int, list[tr.World]] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    # -- acting ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def act(self, player: int) -> Iterator[Any]:
        """A unit of work acting as ``player`` on this arena's side."""
        if self.side == "sql":
            with self.sql_world.unit_of_work(player_id=player) as uow:
                yield uow
            return
        # Clients are checked out and back in, so later rounds reuse them (and their
        # keep-alive connections) instead of piling up connections to the server.
        with self._guard:
            idle = self._idle.setdefault(player, [])
            client = idle.pop() if idle else None
        if client is None:
            assert self.server is not None
            client = tr.connect(api_url=self.server.url, token=self.summary.tokens[player],
                                prefer="http", world_id=self.summary.world_id,
                                rate_limit=RATE_LIMIT, cache=False)
            with self._guard:
                self._clients.append(client)
        try:
            with client.unit_of_work() as uow:
                yield uow
        finally:
            with self._guard:
                self._idle[player].append(client)

    def setup(self, player: int) -> ContextManager[Any]:
        """Set-up writes, always on the SQL side (not the code under test's side)."""
        return self.sql_world.unit_of_work(player_id=player)

    def race(self, count: int, fn: Callable[[int, Act], Any]) -> list[Outcome]:
        """Run ``fn(index, act)`` in ``count`` threads released at once."""
        barrier = threading.Barrier(count, timeout=RACE_TIMEOUT)

        def worker(index: int) -> Outcome:
            barrier.wait()
            try:
                return ("ok", fn(index, self.act))
            except tr.TravianError as exc:
                return ("error", exc)

        with ThreadPoolExecutor(count) as pool:
            futures = [pool.submit(worker, i) for i in range(count)]
            return [f.result(timeout=RACE_TIMEOUT) for f in futures]

    # -- the database, straight -----------------------------------------------------------

    def execute(self, *statements: Any) -> None:
        with self.raw.begin() as conn:
            for statement in statements:
                conn.execute(statement)

    def rows(self, table: sa.Table, *where: Any) -> list[Any]:
        with self.raw.connect() as conn:
            return list(conn.execute(sa.select(table).where(*where).order_by(table.c.id)))

    def set_stock(self, village_id: int, amounts: Resources) -> None:
        """Stock as of now (the clock stands still: it stays exactly this until a write)."""
        r = schema.village_resources
        self.execute(sa.update(r).where(r.c.village_id == village_id).values(
            updated_at=self.clock(), **dict(zip(NAMES, amounts))))

    def stock(self, village_id: int) -> Resources:
        """The stored stock; exact while the clock stands still since the last write."""
        r = schema.village_resources
        with self.raw.connect() as conn:
            row = conn.execute(sa.select(r).where(r.c.village_id == village_id)).one()
        assert row.updated_at == self.clock(), "the clock moved under a ledger check"
        values = [getattr(row, n) for n in NAMES]
        assert all(float(x) == int(x) for x in values), values
        return Resources(*(int(x) for x in values))

    def set_level(self, village_id: int, building: str, level: int) -> None:
        b = schema.village_buildings
        self.execute(sa.update(b).where(b.c.village_id == village_id,
                                        b.c.building_name == building).values(level=level))

    def clear_trade(self) -> None:
        self.execute(sa.delete(schema.shipments), sa.delete(schema.trade_offers))

    # -- invariants -----------------------------------------------------------------------

    def check_villages(self) -> None:
        """No negative stock, stock within storage, merchants never over-committed."""
        r, b, o, s = (schema.village_resources, schema.village_buildings,
                      schema.trade_offers, schema.shipments)
        now = self.clock()
        with self.raw.connect() as conn:
            for row in conn.execute(sa.select(r)):
                caps = (row.warehouse_capacity,) * 3 + (row.granary_capacity,)
                for name, cap in zip(NAMES, caps):
                    value = getattr(row, name)
                    assert 0 <= value <= cap, (row.village_id, name, value, cap)
            markets = dict(conn.execute(sa.select(b.c.village_id, sa.func.max(b.c.level))
                                        .where(b.c.building_name == "marketplace")
                                        .group_by(b.c.village_id)).all())
            held = dict(conn.execute(sa.select(o.c.village_id, sa.func.sum(o.c.merchants))
                                     .where(o.c.state == "open").group_by(o.c.village_id)).all())
            out = dict(conn.execute(
                sa.select(s.c.from_village_id, sa.func.sum(s.c.merchants))
                .where(s.c.state.in_(BUSY_SHIPMENT_STATES), s.c.returns_at > now)
                .group_by(s.c.from_village_id)).all())
        for village_id in set(held) | set(out):
            busy = int(held.get(village_id, 0)) + int(out.get(village_id, 0))
            assert busy <= int(markets.get(village_id, 0)), (
                f"village {village_id}: {busy} merchants busy, marketplace gives "
                f"{markets.get(village_id, 0)}")

    def close(self) -> None:
        for client in self._clients:
            client.close()
        self._clients.clear()
        if self.server is not None:
            server, self.server = self.server, None
            try:
                server.stop()
            except OSError as exc:  # the known ServerThread.stop() EBADF; see contract tests
                warnings.warn(f"ServerThread.stop() failed: {exc!r}", RuntimeWarning,
                              stacklevel=1)
                app_world(server.app).close()
        self.sql_world.close()
        self.raw.dispose()


def open_arena(side: str, url: str, clock: Clock, summary: WorldSummary,
               threads: int) -> Arena:
    raw = sa.create_engine(url, poolclass=sa.pool.NullPool)
    sql_world = tr.connect(url, clock=clock, prefer="sql", cache=False, pool_size=threads)
    server = None
    if side == "http":
        server = ServerThread(url, clock=clock, threads=min(threads, 16)).start()
    return Arena(side, url, clock, summary, raw, sql_world, server)


@pytest.fixture(params=["sql", "http"])
def side(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=[2, 32])
def threads(request: pytest.FixtureRequest) -> int:
    return int(request.param)


@pytest.fixture
def arena(side: str, threads: int, make_world: MakeWorld, database_url: str,
          clock: Clock) -> Iterator[Arena]:
    """A fresh developed world raced through ``side`` by ``threads`` threads."""
    summary = make_world()
    opened = open_arena(side, database_url, clock, summary, threads)
    try:
        yield opened
    finally:
        opened.close()


def winners(outcomes: list[Outcome]) -> list[Any]:
    return [value for kind, value in outcomes if kind == "ok"]


def one_winner(outcomes: list[Outcome]) -> Any:
    """The one call that succeeded (AssertionError listing them when not exactly one)."""
    won = winners(outcomes)
    assert len(won) == 1, f"{len(won)} winners: {won}"
    return won[0]


def errors(outcomes: list[Outcome]) -> list[tr.TravianError]:
    return [value for kind, value in outcomes if kind == "error"]


def only_errors(outcomes: list[Outcome], *allowed: type[tr.TravianError]) -> None:
    """Every loser got one of the typed errors allowed (exactly that class)."""
    for exc in errors(outcomes):
        assert type(exc) in allowed, f"{type(exc).__name__}: {exc}"

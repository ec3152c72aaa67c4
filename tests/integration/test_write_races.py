"""Races on the village, military and intel writes, and two engines at once (PostgreSQL).

Every write runs from 2 and from 32 threads at once, a few rounds, through the SQL side and
through the server on loopback. The clock stands still, so nothing is produced meanwhile and
the ledger is exact: after each round the stock is the start minus what the accepted writes
cost plus what was refunded, the troops of a village are all accounted for (home, moving,
stationed), the build queue is within its limit with dense positions and one order per slot
and target level, and a contested cancel or recall has exactly one winner (the others get a
typed error). The engine test runs two engines on one world while players write, and checks
that nothing is applied twice.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import pytest
import sqlalchemy as sa

import travian_repo as tr
from travian_repo.domain import events as ev
from travian_repo.domain.values import Event, Resources
from travian_repo.rules.village import village_economy
from travian_repo.sandbox import Clock, WorldSummary, create_world
from travian_repo.sandbox.engine import Engine
from travian_repo.sandbox.server import ServerThread, app_world
from travian_repo.sql import schema
from travian_repo.sql.database import Database, make_engine
from travian_repo.sql.village_state import movements_home_filter

from tests.conftest import START

pytestmark = pytest.mark.slow

RATE_LIMIT = (100_000, 10_000_000)  # never sleep in the client's own limiter
QUEUE_LIMIT = 2
NAMES = ("wood", "clay", "iron", "wheat")

_r = schema.village_resources
_q = schema.build_queue
_t = schema.troops
_m = schema.movements
_b = schema.village_buildings
_tq = schema.training_queue


# -- the arena: one world, written to over SQL or HTTP -------------------------------------


@dataclass
class Arena:
    mode: str
    url: str
    clock: Clock
    raw: sa.Engine
    summary: WorldSummary | None = None
    server: ServerThread | None = None
    opened: list[tr.World] = field(default_factory=list)
    world_kwargs: dict[str, Any] = field(default_factory=dict)

    def new_world(self) -> None:
        """A fresh developed world (the same settings every round), the clock at START."""
        self.close_worlds()
        self.clock.set(START)
        self.summary = create_world(self.url, replace=True, players=6, seed=7,
                                    start="developed", now=START,
                                    build_queue_limit=QUEUE_LIMIT, **self.world_kwargs)
        if self.mode == "http" and self.server is None:
            self.server = ServerThread(self.url, clock=self.clock, threads=8).start()

    def connect(self, player_id: int = 1) -> tr.World:
        assert self.summary is not None
        if self.mode == "sql":
            world = tr.connect(self.url, player_id=player_id, clock=self.clock, prefer="sql",
                               cache=False, pool_size=32)
        else:
            assert self.server is not None
            world = tr.connect(api_url=self.server.url, token=self.summary.tokens[player_id],
                               prefer="http", world_id=self.summary.world_id,
                               rate_limit=RATE_LIMIT, cache=False)
        self.opened.append(world)
        return world

    def close_worlds(self) -> None:
        while self.opened:
            self.opened.pop().close()

    def close(self) -> None:
        self.close_worlds()
        if self.server is not None:
            server, self.server = self.server, None
            try:
                server.stop()
            except OSError as exc:  # waitress's trigger pipe closed early now and then
                warnings.warn(f"ServerThread.stop() failed: {exc!r}", RuntimeWarning,
                              stacklevel=1)
                app_world(server.app).close()
        self.raw.dispose()


@pytest.fixture(params=["sql", "http"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def arena_factory(mode: str, postgres_url: str) -> Iterator[Callable[..., Arena]]:
    made: list[Arena] = []

    def make(**world_kwargs: Any) -> Arena:
        arena = Arena(mode, postgres_url, Clock(START),
                      sa.create_engine(postgres_url, poolclass=sa.pool.NullPool),
                      world_kwargs=world_kwargs)
        made.append(arena)
        return arena

    yield make
    for arena in made:
        arena.close()


Outcome = Any  # a call's result, or the TravianError it raised


def race(threads: int, call: Callable[[int], Any]) -> list[Outcome]:
    """``call(i)`` from ``threads`` threads released at once; results or typed errors.
    Anything that is not a TravianError fails the test (raised from here)."""
    barrier = threading.Barrier(threads)

    def run(index: int) -> Outcome:
        barrier.wait(timeout=30)
        try:
            return call(index)
        except tr.TravianError as exc:
            return exc

    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(run, i) for i in range(threads)]
        return [f.result(timeout=120) for f in futures]


def split(outcomes: Sequence[Outcome], *allowed: type[Exception]) -> tuple[list[Any], list[Exception]]:
    """Winners and losers; every loser's error is one of ``allowed``."""
    wins = [o for o in outcomes if not isinstance(o, Exception)]
    losses = [o for o in outcomes if isinstance(o, Exception)]
    wrong = [o for o in losses if not isinstance(o, allowed)]
    assert not wrong, f"untyped or unexpected errors: {wrong[:3]!r}"
    return wins, losses


# -- reading the world straight from the database ------------------------------------------


def stock(raw: sa.Engine, village_id: int = 1) -> Resources:
    """The stored stock (whole numbers while the clock stands still)."""
    with raw.connect() as conn:
        row = conn.execute(sa.select(*(_r.c[n] for n in NAMES)).where(_r.c.village_id == village_id)).one()
    assert all(float(x).is_integer() for x in row), row
    return Resources(*(int(x) for x in row))


def set_stock(raw: sa.Engine, amount: int, village_id: int = 1) -> Resources:
    with raw.begin() as conn:
        conn.execute(sa.update(_r).where(_r.c.village_id == village_id)
                     .values(**{n: amount for n in NAMES}))
    return Resources(amount, amount, amount, amount)


def set_troops(raw: sa.Engine, village_id: int, troops: Mapping[str, int]) -> None:
    with raw.begin() as conn:
        conn.execute(sa.delete(_t).where(_t.c.village_id == village_id))
        conn.execute(sa.insert(_t), [dict(village_id=village_id, unit=u, count=n)
                                    for u, n in troops.items()])


def census(raw: sa.Engine, village_id: int) -> Counter[str]:
    """A village's own troops: at home plus moving or stationed anywhere."""
    total: Counter[str] = Counter()
    with raw.connect() as conn:
        for unit, count in conn.execute(sa.select(_t.c.unit, _t.c.count).where(_t.c.village_id == village_id)):
            total[unit] += int(count)
        for (troops,) in conn.execute(sa.select(_m.c.troops).where(movements_home_filter(village_id))):
            for unit, count in troops.items():
                total[unit] += int(count)
    return +total


def level(raw: sa.Engine, village_id: int, slot: int) -> int:
    with raw.connect() as conn:
        found = conn.execute(sa.select(_b.c.level).where(_b.c.village_id == village_id,
                                                          _b.c.slot == slot)).scalar()
    return int(found or 0)


def check_world(raw: sa.Engine, queue_limit: int = QUEUE_LIMIT) -> None:
    """Every invariant the rules state, for every village."""
    with raw.connect() as conn:
        for row in conn.execute(sa.select(_r)):
            values = [row.wood, row.clay, row.iron, row.wheat]
            assert min(values) >= 0, ("negative stock", row)
            assert max(values[:3]) <= row.warehouse_capacity, ("over the warehouse", row)
            assert row.wheat <= row.granary_capacity, ("over the granary", row)
        assert conn.execute(sa.select(sa.func.count()).where(_t.c.count < 0)).scalar() == 0
        built: dict[tuple[int, int], int] = {
            (int(r.village_id), int(r.slot)): int(r.level) for r in conn.execute(sa.select(_b))
        }
        queues: dict[int, list[Any]] = {}
        for row in conn.execute(sa.select(_q).order_by(_q.c.village_id, _q.c.queue_position)):
            queues.setdefault(int(row.village_id), []).append(row)
        for village_id, queue in queues.items():
            assert len(queue) <= queue_limit, ("queue over its limit", village_id, queue)
            positions = [int(o.queue_position) for o in queue]
            assert positions == list(range(1, len(queue) + 1)), ("positions", village_id, positions)
            keys = [(int(o.slot), int(o.target_level)) for o in queue]
            assert len(set(keys)) == len(keys), ("one order per slot and level", village_id, keys)
            for slot in {s for s, _ in keys}:  # each slot's orders build on each other
                levels = sorted(lv for s, lv in keys if s == slot)
                first = built.get((village_id, slot), 0) + 1
                assert levels == list(range(first, first + len(levels))), (village_id, slot, levels)
            for before, after in zip(queue, queue[1:]):  # one builder: no overlap
                assert after.started_at >= before.completes_at, (village_id, before, after)
        lines: dict[tuple[int, str], list[Any]] = {}
        for row in conn.execute(sa.select(_tq).order_by(_tq.c.started_at, _tq.c.id)):
            lines.setdefault((int(row.village_id), str(row.building_name)), []).append(row)
        for key, rows in lines.items():
            for before, after in zip(rows, rows[1:]):  # one line at a time per building
                assert after.started_at >= before.completes_at, (key, before, after)
        for (troops,) in conn.execute(sa.select(_m.c.troops).where(_m.c.state != "done")):
            assert all(int(n) >= 0 for n in troops.values()), troops
        # Population follows the buildings, and a player's is the sum of its villages'.
        villages = list(conn.execute(sa.select(schema.villages.c.id, schema.villages.c.player_id,
                                               schema.villages.c.population)))
        names = {(int(r.village_id), int(r.slot)): (str(r.building_name), int(r.level))
                 for r in conn.execute(sa.select(_b))}
        for v in villages:
            econ = village_economy([nl for (vid, _), nl in names.items() if vid == v.id],
                                   troop_upkeep=0, server_speed=1)
            assert v.population == econ.population, ("village population", v)
        for p in conn.execute(sa.select(schema.players.c.id, schema.players.c.population)):
            assert p.population == sum(v.population for v in villages if v.player_id == p.id), p


def rounds(threads: int) -> int:
    return 3 if threads == 2 else 2


# -- builds --------------------------------------------------------------------------------


@pytest.mark.parametrize("threads", [2, 32])
def test_queue_building_race(arena_factory: Callable[..., Arena], threads: int) -> None:
    """Everyone builds at once: the queue takes exactly its limit, each order paid once."""
    arena = arena_factory()
    for round_ in range(rounds(threads)):
        arena.new_world()
        world = arena.connect()
        before = stock(arena.raw)
        # Odd rounds: all the same building (the contested slot and level); even: a mix.
        mix = ("main_building",) if round_ % 2 == 0 else ("main_building", "woodcutter",
                                                          "cropland", "warehouse")
        outcomes = race(threads, lambda i: world.villages.queue_building(1, mix[i % len(mix)]))
        wins, losses = split(outcomes, tr.RuleViolation)
        assert len(wins) == min(threads, QUEUE_LIMIT), (round_, wins, losses)
        assert all("queue is full" in str(e) for e in losses), losses
        assert sorted(o.position for o in wins) == list(range(1, len(wins) + 1))
        assert len({(o.slot, o.target_level) for o in wins}) == len(wins), wins
        spent = sum((o.cost for o in wins), Resources())
        assert stock(arena.raw) == before - spent
        with arena.raw.connect() as conn:
            ids = set(conn.execute(sa.select(_q.c.id).where(_q.c.village_id == 1)).scalars())
        assert ids == {o.id for o in wins}
        check_world(arena.raw)


@pytest.mark.parametrize("threads", [2, 32])
def test_instant_build_race(arena_factory: Callable[..., Arena], threads: int) -> None:
    """Instant builds at once: every accepted one raises the level by one, paid once."""
    arena = arena_factory(instant_builds=True)
    for _ in range(rounds(threads)):
        arena.new_world()
        world = arena.connect()
        start_level = level(arena.raw, 1, 26)
        before = set_stock(arena.raw, 3000)
        outcomes = race(threads, lambda i: world.villages.queue_building(1, "main_building",
                                                                         instant=True))
        wins, losses = split(outcomes, tr.InsufficientResources)
        assert wins
        levels = sorted(o.target_level for o in wins)
        assert levels == list(range(start_level + 1, start_level + 1 + len(wins))), levels
        assert level(arena.raw, 1, 26) == start_level + len(wins)
        assert stock(arena.raw) == before - sum((o.cost for o in wins), Resources())
        if threads == 32:
            assert losses, "the stock paid for everything: the race never reached its limit"
        check_world(arena.raw)


# The cancel variants: the queue set up first, the position everyone cancels, and the
# winners expected (position 1 of two different slots: the second order moves up and is
# cancelled next; position 1 of two levels of one slot: both go in the first cancel).
CANCELS = (
    (("main_building", "woodcutter"), 1, 2),
    (("main_building", "woodcutter"), 2, 1),
    (("main_building", "main_building"), 1, 1),
)


@pytest.mark.parametrize("threads", [2, 32])
def test_cancel_building_race(arena_factory: Callable[..., Arena], threads: int) -> None:
    """Everyone cancels at once: each order is refunded exactly once."""
    arena = arena_factory()
    for round_ in range(3):
        queued, position, expected = CANCELS[round_ % len(CANCELS)]
        arena.new_world()
        world = arena.connect()
        base = set_stock(arena.raw, 1000)  # far below the storage, so no refund is capped
        orders = [world.villages.queue_building(1, name) for name in queued]
        outcomes = race(threads, lambda i: world.villages.cancel_building(1, position))
        wins, _ = split(outcomes, tr.NotFound)
        assert len(wins) == min(threads, expected), (round_, wins)
        assert len({o.id for o in wins}) == len(wins), wins
        with arena.raw.connect() as conn:
            left = set(conn.execute(sa.select(_q.c.id).where(_q.c.village_id == 1)).scalars())
        remaining = [o for o in orders if o.id in left]
        assert stock(arena.raw) == base - sum((o.cost for o in remaining), Resources())
        check_world(arena.raw)


# -- training and troops -------------------------------------------------------------------


@pytest.mark.parametrize("threads", [2, 32])
def test_train_race(arena_factory: Callable[..., Arena], threads: int) -> None:
    """Everyone trains at once: paid once each, lines one after another, nobody at home yet."""
    arena = arena_factory()
    for _ in range(rounds(threads)):
        arena.new_world()
        world = arena.connect()
        before = set_stock(arena.raw, 2000)  # iron for 4 orders of 3 legionnaires
        troops_before = census(arena.raw, 1)
        outcomes = race(threads, lambda i: world.military.train(1, {"legionnaire": 3}))
        wins, _ = split(outcomes, tr.InsufficientResources)
        assert len(wins) == min(threads, 4), wins
        assert stock(arena.raw) == before - sum((o.cost for o in wins), Resources())
        with arena.raw.connect() as conn:
            pending = conn.execute(sa.select(sa.func.sum(_tq.c.count - _tq.c.trained))
                                   .where(_tq.c.village_id == 1)).scalar()
        assert pending == 3 * len(wins)
        assert census(arena.raw, 1) == troops_before
        check_world(arena.raw)


# What each send asks for, the route, and how many such sends the troops allow.
SENDS: dict[str, tuple[Callable[[tr.World], Any], int]] = {
    "attack": (lambda w: w.military.attack(1, 2, {"legionnaire": 3}), 6),
    "raid": (lambda w: w.military.attack(1, 2, {"legionnaire": 3}, kind="raid"), 6),
    "siege": (lambda w: w.military.attack(1, 2, {"legionnaire": 2, "battering_ram": 1},
                                          kind="siege"), 4),
    "reinforce": (lambda w: w.military.reinforce(1, 4, {"legionnaire": 3}), 6),
    "scouts": (lambda w: w.intel.send_scouts(1, 2, 1), 5),
}
ARMY = {"legionnaire": 20, "equites_legati": 5, "battering_ram": 4}


@pytest.mark.parametrize("threads", [2, 32])
@pytest.mark.parametrize("send", sorted(SENDS))
def test_send_troops_race(arena_factory: Callable[..., Arena], threads: int, send: str) -> None:
    """Everyone sends troops at once: never more than stand at home, none lost or doubled."""
    arena = arena_factory()
    call, room = SENDS[send]
    for _ in range(2):
        arena.new_world()
        set_troops(arena.raw, 1, ARMY)
        world = arena.connect()
        before = stock(arena.raw)
        outcomes = race(threads, lambda i: call(world))
        wins, losses = split(outcomes, tr.RuleViolation)
        assert len(wins) == min(threads, room), (wins, losses)
        assert all("not enough troops" in str(e) for e in losses), losses
        assert census(arena.raw, 1) == Counter(ARMY)
        with arena.raw.connect() as conn:
            moving = conn.execute(sa.select(sa.func.count()).where(
                _m.c.from_village_id == 1, _m.c.state == "underway")).scalar()
        assert moving == len(wins)
        assert stock(arena.raw) == before
        check_world(arena.raw)


@pytest.mark.parametrize("threads", [2, 32])
def test_send_home_race(arena_factory: Callable[..., Arena], threads: int) -> None:
    """Everyone recalls the same reinforcements: one winner, one way home."""
    arena = arena_factory()
    for _ in range(rounds(threads)):
        arena.new_world()
        set_troops(arena.raw, 1, ARMY)
        world = arena.connect()
        sent = world.military.reinforce(1, 4, {"legionnaire": 7})
        with arena.raw.begin() as conn:
            conn.execute(sa.update(_m).where(_m.c.id == sent.id).values(state="stationed"))
        outcomes = race(threads, lambda i: world.military.send_home(1, sent.id))
        wins, losses = split(outcomes, tr.Conflict)
        assert len(wins) == 1, (wins, losses)
        assert len(losses) == threads - 1
        with arena.raw.connect() as conn:
            returns = list(conn.execute(sa.select(_m).where(_m.c.kind == "return")))
            state = conn.execute(sa.select(_m.c.state).where(_m.c.id == sent.id)).scalar()
        assert state == "done"
        assert [(r.id, r.troops) for r in returns] == [(wins[0].id, {"legionnaire": 7})]
        assert census(arena.raw, 1) == Counter(ARMY)
        check_world(arena.raw)


# -- the engine ----------------------------------------------------------------------------


ATTACKERS = {1: (2, 3), 4: (5, 6)}  # a roman village -> (the village it attacks, the one it reinforces)
BUILT = {"main_building": 26, "warehouse": 19}  # one instance each: an event names its slot


def test_two_engines_while_players_write(postgres_url: str) -> None:
    """Two engines process one world at once while players build, cancel, train and send
    (and their worlds catch up before each call):
    every build completes once, troops are trained and come home once, every movement and
    shipment arrives once."""
    clock = Clock(START)
    create_world(postgres_url, replace=True, players=6, seed=7, start="developed", now=START,
                 build_queue_limit=4)
    raw = sa.create_engine(postgres_url, poolclass=sa.pool.NullPool)
    seen: list[Event] = []
    seen_lock = threading.Lock()

    def listen(batch: list[Event]) -> None:
        with seen_lock:
            seen.extend(batch)

    databases = [Database(make_engine(postgres_url), clock=clock) for _ in range(2)]
    for database in databases:
        database.add_commit_listener(listen)
    engines = [Engine(database, batch=4) for database in databases]
    players = {p: tr.connect(postgres_url, player_id=p, clock=clock, prefer="sql", cache=False)
               for p in range(1, 7)}
    for world in players.values():  # each catches the world up too: a third processor
        world.database.add_commit_listener(listen)
    owner = players_of(raw)
    for village, (target, _) in ATTACKERS.items():
        set_troops(raw, village, ARMY)
        set_troops(raw, target, {"clubswinger": 3})  # few: attackers win, some come home
    census_before = {v: census(raw, v) for v in range(1, 7)}
    levels_before = {(v, name): level(raw, v, slot) for v in range(1, 7)
                     for name, slot in BUILT.items()}
    trained: Counter[tuple[int, str]] = Counter()
    sent_ids: list[int] = []
    shipment_ids: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def engine_loop(engine: Engine) -> None:
        try:
            while not stop.wait(0.005):
                engine.run_until(clock())
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    def player_turn(step: int) -> None:
        for player, world in players.items():
            village = player  # one village each, with the player's id
            try:
                if step % 3 == 0:
                    world.villages.queue_building(village, "main_building")
                    world.villages.queue_building(village, "warehouse")
                elif step % 3 == 1 and village % 2 == 0:
                    world.villages.cancel_building(village, 1)
                if village in ATTACKERS and step < 6:
                    world.military.train(village, {"legionnaire": 1})
                    trained[(village, "legionnaire")] += 1
                    target, friend = ATTACKERS[village]
                    kind = ("normal", "raid", "siege")[step % 3]
                    army = ({"legionnaire": 2, "battering_ram": 1} if kind == "siege"
                            else {"legionnaire": 3})
                    sent_ids.append(world.military.attack(village, target, army, kind=kind).id)
                    sent_ids.append(world.military.reinforce(village, friend, {"legionnaire": 1}).id)
                    sent_ids.append(world.intel.send_scouts(village, target, 1).id)
                if step < 4:
                    shipment_ids.append(world.trade.send_resources(
                        village, village % 6 + 1, {"wood": 50, "clay": 20}).id)
            except (tr.RuleViolation, tr.NotFound) as exc:
                expected = ("queue is full", "no build order", "not enough", "highest level")
                if not isinstance(exc, tr.InsufficientResources) and \
                        not any(text in str(exc) for text in expected):
                    raise

    threads = [threading.Thread(target=engine_loop, args=(e,), daemon=True) for e in engines]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 120
        for step in range(24):
            player_turn(step)
            clock.advance(900)
            assert time.monotonic() < deadline, "the run took too long"
            time.sleep(0.05)
        clock.advance(3 * 24 * 3600)  # everything under way arrives and comes home
        time.sleep(0.3)
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    try:
        assert not errors, errors
        # Both engines at once over what is left, for the last word.
        race(2, lambda i: engines[i].run_until(clock()))
        assert engines[0].overdue() == 0
        with raw.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(_q)).scalar() == 0
            movers = {int(r.id): (int(r.player_id), str(r.state)) for r in conn.execute(sa.select(_m))}
            ships = {int(r.id): str(r.state) for r in conn.execute(sa.select(schema.shipments))}
            reports = list(conn.execute(sa.select(schema.reports)))

        # Builds: each level completed once, and the level went up once per completion.
        completed = Counter((e.data["village_id"], e.data["building"], e.data["level"])
                            for e in seen if e.kind == ev.BUILD_COMPLETED)
        assert completed and max(completed.values()) == 1, completed.most_common(3)
        for (village, name), before in levels_before.items():
            ups = sum(1 for v, n, _ in completed if (v, n) == (village, name))
            assert level(raw, village, BUILT[name]) == before + ups, (village, name, before, ups)

        # Training: every unit trained once.
        got: Counter[tuple[int, str]] = Counter()
        for e in seen:
            if e.kind == ev.TROOPS_TRAINED:
                got[(e.data["village_id"], e.data["unit"])] += e.data["count"]
        assert got == trained and trained

        # Movements (returns too) and shipments: each arrives once.
        arrived = Counter(e.data["movement_id"] for e in seen if e.kind == ev.MOVEMENT_ARRIVED
                          and movers[e.data["movement_id"]][0] == e.player_id)
        assert set(sent_ids) <= set(arrived), set(sent_ids) - set(arrived)
        assert len(arrived) > len(sent_ids)  # returns came home as well
        assert max(arrived.values()) == 1, arrived.most_common(3)
        assert all(state in ("done", "stationed") for _, state in movers.values()), movers
        delivered = Counter(e.data["shipment_id"] for e in seen if e.kind == ev.RESOURCES_ARRIVED
                            and e.player_id == owner[e.data["to_village_id"]])
        assert set(delivered) == set(shipment_ids) and max(delivered.values()) == 1, delivered
        assert all(state == "done" for state in ships.values()), ships
        # one report per player and kind for each movement's arrival and each delivery
        per_arrival = Counter((r.payload.get("movement_id", r.payload.get("shipment_id")),
                               r.player_id, r.kind) for r in reports)
        assert max(per_arrival.values()) == 1, per_arrival.most_common(3)
        assert {r.payload["shipment_id"] for r in reports if r.kind == "trade"} == set(shipment_ids)

        # Troops: home + moving + stationed + dead == before + trained, village by village.
        dead: Counter[tuple[int, str]] = Counter()
        for r in reports:
            if r.kind in ("attack", "scout"):
                for unit, n in r.payload["attacker"]["lost"].items():
                    dead[(r.payload["attacker"]["village_id"], unit)] += n
        for movement_id in {r.payload["movement_id"] for r in reports if r.kind == "defense"}:
            first = next(r for r in reports if r.kind == "defense"
                         and r.payload["movement_id"] == movement_id)
            for group in first.payload["defenders"]:
                for unit, n in group.get("lost", {}).items():
                    dead[(group["village_id"], unit)] += n
        assert dead  # the battles were fought
        for village in range(1, 7):
            now = census(raw, village)
            units = set(now) | set(census_before[village]) | {u for v, u in trained if v == village}
            for unit in units:
                expected = census_before[village][unit] + trained[(village, unit)]
                assert now[unit] + dead[(village, unit)] == expected, (village, unit, now, dead)
        check_world(raw, queue_limit=4)
    finally:
        for world in players.values():
            world.close()
        for engine in engines:
            engine.close()
        for database in databases:
            database.dispose()
        raw.dispose()


def players_of(raw: sa.Engine) -> dict[int, int]:
    with raw.connect() as conn:
        return {int(v): int(p) for v, p in conn.execute(
            sa.select(schema.villages.c.id, schema.villages.c.player_id))}


# -- the queue closes up one row at a time -------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_queue_closes_up_under_unique_positions(database_url: str, backend: str) -> None:
    """Cancels and completions renumber the queue row by row into freed positions, so a
    unique (village, position) constraint checked per row (both backends check it that
    way) never fires; nor does one order per slot and target level."""
    create_world(database_url, replace=True, players=2, seed=7, start="developed", now=START,
                 build_queue_limit=4)
    raw = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    clock = Clock(START)
    if backend == "postgresql":  # rows in the order they lie on disk, not the index's order
        url = sa.make_url(database_url)
        options = f"{url.query.get('options', '')} -cenable_indexscan=off -cenable_bitmapscan=off"
        database_url = url.update_query_dict({"options": options.strip()}).render_as_string(
            hide_password=False)
    try:
        with raw.begin() as conn:
            conn.execute(sa.text("CREATE UNIQUE INDEX uq_test_queue_position "
                                 "ON build_queue (village_id, queue_position)"))
            conn.execute(sa.text("CREATE UNIQUE INDEX uq_test_queue_level "
                                 "ON build_queue (village_id, slot, target_level)"))
        with tr.connect(database_url, player_id=1, clock=clock, prefer="sql", cache=False) as world:
            def fill() -> None:
                for name in ("woodcutter", "cropland", "main_building", "clay_pit"):
                    world.villages.queue_building(1, name)

            def positions() -> list[tuple[int, str]]:
                return [(o.position, o.building) for o in world.villages.build_queue(1)]

            fill()
            assert world.villages.cancel_building(1, 2).building == "cropland"
            assert positions() == [(1, "woodcutter"), (2, "main_building"), (3, "clay_pit")]
            assert world.villages.cancel_building(1, 1).building == "woodcutter"
            assert positions() == [(1, "main_building"), (2, "clay_pit")]
            world.villages.queue_building(1, "main_building")
            world.villages.queue_building(1, "iron_mine")
            assert world.villages.cancel_building(1, 1).building == "main_building"  # both levels
            assert positions() == [(1, "clay_pit"), (2, "iron_mine")]
            check_world(raw, queue_limit=4)
            world.villages.cancel_building(1, 1)
            world.villages.cancel_building(1, 1)
            fill()
            # A row rewritten later (as a cancel's time shift does) lies after the later
            # positions on disk, so a one-statement "position - 1" would meet position 3
            # before position 2 had moved away.
            with raw.begin() as conn:
                conn.execute(sa.update(_q).where(_q.c.village_id == 1, _q.c.queue_position == 2)
                             .values(wood=_q.c.wood))
            with Engine(database_url, clock=clock, batch=1) as engine:
                done = 0
                for _ in range(4):  # each completion closes up the rest of the queue
                    clock.set(world.villages.build_queue(1)[0].completes_at)
                    done += engine.run_due()
                    check_world(raw, queue_limit=4)
                assert done == 4
            assert positions() == []
    finally:
        raw.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_moving_a_vanished_order_is_a_typed_conflict(database_url: str) -> None:
    """A renumbering that finds its order gone or moved (only if something bypassed the
    village lock) raises Conflict and the step is undone, not a silent no-op."""
    from travian_repo.sql.village_writes import move_order

    create_world(database_url, replace=True, players=2, seed=7, start="developed", now=START)
    with tr.connect(database_url, player_id=1, clock=Clock(START), prefer="sql",
                    cache=False) as world:
        order = world.villages.queue_building(1, "woodcutter")
        session = world.database.session()
        try:
            with pytest.raises(tr.Conflict, match="changed under a write"):
                session.write(lambda conn: move_order(conn, order.id, 2, queue_position=1))
            with pytest.raises(tr.Conflict):
                session.write(lambda conn: move_order(conn, order.id + 1000, 1, queue_position=2))
            session.rollback()
        finally:
            session.close()
        assert [(o.id, o.position) for o in world.villages.build_queue(1)] == [(order.id, 1)]

"""The engine clock on SQLite and PostgreSQL: builds, training, movements, battles, scouts,
shipments; conservation of troops and stock over a busy simulated day.

The world is the developed 6-player sandbox (``world`` fixture): player N owns village N;
players 1/4 are romans, 2/5 teutons, 3/6 gauls; every village has 20 of its first unit and
5 scouts at home, 4000 of each resource (warehouse and granary 5: 4000), cranny 3, no wall.
The clock stands still at START until a test moves it.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import pytest
import sqlalchemy as sa

import travian_repo as tr
from travian_repo.domain import events
from travian_repo.domain.errors import TravianError
from travian_repo.domain.values import Event, Resources
from travian_repo.rules import battle, economy, units
from travian_repo.sandbox import Clock, Engine
from travian_repo.sql import schema
from travian_repo.sql.derived import refresh
from travian_repo.sql.village_state import load_village

START = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def world(make_world: Any, database_url: str, clock: Clock) -> Iterator[tr.World]:
    """The developed world without catching up: these tests run the engine themselves."""
    make_world()
    with tr.connect(database_url, player_id=1, clock=clock, catch_up=False) as connected:
        yield connected


@pytest.fixture
def engine(world: tr.World, clock: Clock) -> Engine:
    return Engine(world.database, clock=clock)


@pytest.fixture
def published(world: tr.World) -> list[Event]:
    """Every domain event committed from here on."""
    seen: list[Event] = []
    world.database.add_commit_listener(seen.extend)
    return seen


# -- helpers -------------------------------------------------------------------------------


def rows(world: tr.World, statement: Any) -> list[Any]:
    with world.database.engine.connect() as conn:
        return list(conn.execute(statement))


def execute(world: tr.World, statement: Any) -> None:
    with world.database.engine.begin() as conn:
        conn.execute(statement)


def home(world: tr.World, village_id: int) -> dict[str, int]:
    t = schema.troops
    return {r.unit: r.count for r in rows(world, sa.select(t).where(t.c.village_id == village_id))
            if r.count}


def resources_row(world: tr.World, village_id: int) -> Any:
    r = schema.village_resources
    return rows(world, sa.select(r).where(r.c.village_id == village_id))[0]


def level(world: tr.World, village_id: int, slot: int) -> int:
    b = schema.village_buildings
    found = rows(world, sa.select(b.c.level).where(b.c.village_id == village_id, b.c.slot == slot))
    return int(found[0][0]) if found else 0


def population(world: tr.World, village_id: int) -> int:
    v = schema.villages
    return int(rows(world, sa.select(v.c.population).where(v.c.id == village_id))[0][0])


def set_stock(world: tr.World, village_id: int, amount: float, at: datetime = START) -> None:
    r = schema.village_resources
    execute(world, sa.update(r).where(r.c.village_id == village_id).values(
        wood=amount, clay=amount, iron=amount, wheat=amount, updated_at=at))


def reports(world: tr.World, player_id: int, kind: str | None = None) -> list[Any]:
    r = schema.reports
    q = sa.select(r).where(r.c.player_id == player_id).order_by(r.c.id)
    if kind is not None:
        q = q.where(r.c.kind == kind)
    return rows(world, q)


def movement(world: tr.World, movement_id: int) -> Any:
    m = schema.movements
    return rows(world, sa.select(m).where(m.c.id == movement_id))[0]


def returns_of(world: tr.World, village_id: int) -> list[Any]:
    m = schema.movements
    return rows(world, sa.select(m).where(m.c.kind == "return", m.c.to_village_id == village_id,
                                         m.c.state == "underway"))


def kinds(published: list[Event]) -> list[str]:
    return [e.kind for e in published]


# -- builds and training -------------------------------------------------------------------


def test_builds_complete_at_their_time(world: tr.World, clock: Clock, engine: Engine,
                                       published: list[Event]) -> None:
    before = resources_row(world, 1)
    pop_before = population(world, 1)
    with world.unit_of_work(player_id=1) as uow:
        field = uow.villages.queue_building(1, "woodcutter", slot=1)
        store = uow.villages.queue_building(1, "warehouse", slot=19)
    assert store.completes_at > field.completes_at

    assert engine.run_until(field.completes_at - timedelta(seconds=1)) == 0
    assert level(world, 1, 1) == field.target_level - 1
    clock.set(field.completes_at)
    assert engine.run_due() == 1
    assert level(world, 1, 1) == field.target_level
    after_field = resources_row(world, 1)
    assert after_field.wood_production > before.wood_production
    assert population(world, 1) > pop_before
    # The second order moved up to position 1.
    q = schema.build_queue
    assert [r.queue_position for r in rows(world, sa.select(q).where(q.c.village_id == 1))] == [1]

    assert engine.run_until(store.completes_at) == 1
    assert level(world, 1, 19) == store.target_level
    assert resources_row(world, 1).warehouse_capacity == economy.storage_capacity(
        "warehouse", [store.target_level])
    assert resources_row(world, 1).warehouse_capacity > before.warehouse_capacity
    assert rows(world, sa.select(q).where(q.c.village_id == 1)) == []
    done = [e for e in published if e.kind == events.BUILD_COMPLETED]
    assert [(e.player_id, e.data["building"], e.data["level"]) for e in done] == [
        (1, "woodcutter", field.target_level), (1, "warehouse", store.target_level)]
    assert engine.run_until(store.completes_at) == 0  # idempotent


def test_training_completes_unit_by_unit(world: tr.World, clock: Clock, engine: Engine,
                                         published: list[Event]) -> None:
    wheat_before = resources_row(world, 1).wheat_production
    with world.unit_of_work(player_id=1) as uow:
        order = uow.military.train(1, {"legionnaire": 3})
    each = (order.completes_at - order.started_at) / 3
    assert home(world, 1)["legionnaire"] == 20

    clock.set(order.started_at + each - timedelta(seconds=1))
    assert engine.run_due() == 0
    clock.set(order.started_at + each)
    assert engine.run_due() == 1
    assert home(world, 1)["legionnaire"] == 21
    assert resources_row(world, 1).wheat_production == wheat_before - 1  # upkeep 1 each
    clock.set(order.started_at + 2 * each + timedelta(seconds=1))
    assert engine.run_due() == 1
    assert home(world, 1)["legionnaire"] == 22
    clock.set(order.completes_at + timedelta(hours=1))
    assert engine.run_due() == 1
    assert home(world, 1)["legionnaire"] == 23
    assert resources_row(world, 1).wheat_production == wheat_before - 3
    assert rows(world, sa.select(schema.training_queue)) == []
    assert rows(world, sa.select(schema.training_orders)) == []
    trained = [e for e in published if e.kind == events.TROOPS_TRAINED]
    assert sum(e.data["count"] for e in trained) == 3
    assert engine.run_due() == 0


def test_a_long_line_in_one_run_counts_every_unit(world: tr.World, engine: Engine) -> None:
    with world.unit_of_work(player_id=1) as uow:
        order = uow.military.train(1, {"legionnaire": 10})
    assert engine.run_until(order.completes_at) == 10
    assert home(world, 1)["legionnaire"] == 30


# -- movements -----------------------------------------------------------------------------


def test_raid_fights_returns_with_bounty_and_reports_both(
    world: tr.World, clock: Clock, engine: Engine, published: list[Event]
) -> None:
    set_stock(world, 1, 1000)  # room for the bounty at home
    with world.unit_of_work(player_id=1) as uow:
        raid = uow.military.attack(1, 2, {"legionnaire": 20}, kind="raid")
    defender_stock = resources_row(world, 2)

    expected = battle.fight(battle.Army("romans", {"legionnaire": 20}),
                            [battle.Army("teutons", {"clubswinger": 20, "scout": 5})],
                            kind=battle.RAID)
    assert 0 < expected.losses.attacker < 1 and 0 < expected.losses.defender < 1

    assert engine.run_until(raid.arrives_at) == 1
    assert movement(world, raid.id).state == "done"
    assert home(world, 2) == {u: n for u, n in expected.defenders[0].survivors.items() if n}
    survivors = {u: n for u, n in expected.attacker.survivors.items() if n}
    [back] = returns_of(world, 1)
    assert back.troops == survivors
    assert back.arrives_at - back.departed_at == raid.arrives_at - raid.departed_at
    # Bounty: carry of the survivors, the teuton cranny 3 hiding its share (romans attack).
    hidden = economy.cranny_capacity([3], tribe="teutons")
    loot = battle.bounty(units.carry_capacity("romans", survivors),
                         Resources(4000, 4000, 4000, 4000), hidden).taken
    assert Resources(back.wood, back.clay, back.iron, back.wheat) == loot
    after = resources_row(world, 2)
    assert after.wood == pytest.approx(defender_stock.wood - loot.wood)

    [attack_report] = reports(world, 1, "attack")
    [defense_report] = reports(world, 2, "defense")
    for report in (attack_report, defense_report):
        assert report.payload["kind"] == "raid"
        assert report.payload["attacker"]["lost"] == {
            u: n for u, n in expected.attacker.lost.items() if n}
        assert report.payload["bounty"] == dict(wood=loot.wood, clay=loot.clay, iron=loot.iron,
                                                wheat=loot.wheat)
    assert defense_report.payload["defenders"][0]["lost"] == {
        u: n for u, n in expected.defenders[0].lost.items() if n}
    assert events.REPORT_CREATED in kinds(published)

    stock_home = resources_row(world, 1)
    clock.set(back.arrives_at)
    assert engine.run_due() == 1
    assert home(world, 1)["legionnaire"] == survivors["legionnaire"]
    hours = (back.arrives_at - stock_home.updated_at).total_seconds() / 3600
    settled = stock_home.wood + stock_home.wood_production * hours
    assert resources_row(world, 1).wood == pytest.approx(min(4000, settled + loot.wood))
    assert movement(world, back.id).state == "done"
    assert engine.run_due() == 0


def test_troops_home_within_a_run_arrive_in_the_batch_that_sent_them(
    world: tr.World, engine: Engine, published: list[Event]
) -> None:
    """A return due before the run's end is processed by the transaction of the battle that
    sent it: its row is written arrived, and its event names the id the row got."""
    set_stock(world, 1, 1000)
    with world.unit_of_work(player_id=1) as uow:
        raid = uow.military.attack(1, 2, {"legionnaire": 20}, kind="raid")
    commits: list[list[str]] = []
    world.database.add_commit_listener(lambda evs: commits.append(kinds(evs)))
    assert engine.run_until(raid.arrives_at + 2 * (raid.arrives_at - raid.departed_at)) == 2
    assert len(commits) == 1
    m = schema.movements
    [back] = rows(world, sa.select(m).where(m.c.kind == "return"))
    assert back.state == "done" and back.to_village_id == 1
    assert home(world, 1)["legionnaire"] == back.troops["legionnaire"]
    arrived = [e.data["movement_id"] for e in published if e.kind == events.MOVEMENT_ARRIVED]
    assert arrived == [raid.id, back.id]
    assert engine.run_until(raid.arrives_at + 3 * (raid.arrives_at - raid.departed_at)) == 0


def test_attack_total_loss_and_wall(world: tr.World, engine: Engine) -> None:
    """5 legionnaires against 20 clubswingers and an earth wall: all die, no return."""
    execute(world, sa.insert(schema.village_buildings).values(
        village_id=2, slot=40, building_name="earth_wall", level=5))
    with world.unit_of_work(player_id=1) as uow:
        sent = uow.military.attack(1, 2, {"legionnaire": 5})
    assert engine.run_until(sent.arrives_at) == 1
    assert returns_of(world, 1) == []
    [report] = reports(world, 1, "attack")
    assert report.payload["won"] is False
    assert report.payload["attacker"]["lost"] == {"legionnaire": 5}
    assert report.payload["defenders"] == []  # nobody came back to tell
    assert report.payload["wall"] == {"building": "earth_wall", "before": 5, "after": 5}


def test_siege_rams_lower_the_wall(world: tr.World, engine: Engine) -> None:
    execute(world, sa.insert(schema.village_buildings).values(
        village_id=2, slot=40, building_name="earth_wall", level=3))
    execute(world, sa.insert(schema.troops).values(village_id=1, unit="battering_ram", count=10))
    with world.unit_of_work(player_id=1) as uow:
        sent = uow.military.attack(1, 2, {"legionnaire": 20, "battering_ram": 10}, kind="siege")
    assert engine.run_until(sent.arrives_at) == 1
    [report] = reports(world, 1, "attack")
    assert report.payload["wall"]["before"] == 3
    assert report.payload["wall"]["after"] < 3
    assert level(world, 2, 40) == report.payload["wall"]["after"]


def test_reinforcement_stations_and_defends(world: tr.World, engine: Engine) -> None:
    with world.unit_of_work(player_id=1) as uow:
        help_ = uow.military.reinforce(1, 3, {"legionnaire": 10})
    assert engine.run_until(help_.arrives_at) == 1
    assert movement(world, help_.id).state == "stationed"
    assert home(world, 1)["legionnaire"] == 10
    # Player 2 attacks village 3: the stationed legionnaires fight and may die.
    with world.unit_of_work(player_id=2) as uow:
        sent = uow.military.attack(2, 3, {"clubswinger": 20})
    expected = battle.fight(
        battle.Army("teutons", {"clubswinger": 20}),
        [battle.Army("gauls", {"phalanx": 20, "pathfinder": 5}),
         battle.Army("romans", {"legionnaire": 10})],
    )
    assert engine.run_until(sent.arrives_at) == 1
    stationed = movement(world, help_.id)
    alive = {u: n for u, n in expected.defenders[1].survivors.items() if n}
    assert (stationed.troops, stationed.state) == ((alive, "stationed") if alive else
                                                  (stationed.troops, "done"))
    # Player 1 gets a defense report for its troops.
    [mine] = reports(world, 1, "defense")
    assert mine.payload["defenders"][1]["player_id"] == 1


def test_scouts_report_or_die(world: tr.World, engine: Engine) -> None:
    with world.unit_of_work(player_id=1) as uow:
        seen = uow.intel.send_scouts(1, 3, 5)   # 5x35=175 against 5x20=100: 3 come back
    with world.unit_of_work(player_id=4) as uow:
        lost = uow.intel.send_scouts(4, 2, 2)   # 2x35=70 against 100: all die
    assert engine.run_until(max(seen.arrives_at, lost.arrives_at)) == 2
    [ok] = reports(world, 1, "scout")
    assert ok.payload["success"] is True
    assert ok.payload["attacker"]["survivors"] == {"equites_legati": 3}
    assert ok.payload["troops"] == {"phalanx": 20, "pathfinder": 5}
    assert ok.payload["resources"]["wood"] >= 4000 - 1
    [fail] = reports(world, 4, "scout")
    assert fail.payload["success"] is False and "resources" not in fail.payload
    assert fail.payload["attacker"]["lost"] == {"equites_legati": 2}
    assert len(reports(world, 2, "scouted")) == 1
    assert [r.troops for r in returns_of(world, 1)] == [{"equites_legati": 3}]
    assert returns_of(world, 4) == []
    with world.unit_of_work(player_id=1) as uow:
        assert [r.id for r in uow.intel.scout_reports(1)] == [ok.id]


def test_shipments_deliver_and_merchants_return(world: tr.World, clock: Clock, engine: Engine,
                                                published: list[Event]) -> None:
    set_stock(world, 4, 1000)
    with world.unit_of_work(player_id=1) as uow:
        shipment = uow.trade.send_resources(1, 4, Resources(wood=500, clay=100))
    s = schema.shipments
    row = rows(world, sa.select(s).where(s.c.id == shipment.id))[0]
    assert engine.run_until(shipment.arrives_at) == 1
    after = resources_row(world, 4)
    grown = after.wood_production * (shipment.arrives_at - START).total_seconds() / 3600
    assert after.wood == pytest.approx(1000 + grown + 500)
    assert after.clay == pytest.approx(1000 + grown + 100)  # same field levels for clay
    assert rows(world, sa.select(s.c.state).where(s.c.id == shipment.id))[0][0] == "returning"
    arrived = [e for e in published if e.kind == events.RESOURCES_ARRIVED]
    assert {e.player_id for e in arrived} == {1, 4}
    assert engine.run_until(row.returns_at) == 1
    assert rows(world, sa.select(s.c.state).where(s.c.id == shipment.id))[0][0] == "done"


def test_a_shipment_delivered_and_home_in_one_batch_is_written_once(
    world: tr.World, engine: Engine
) -> None:
    """Merchants home in the batch that delivered: the shipment goes from underway to done
    by one statement, and both events count."""
    with world.unit_of_work(player_id=1) as uow:
        shipment = uow.trade.send_resources(1, 4, Resources(wood=500))
    s = schema.shipments
    returns_at = rows(world, sa.select(s.c.returns_at).where(s.c.id == shipment.id))[0][0]
    written: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("UPDATE shipments"):
            written.append(statement)

    sa.event.listen(world.database.engine, "before_cursor_execute", seen)
    try:
        assert engine.run_until(returns_at) == 2
    finally:
        sa.event.remove(world.database.engine, "before_cursor_execute", seen)
    assert len(written) == 1
    assert rows(world, sa.select(s.c.state).where(s.c.id == shipment.id))[0][0] == "done"


def test_storage_caps_a_delivery(world: tr.World, engine: Engine) -> None:
    with world.unit_of_work(player_id=1) as uow:
        shipment = uow.trade.send_resources(1, 4, Resources(wood=500))
    assert engine.run_until(shipment.arrives_at) == 1
    assert resources_row(world, 4).wood == 4000  # full already


# -- a busy day ----------------------------------------------------------------------------


def total_troops(world: tr.World) -> dict[int, int]:
    """Troops per player: at home, under way, stationed (everything not done)."""
    v, t, m = schema.villages, schema.troops, schema.movements
    owner = {r.id: r.player_id for r in rows(world, sa.select(v.c.id, v.c.player_id))}
    total = {p: 0 for p in set(owner.values())}
    for r in rows(world, sa.select(t)):
        total[owner[r.village_id]] += r.count
    for r in rows(world, sa.select(m).where(m.c.state != "done")):
        total[r.player_id] += sum(r.troops.values())
    return total


def random_actions(world: tr.World, rng: random.Random) -> Iterator[str]:
    for player in range(1, 7):
        tribe = units.TRIBES[(player - 1) % 3]
        first = units.units_of(tribe)[0].name
        scout = units.scout_unit(tribe).name
        target = rng.choice([p for p in range(1, 7) if p != player])
        choice = rng.choice(["train", "raid", "attack", "reinforce", "scout", "ship", "build",
                             "nothing"])
        try:
            with world.unit_of_work(player_id=player) as uow:
                if choice == "train":
                    uow.military.train(player, {first: rng.randint(1, 4)})
                elif choice in ("raid", "attack"):
                    n = home(world, player).get(first, 0)
                    if n:
                        uow.military.attack(player, target, {first: rng.randint(1, n)},
                                            kind="raid" if choice == "raid" else "normal")
                elif choice == "reinforce":
                    n = home(world, player).get(first, 0)
                    if n:
                        uow.military.reinforce(player, target, {first: rng.randint(1, min(n, 3))})
                elif choice == "scout":
                    n = home(world, player).get(scout, 0)
                    if n:
                        uow.intel.send_scouts(player, target, rng.randint(1, n))
                elif choice == "ship":
                    uow.trade.send_resources(player, target, Resources(wood=rng.randint(1, 400)))
                elif choice == "build":
                    uow.villages.queue_building(player, rng.choice(["woodcutter", "cropland",
                                                                    "warehouse", "cranny"]))
        except TravianError:
            continue
        yield choice


def check_conservation(world: tr.World, initial: dict[int, int], published: list[Event]
                       ) -> dict[int, int]:
    """Troops per player now == initial + trained (events) - lost (reports); the losses."""
    trained: dict[int, int] = {}
    for e in published:
        if e.kind == events.TROOPS_TRAINED:
            trained[e.player_id] = trained.get(e.player_id, 0) + e.data["count"]
    lost: dict[int, int] = {}
    for r in rows(world, sa.select(schema.reports)):
        p = r.payload
        if r.kind in ("attack", "scout"):
            lost[r.player_id] = lost.get(r.player_id, 0) + sum(p["attacker"]["lost"].values())
        elif r.kind == "defense":
            for group in p["defenders"]:
                if group["player_id"] == r.player_id:
                    lost[r.player_id] = lost.get(r.player_id, 0) + sum(group["lost"].values())
    final = total_troops(world)
    for player in initial:
        assert final[player] == initial[player] + trained.get(player, 0) - lost.get(player, 0), player
    return lost


@pytest.mark.slow  # a simulated busy day
def test_busy_day_conserves_troops_and_stock(world: tr.World, clock: Clock, engine: Engine,
                                             published: list[Event]) -> None:
    rng = random.Random(5)
    initial = total_troops(world)
    processed = 0
    for _ in range(48):  # a day in half hours
        list(random_actions(world, rng))
        clock.advance(1800)
        processed += engine.run_due()
    clock.advance(3 * 86400)  # let everyone come home
    processed += engine.run_due()
    assert processed > 50
    assert engine.overdue() == 0
    assert engine.run_due() == 0

    lost = check_conservation(world, initial, published)
    assert sum(lost.values()) > 0

    m = schema.movements
    assert rows(world, sa.select(m).where(m.c.state == "underway")) == []
    r = schema.village_resources
    for row in rows(world, sa.select(r)):
        assert min(row.wood, row.clay, row.iron, row.wheat) >= 0
        assert max(row.wood, row.clay, row.iron) <= row.warehouse_capacity + 1e-6
        assert row.wheat <= row.granary_capacity + 1e-6
    assert rows(world, sa.select(schema.build_queue)) == []
    assert rows(world, sa.select(schema.training_queue)) == []

    # The engine's upkeep bookkeeping equals a full recomputation from buildings and troops.
    stored = {row.village_id: row.wheat_production for row in rows(world, sa.select(r))}
    with world.database.engine.begin() as conn:
        for vid in stored:
            refresh(conn, load_village(conn, vid, clock()))
    assert {row.village_id: row.wheat_production for row in rows(world, sa.select(r))} == stored


@pytest.mark.slow  # the engine thread in real time
def test_engine_thread_alongside_players(world: tr.World, clock: Clock,
                                         published: list[Event]) -> None:
    """The engine runs in its own thread while players act (row locks on PostgreSQL)."""
    from travian_repo.sandbox import EngineThread

    rng = random.Random(11)
    initial = total_troops(world)
    with EngineThread(world.database, clock=clock, interval=0.01) as thread:
        for _ in range(30):
            list(random_actions(world, rng))
            clock.advance(1800)
    clock.advance(3 * 86400)
    Engine(world.database, clock=clock).run_due()
    assert thread.processed > 0
    assert Engine(world.database, clock=clock).overdue() == 0
    check_conservation(world, initial, published)


def test_a_batch_and_the_read_of_what_is_due_run_with_the_collector_paused(
        world: tr.World, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch's many short-lived objects are freed by reference counting when it ends; the
    cyclic collector would only scan them (and the whole heap) meanwhile."""
    import gc

    from travian_repo.sandbox.engine import runner

    seen: list[tuple[str, bool]] = []
    collect, process = runner.collect, Engine._process_batch

    def collect_seen(*args: Any, **kwargs: Any) -> Any:
        seen.append(("collect", gc.isenabled()))
        return collect(*args, **kwargs)

    def process_seen(self: Engine, *args: Any, **kwargs: Any) -> Any:
        seen.append(("batch", gc.isenabled()))
        return process(self, *args, **kwargs)

    monkeypatch.setattr(runner, "collect", collect_seen)
    monkeypatch.setattr(Engine, "_process_batch", process_seen)
    with world.unit_of_work(player_id=1) as uow:
        order = uow.villages.queue_building(1, "woodcutter", slot=1)
    assert gc.isenabled()
    assert engine.run_until(order.completes_at) == 1
    assert ("batch", False) in seen and ("collect", False) in seen
    assert all(not enabled for _, enabled in seen), seen
    assert gc.isenabled()

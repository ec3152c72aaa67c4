"""The engine at scale: one long run plays exactly the game that many short ones play, and
several engine processes sharing one PostgreSQL world process every event once, in time
order per village."""

from __future__ import annotations

import multiprocessing
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa

import travian_repo as tr
from travian_repo.domain.errors import TravianError
from travian_repo.domain.values import Resources
from travian_repo.rules import units
from travian_repo.sandbox import Clock, Engine, create_world
from travian_repo.sql import schema

START = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
TABLES = ("players", "villages", "village_resources", "village_buildings", "build_queue",
          "troops", "training_queue", "movements", "shipments", "reports")


def busy_world(url: str, players: int) -> None:
    """Every player builds, trains 5 units, raids the next player, scouts the one after,
    reinforces the one before and ships wood to the next: battles, returns and stationed
    defenders meet in every village."""
    create_world(url, replace=True, players=players, seed=11, start="developed", now=START)
    with tr.connect(url, player_id=1, clock=Clock(START), prefer="sql", cache=False) as world:
        for p in range(1, players + 1):
            first = units.units_of(units.TRIBES[(p - 1) % 3])[0].name
            nxt, after, before = p % players + 1, (p + 1) % players + 1, (p - 2) % players + 1
            with world.unit_of_work(player_id=p) as uow:
                for call in (
                    lambda: uow.villages.queue_building(p, "woodcutter"),
                    lambda: uow.military.train(p, {first: 5}),
                    lambda: uow.military.reinforce(p, before, {first: 3}),
                    lambda: uow.military.attack(p, nxt, {first: 8}, kind="raid"),
                    lambda: uow.intel.send_scouts(p, after, 2),
                    lambda: uow.trade.send_resources(p, nxt, Resources(wood=100)),
                ):
                    try:
                        call()
                    except TravianError:
                        pass


def dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            # Ids of rows made during the run follow the order of the run's transactions.
            return {t: sorted(tuple(repr(v) for k, v in r._mapping.items() if k != "id")
                              for r in conn.execute(sa.select(schema.metadata.tables[t])))
                    for t in TABLES}
    finally:
        engine.dispose()


@pytest.mark.slow  # a simulated day, twice
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_one_long_run_plays_the_game_of_many_short_ones(database_url: str, tmp_path: Any
                                                        ) -> None:
    """Troops coming home in the middle of a run are home for what happens after in their
    village: a day in one ``run_until`` leaves every row as a day in 10-minute steps does,
    stock and reports included."""
    busy_world(database_url, 12)
    stepped = f"sqlite:///{tmp_path / 'stepped.db'}"
    busy_world(stepped, 12)
    with Engine(database_url) as engine:
        once = engine.run_until(START + timedelta(days=1))
    with Engine(stepped) as engine:
        steps = sum(engine.run_until(START + timedelta(minutes=10 * k)) for k in range(1, 145))
    assert once == steps > 100
    assert dump(database_url) == dump(stepped)


def _work(url: str, index: int, workers: int, when: datetime, out: Any) -> None:
    with Engine(url, share=(index, workers), batch=16) as engine:
        out.put((index, engine.run_until(when)))


AUDIT = """
CREATE TABLE engine_audit (village_id bigint, first_at timestamptz, last_at timestamptz,
                           what text, tx bigint, ts timestamptz);
CREATE FUNCTION audit_build() RETURNS trigger AS $$ BEGIN
  INSERT INTO engine_audit VALUES (OLD.village_id, OLD.completes_at, OLD.completes_at,
    'build ' || OLD.id, txid_current(), clock_timestamp()); RETURN NULL; END $$ LANGUAGE plpgsql;
CREATE TRIGGER audit_build AFTER DELETE ON build_queue FOR EACH ROW EXECUTE FUNCTION audit_build();
CREATE FUNCTION audit_train() RETURNS trigger AS $$ BEGIN
  INSERT INTO engine_audit VALUES (OLD.village_id,
    OLD.started_at + make_interval(secs => OLD.seconds_each * (OLD.trained + 1)),
    OLD.started_at + make_interval(secs => OLD.seconds_each *
      (CASE WHEN TG_OP = 'DELETE' THEN OLD.count ELSE NEW.trained END)),
    'train ' || OLD.id || ' ' || ((CASE WHEN TG_OP = 'DELETE' THEN OLD.count
      ELSE NEW.trained END) - OLD.trained), txid_current(), clock_timestamp());
  RETURN NULL; END $$ LANGUAGE plpgsql;
CREATE TRIGGER audit_train AFTER UPDATE OR DELETE ON training_queue FOR EACH ROW
  EXECUTE FUNCTION audit_train();
CREATE FUNCTION audit_move() RETURNS trigger AS $$ BEGIN
  -- Troops coming home whose arrival the batch that sent them processed: written arrived.
  IF TG_OP = 'INSERT' AND NEW.state = 'underway' THEN RETURN NULL; END IF;
  IF TG_OP = 'UPDATE' THEN
    IF OLD.state <> 'underway' OR NEW.state = 'underway' THEN RETURN NULL; END IF;
  END IF;
  INSERT INTO engine_audit VALUES
    (NEW.from_village_id, NEW.arrives_at, NEW.arrives_at, 'move ' || NEW.id, txid_current(),
     clock_timestamp()),
    (NEW.to_village_id, NEW.arrives_at, NEW.arrives_at, 'move ' || NEW.id, txid_current(),
     clock_timestamp());
  RETURN NULL; END $$ LANGUAGE plpgsql;
CREATE TRIGGER audit_move AFTER INSERT OR UPDATE ON movements FOR EACH ROW
  EXECUTE FUNCTION audit_move();
CREATE FUNCTION audit_ship() RETURNS trigger AS $$ BEGIN
  IF OLD.state = 'underway' AND NEW.state <> 'underway' THEN
    INSERT INTO engine_audit VALUES (OLD.to_village_id, OLD.arrives_at, OLD.arrives_at,
      'ship ' || OLD.id, txid_current(), clock_timestamp());
  END IF; RETURN NULL; END $$ LANGUAGE plpgsql;
CREATE TRIGGER audit_ship AFTER UPDATE ON shipments FOR EACH ROW EXECUTE FUNCTION audit_ship();
"""


@pytest.mark.slow  # four Python processes of their own over a busy world
def test_four_engine_processes_share_a_busy_world(postgres_url: str) -> None:
    """Four engine processes over one busy PostgreSQL world: every event is processed once
    (none twice, none left), the processes share the work, and in every village the
    transactions that changed it came in the order of its events' times."""
    busy_world(postgres_url, 40)
    raw = sa.create_engine(postgres_url, poolclass=sa.pool.NullPool)
    try:
        with raw.begin() as conn:
            conn.execute(sa.text("DROP TABLE IF EXISTS engine_audit CASCADE"))
            for name in ("build", "train", "move", "ship"):
                conn.execute(sa.text(f"DROP FUNCTION IF EXISTS audit_{name}() CASCADE"))
            conn.execute(sa.text(AUDIT))
        when = START + timedelta(days=2)
        spawn = multiprocessing.get_context("spawn")
        out = spawn.Queue()
        procs = [spawn.Process(target=_work, args=(postgres_url, i, 4, when, out))
                 for i in range(4)]
        for p in procs:
            p.start()
        counts = dict(out.get(timeout=300) for _ in procs)
        for p in procs:
            p.join(60)
            assert p.exitcode == 0
        with Engine(postgres_url) as engine:
            assert engine.overdue(when) == 0  # nothing skipped
        with raw.connect() as conn:
            audit = list(conn.execute(sa.text(
                "SELECT village_id, first_at, last_at, what, tx, ts FROM engine_audit")))
            states = Counter(conn.execute(sa.text(
                "SELECT state FROM movements WHERE state = 'underway'")).scalars())
            merchants = conn.execute(sa.text(
                "SELECT count(*) FROM shipments WHERE state = 'done'")).scalar_one()
            shipped = conn.execute(sa.text("SELECT count(*) FROM shipments")).scalar_one()
            lines = conn.execute(sa.text("SELECT count(*) FROM training_queue")).scalar_one()
        assert not states and lines == 0 and merchants == shipped > 0
        # Once: every build, movement and shipment audited once (twice for a movement, one
        # row per village), every unit trained once; the processes' counts add up to it.
        whats = Counter(a.what.rsplit(" ", 1)[0] if a.what.startswith("train") else a.what
                        for a in audit)
        assert all(n == (2 if w.startswith("move") else 1)
                   for w, n in whats.items() if not w.startswith("train")), whats
        trained = sum(int(a.what.rsplit(" ", 1)[1]) for a in audit if a.what.startswith("train"))
        arrivals = sum(1 for w in whats if not w.startswith("train"))
        assert sum(counts.values()) == trained + arrivals + merchants
        assert trained == 40 * 5 and sum(1 for n in counts.values() if n) >= 2, counts
        # Time order per village: a transaction's events in a village all come at or before
        # those of every later transaction in it.
        by_village: dict[int, dict[int, list[Any]]] = defaultdict(lambda: defaultdict(list))
        for a in audit:
            by_village[a.village_id][a.tx].append(a)
        for village, txs in by_village.items():
            ordered = sorted(txs.values(), key=lambda rows: min(r.ts for r in rows))
            for before, after in zip(ordered, ordered[1:]):
                assert max(r.last_at for r in before) <= min(r.first_at for r in after), (
                    village, before, after)
    finally:
        raw.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_batch_write_that_misses_its_row_is_a_conflict_and_undone(database_url: str) -> None:
    """Every set-wise write counts the rows it changed: a movement no longer in the state
    the batch read it in (only if something bypassed the village locks) fails the whole
    batch with Conflict, and nothing of it is written."""
    from travian_repo.sandbox.engine.flush import flush
    from travian_repo.sandbox.engine.held import Held

    busy_world(database_url, 3)
    raw = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    m, r = schema.movements, schema.village_resources
    try:
        with raw.begin() as conn:
            moving = [int(i) for i in conn.execute(
                sa.select(m.c.id).where(m.c.state == "underway").order_by(m.c.id).limit(2)
            ).scalars()]
            conn.execute(sa.update(m).where(m.c.id == moving[1]).values(state="done"))
            before = list(conn.execute(sa.select(r).order_by(r.c.village_id)))
        with raw.connect() as conn:
            tx = conn.begin()
            held = Held.load(conn, [1, 2, 3], 1)
            state = held.settle(1, START + timedelta(hours=1))
            held.store(state, (0.0, 0.0, 0.0, 0.0))
            for mid in moving:
                held.move(mid, "underway", state="done")
            with pytest.raises(tr.Conflict, match="1 of 2 rows"):
                flush(conn, held, START + timedelta(days=1), lambda *a, **k: None)
            tx.rollback()
        with raw.connect() as conn:
            assert list(conn.execute(sa.select(r).order_by(r.c.village_id))) == before
            assert conn.execute(sa.select(m.c.state).where(m.c.id == moving[0])
                                ).scalar_one() == "underway"
    finally:
        raw.dispose()

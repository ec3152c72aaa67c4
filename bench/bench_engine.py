#!/usr/bin/env python
"""The engine clock's throughput: due events processed per second.

    python bench/bench_engine.py [--database-url URL] [--players 500] [--workers N]
                                 [--profile]

Builds a developed world of ``--players`` players (one village each) in its own database
(PostgreSQL ``travian_bench`` by default, created when missing, or a ``sqlite:///`` file; the
world there is replaced), then, through the library as each player, queues for every
village: one build, a training line of 5 units, a raid on the next player, 2 scouts to the
player after, and a shipment of 100 wood to the next player. The world clock stands still
meanwhile; then ``run_until(start + 30 days)`` is timed, by one engine or by ``--workers``
engine processes sharing the world: every build, every unit, every arrival (battles with
reports, scouting), every return home, every delivery and every merchant's return.

Beside events/s it prints the SQL statements per event and the floor: the same row changes
(the tables' difference before and after the run) applied again by hand-written batched SQL
on the world as it was, timed in the same run. ``--profile`` prints cProfile's top
functions of a one-worker run. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import cProfile
import multiprocessing
import pstats
import sys
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

import travian_repo as tr  # noqa: E402
from common import DEFAULT_URL, ensure_database  # noqa: E402
from floor import Floor  # noqa: E402
from travian_repo.domain.errors import TravianError  # noqa: E402
from travian_repo.domain.values import Event, Resources  # noqa: E402
from travian_repo.rules import units  # noqa: E402
from travian_repo.sandbox import Clock, Engine, create_world  # noqa: E402

START = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
SEED = 20240602


def queue_everything(world: tr.World, players: int) -> Counter[str]:
    made: Counter[str] = Counter()
    for p in range(1, players + 1):
        tribe = units.TRIBES[(p - 1) % 3]
        first = units.units_of(tribe)[0].name
        nxt, after = p % players + 1, (p + 1) % players + 1
        with world.unit_of_work(player_id=p) as uow:
            for name, call in (
                ("build", lambda: uow.villages.queue_building(p, "woodcutter")),
                ("train", lambda: uow.military.train(p, {first: 5})),
                ("raid", lambda: uow.military.attack(p, nxt, {first: 10}, kind="raid")),
                ("scout", lambda: uow.intel.send_scouts(p, after, 2)),
                ("ship", lambda: uow.trade.send_resources(p, nxt, Resources(wood=100))),
            ):
                try:
                    call()
                    made[name] += 1
                except TravianError as exc:
                    made[f"refused {name}: {type(exc).__name__}"] += 1
    return made


class Statements:
    """Counts the SQL statements an engine sends (executemany counted once)."""

    def __init__(self, engine: sqlalchemy.Engine) -> None:
        self.count = 0
        self._lock = threading.Lock()
        sqlalchemy.event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, *args: object) -> None:
        with self._lock:
            self.count += 1


def run_engines(database: tr.sql.Database, clock: Clock, until: datetime, workers: int,
                profiler: cProfile.Profile | None, batch: int) -> tuple[int, int, float]:
    """One engine in this thread, or ``workers`` engine processes sharing the world (each
    with its share); the events processed, the statements sent and the seconds taken."""
    if workers == 1:  # in this thread (what --profile sees)
        statements = Statements(database.engine)
        engine = Engine(database, clock=clock, batch=batch)
        t0, cpu = time.perf_counter(), time.process_time()
        if profiler is not None:
            profiler.enable()
        done = engine.run_until(until)
        if profiler is not None:
            profiler.disable()
        elapsed = time.perf_counter() - t0
        print(f"worker's CPU: {time.process_time() - cpu:.2f} s")
        return done, statements.count, elapsed
    url = database.engine.url.render_as_string(hide_password=False)
    spawn = multiprocessing.get_context("spawn")
    out = spawn.Queue()
    ready, go = spawn.Barrier(workers + 1), spawn.Event()
    procs = [spawn.Process(target=_worker, args=(url, i, workers, until, out, ready, go, batch))
             for i in range(workers)]
    for p in procs:
        p.start()
    ready.wait()  # every worker started and connected: the timing starts here
    t0 = time.perf_counter()
    go.set()
    results = [out.get() for _ in procs]
    elapsed = time.perf_counter() - t0
    for p in procs:
        p.join()
    if any(isinstance(r, str) for r in results):
        raise RuntimeError(next(r for r in results if isinstance(r, str)))
    cpu = [r[2] for r in results]
    print(f"workers' CPU: {sum(cpu):.2f} s in all, {max(cpu):.2f} s the busiest; "
          f"events by worker: {', '.join(str(r[0]) for r in results)}")
    return sum(r[0] for r in results), sum(r[1] for r in results), elapsed


def _worker(url: str, index: int, workers: int, until: datetime, out: Any, ready: Any,
            go: Any, batch: int) -> None:
    try:
        with Engine(url, share=(index, workers), batch=batch) as engine:
            engine.overdue(until)  # connected
            ready.wait()
            go.wait()
            statements = Statements(engine.database.engine)
            cpu = time.process_time()
            done = engine.run_until(until)
            out.put((done, statements.count, time.process_time() - cpu))
    except BaseException as exc:  # noqa: BLE001 - reported by the parent
        out.put(f"worker {index}: {type(exc).__name__}: {exc}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--players", type=int, default=500)
    parser.add_argument("--workers", type=int, default=1,
                        help="engine processes sharing the world (PostgreSQL)")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile the run (one worker): the top functions")
    parser.add_argument("--batch", type=int, default=512,
                        help="events a transaction starts from (Engine's batch, default 512)")
    parser.add_argument("--no-floor", action="store_true", help="skip the floor")
    args = parser.parse_args()

    url = args.database_url
    if make_url(url).get_backend_name() == "postgresql":
        ensure_database(url, who="bench_engine.py")
    t0 = time.perf_counter()
    create_world(url, players=args.players, seed=SEED, start="developed", replace=True,
                 now=START)
    print(f"world: {args.players} players, developed, built in {time.perf_counter() - t0:.1f} s")

    clock = Clock(START)
    with tr.connect(url, player_id=1, clock=clock, prefer="sql") as world:
        t0 = time.perf_counter()
        made = queue_everything(world, args.players)
        print(f"queued through the library in {time.perf_counter() - t0:.1f} s: "
              + ", ".join(f"{k} {v}" for k, v in sorted(made.items())))

        database = world.database
        floor = None if args.no_floor else Floor(database.engine)
        seen: Counter[str] = Counter()

        def count(events: list[Event]) -> None:
            seen.update(e.kind for e in events)

        database.add_commit_listener(count)
        until = START + timedelta(days=30)
        profiler = cProfile.Profile() if args.profile else None
        processed, sent, elapsed = run_engines(database, clock, until, args.workers, profiler,
                                               args.batch)
        print(f"run_until(start + 30 days), {args.workers} worker(s): {processed} events in "
              f"{elapsed:.2f} s = {processed / elapsed:.0f} events/s "
              f"({1000 * elapsed / max(processed, 1):.3f} ms each), "
              f"{sent / max(processed, 1):.2f} statements/event ({sent} statements)")
        if args.workers == 1:  # the workers' processes publish in their own
            print("domain events published: "
                  + ", ".join(f"{k} {v}" for k, v in sorted(seen.items())))
        engine = Engine(database, clock=clock, batch=args.batch)
        t0 = time.perf_counter()
        again = engine.run_until(until)
        print(f"second run_until (nothing due): {again} events in "
              f"{1000 * (time.perf_counter() - t0):.1f} ms; overdue left: {engine.overdue(until)}")
        if floor is not None:
            floor_s, floor_statements, rows = floor.measure()
            print(f"floor (the same {rows} row changes by batched SQL): {floor_s:.3f} s, "
                  f"{floor_statements} statements = {processed / floor_s:.0f} events/s; "
                  f"engine / floor = {elapsed / floor_s:.2f}x")
        if profiler is not None:
            print("\nprofile, top functions by own time:")
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
            print("profile, top functions by cumulative time:")
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(35)


if __name__ == "__main__":
    main()

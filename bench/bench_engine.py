#!/usr/bin/env python
"""The engine clock's throughput on PostgreSQL: due events processed per second.

    python bench/bench_engine.py [--database-url URL] [--players 500]

Builds a developed world of ``--players`` players (one village each) in its own database
(``travian_bench`` by default, created when missing; the world there is replaced), then,
through the library as each player, queues for every village: one build, a training line of
5 units, a raid on the next player, 2 scouts to the player after, and a shipment of 100 wood
to the next player. The world clock stands still meanwhile; then
``Engine.run_until(start + 30 days)`` is timed: every build, every unit, every arrival (battles
with reports, scouting), every return home, every delivery and every merchant's return.
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


import travian_repo as tr  # noqa: E402
from common import DEFAULT_URL, ensure_database  # noqa: E402
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--players", type=int, default=500)
    args = parser.parse_args()

    ensure_database(args.database_url, who='bench_engine.py')
    t0 = time.perf_counter()
    create_world(args.database_url, players=args.players, seed=SEED, start="developed",
                 replace=True, now=START)
    print(f"world: {args.players} players, developed, built in {time.perf_counter() - t0:.1f} s")

    clock = Clock(START)
    with tr.connect(args.database_url, player_id=1, clock=clock, prefer="sql") as world:
        t0 = time.perf_counter()
        made = queue_everything(world, args.players)
        print(f"queued through the library in {time.perf_counter() - t0:.1f} s: "
              + ", ".join(f"{k} {v}" for k, v in sorted(made.items())))

        seen: Counter[str] = Counter()

        def count(events: list[Event]) -> None:
            seen.update(e.kind for e in events)

        world.database.add_commit_listener(count)
        engine = Engine(world.database, clock=clock)
        until = START + timedelta(days=30)
        t0 = time.perf_counter()
        processed = engine.run_until(until)
        elapsed = time.perf_counter() - t0
        print(f"Engine.run_until(start + 30 days): {processed} events in {elapsed:.2f} s "
              f"= {processed / elapsed:.0f} events/s ({1000 * elapsed / max(processed, 1):.2f} ms each)")
        print("domain events published: " + ", ".join(f"{k} {v}" for k, v in sorted(seen.items())))
        t0 = time.perf_counter()
        again = engine.run_until(until)
        print(f"second run_until (nothing due): {again} events in "
              f"{1000 * (time.perf_counter() - t0):.1f} ms; overdue left: {engine.overdue(until)}")


if __name__ == "__main__":
    main()

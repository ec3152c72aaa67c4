#!/usr/bin/env python
"""The read cache, measured.

    python bench/bench_cache.py [--database-url URL] [--redis-url URL] [--quick] [--workers N]

1. A cache hit of ``villages.get`` (through ``world.villages.get``: a unit of work, the key,
   one MGET of the entry and its generations, the checks, the serializer's decode into a
   ``Village``) against a raw Redis ``GET`` plus ``json.loads`` of the same stored value.
   Target: <= 1.3x.
2. A tick of 500 NPC players (each in its own unit of work: own villages, the top 10 of the
   ranking, the market seen from its village, one build, one unit trained), run twice in a
   row, with the cache on (Redis) and off: time and hit rate of the second tick.

Uses its own PostgreSQL database (``travian_bench_cache``; bench_sql.py uses travian_bench) and its own key prefix
(a fresh world id) in Redis, deleted at the end. Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import traceback
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import redis  # noqa: E402

import travian_repo as tr  # noqa: E402
from common import DEFAULT_URL, ensure_database, lowest_field, out, percentile  # noqa: E402

from travian_repo.infra.cache import CACHE_FORMAT_VERSION, KEY_PREFIX  # noqa: E402
from travian_repo.rules.units import units_of  # noqa: E402
from travian_repo.sandbox import create_world  # noqa: E402

DEFAULT_REDIS = "redis://127.0.0.1:6379/14"
# Its own database: bench_sql.py may run at the same time on travian_bench.
DEFAULT_DB = DEFAULT_URL.rsplit("/", 1)[0] + "/travian_bench_cache"
HIT_TARGET = 1.3


def per_call_us(fn: Callable[[], Any], n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n * 1e6


def bench_hit(url: str, redis_url: str, world_id: str, rounds: int, calls: int) -> None:
    with tr.connect(url, player_id=1, redis_url=redis_url, world_id=world_id) as world:
        vid = world.villages.list_by_player(1)[0].id
        world.villages.get(vid)
        client = redis.Redis.from_url(redis_url)
        (key,) = list(client.scan_iter(f"{KEY_PREFIX}:{CACHE_FORMAT_VERSION}:{world_id}:1:villages.get:*"))
        raw_value = client.get(key)
        assert raw_value is not None
        plain = json.dumps(json.loads(raw_value)["v"]).encode()
        plain_key = f"{KEY_PREFIX}:{CACHE_FORMAT_VERSION}:{world_id}:bench:plain"
        client.set(plain_key, plain, ex=600)

        def hit() -> Any:
            return world.villages.get(vid)

        def uow_hit() -> Any:  # the same hit inside an open unit (no unit set-up per call)
            return repo.get(vid)

        def raw() -> Any:
            return json.loads(client.get(plain_key))  # type: ignore[arg-type]

        def raw_envelope() -> Any:
            return json.loads(client.get(key))  # type: ignore[arg-type]

        samples: dict[str, list[float]] = {"hit": [], "hit_in_uow": [], "raw": [], "raw_env": []}
        with world.unit_of_work() as uow:
            repo = uow.villages
            for _ in range(200):
                hit(), uow_hit(), raw(), raw_envelope()
            for r in range(rounds):
                order = [("hit", hit), ("hit_in_uow", uow_hit), ("raw", raw), ("raw_env", raw_envelope)]
                order = order[r % 4:] + order[: r % 4]
                for name, fn in order:
                    samples[name].append(per_call_us(fn, calls))
        m = world.metrics
        client.close()
    med = {k: statistics.median(v) for k, v in samples.items()}
    out(f"  {rounds} rounds x {calls} calls, interleaved; median us per call")
    out(f"  raw GET + json.loads (the value alone, {len(plain)} B)     {med['raw']:8.1f} us")
    out(f"  raw GET + json.loads (the stored entry, {len(raw_value)} B) {med['raw_env']:8.1f} us")
    out(f"  world.villages.get hit (unit of work per call)       {med['hit']:8.1f} us"
        f"   ratio {med['hit'] / med['raw']:.2f}x  (target <= {HIT_TARGET}x)")
    out(f"  uow.villages.get hit (inside one unit of work)       {med['hit_in_uow']:8.1f} us"
        f"   ratio {med['hit_in_uow'] / med['raw']:.2f}x")
    out(f"  hits {m['cache_hits']}, misses {m['cache_misses']}, bypassed {m['cache_bypassed']}")


def play(world: tr.World, player_id: int) -> dict[str, Any]:
    result: dict[str, Any] = {"crash": None}
    started = time.perf_counter()
    try:
        with world.unit_of_work(player_id=player_id) as uow:
            village = uow.villages.list_by_player(player_id)[0]
            uow.players.ranking(limit=10)
            uow.trade.offers(village.id)
            uow.players.get(player_id)
            try:
                uow.villages.queue_building(village.id, lowest_field(village))
            except tr.TravianError:
                pass
            try:
                uow.military.train(village.id, {units_of(village.tribe)[0].name: 1})
            except tr.TravianError:
                pass
    except Exception as exc:  # noqa: BLE001 - reported
        result["crash"] = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    result["seconds"] = time.perf_counter() - started
    return result


def bench_tick(url: str, redis_url: str, players: int, workers: int) -> None:
    for label, cache in (("cache off", False), ("cache on (Redis)", None)):
        world_id = f"bench{uuid.uuid4().hex[:8]}"
        create_world(url, players=players, seed=20240601, start="developed", map_radius=200,
                     replace=True, world_id=world_id)
        with tr.connect(url, redis_url=redis_url, world_id=world_id, cache=cache,
                        pool_size=workers) as world:
            for tick in (1, 2):
                before = world.metrics
                with ThreadPoolExecutor(workers) as pool:
                    started = time.perf_counter()
                    results = list(pool.map(lambda p: play(world, p), range(1, players + 1)))
                    total = time.perf_counter() - started
                after = world.metrics
                hits = after["cache_hits"] - before["cache_hits"]
                misses = after["cache_misses"] - before["cache_misses"]
                reads = hits + misses
                crashes = [r["crash"] for r in results if r["crash"]]
                seconds = [r["seconds"] for r in results]
                rate = f"{hits / reads:6.1%}" if reads else "   n/a"
                out(f"  {label:<17} tick {tick}: {total:6.2f} s  p50 {percentile(seconds, 50) * 1000:6.1f} ms"
                    f"  p95 {percentile(seconds, 95) * 1000:6.1f} ms  hit rate {rate}"
                    f" ({hits} hits / {misses} misses)  crashes {len(crashes)}")
                for c in crashes[:2]:
                    out(f"    {c[:200]}")
        cleanup(redis_url, world_id)


def cleanup(redis_url: str, world_id: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(f"{KEY_PREFIX}:{CACHE_FORMAT_VERSION}:{world_id}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_DB)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--tick-players", type=int, default=500)
    args = parser.parse_args()
    rounds, calls = (3, 500) if args.quick else (7, 2000)
    ensure_database(args.database_url, who='bench_cache.py')
    out("travian_repo cache benchmark")
    world_id = f"bench{uuid.uuid4().hex[:8]}"
    create_world(args.database_url, players=8, seed=3, start="developed", replace=True,
                 world_id=world_id)
    out()
    out("1. villages.get: cache hit vs raw Redis GET + json.loads of the same value")
    try:
        bench_hit(args.database_url, args.redis_url, world_id, rounds, calls)
    finally:
        cleanup(args.redis_url, world_id)
    out()
    out(f"2. tick of {args.tick_players} NPC players, {args.workers} threads, twice in a row")
    bench_tick(args.database_url, args.redis_url, args.tick_players, args.workers)


if __name__ == "__main__":
    main()

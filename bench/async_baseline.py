"""bench_sql part 4: the library against the design it replaces, side by side.

The original design was asynchronous: it read a village with asyncpg in three queries (the
village row, its buildings, its build queue). Here that shape runs on the same PostgreSQL
world as the library, per call and as a burst of 500 villages through
``asyncio.gather`` on a pool of ``workers`` connections, beside the raw psycopg2 baseline
(one statement, part 1's query) and the library (``world.villages.get``; the burst on a
thread pool of ``workers``). Per call, the design's method takes a pool connection for each
call, as the library's quick call does; a held connection on each side is shown beside.
asyncpg is a bench-only dependency:

    pip install -e '.[bench]'        # or: pip install 'asyncpg>=0.29'
"""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

import psycopg2
from sqlalchemy.engine import make_url

import travian_repo as tr
from common import out, raw_connect_args
from travian_repo.sql.database import make_engine

GOAL = 0.9  # the library at most 0.9x of the asyncpg path, per call and for the burst

# The original design's three queries. The village row carries what the library's one
# statement reads beside buildings and queue (owner's tribe, resources row), so all three
# paths return the same data.
VILLAGE_ROW = """
SELECT v.id, v.name, v.player_id, v.x, v.y, v.population, v.is_capital, p.tribe,
       r.wood, r.clay, r.iron, r.wheat,
       r.wood_production, r.clay_production, r.iron_production, r.wheat_production,
       r.warehouse_capacity, r.granary_capacity, r.updated_at
  FROM villages v
  JOIN players p ON p.id = v.player_id
  JOIN village_resources r ON r.village_id = v.id
 WHERE v.id = $1
"""
BUILDINGS = "SELECT slot, building_name, level FROM village_buildings WHERE village_id = $1"
QUEUE = """
SELECT id, queue_position, slot, building_name, target_level, wood, clay, iron, wheat,
       started_at, completes_at
  FROM build_queue WHERE village_id = $1 ORDER BY queue_position
"""


async def async_get(conn: Any, village_id: int) -> dict[str, Any]:
    """The original design's read: three queries, the rows turned into plain data."""
    row = await conn.fetchrow(VILLAGE_ROW, village_id)
    if row is None:
        raise LookupError(f"village {village_id} does not exist")
    buildings = await conn.fetch(BUILDINGS, village_id)
    queue = await conn.fetch(QUEUE, village_id)
    return {
        "id": row["id"], "name": row["name"], "player_id": row["player_id"], "x": row["x"],
        "y": row["y"], "population": row["population"], "is_capital": row["is_capital"],
        "tribe": row["tribe"],
        "resources": (int(row["wood"]), int(row["clay"]), int(row["iron"]), int(row["wheat"])),
        "production": (row["wood_production"], row["clay_production"],
                       row["iron_production"], row["wheat_production"]),
        "warehouse_capacity": row["warehouse_capacity"],
        "granary_capacity": row["granary_capacity"], "updated_at": row["updated_at"],
        "buildings": sorted((b["slot"], b["building_name"], b["level"]) for b in buildings),
        "build_queue": [
            (q["id"], q["queue_position"], q["slot"], q["building_name"], q["target_level"],
             (q["wood"], q["clay"], q["iron"], q["wheat"]), q["started_at"], q["completes_at"])
            for q in queue
        ],
    }


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def compare(url: str, player_id: int, ids: Sequence[int], *, raw_get: Callable[[Any, int], Any],
            same_data: Callable[[tr.Village, dict[str, Any]], list[str]], rounds: int,
            calls: int, workers: int) -> None:
    try:
        import asyncpg  # type: ignore[import-untyped]
    except ImportError:
        out("  skipped: asyncpg is not installed (a bench-only dependency). Install it with")
        out("    pip install -e '.[bench]'      (or: pip install 'asyncpg>=0.29')")
        return
    loop = asyncio.new_event_loop()
    engine = make_engine(url, pool_size=workers)
    world = tr.connect(engine, player_id=player_id)
    raw = psycopg2.connect(**raw_connect_args(url))
    raw.autocommit = True
    local = threading.local()
    raw_conns: list[Any] = []

    async def opened() -> tuple[Any, Any]:  # made inside the loop they run on
        return (await asyncpg.connect(_dsn(url)),
                await asyncpg.create_pool(_dsn(url), min_size=workers, max_size=workers))

    aconn, pool = loop.run_until_complete(opened())
    threads = ThreadPoolExecutor(workers)
    try:
        problems = same_data(world.villages.get(ids[0]),
                             loop.run_until_complete(async_get(aconn, ids[0])))
        def stock_aside(villages: list[tr.Village]) -> list[tr.Village]:
            return [dataclasses.replace(v, resources=None) for v in villages]

        batched = hasattr(world.villages, "get_many")  # absent before the operation existed
        if batched and stock_aside(world.villages.get_many(ids)) != stock_aside(
                [world.villages.get(vid) for vid in ids]):
            problems.append("get_many (vs get)")
        out(f"  same data check (library vs asyncpg, get_many vs get; stock aside): "
            f"{'OK' if not problems else 'DIFFERS in ' + ', '.join(problems)}")

        # -- per call: each path on its own warm connection, sequential calls --
        async def async_block(block: Sequence[int], pooled: bool) -> list[float]:
            times = []
            for vid in block:
                started = time.perf_counter()
                if pooled:  # the design's method: a pool connection per call, as the quick call
                    async with pool.acquire() as conn:
                        await async_get(conn, vid)
                else:
                    await async_get(aconn, vid)
                times.append(time.perf_counter() - started)
            return times

        def sync_block(fn: Callable[[int], Any], block: Sequence[int]) -> list[float]:
            times = []
            for vid in block:
                started = time.perf_counter()
                fn(vid)
                times.append(time.perf_counter() - started)
            return times

        def in_uow(block: Sequence[int]) -> list[float]:
            with world.unit_of_work() as uow:
                return sync_block(uow.villages.get, block)

        per_call: dict[str, Callable[[Sequence[int]], list[float]]] = {
            "raw": lambda b: sync_block(lambda vid: raw_get(raw, vid), b),
            "asyncpg": lambda b: loop.run_until_complete(async_block(b, pooled=True)),
            "library": lambda b: sync_block(world.villages.get, b),
            "asyncpg_held": lambda b: loop.run_until_complete(async_block(b, pooled=False)),
            "library_held": in_uow,
        }
        block = 100
        for fn in per_call.values():  # warm-up: statement caches, pools, code paths
            fn(list(ids[:block]))
        samples: dict[str, list[float]] = {name: [] for name in per_call}
        for cycle in range(max(1, rounds * calls // block)):
            start = (cycle * block) % len(ids)
            chunk = [ids[(start + i) % len(ids)] for i in range(block)]
            names = list(per_call) if cycle % 2 == 0 else list(per_call)[::-1]
            for name in names:
                samples[name] += per_call[name](chunk)
        call_us = {name: statistics.median(v) * 1e6 for name, v in samples.items()}

        # -- burst: every id once, all at the same time --
        async def async_burst() -> None:
            async def one(vid: int) -> dict[str, Any]:
                async with pool.acquire() as conn:
                    return await async_get(conn, vid)
            await asyncio.gather(*(one(vid) for vid in ids))

        def raw_in_thread(vid: int) -> Any:
            conn = getattr(local, "conn", None)
            if conn is None:
                conn = local.conn = psycopg2.connect(**raw_connect_args(url))
                conn.autocommit = True
                raw_conns.append(conn)
            return raw_get(conn, vid)

        bursts: dict[str, Callable[[], Any]] = {
            "raw": lambda: list(threads.map(raw_in_thread, ids)),
            "asyncpg": lambda: loop.run_until_complete(async_burst()),
            "library": lambda: list(threads.map(world.villages.get, ids)),
        }
        if batched:
            bursts["batch"] = lambda: world.villages.get_many(ids)  # type: ignore[attr-defined]
        for fn in bursts.values():  # warm-up: every connection opened, every thread started
            fn()
        burst_ms: dict[str, list[float]] = {name: [] for name in bursts}
        burst_cpu: dict[str, list[float]] = {name: [] for name in bursts}
        # A burst can meet a full garbage collection (tens of ms, every few bursts, on any
        # path): enough bursts keep the median off them.
        for r in range(2 * rounds + 3):
            names = list(bursts) if r % 2 == 0 else list(bursts)[::-1]
            for name in names:
                started, cpu = time.perf_counter(), time.process_time()
                bursts[name]()
                burst_ms[name].append((time.perf_counter() - started) * 1000)
                burst_cpu[name].append((time.process_time() - cpu) * 1000)
    finally:
        threads.shutdown()
        loop.run_until_complete(pool.close())
        loop.run_until_complete(aconn.close())
        loop.close()
        for conn in [raw, *raw_conns]:
            conn.close()
        world.close()
        engine.dispose()

    burst_med = {name: statistics.median(v) for name, v in burst_ms.items()}
    cpu_med = {name: statistics.median(v) for name, v in burst_cpu.items()}
    labels = {
        "raw": "raw psycopg2, one statement (part 1's baseline)",
        "asyncpg": "asyncpg, three queries, pool.acquire per call",
        "library": "world.villages.get (quick call: pool per call)",
        "asyncpg_held": "asyncpg, three queries, one held connection",
        "library_held": "uow.villages.get (one held connection)",
        "batch": f"world.villages.get_many({len(ids)} ids), one statement",
    }
    out(f"  {len(ids)} villages of player {player_id} (owner view); per call: blocks of {block} "
        f"calls, the paths alternated, median; burst: all {len(ids)} at once")
    out(f"  burst: asyncio.gather on an asyncpg pool of {workers}; raw and library on "
        f"{workers} threads (library pool_size={workers}); median of {len(burst_ms['raw'])} bursts")
    out(f"  {'path':<52} {'per call us':>11} {'burst ms':>9} {'cpu ms':>7}   bursts (ms)")
    for name in labels:
        if name not in call_us and name not in burst_med:
            continue
        burst = (f"{burst_med[name]:>9.1f} {cpu_med[name]:>7.1f}   "
                 + " ".join(f"{x:.0f}" for x in burst_ms[name]) if name in burst_med else "")
        per_call_us = f"{call_us[name]:>11.0f}" if name in call_us else f"{'-':>11}"
        out(f"  {labels[name]:<52} {per_call_us} {burst}")
    for what, lib, base in (("per call", call_us["library"], call_us["asyncpg"]),
                            ("burst", burst_med["library"], burst_med["asyncpg"])):
        ratio = lib / base
        out(f"  ratio library/asyncpg ({what:<8}) = {ratio:.2f}x   goal <= {GOAL}x   "
            f"{'PASS' if ratio <= GOAL else 'MISS'}")
    if "batch" in burst_med:
        out(f"  ratio batched read/asyncpg gather (burst) = "
            f"{burst_med['batch'] / burst_med['asyncpg']:.2f}x   (another operation: one "
            "call, one statement; the goal's line is the quick-call burst above)")
    out(f"  ratio held connections (uow / asyncpg one connection) = "
        f"{call_us['library_held'] / call_us['asyncpg_held']:.2f}x   (reference)")
    out("  cpu ms: this process's CPU time during a burst (median): the client's own cost, "
        "less noisy than wall time on a shared machine")
    out(f"  ratio raw/asyncpg     (per call) = {call_us['raw'] / call_us['asyncpg']:.2f}x, "
        f"(burst) = {burst_med['raw'] / burst_med['asyncpg']:.2f}x   (reference)")

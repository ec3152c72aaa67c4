#!/usr/bin/env python
"""The HTTP side of travian_repo, measured in one run against a local server on PostgreSQL.

    python bench/bench_http.py [--database-url URL] [--quick] [--workers N] [--server process|thread]
                               [--profile]

a. ``world.villages.get(vid)`` over HTTP (``tr.connect(api_url=..., token=...)``) against a raw
   ``requests.Session.get`` of the same URL with the same headers, on the same server,
   interleaved; median microseconds and the ratio (target <= 1.15x).
b. A tick of 500 NPC players over HTTP, each its own ``World`` with its own token, on a thread
   pool: read own villages, queue one build, train one unit.

The world lives in the benchmark's own database (``travian_bench``, created when missing), in
its own schema (``bench_http``), so neither the test suite's ``test`` database nor
bench_sql.py's world is touched. Figures are printed, never asserted. See bench/README.md.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import os
import pstats
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg2  # noqa: E402
import requests  # noqa: E402
from psycopg2 import sql as pgsql  # noqa: E402
from requests.adapters import HTTPAdapter  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

import travian_repo as tr  # noqa: E402
from common import DEFAULT_URL, npc_turn, report_turns, ensure_database, out, percentile, raw_connect_args  # noqa: E402
from travian_repo.domain.values import Village  # noqa: E402
from travian_repo.sandbox import create_world  # noqa: E402
from travian_repo.wire.routes import route  # noqa: E402
from travian_repo.wire.serializer import decode  # noqa: E402

SCHEMA = "bench_http"
SEED = 20240601
TICK_PLAYERS = 500
GET_TARGET = 1.15
# The client rate limit for part (a): far above what one thread can send, so the limiter is
# paid for (acquire on every call) but never waits. Part (b) keeps the default per World.
UNBOUNDED = (1_000_000, 60_000_000)


# --------------------------------------------------------------------------------------------
# setup: database, schema, world, server


def ensure_database_and_schema(url: str, schema_name: str) -> str:
    """CREATE DATABASE / SCHEMA when missing; the URL scoped to the schema (search_path)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        sys.exit(f"bench_http.py runs its server on PostgreSQL; got {parsed}")
    target = parsed.database
    if not target:
        sys.exit("the database URL names no database")
    if target == "test":
        out("WARNING: benchmarking in database 'test', which the test suite recreates.")
    ensure_database(url, who='bench_http.py')
    args = raw_connect_args(url)
    conn = psycopg2.connect(**args)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(pgsql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                pgsql.Identifier(schema_name)))
    finally:
        conn.close()
    return parsed.update_query_dict({"options": f"-csearch_path={schema_name}"}).render_as_string(
        hide_password=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """The local server: ``travian-repo serve`` in a subprocess (default) or a ServerThread."""

    def __init__(self, url: str, kind: str, threads: int) -> None:
        self.kind = kind
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: Any = None
        if kind == "process":
            port = free_port()
            env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get(
                "PYTHONPATH", "")}
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "travian_repo", "serve", "--database-url", url,
                 "--host", "127.0.0.1", "--port", str(port), "--threads", str(threads),
                 "--rate-limit", "0"],  # the server's speed is measured, not its limit
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )
            self.url = f"http://127.0.0.1:{port}"
        else:
            from travian_repo.sandbox.server import ServerThread, create_app

            app = create_app(url, rate_limit=None)  # the server's speed, not its limit
            self._thread = ServerThread(app, threads=threads).start()
            self.url = self._thread.url
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                sys.exit(f"the server exited with {self._proc.returncode}:\n{err}")
            try:
                if requests.get(self.url + "/v1/openapi.yaml", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.close()
        sys.exit(f"the server at {self.url} did not answer within {timeout:.0f} s")

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._thread is not None:
            self._thread.stop()
            from travian_repo.sandbox.server import app_world

            app_world(self._thread.app).close()  # the app is ours, not the thread's


# --------------------------------------------------------------------------------------------
# a. villages.get over HTTP against a raw requests.Session.get


def timed(fn: Callable[[], Any], n: int) -> list[float]:
    times: list[float] = []
    append = times.append
    clock = time.perf_counter
    for _ in range(n):
        started = clock()
        fn()
        append(clock() - started)
    return times


def raw_session(pool: int = 1) -> requests.Session:
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=pool, pool_maxsize=pool)
    session.mount("http://", adapter)
    return session


def bench_get(api_url: str, token: str, vid: int, rounds: int, calls: int) -> dict[str, Any]:
    world = tr.connect(api_url=api_url, token=token, rate_limit=UNBOUNDED)
    transport = world._transport  # the same URL and headers the library sends
    assert transport is not None
    path = route("villages.get").url_path(village_id=vid)
    url = transport.base_url + path
    headers = dict(transport._headers)
    timeout = transport.timeout
    session = raw_session()
    try:
        def raw() -> Any:
            response = session.get(url, headers=headers, timeout=timeout)
            response.raise_for_status()
            return response.json()

        def library() -> Any:
            return world.villages.get(vid)

        same = world.villages.get(vid) == decode(Village, raw())
        variants = {"raw": raw, "library": library}
        for fn in variants.values():  # warm-up: connections, code paths
            timed(fn, max(50, calls // 4))
        samples: dict[str, list[float]] = {k: [] for k in variants}
        per_round: dict[str, list[float]] = {k: [] for k in variants}
        names = list(variants)
        for r in range(rounds):
            order = names[r % 2:] + names[: r % 2]
            for name in order:
                gc.collect()
                times = timed(variants[name], calls)
                samples[name] += times
                per_round[name].append(statistics.median(times))
        return {"samples": samples, "per_round": per_round, "same": same, "world": world,
                "session": session, "url": url, "headers": headers, "timeout": timeout,
                "path": path}
    except BaseException:
        world.close()
        session.close()
        raise


def report_get(result: dict[str, Any], rounds: int, calls: int) -> float:
    samples, per_round = result["samples"], result["per_round"]
    med = {k: statistics.median(v) * 1e6 for k, v in samples.items()}
    p90 = {k: percentile(v, 90) * 1e6 for k, v in samples.items()}
    out(f"  {rounds} rounds x {calls} calls each, interleaved (first variant alternates), "
        f"GET {result['path']} as its owner")
    out(f"  same data check (library Village == raw JSON decoded): "
        f"{'OK' if result['same'] else 'DIFFERS'}")
    labels = {
        "raw": "raw requests.Session.get + .json(), same URL and headers",
        "library": "world.villages.get(vid) over HTTP (quick call)",
    }
    out(f"  {'variant':<58} {'median us':>10} {'p90 us':>9}   per-round medians (us)")
    for k in ("raw", "library"):
        rounds_txt = " ".join(f"{x * 1e6:.0f}" for x in per_round[k])
        out(f"  {labels[k]:<58} {med[k]:>10.0f} {p90[k]:>9.0f}   {rounds_txt}")
    ratio = med["library"] / med["raw"]
    verdict = "PASS" if ratio <= GET_TARGET else "MISS"
    out(f"  ratio library/raw = {ratio:.3f}x   target <= {GET_TARGET}x   {verdict}   "
        f"(library adds {med['library'] - med['raw']:.0f} us per call)")
    return ratio


def breakdown(result: dict[str, Any], vid: int, calls: int, rounds: int) -> None:
    """Each layer of the client's path adds one piece on top of the one before."""
    world: tr.World = result["world"]
    transport = world._transport
    assert transport is not None
    session, url, headers, timeout = (result["session"], result["url"], result["headers"],
                                      result["timeout"])
    path = result["path"]

    def raw() -> Any:
        response = session.get(url, headers=headers, timeout=timeout)
        response.raise_for_status()
        return response.json()

    def send_once() -> Any:  # one attempt: session.request + _decode + metrics, no tenacity
        return transport._send_once("villages.get", "GET", url, headers, None, None)

    def transport_request() -> Any:  # + limiter, tenacity Retrying, header copy
        return transport.request("villages.get", "GET", path)

    def decoded() -> Any:  # + JSON -> Village
        return decode(Village, transport.request("villages.get", "GET", path))

    holder: dict[str, Any] = {}

    def in_uow() -> Any:  # + the repository (validation, route) in an open unit of work
        return holder["uow"].villages.get(vid)

    def quick() -> Any:  # + a unit of work per call
        return world.villages.get(vid)

    layers = [
        ("raw session.get + .json()", raw),
        ("Transport._send_once (1 attempt, metrics)", send_once),
        ("Transport.request (+ limiter, tenacity)", transport_request),
        ("+ decode(Village, ...)", decoded),
        ("uow.villages.get (+ repository, validation)", in_uow),
        ("world.villages.get (+ unit of work per call)", quick),
    ]
    block = 100
    samples: dict[str, list[float]] = {name: [] for name, _ in layers}
    with world.unit_of_work() as uow:
        holder["uow"] = uow
        for name, fn in layers:
            timed(fn, 50)
        for _ in range(rounds):
            for start in range(0, calls, block):
                for name, fn in layers:
                    samples[name] += timed(fn, min(block, calls - start))
    out(f"  {'layer':<50} {'median us':>10} {'added us':>9}")
    previous: float | None = None
    for name, _ in layers:
        m = statistics.median(samples[name]) * 1e6
        added = "" if previous is None else f"{m - previous:+9.0f}"
        out(f"  {name:<50} {m:>10.0f} {added:>9}")
        previous = m


def profile_get(result: dict[str, Any], vid: int, n: int) -> None:
    world: tr.World = result["world"]
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(n):
        world.villages.get(vid)
    profiler.disable()
    for sort in ("tottime", "cumulative"):
        buffer = io.StringIO()
        stats = pstats.Stats(profiler, stream=buffer).strip_dirs().sort_stats(sort)
        stats.print_stats(18)
        out(f"  cProfile of {n} world.villages.get calls (client side only), by {sort}:")
        text = buffer.getvalue()
        body = text[text.find("   ncalls"):] if "   ncalls" in text else text
        for line in body.rstrip().splitlines():
            out("    " + line)


# --------------------------------------------------------------------------------------------
# b. the tick over HTTP


def bench_tick(api_url: str, tokens: dict[int, str], players: list[int], warm_player: int,
               workers: int) -> None:
    # One connection pool for all 500 Worlds (http_session=): 500 sessions with a keep-alive
    # connection each would hold 500 sockets open against a server of `workers` threads.
    session = raw_session(workers)
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        worlds = dict(zip(players, pool.map(
            lambda p: tr.connect(api_url=api_url, token=tokens[p], http_session=session),
            players)))
    login = time.perf_counter() - started
    try:
        warm_world = tr.connect(api_url=api_url, token=tokens[warm_player], http_session=session)
        warm = npc_turn(warm_world, warm_player)
        warm_world.close()
        if warm["crash"]:
            out(f"  warm-up player {warm_player} crashed: {warm['crash']}")
        before = {p: w.metrics["total_requests"] for p, w in worlds.items()}
        with ThreadPoolExecutor(workers) as pool:
            started = time.perf_counter()
            results = list(pool.map(lambda p: npc_turn(worlds[p], p), players))
            total = time.perf_counter() - started
        snaps = {p: w.metrics for p, w in worlds.items()}
    finally:
        for w in worlds.values():
            w.close()
        session.close()

    requests_sent = sum(s["total_requests"] - before[p] for p, s in snaps.items())
    out(f"  {len(players)} players, each its own World (its own token, client rate limit "
        f"100/s, 5000/min) sharing one requests.Session (pool {workers}); "
        f"thread pool of {workers} workers")
    out("  actions: list_by_player(own) + queue_building(lowest field) + military.train(first unit, 1)")
    out(f"  login (500 x connect(): GET /v1/me each, before the clock)  {login:.2f} s")
    out(f"  total                 {total:8.2f} s   ({len(players) / total:.0f} players/s, "
        f"{requests_sent / total:.0f} requests/s)")
    report_turns(results)
    errors = sum(s["errors"] for s in snaps.values())
    retries = sum(s["retries"] for s in snaps.values())
    ops: dict[str, list[int]] = {}
    for s in snaps.values():
        for name, op in s["operations"].items():
            acc = ops.setdefault(name, [0, 0])
            acc[0] += op["requests"]
            acc[1] += op["errors"]
    out(f"  requests in the tick {requests_sent} ({requests_sent / len(players):.1f} per player); "
        f"errors {errors} (4xx refusals included), retries {retries}")
    for name, (n, e) in sorted(ops.items()):
        if name != "session.me":
            out(f"      {name:<28} n={n:<5} errors {e}")


# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_URL,
                        help=f"PostgreSQL URL of the benchmark's database (default {DEFAULT_URL})")
    parser.add_argument("--schema", default=SCHEMA,
                        help=f"schema the world is built in (default {SCHEMA})")
    parser.add_argument("--quick", action="store_true", help="fewer rounds and calls")
    parser.add_argument("--workers", type=int, default=16,
                        help="tick thread pool, client pool and server threads (default 16)")
    parser.add_argument("--tick-players", type=int, default=TICK_PLAYERS)
    parser.add_argument("--server", choices=("process", "thread"), default="process",
                        help="run the server in a subprocess (default) or a thread of this one")
    parser.add_argument("--profile", action="store_true",
                        help="always print the client-side breakdown and a cProfile")
    args = parser.parse_args(argv)

    rounds, calls = (3, 200) if args.quick else (5, 500)
    run_started = time.perf_counter()
    out("travian_repo HTTP benchmark")
    url = ensure_database_and_schema(args.database_url, args.schema)
    out(f"  database  {make_url(args.database_url).render_as_string(hide_password=True)} "
        f"(schema {args.schema})")
    out(f"  python {sys.version.split()[0]}, requests {requests.__version__}, "
        f"mode {'quick' if args.quick else 'full'}, server in a {args.server}, "
        f"{os.cpu_count()} CPUs")
    started = time.perf_counter()
    players = args.tick_players + 1  # the last one: the villages.get player and warm-up
    summary = create_world(url, players=players, seed=SEED, start="developed", replace=True)
    out(f"  world     {summary.players} players, {summary.villages} villages (start=developed, "
        f"seed {SEED}); built in {time.perf_counter() - started:.1f} s")

    server = Server(url, args.server, threads=args.workers)
    try:
        get_player = players
        with tr.connect(url, player_id=get_player, prefer="sql") as sql_world:
            vid = sql_world.villages.list_by_player(get_player)[0].id
        out(f"  server    {server.url} ({args.server}, {args.workers} threads, waitress)")

        out()
        out("a. villages.get over HTTP: library vs raw requests.Session.get (same server, URL, "
            "headers)")
        result = bench_get(server.url, summary.tokens[get_player], vid, rounds, calls)
        try:
            ratio = report_get(result, rounds, calls)
            if args.profile or ratio > GET_TARGET:
                out()
                out("a2. where the client's time goes (layers alternated in blocks of 100 calls)")
                breakdown(result, vid, calls, 2 if args.quick else 3)
                out()
                profile_get(result, vid, 500 if args.quick else 2000)
        finally:
            result["world"].close()
            result["session"].close()

        out()
        out(f"b. tick of {args.tick_players} NPC players over HTTP")
        bench_tick(server.url, summary.tokens, list(range(1, args.tick_players + 1)),
                   get_player, args.workers)
    finally:
        server.close()
    out()
    out(f"run took {time.perf_counter() - run_started:.1f} s")


if __name__ == "__main__":
    main()

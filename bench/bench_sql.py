#!/usr/bin/env python
"""The SQL side of travian_repo on PostgreSQL, measured in one run.

    python bench/bench_sql.py [--database-url URL] [--quick] [--workers N] [--profile]

1. ``villages.get`` through the library against one hand-written psycopg2 query reading the
   same data (village + owner's tribe + resources row + buildings + build queue), interleaved.
2. Round trips and the statements they carry per ``villages.get``, per
   ``villages.list_by_player`` of 1, 10, 100 and 1000 villages and per NPC turn.
3. A tick of 500 NPC players on a thread pool: read own villages, queue one build, train one unit.
4. The design it replaces: the original async design's village read (asyncpg, three queries)
   beside the raw baseline and the library, per call and for a burst of 500 villages, and
   the batched read ``villages.get_many`` on a line of its own
   (bench/async_baseline.py; asyncpg is bench-only: ``pip install -e '.[bench]'``).

The benchmark builds its own world in its own database (``travian_bench`` by default, created
when missing) so it never touches the ``test`` database the test suite recreates. Figures are
printed, never asserted. See bench/README.md.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import pstats
import random
import re
import socket
import statistics
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg2  # noqa: E402
from sqlalchemy import Engine, bindparam, event, insert, select  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

import travian_repo as tr  # noqa: E402
from common import DEFAULT_URL, npc_turn, report_turns, ensure_database, out, percentile, raw_connect_args  # noqa: E402
import async_baseline  # noqa: E402
from travian_repo.sandbox import create_world  # noqa: E402
from travian_repo.sql import schema  # noqa: E402
from travian_repo.sql.database import make_engine  # noqa: E402

SEED = 20240601
MAP_RADIUS = 200
TICK_PLAYERS = 500
LIST_SIZES = (1, 10, 100, 1000)
GET_TARGET = 1.5

# The raw baseline: the same data villages.get reads (village, owner's tribe, resources row,
# buildings, build queue), one statement, written by hand.
RAW_SQL = """
SELECT v.id, v.name, v.player_id, v.x, v.y, v.population, v.is_capital, p.tribe,
       r.wood, r.clay, r.iron, r.wheat,
       r.wood_production, r.clay_production, r.iron_production, r.wheat_production,
       r.warehouse_capacity, r.granary_capacity, r.updated_at,
       (SELECT coalesce(json_agg(json_build_array(b.slot, b.building_name, b.level)), '[]'::json)
          FROM village_buildings b WHERE b.village_id = v.id) AS buildings,
       (SELECT coalesce(json_agg(json_build_array(q.id, q.queue_position, q.slot, q.building_name,
                                                  q.target_level, q.wood, q.clay, q.iron, q.wheat,
                                                  q.started_at, q.completes_at)), '[]'::json)
          FROM build_queue q WHERE q.village_id = v.id) AS queue
  FROM villages v
  JOIN players p ON p.id = v.player_id
  JOIN village_resources r ON r.village_id = v.id
 WHERE v.id = %s
"""


RAW_LIST_SQL = RAW_SQL.replace(
    "WHERE v.id = %s", "WHERE v.player_id = %s ORDER BY v.is_capital DESC, v.population DESC, v.id"
)


def raw_village(row: tuple[Any, ...]) -> dict[str, Any]:
    """A row as plain Python data: what a hand-written data layer would return."""
    (vid, name, player_id, x, y, population, is_capital, tribe, wood, clay, iron, wheat,
     wood_p, clay_p, iron_p, wheat_p, warehouse, granary, updated_at, buildings, queue) = row
    return {
        "id": vid, "name": name, "player_id": player_id, "x": x, "y": y,
        "population": population, "is_capital": is_capital, "tribe": tribe,
        "resources": (int(wood), int(clay), int(iron), int(wheat)),
        "production": (wood_p, clay_p, iron_p, wheat_p),
        "warehouse_capacity": warehouse, "granary_capacity": granary, "updated_at": updated_at,
        "buildings": sorted((s, n, lv) for s, n, lv in buildings),
        "build_queue": sorted(
            ((q[0], q[1], q[2], q[3], q[4], (q[5], q[6], q[7], q[8]),
              datetime.fromisoformat(q[9]), datetime.fromisoformat(q[10])) for q in queue),
            key=lambda o: o[1],
        ),
    }


def raw_get(conn: Any, village_id: int) -> dict[str, Any]:
    """One round trip; the row turned into plain Python data (stock not settled to now)."""
    with conn.cursor() as cur:
        cur.execute(RAW_SQL, (village_id,))
        row = cur.fetchone()
    if row is None:
        raise LookupError(f"village {village_id} does not exist")
    return raw_village(row)


RAW_PREPARE = "PREPARE raw_village(bigint) AS " + RAW_SQL.replace("%s", "$1")


def raw_get_prepared(conn: Any, village_id: int) -> dict[str, Any]:
    """``raw_get`` on a connection that ran RAW_PREPARE: the server skips parse and plan."""
    with conn.cursor() as cur:
        cur.execute("EXECUTE raw_village(%s)", (village_id,))
        row = cur.fetchone()
    if row is None:
        raise LookupError(f"village {village_id} does not exist")
    return raw_village(row)


def raw_list(conn: Any, player_id: int) -> list[dict[str, Any]]:
    with conn.cursor() as cur:
        cur.execute(RAW_LIST_SQL, (player_id,))
        rows = cur.fetchall()
    return [raw_village(row) for row in rows]


# --------------------------------------------------------------------------------------------
# helpers


_TOKENS = re.compile(r"'[^']*'|\"[^\"]*\"|--[^\n]*\n|['\"]|--|[();]")


def statements_in(sql: str) -> list[str]:
    """The SQL statements one message carries: split at each ``;`` outside quotes, quoted
    names, parentheses and comments (the library sends several in one simple query)."""
    if ";" not in sql:  # one statement (most messages): nothing to split
        return [sql.strip()] if sql.strip() else []
    parts: list[str] = []
    depth = start = 0
    # Only quotes, comments, parentheses and ';' matter: visit those, not every character.
    for match in _TOKENS.finditer(sql):
        token = match.group()
        if token == "(":
            depth += 1
        elif token == ")":
            depth -= 1
        elif token == ";":
            if depth == 0:
                parts.append(sql[start:match.start()])
                start = match.end()
        elif token in ("'", '"', "--"):  # not closed: the rest is one piece
            break
    parts.append(sql[start:])
    return [p.strip() for p in parts if p.strip()]


def statement_kind(statement: str) -> str:
    """The first word, with the prepared statement's name for an EXECUTE."""
    words = statement.split(None, 2)
    if not words:
        return "?"
    kind = words[0].upper()
    if kind == "EXECUTE" and len(words) > 1:
        return f"EXECUTE {words[1].split('(', 1)[0]}"
    return kind


class StatementCounter:
    """Counts what an engine sends to the server (``before_cursor_execute``, seen after the
    library's own listener put its queued statements in front): round trips (one per
    cursor execute, by the first word of the message) and the statements they carry."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.kinds: Counter[str] = Counter()
        self.statement_kinds: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _on_execute(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        words = statement.split(None, 1)
        kind = words[0].upper() if words else "?"
        inside = [statement_kind(part) for part in statements_in(statement)]
        with self._lock:
            self.kinds[kind] += 1
            self.statement_kinds.update(inside)

    @property
    def total(self) -> int:
        """Round trips."""
        return sum(self.kinds.values())

    @property
    def statements(self) -> int:
        return sum(self.statement_kinds.values())

    def reset(self) -> None:
        with self._lock:
            self.kinds.clear()
            self.statement_kinds.clear()

    def describe(self) -> str:
        return ", ".join(f"{k} {n}" for k, n in self.kinds.most_common())

    def describe_statements(self) -> str:
        return ", ".join(f"{k} {n}" for k, n in self.statement_kinds.most_common())

    def __enter__(self) -> StatementCounter:
        self.reset()
        event.listen(self.engine, "before_cursor_execute", self._on_execute)
        return self

    def __exit__(self, *exc: Any) -> None:
        event.remove(self.engine, "before_cursor_execute", self._on_execute)


class WireCounter:
    """A TCP proxy in front of PostgreSQL that counts what the client really sends.

    psycopg2 speaks the simple query protocol: every server round trip is one ``Query``
    ('Q') message. The proxy parses the client's messages (before forwarding them, so a
    count is complete when the call returns) and records the first word of each query.
    TLS and GSS encryption are turned off on connections through it so it can read them.
    Used only to count, never to time.
    """

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.kinds: Counter[str] = Counter()
        self.statements = 0
        self.counting = False
        self._lock = threading.Lock()
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(64)
        self.port = self._server.getsockname()[1]
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def engine_url(self, url: str) -> str:
        return make_url(url).set(host="127.0.0.1", port=self.port).render_as_string(
            hide_password=False)

    @property
    def total(self) -> int:
        return sum(self.kinds.values())

    def describe(self) -> str:
        return ", ".join(f"{k} {n}" for k, n in self.kinds.most_common())

    def __enter__(self) -> WireCounter:
        with self._lock:
            self.kinds.clear()
            self.statements = 0
        self.counting = True
        return self

    def __exit__(self, *exc: Any) -> None:
        self.counting = False

    def close(self) -> None:
        for sock in [self._server, *self._sockets]:
            try:
                sock.close()
            except OSError:
                pass

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sockets += [client, upstream]
            threading.Thread(target=self._pump_back, args=(upstream, client), daemon=True).start()
            threading.Thread(target=self._pump_client, args=(client, upstream), daemon=True).start()

    @staticmethod
    def _pump_back(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _pump_client(self, src: socket.socket, dst: socket.socket) -> None:
        buf = b""
        started = False
        try:
            while data := src.recv(65536):
                buf += data
                while True:  # count every complete message, then forward the bytes
                    if not started:  # startup / SSLRequest / GSSENCRequest: no type byte
                        if len(buf) < 8 or len(buf) < int.from_bytes(buf[:4], "big"):
                            break
                        size = int.from_bytes(buf[:4], "big")
                        started = int.from_bytes(buf[4:8], "big") not in (80877103, 80877104)
                        buf = buf[size:]
                        continue
                    if len(buf) < 5 or len(buf) < 1 + int.from_bytes(buf[1:5], "big"):
                        break
                    size = 1 + int.from_bytes(buf[1:5], "big")
                    kind = buf[:1]
                    if self.counting and kind in (b"Q", b"S"):  # Query; Sync (extended protocol)
                        query = buf[5:size].rstrip(b"\x00")
                        words = query.split(None, 1)
                        word = words[0].decode(errors="replace").upper() if kind == b"Q" and words else "SYNC"
                        inside = len(statements_in(query.decode(errors="replace"))) if kind == b"Q" else 0
                        with self._lock:
                            self.kinds[word] += 1
                            self.statements += inside
                    buf = buf[size:]
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


# --------------------------------------------------------------------------------------------
# setup


def add_villages(engine: Engine, player_id: int, extra: int, rng: random.Random) -> list[int]:
    """Give ``player_id`` ``extra`` more villages, copies of its first (resources, buildings)."""
    v, r, b = schema.villages, schema.village_resources, schema.village_buildings
    with engine.begin() as conn:
        radius = conn.execute(select(schema.world_settings.c.map_radius)).scalar_one()
        template = conn.execute(
            select(v).where(v.c.player_id == player_id).order_by(v.c.id).limit(1)
        ).mappings().one()
        resources = dict(
            conn.execute(select(r).where(r.c.village_id == template["id"])).mappings().one()
        )
        buildings = [dict(row) for row in conn.execute(
            select(b).where(b.c.village_id == template["id"])).mappings()]
        taken = {(x, y) for x, y in conn.execute(select(v.c.x, v.c.y))}
        spots: list[tuple[int, int]] = []
        while len(spots) < extra:
            spot = (rng.randint(-radius, radius), rng.randint(-radius, radius))
            if spot not in taken:
                taken.add(spot)
                spots.append(spot)
        now = datetime.now(timezone.utc)
        rows = [
            dict(name=f"P{player_id} colony {i + 1}", player_id=player_id, x=x, y=y,
                 population=template["population"], is_capital=False, created_at=now)
            for i, (x, y) in enumerate(spots)
        ]
        ids = list(conn.execute(
            insert(v).returning(v.c.id, sort_by_parameter_order=True), rows
        ).scalars())
        conn.execute(insert(r), [{**resources, "village_id": vid} for vid in ids])
        conn.execute(
            insert(b), [{**row, "village_id": vid} for vid in ids for row in buildings]
        )
    return ids


def village_ids_of(engine: Engine, player_id: int) -> list[int]:
    v = schema.villages
    with engine.connect() as conn:
        return list(conn.execute(
            select(v.c.id).where(v.c.player_id == player_id).order_by(v.c.id)
        ).scalars())


# --------------------------------------------------------------------------------------------
# 1. villages.get against the raw query


def timed_calls(fn: Callable[[int], Any], ids: Sequence[int], n: int) -> list[float]:
    times: list[float] = []
    append = times.append
    clock = time.perf_counter
    count = len(ids)
    for i in range(n):
        vid = ids[i % count]
        started = clock()
        fn(vid)
        append(clock() - started)
    return times


def same_data(village: tr.Village, raw: dict[str, Any]) -> list[str]:
    """Fields where the library's answer and the raw row disagree (stock aside)."""
    problems = []
    for name in ("id", "name", "player_id", "x", "y", "population", "is_capital", "tribe",
                 "warehouse_capacity", "granary_capacity"):
        if getattr(village, name) != raw[name]:
            problems.append(name)
    if tuple(village.production or ()) != raw["production"]:
        problems.append("production")
    if [(bd.slot, bd.name, bd.level) for bd in village.buildings or ()] != raw["buildings"]:
        problems.append("buildings")
    if [(o.id, o.position, o.slot, o.building, o.target_level) for o in village.build_queue or ()] \
            != [q[:5] for q in raw["build_queue"]]:
        problems.append("build_queue")
    return problems


def bench_get(engine: Engine, url: str, player_id: int, ids: list[int], rounds: int,
              calls: int) -> dict[str, Any]:
    world = tr.connect(engine, player_id=player_id)
    raw = psycopg2.connect(**raw_connect_args(url))
    raw.autocommit = True
    prepared = psycopg2.connect(**raw_connect_args(url))
    prepared.autocommit = True
    with prepared.cursor() as cur:
        cur.execute(RAW_PREPARE)
    try:
        problems = same_data(world.villages.get(ids[0]), raw_get(raw, ids[0]))
        uow_holder: dict[str, Any] = {}

        def in_uow(vid: int) -> Any:
            return uow_holder["uow"].villages.get(vid)

        calls_of: dict[str, Callable[[int], Any]] = {
            "library": world.villages.get,
            "raw": lambda vid: raw_get(raw, vid),
            "raw_prepared": lambda vid: raw_get_prepared(prepared, vid),
        }

        def run(name: str, n: int) -> list[float]:
            if name == "uow":
                with world.unit_of_work() as uow:
                    uow_holder["uow"] = uow
                    return timed_calls(in_uow, ids, n)
            return timed_calls(calls_of[name], ids, n)

        names = ["library", "raw", "uow", "raw_prepared"]
        for name in names:  # warm-up: pool, compiled-statement cache, rules data, JIT-free paths
            run(name, max(100, calls // 3))
        samples: dict[str, list[float]] = {name: [] for name in names}
        per_round: dict[str, list[float]] = {name: [] for name in names}
        for r in range(rounds):
            order = names[r % len(names):] + names[: r % len(names)]
            for name in order:
                gc.collect()
                times = run(name, calls)
                samples[name] += times
                per_round[name].append(statistics.median(times))
        return {"samples": samples, "per_round": per_round, "problems": problems}
    finally:
        raw.close()
        prepared.close()


def report_get(result: dict[str, Any], rounds: int, calls: int, ids: list[int]) -> float:
    samples, per_round = result["samples"], result["per_round"]
    med: dict[str, float] = {k: statistics.median(v) * 1e6 for k, v in samples.items()}
    p90 = {k: percentile(v, 90) * 1e6 for k, v in samples.items()}
    out(f"  {rounds} rounds x {calls} calls each, interleaved (first variant rotates), "
        f"{len(ids)} village ids cycled")
    out(f"  same data check (library vs raw, stock aside): "
        f"{'OK' if not result['problems'] else 'DIFFERS in ' + ', '.join(result['problems'])}")
    labels = {
        "raw": "raw psycopg2, one persistent autocommit connection",
        "library": "world.villages.get(vid)  (quick call: own unit of work)",
        "uow": "uow.villages.get(vid) inside one unit_of_work",
        "raw_prepared": "raw psycopg2, the same query prepared (PREPARE / EXECUTE)",
    }
    out(f"  {'variant':<58} {'median us':>10} {'p90 us':>9}   per-round medians (us)")
    for k in ("raw", "library", "uow", "raw_prepared"):
        rounds_txt = " ".join(f"{x * 1e6:.0f}" for x in per_round[k])
        out(f"  {labels[k]:<58} {med[k]:>10.0f} {p90[k]:>9.0f}   {rounds_txt}")
    ratio: float = med["library"] / med["raw"]
    ratio_uow = med["uow"] / med["raw"]
    verdict = "PASS" if ratio <= GET_TARGET else "MISS"
    out(f"  ratio library/raw (quick call)      = {ratio:.2f}x   target <= {GET_TARGET}x   {verdict}")
    out(f"  ratio library/raw (inside one uow)  = {ratio_uow:.2f}x   "
        f"({'within' if ratio_uow <= GET_TARGET else 'over'} {GET_TARGET}x; extra line, not the target)")
    out(f"  ratio library/raw prepared          = {med['library'] / med['raw_prepared']:.2f}x   "
        "(the library prepares its reads on PostgreSQL; this baseline does too)")
    return ratio


# --------------------------------------------------------------------------------------------
# 1b. where the library's time goes (layers, then cProfile)


def breakdown(engine: Engine, url: str, player_id: int, ids: list[int], calls: int,
              rounds: int, quick_minus_uow: float | None = None) -> None:
    """Each layer adds one piece of the library's get path on top of the previous one;
    two what-ifs (bench-only, the library unchanged) show what a fix would save."""
    from travian_repo.sql.village_state import VILLAGE_SELECT, _v, load_village

    world = tr.connect(engine, player_id=player_id)
    ac_engine = make_engine(url, isolation_level="AUTOCOMMIT")  # what-if: no per-checkout switch
    ac_world = tr.connect(ac_engine, player_id=player_id)
    prebuilt = VILLAGE_SELECT.where(_v.c.id == bindparam("village_id"))
    raw = psycopg2.connect(**raw_connect_args(url))
    raw.autocommit = True
    now = datetime.now(timezone.utc)
    try:
        with world.unit_of_work() as uow:
            # The SQLAlchemy layers run on the unit of work's own connection (autocommit, as
            # its reads are): same server backend, so layers differ only by client code.
            sa_conn = uow.villages._session.connection()  # type: ignore[attr-defined]
            layers: list[tuple[str, Callable[[int], Any]]] = [
                ("raw psycopg2 + dict (the baseline)", lambda vid: raw_get(raw, vid)),
                ("SA exec_driver_sql(RAW_SQL).first() (no compile)",
                 lambda vid: sa_conn.exec_driver_sql(RAW_SQL, (vid,)).first()),
                ("SA execute(VILLAGE_SELECT.where(id == vid)).first()",
                 lambda vid: sa_conn.execute(VILLAGE_SELECT.where(_v.c.id == vid)).first()),
                ("  + state_from_row = load_village()",
                 lambda vid: load_village(sa_conn, vid, now)),
                ("  + .to_village(private=True)",
                 lambda vid: load_village(sa_conn, vid, now).to_village(private=True)),
                ("uow.villages.get (validation, metrics, session, clock)",
                 lambda vid: uow.villages.get(vid)),
                ("world.villages.get (+ new uow, pool checkout/checkin)",
                 lambda vid: world.villages.get(vid)),
            ]
            what_ifs: list[tuple[str, str, Callable[[int], Any]]] = [
                ("SA execute(prebuilt stmt, {village_id: vid}).first()",
                 layers[2][0], lambda vid: sa_conn.execute(prebuilt, {"village_id": vid}).first()),
                ("world.villages.get, engine isolation_level=AUTOCOMMIT",
                 layers[6][0], lambda vid: ac_world.villages.get(vid)),
            ]
            everything = layers + [(name, fn) for name, _, fn in what_ifs]
            for _, fn in everything:
                timed_calls(fn, ids, max(100, calls // 3))
            # Short blocks, alternating direction: every layer sees the same moments of a noisy
            # machine (no drift between layers), and 100 calls in a row keep each connection's
            # server backend warm (the median ignores the first call after a switch).
            samples: dict[str, list[float]] = {name: [] for name, _ in everything}
            block = 100
            for cycle in range(max(1, calls * rounds // block)):
                order = everything if cycle % 2 == 0 else everything[::-1]
                for name, fn in order:
                    samples[name] += timed_calls(fn, ids[cycle % len(ids):] + ids[:cycle % len(ids)], block)
    finally:
        raw.close()
        ac_engine.dispose()
    med = {name: statistics.median(v) * 1e6 for name, v in samples.items()}
    out(f"  {'layer (each adds to the one above)':<58} {'median us':>9} {'added us':>9}")
    previous = None
    for name, _ in layers:
        added = "" if previous is None else f"{med[name] - previous:+9.0f}"
        out(f"  {name:<58} {med[name]:>9.0f} {added}")
        previous = med[name]
    if quick_minus_uow is not None:
        out("  (the last layer runs on its own pooled connection, the SQLAlchemy layers above share the")
        out("   uow's, so its step also carries a switch of server backend; part 1 measures quick call")
        out(f"   minus uow in 500-call blocks: {quick_minus_uow:+.0f} us, the cleaner figure for that step)")
    out(f"  {'what-if (measured here, library unchanged)':<58} {'median us':>9} {'vs layer':>9}")
    for name, against, _ in what_ifs:
        out(f"  {name:<58} {med[name]:>9.0f} {med[name] - med[against]:+9.0f}   (vs '{against.strip()}')")


def profile_get(engine: Engine, player_id: int, ids: list[int], calls: int, top: int = 28) -> None:
    world = tr.connect(engine, player_id=player_id)
    get = world.villages.get
    timed_calls(get, ids, 200)
    profiler = cProfile.Profile()
    profiler.enable()
    for i in range(calls):
        get(ids[i % len(ids)])
    profiler.disable()
    for key in ("tottime", "cumulative"):
        buf = io.StringIO()
        stats = pstats.Stats(profiler, stream=buf).strip_dirs().sort_stats(key)
        stats.print_stats(top)
        out(f"  cProfile of {calls} world.villages.get calls, sorted by {key} "
            f"(per-call us = tottime or cumtime / {calls} * 1e6; profiler inflates all times):")
        lines = buf.getvalue().splitlines()
        start = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls")), 0)
        for ln in lines[start:]:
            if ln.strip():
                out("    " + ln)


# --------------------------------------------------------------------------------------------
# 2. round trips


def bench_round_trips(engine: Engine, url: str, get_player: int, get_ids: list[int],
                      list_players: dict[int, int], turn_player: int, quick: bool) -> None:
    wire = WireCounter(make_url(url).host or "127.0.0.1", make_url(url).port or 5432)
    # LIFO pool: the connection just returned is the one reused, so after the warm-up calls
    # every count below is the steady state of one pooled connection.
    proxied = make_engine(wire.engine_url(url), pool_use_lifo=True,
                          connect_args={"sslmode": "disable", "gssencmode": "disable"})
    listener = StatementCounter(proxied)

    def count(fn: Callable[[], Any], calls: int = 1) -> str:
        for _ in range(3):  # warm: connection, dialect set-up, settings, statement cache
            fn()
        with listener, wire:
            for _ in range(calls):
                fn()
        per = "" if calls == 1 else f" per call, over {calls} calls"
        return f"{columns(calls)}   wire: {wire.describe()}{per}"

    def columns(calls: int) -> str:
        return (f"{listener.total / calls:>7g} {wire.total / calls:>6g} "
                f"{listener.statements / calls:>7g} {wire.statements / calls:>6g}")

    try:
        out(f"  {'':<46} {'round trips':>14} {'statements':>14}")
        out(f"  {'operation':<46} {'SA':>7} {'wire':>6} {'SA':>7} {'wire':>6}")
        world = tr.connect(proxied, player_id=get_player)
        out(f"  {'villages.get (quick call)':<46} "
            + count(lambda: world.villages.get(get_ids[0])))
        holder: dict[str, Any] = {}

        def gets_in_uow() -> None:
            for vid in get_ids:
                holder["uow"].villages.get(vid)

        with world.unit_of_work() as uow:
            holder["uow"] = uow
            uow.villages.get(get_ids[0])
            with listener, wire:
                gets_in_uow()
            out(f"  {'villages.get (inside one unit of work)':<46} {columns(len(get_ids))}   "
                f"wire: {wire.describe()} for {len(get_ids)} calls")
        for size, pid in list_players.items():
            pworld = tr.connect(proxied, player_id=pid)
            out(f"  {f'villages.list_by_player, {size} village(s)':<46} "
                + count(lambda: pworld.villages.list_by_player(pid)))
        tworld = tr.connect(proxied)
        tworld.database.settings  # read once per World; not part of a turn
        turn = npc_turn(tworld, turn_player)  # warm (the build queue holds 2: this and the next)
        with listener, wire:
            turn = npc_turn(tworld, turn_player)
        what = "list + build + train"
        outcome = ", ".join(f"{k} {str(turn[k]).split(':')[0]}" for k in ("build", "train")
                            if turn[k] is not None)
        out(f"  {f'one NPC turn ({what}), one uow':<46} {columns(1)}   "
            f"wire: {wire.describe()}  ({outcome or turn['crash']})")
        out(f"  {'':<46} statements: {listener.describe_statements()}")
    finally:
        proxied.dispose()
        wire.close()
    out("  round trips: SA, cursor executes seen by a before_cursor_execute listener on the engine;")
    out("    wire, Query messages psycopg2 really sent, counted by a TCP proxy in front of the")
    out("    server. Each is one round trip; steady state of a reused pooled connection.")
    out("  statements: the SQL statements those messages carry, split at each ';' outside quotes")
    out("    and parentheses (BEGIN, SAVEPOINT, the outcome key's insert, each lock, each read and")
    out("    each write count one; a CTE is part of its statement). The SA and wire columns agree")
    out("    when nothing reaches the wire behind the listener's back.")

    out()
    raw = psycopg2.connect(**raw_connect_args(url))
    raw.autocommit = True
    out(f"  {'list_by_player (owner view, quick call)':<40} {'villages':>8} {'library ms':>11} "
        f"{'raw ms':>8} {'ratio':>6} {'lib us/village':>15} {'calls':>6}")
    try:
        for size, pid in list_players.items():
            pworld = tr.connect(engine, player_id=pid)
            first = pworld.villages.list_by_player(pid)  # warm
            ok = len(first) == size and all(vl.buildings is not None for vl in first)
            raw_list(raw, pid)
            reps = max(3 if quick else 5, min(100, (200 if not quick else 60) // size))
            lib_t: list[float] = []
            raw_t: list[float] = []
            for _ in range(reps):  # interleaved
                lib_t += timed_calls(lambda p: pworld.villages.list_by_player(p), [pid], 1)
                raw_t += timed_calls(lambda p: raw_list(raw, p), [pid], 1)
            lib_ms = statistics.median(lib_t) * 1000
            raw_ms = statistics.median(raw_t) * 1000
            out(f"  {'player ' + str(pid):<40} {size:>8} {lib_ms:>11.2f} {raw_ms:>8.2f} "
                f"{lib_ms / raw_ms:>5.2f}x {lib_ms * 1000 / size:>15.0f} {reps:>6}"
                f"{'' if ok else '   (UNEXPECTED RESULT)'}")
    finally:
        raw.close()
    out("  (raw: the same query with WHERE player_id, fetched and turned into dicts as in part 1)")


# --------------------------------------------------------------------------------------------
# 3. the tick




def bench_tick(url: str, players: list[int], warm_player: int, workers: int,
               catch_up: bool = True) -> None:
    engine = make_engine(url, pool_size=workers)
    try:
        # Fill the pool: the tick measures the game, not opening connections.
        barrier = threading.Barrier(workers)

        def hold(_: int) -> None:
            with engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
                barrier.wait(timeout=30)

        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(hold, range(workers)))
        warm = npc_turn(tr.connect(engine, catch_up=catch_up), warm_player)  # code paths and statement cache, own metrics
        if warm["crash"]:
            out(f"  warm-up player {warm_player} crashed: {warm['crash']}")

        world = tr.connect(engine, catch_up=catch_up)
        counter = StatementCounter(engine)
        with counter, ThreadPoolExecutor(workers) as pool:
            started, cpu = time.perf_counter(), time.process_time()
            results = list(pool.map(lambda p: npc_turn(world, p), players))
            total, cpu = time.perf_counter() - started, time.process_time() - cpu
        metrics = world.metrics
    finally:
        engine.dispose()

    out(f"  {len(players)} players, thread pool of {workers} workers, pool_size={workers}, "
        f"each player in its own unit_of_work(player_id=p)")
    out("  actions: read own villages + queue_building(lowest field) + military.train(first unit, 1)"
        + ("" if catch_up else "; catch_up=False"))
    out(f"  total                 {total:8.2f} s   ({len(players) / total:.0f} players/s)")
    out(f"  CPU of this process   {cpu:8.2f} s   ({cpu * 1e6 / len(players):.0f} us per player; "
        "the client's own cost, less noisy than wall time on a shared machine)")
    report_turns(results)
    out(f"  statements per player  {counter.statements / len(players):5.2f}   "
        f"[{counter.describe_statements()}]")
    out(f"  round trips per player {counter.total / len(players):5.2f}   [{counter.describe()}]")
    out(f"  world.metrics p95_latency_ms (all operations) {metrics['p95_latency_ms']:.2f} ms, "
        f"avg {metrics['avg_latency_ms']:.2f} ms over {metrics['total_requests']} calls, "
        f"errors {metrics['errors']}, retries {metrics['retries']}")
    for name, op in metrics.get("operations", {}).items():
        out(f"      {name:<28} n={op['requests']:<5} avg {op['avg_latency_ms']:6.2f} ms   "
            f"p95 {op['p95_latency_ms']:6.2f} ms   errors {op['errors']}")


# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_URL,
                        help=f"PostgreSQL URL of the benchmark's own database (default {DEFAULT_URL})")
    parser.add_argument("--no-catch-up", action="store_true",
                        help="tick with connect(catch_up=False), to compare the world catching up")
    parser.add_argument("--quick", action="store_true", help="fewer rounds and calls (< 30 s)")
    parser.add_argument("--workers", type=int, default=16, help="thread pool size for the tick")
    parser.add_argument("--tick-players", type=int, default=TICK_PLAYERS)
    parser.add_argument("--parts", default="1234",
                        help="which parts to run, e.g. 34 (default: all four)")
    parser.add_argument("--profile", action="store_true",
                        help="also print the layered cost breakdown and a cProfile of villages.get")
    args = parser.parse_args(argv)

    url = args.database_url
    rounds, calls = (3, 200) if args.quick else (5, 500)
    run_started = time.perf_counter()
    out("travian_repo SQL benchmark")
    out(f"  database  {make_url(url).render_as_string(hide_password=True)}")
    out(f"  python {sys.version.split()[0]}, SQLAlchemy {__import__('sqlalchemy').__version__}, "
        f"psycopg2 {psycopg2.__version__.split()[0]}, mode {'quick' if args.quick else 'full'}")

    ensure_database(url, who='bench_sql.py')
    tick_players = list(range(1, args.tick_players + 1))
    list_players = {size: args.tick_players + 1 + i for i, size in enumerate(LIST_SIZES)}
    total_players = args.tick_players + len(LIST_SIZES)
    started = time.perf_counter()
    summary = create_world(url, players=total_players, seed=SEED, start="developed",
                           map_radius=MAP_RADIUS, replace=True)
    engine = make_engine(url)
    rng = random.Random(SEED)
    extra = 0
    for size, pid in list_players.items():
        if size > 1:
            extra += len(add_villages(engine, pid, size - 1, rng))
    out(f"  world     {summary.players} players (start=developed, map radius {MAP_RADIUS}, "
        f"seed {SEED}) + {extra} extra villages for players "
        f"{', '.join(f'{p} ({s})' for s, p in list_players.items())}; "
        f"built in {time.perf_counter() - started:.1f} s")
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")

    get_player = list_players[10]
    get_ids = village_ids_of(engine, get_player)
    burst_ids = village_ids_of(engine, list_players[1000])[:TICK_PLAYERS]  # part 4

    if "1" in args.parts:
        out()
        out("1. villages.get: library vs one hand-written psycopg2 query (same data)")
        result = bench_get(engine, url, get_player, get_ids, rounds, calls)
        ratio = report_get(result, rounds, calls, get_ids)
        quick_minus_uow = (statistics.median(result["samples"]["library"])
                           - statistics.median(result["samples"]["uow"])) * 1e6
        if args.profile or ratio > GET_TARGET:
            out()
            out("1b. where the library's get time goes (layers alternated in blocks of 100 "
                "calls, median us per call)")
            breakdown(engine, url, get_player, get_ids, calls if not args.quick else 200,
                      3 if not args.quick else 2, quick_minus_uow)
        if args.profile:
            out()
            profile_get(engine, get_player, get_ids, 2000 if not args.quick else 500)

    if "2" in args.parts:
        out()
        out("2. round trips and statements (what reaches the server)")
        bench_round_trips(engine, url, get_player, get_ids, list_players, list_players[1],
                          args.quick)
    engine.dispose()

    if "3" in args.parts:
        out()
        out(f"3. tick of {len(tick_players)} NPC players on PostgreSQL")
        bench_tick(url, tick_players, list_players[100], args.workers, not args.no_catch_up)

    if "4" in args.parts:
        out()
        out("4. against the original async design: asyncpg, three queries per village")
        async_baseline.compare(url, list_players[1000], burst_ids, raw_get=raw_get,
                               same_data=same_data, rounds=rounds, calls=calls,
                               workers=args.workers)

    out()
    out(f"run took {time.perf_counter() - run_started:.1f} s")


if __name__ == "__main__":
    main()

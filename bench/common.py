"""What the benchmarks share: printing, percentiles, the PostgreSQL bench database, the
field an NPC upgrades next."""

from __future__ import annotations

import sys
import time
import traceback
from collections import Counter
from typing import Any, Sequence

import psycopg2
from psycopg2 import sql as pgsql
from sqlalchemy.engine import make_url

import travian_repo as tr
from travian_repo.rules.buildings import RESOURCE_FIELDS
from travian_repo.rules.units import units_of

DEFAULT_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/travian_bench"


def out(line: str = "") -> None:
    print(line, flush=True)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(round(q / 100.0 * len(ordered) + 0.4999))))
    return ordered[rank - 1]


def raw_connect_args(url: str) -> dict[str, Any]:
    """psycopg2.connect() keyword arguments for a SQLAlchemy URL."""
    return make_url(url).translate_connect_args(username="user", database="dbname")


def ensure_database(url: str, *, who: str) -> None:
    """CREATE DATABASE for the URL's database when it does not exist (PostgreSQL only)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        sys.exit(f"{who} measures PostgreSQL; got {parsed.render_as_string(hide_password=True)}")
    target = parsed.database
    args = raw_connect_args(url)
    last: Exception | None = None
    for maintenance in ("postgres", "template1"):
        try:
            conn = psycopg2.connect(**{**args, "dbname": maintenance})
        except psycopg2.OperationalError as exc:
            last = exc
            continue
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (target,))
                if cur.fetchone() is None:
                    cur.execute(pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(target)))
                    out(f"created database {target!r}")
        finally:
            conn.close()
        return
    sys.exit(f"cannot reach PostgreSQL at {parsed.render_as_string(hide_password=True)}: {last}")


def lowest_field(village: tr.Village) -> str:
    """The resource field an NPC upgrades next (main building when no field is visible)."""
    fields = [b for b in village.buildings or () if b.name in RESOURCE_FIELDS]
    if not fields:
        return "main_building"
    return min(fields, key=lambda b: (b.level, b.slot)).name


def npc_turn(world: tr.World, player_id: int) -> dict[str, Any]:
    """One NPC's turn in one unit of work: read its villages, queue one build, train one unit.

    Game refusals are outcomes, not crashes; any other exception is a crash, reported."""
    result: dict[str, Any] = {"player": player_id, "build": None, "train": None, "crash": None}
    started = time.perf_counter()
    try:
        with world.unit_of_work(player_id=player_id) as uow:
            village = uow.villages.list_by_player(player_id)[0]
            try:
                uow.villages.queue_building(village.id, lowest_field(village))
                result["build"] = "accepted"
            except tr.TravianError as exc:
                result["build"] = f"refused: {type(exc).__name__}: {exc}"
            unit = units_of(village.tribe)[0].name
            try:
                uow.military.train(village.id, {unit: 1})
                result["train"] = "accepted"
            except tr.TravianError as exc:
                result["train"] = f"refused: {type(exc).__name__}: {exc}"
    except Exception as exc:  # noqa: BLE001 - infrastructure failure or a bug
        result["crash"] = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        result["trace"] = traceback.format_exc()
    result["seconds"] = time.perf_counter() - started
    return result


def report_turns(results: Sequence[dict[str, Any]]) -> None:
    """Per-player time percentiles, what the game accepted or refused, and any crashes."""
    seconds = [r["seconds"] for r in results]
    crashes = [r for r in results if r["crash"]]
    out(f"  per player  p50       {percentile(seconds, 50) * 1000:8.1f} ms")
    out(f"  per player  p95       {percentile(seconds, 95) * 1000:8.1f} ms")
    out(f"  per player  max       {max(seconds) * 1000:8.1f} ms")
    for action in ("build", "train"):
        outcomes = [r[action] for r in results if r[action] is not None]
        accepted = sum(1 for o in outcomes if o == "accepted")
        refused = [o for o in outcomes if o != "accepted"]
        out(f"  {action:<6} accepted {accepted:4d}   refused {len(refused):4d}")
        for reason, n in Counter(refused).most_common(3):
            out(f"         {n} x {reason[:110]}")
    out(f"  crashes {len(crashes)}")
    for r in crashes[:3]:
        out(f"    player {r['player']}: {r['crash'][:200]}")
    if crashes:
        out("    first traceback:\n"
            + "\n".join("      " + ln for ln in crashes[0]["trace"].splitlines()))

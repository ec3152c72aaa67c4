"""World generation: the schema, a map of players' villages, deterministic for a seed."""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Sequence

from sqlalchemy import Connection, Engine, inspect, select, text

from travian_repo.domain.errors import Conflict, InvalidRequest
from travian_repo.domain.validators import is_int
from travian_repo.rules import units
from travian_repo.rules.village import village_economy
from travian_repo.rules.placement import RALLY_POINT_SLOT
from travian_repo.sql import schema, tokens as api_tokens
from travian_repo.sql.database import make_engine, prepare_sqlite, read_settings
from travian_repo.sql.engines import check_sqlite_file
from travian_repo.sql.migrate import stamp_head

# The classic 4-4-4-6 village: slot -> field (Travian's field ids 1..18).
STANDARD_FIELDS: tuple[str, ...] = (
    "woodcutter", "cropland", "woodcutter", "iron_mine", "clay_pit", "clay_pit",
    "iron_mine", "cropland", "cropland", "iron_mine", "iron_mine", "cropland",
    "cropland", "woodcutter", "cropland", "clay_pit", "woodcutter", "clay_pit",
)
MAIN_BUILDING_SLOT = 26  # where Travian places a new village's main building
STARTING_STOCK = 750

# A "developed" start for demos and tests: enough to train, scout, trade and found an alliance.
DEVELOPED_BUILDINGS: tuple[tuple[int, str, int], ...] = (
    (19, "warehouse", 5),
    (20, "granary", 5),
    (21, "barracks", 3),
    (22, "academy", 5),
    (23, "smithy", 3),
    (24, "stable", 1),
    (25, "marketplace", 5),
    (26, "main_building", 5),
    (27, "embassy", 3),
    (28, "cranny", 3),
    (RALLY_POINT_SLOT, "rally_point", 1),
)
DEVELOPED_FIELD_LEVEL = 3
DEVELOPED_CROPLAND_LEVEL = 5  # enough wheat to feed the buildings and the starting troops
DEVELOPED_STOCK = 4000  # the developed warehouse (level 5) holds 4000

_NAME_PARTS = (
    ("Al", "Bor", "Cas", "Dru", "El", "Fen", "Gar", "Hal", "Ith", "Jor", "Kal", "Lor", "Mar",
     "Nor", "Os", "Per", "Quin", "Ral", "Sig", "Tor", "Ul", "Var", "Wil", "Yr", "Zan"),
    ("aric", "wen", "ius", "gar", "mund", "ric", "wyn", "ard", "os", "ia", "bert", "dis", "olf"),
)


@dataclass(frozen=True)
class WorldSummary:
    url: str
    world_id: str
    seed: int
    players: int
    villages: int
    seconds: float
    tokens: dict[int, str] = field(repr=False)


def create_world(
    url: str | Engine,
    *,
    players: int = 12,
    seed: int = 1,
    speed: int = 1,
    map_radius: int = 200,
    world_id: str = "default",
    tribes: Sequence[str] = units.TRIBES,
    start: str = "standard",
    instant_builds: bool = False,
    build_queue_limit: int = 2,
    tournament_square_bonus_percent: int = 20,
    morale: bool = True,
    replace: bool = False,
    now: datetime | None = None,
) -> WorldSummary:
    """Create the schema and fill a world; the same seed gives the same world.

    ``start``: "standard" (18 fields at level 0, main building 1, 750 of each resource) or
    "developed" (fields at 3, barracks, academy, stable, marketplace, embassy ..., some troops).
    ``morale``: whether battles weigh the defender's population against the attacker's.
    """
    _check_args(players, seed, speed, map_radius, tribes, start, world_id)
    if not isinstance(morale, bool):
        raise InvalidRequest(f"morale must be True or False, got {morale!r}")
    started = time.perf_counter()
    engine = make_engine(url) if isinstance(url, str) else url
    if engine.dialect.name == "sqlite":
        prepare_sqlite(engine)
    now = now or datetime.now(timezone.utc)
    try:
        level = "SERIALIZABLE" if engine.dialect.name == "sqlite" else "READ COMMITTED"
        with engine.connect().execution_options(isolation_level=level) as conn, conn.begin():
            _prepare_schema(conn, replace)
            conn.execute(
                schema.world_settings.insert().values(
                    id=1,
                    world_id=world_id,
                    world_uid=uuid.uuid4().hex,
                    schema_version=schema.SCHEMA_VERSION,
                    speed=speed,
                    map_radius=map_radius,
                    tournament_square_bonus_percent=tournament_square_bonus_percent,
                    build_queue_limit=build_queue_limit,
                    instant_builds=instant_builds,
                    morale=morale,
                    created_at=now,
                )
            )
            tokens = _fill(conn, random.Random(seed), players, tribes, start, speed, map_radius, now)
            _advance_sequences(conn)
        shown = engine.url.render_as_string(hide_password=True)
    finally:
        if isinstance(url, str):
            engine.dispose()
    return WorldSummary(
        url=shown,
        world_id=world_id,
        seed=seed,
        players=players,
        villages=players,
        seconds=time.perf_counter() - started,
        tokens=tokens,
    )


def player_tokens(url: str | Engine, *, now: datetime | None = None) -> dict[int, str]:
    """Player id -> a freshly minted API token, for every player of a sandbox world.

    The world keeps only hashes of its tokens, so they cannot be read back: each call
    issues new ones, and the tokens issued before (by create_world or an earlier call)
    stop working.
    """
    if isinstance(url, str):
        check_sqlite_file(url)  # a missing file: say so, and create none
    engine = make_engine(url) if isinstance(url, str) else url
    now = now or datetime.now(timezone.utc)
    try:
        read_settings(engine)  # SchemaMismatch when this is not a world (or an old one)
        with engine.connect() as base:
            conn = base.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql("BEGIN IMMEDIATE" if engine.dialect.name == "sqlite" else "BEGIN")
            try:
                ids = conn.execute(
                    select(schema.players.c.id).order_by(schema.players.c.id)
                ).scalars().all()
                minted = api_tokens.mint(conn, [int(pid) for pid in ids], now)
                conn.exec_driver_sql("COMMIT")
            except BaseException:
                conn.exec_driver_sql("ROLLBACK")
                raise
        return minted
    finally:
        if isinstance(url, str):
            engine.dispose()


def _check_args(
    players: int, seed: int, speed: int, map_radius: int, tribes: Sequence[str], start: str,
    world_id: str,
) -> None:
    def whole(value: Any, name: str, low: int, high: int) -> None:
        if not is_int(value) or not low <= value <= high:
            raise InvalidRequest(f"{name} must be an integer from {low} to {high}, got {value!r}")

    whole(players, "players", 1, 100_000)
    whole(seed, "seed", -(2**63), 2**63 - 1)
    whole(speed, "speed", 1, 1000)
    whole(map_radius, "map_radius", 10, 400)
    if players > (2 * map_radius + 1) ** 2 // 4:
        raise InvalidRequest(f"{players} players do not fit on a map of radius {map_radius}")
    if not tribes or any(t not in units.PLAYABLE_TRIBES for t in tribes):
        raise InvalidRequest(f"tribes must be among {', '.join(units.PLAYABLE_TRIBES)}")
    if start not in ("standard", "developed"):
        raise InvalidRequest("start must be 'standard' or 'developed'")
    if not isinstance(world_id, str) or not 1 <= len(world_id) <= 64:
        raise InvalidRequest("world_id must be 1 to 64 characters")


def _prepare_schema(conn: Connection, replace: bool) -> None:
    tables = set(inspect(conn).get_table_names())
    existing = "world_settings" in tables
    taken = sorted(tables & (set(schema.metadata.tables) | {"alembic_version"}))
    if taken and not existing:
        # Not a world: those tables are someone else's data, never dropped nor mixed with.
        raise Conflict(
            f"the database is not a travian_repo world but has tables of the same names "
            f"({', '.join(taken)}); nothing was changed: use an empty database or file",
            details={"tables": taken})
    if existing and not replace:
        raise Conflict("the database already holds a world; pass replace=True to start over")
    if existing or replace:
        schema.metadata.drop_all(conn)
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    schema.metadata.create_all(conn)
    stamp_head(conn)


def _fill(
    conn: Connection,
    rng: random.Random,
    count: int,
    tribes: Sequence[str],
    start: str,
    speed: int,
    radius: int,
    now: datetime,
) -> dict[int, str]:
    developed = start == "developed"
    spots = _spots(rng, count, radius)
    names = _names(rng, count)
    player_rows: list[dict[str, Any]] = []
    village_rows: list[dict[str, Any]] = []
    resource_rows: list[dict[str, Any]] = []
    building_rows: list[dict[str, Any]] = []
    troop_rows: list[dict[str, Any]] = []
    token_rows: list[dict[str, Any]] = []
    tokens: dict[int, str] = {}
    for index in range(count):
        pid = vid = index + 1
        tribe = tribes[index % len(tribes)]
        built = [(slot, name, _developed_level(name) if developed else 0)
                 for slot, name in enumerate(STANDARD_FIELDS, start=1)]
        built += list(DEVELOPED_BUILDINGS) if developed else [(MAIN_BUILDING_SLOT, "main_building", 1)]
        home_troops = _starting_troops(tribe) if developed else {}
        econ = village_economy(
            ((name, level) for _, name, level in built),
            troop_upkeep=units.upkeep(tribe, home_troops),
            server_speed=speed,
        )
        stock = min(DEVELOPED_STOCK if developed else STARTING_STOCK, econ.warehouse_capacity)
        x, y = spots[index]
        player_rows.append(dict(id=pid, username=names[index], tribe=tribe, rank=index + 1,
                                population=econ.population, alliance_id=None, created_at=now))
        village_rows.append(dict(id=vid, name=f"{names[index]}'s village", player_id=pid, x=x, y=y,
                                 population=econ.population, is_capital=True, created_at=now))
        resource_rows.append(dict(
            village_id=vid, wood=stock, clay=stock, iron=stock,
            wheat=min(stock, econ.granary_capacity),
            wood_production=econ.production.wood, clay_production=econ.production.clay,
            iron_production=econ.production.iron, wheat_production=econ.production.wheat,
            warehouse_capacity=econ.warehouse_capacity, granary_capacity=econ.granary_capacity,
            updated_at=now,
        ))
        building_rows += [dict(village_id=vid, slot=slot, building_name=name, level=level)
                          for slot, name, level in built]
        troop_rows += [dict(village_id=vid, unit=unit, count=n) for unit, n in home_troops.items()]
        tokens[pid] = api_tokens.new_token()
        token_rows.append(api_tokens.token_row(pid, tokens[pid], now))
    for table, rows in (
        (schema.players, player_rows),
        (schema.villages, village_rows),
        (schema.village_resources, resource_rows),
        (schema.village_buildings, building_rows),
        (schema.troops, troop_rows),
        (schema.api_tokens, token_rows),
    ):
        if rows:
            conn.execute(table.insert(), rows)
    return tokens


def _developed_level(field: str) -> int:
    return DEVELOPED_CROPLAND_LEVEL if field == "cropland" else DEVELOPED_FIELD_LEVEL


def _starting_troops(tribe: str) -> dict[str, int]:
    first = units.units_of(tribe)[0].name
    return {first: 20, units.scout_unit(tribe).name: 5}


def _spots(rng: random.Random, count: int, radius: int) -> list[tuple[int, int]]:
    """Distinct spots, spread out from the middle as a real world fills up."""
    taken: set[tuple[int, int]] = set()
    spots: list[tuple[int, int]] = []
    spread = max(5, int((count * 4) ** 0.5))
    while len(spots) < count:
        reach = min(radius, spread)
        spot = (rng.randint(-reach, reach), rng.randint(-reach, reach))
        if spot not in taken:
            taken.add(spot)
            spots.append(spot)
        elif len(taken) > (2 * reach + 1) ** 2 // 2:
            spread += 5
    return spots


def _names(rng: random.Random, count: int) -> list[str]:
    first, last = _NAME_PARTS
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < count:
        name = rng.choice(first) + rng.choice(last)
        if name in seen:
            name = f"{name}{len(names) + 1}"
        seen.add(name)
        names.append(name)
    return names


def _advance_sequences(conn: Connection) -> None:
    """Explicit ids were inserted; PostgreSQL's sequences must start after them."""
    if conn.dialect.name != "postgresql":
        return
    for table in schema.metadata.sorted_tables:
        pk = list(table.primary_key.columns)
        if len(pk) == 1 and pk[0].autoincrement is not False and pk[0].name == "id" and table.name != "world_settings":
            conn.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                    f"coalesce((SELECT max(id) FROM {table.name}), 0) + 1, false)"
                )
            )

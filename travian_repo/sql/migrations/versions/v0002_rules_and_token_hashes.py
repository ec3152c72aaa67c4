"""Schema version 2: the rules that say "one" as constraints; API tokens stored as hashes.

- build_queue: one order per queue position of a village, one per slot and target level
  (these replace the plain index on village and position); positions and levels from 1,
  costs not negative.
- villages: one capital per player.
- CHECKs: stock, levels, costs, loot, goods and offers are never negative; a training line
  has trained between 0 and its count.
- api_tokens: the column ``token`` becomes ``token_hash`` and holds SHA-256 hex of the
  token, so the tokens handed out before keep working.

Rows that break a new rule stop the upgrade with a Conflict naming them, before anything
is changed (and everything runs in one transaction besides).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

from travian_repo.domain.errors import Conflict

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

VERSION = 2
NOT_NEGATIVE = "wood >= 0 AND clay >= 0 AND iron >= 0 AND wheat >= 0"

# table -> [(constraint name, condition)], and the column that names a breaking row.
CHECKS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "village_resources": ("village_id", [
        ("ck_village_resources_stock_not_negative", NOT_NEGATIVE),
    ]),
    "village_buildings": ("village_id", [
        ("ck_village_buildings_level_not_negative", "level >= 0"),
    ]),
    "build_queue": ("id", [
        ("ck_build_queue_position_and_level", "queue_position >= 1 AND target_level >= 1"),
        ("ck_build_queue_cost_not_negative", NOT_NEGATIVE),
    ]),
    "training_queue": ("id", [
        ("ck_training_queue_trained_of_count", "count > 0 AND trained >= 0 AND trained <= count"),
    ]),
    "movements": ("id", [
        ("ck_movements_loot_not_negative", NOT_NEGATIVE),
    ]),
    "trade_offers": ("id", [
        ("ck_trade_offers_amounts_positive",
         "offer_amount > 0 AND request_amount > 0 AND merchants >= 0"),
    ]),
    "shipments": ("id", [
        ("ck_shipments_goods_not_negative", NOT_NEGATIVE + " AND merchants >= 0"),
    ]),
}

DUPLICATES: list[tuple[str, str]] = [
    ("build orders sharing a queue position",
     "SELECT village_id, queue_position, count(*) AS orders FROM build_queue "
     "GROUP BY village_id, queue_position HAVING count(*) > 1"),
    ("build orders for the same slot and target level",
     "SELECT village_id, slot, target_level, count(*) AS orders FROM build_queue "
     "GROUP BY village_id, slot, target_level HAVING count(*) > 1"),
    ("players with more than one capital",
     "SELECT player_id, count(*) AS capitals FROM villages WHERE is_capital "
     "GROUP BY player_id HAVING count(*) > 1"),
]

SHOWN = 5


def upgrade() -> None:
    conn = op.get_bind()
    _refuse_breaking_rows(conn)

    with op.batch_alter_table("build_queue") as batch:
        batch.drop_index("ix_build_queue_village")
        batch.create_unique_constraint(
            "uq_build_queue_position", ["village_id", "queue_position"]
        )
        batch.create_unique_constraint(
            "uq_build_queue_slot_level", ["village_id", "slot", "target_level"]
        )
        for name, condition in CHECKS["build_queue"][1]:
            batch.create_check_constraint(name, condition)
    for table, (_, checks) in CHECKS.items():
        if table == "build_queue":
            continue
        with op.batch_alter_table(table) as batch:
            for name, condition in checks:
                batch.create_check_constraint(name, condition)

    op.create_index(
        "uq_villages_capital", "villages", ["player_id"], unique=True,
        postgresql_where=sa.text("is_capital"), sqlite_where=sa.text("is_capital"),
    )

    tokens = conn.execute(sa.text("SELECT player_id, token FROM api_tokens")).all()
    with op.batch_alter_table("api_tokens") as batch:
        batch.alter_column("token", new_column_name="token_hash",
                           existing_type=sa.String(64), existing_nullable=False)
    for player_id, token in tokens:
        conn.execute(
            sa.text("UPDATE api_tokens SET token_hash = :hashed WHERE player_id = :player_id"),
            {"hashed": hashlib.sha256(token.encode("utf-8")).hexdigest(), "player_id": player_id},
        )

    conn.execute(sa.text("UPDATE world_settings SET schema_version = :v"), {"v": VERSION})


def downgrade() -> None:
    raise NotImplementedError(
        "schema version 2 keeps API tokens only as hashes; version 1 cannot get them back"
    )


def _refuse_breaking_rows(conn: sa.Connection) -> None:
    problems: list[str] = []
    for what, query in DUPLICATES:
        _collect(conn, what, query, problems)
    for table, (key, checks) in CHECKS.items():
        for name, condition in checks:
            _collect(
                conn, f"{table} rows breaking {condition!r}",
                f"SELECT {key} FROM {table} WHERE NOT ({condition}) ORDER BY {key}", problems,
            )
    if problems:
        raise Conflict(
            f"this world cannot be upgraded to schema version {VERSION}: its data breaks "
            f"rules the new version enforces: {'; '.join(problems)}. Nothing was changed; "
            "fix or delete those rows, then run the upgrade again.",
            details={"problems": problems},
        )


def _collect(conn: sa.Connection, what: str, query: str, problems: list[str]) -> None:
    rows = conn.execute(sa.text(query)).mappings().all()
    if not rows:
        return
    shown = ", ".join(
        "(" + " ".join(f"{k}={v}" for k, v in row.items()) + ")" for row in rows[:SHOWN]
    )
    more = f" and {len(rows) - SHOWN} more" if len(rows) > SHOWN else ""
    problems.append(f"{len(rows)} {what}: {shown}{more}")

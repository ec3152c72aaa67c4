"""The world database: the game's original tables and columns, plus what the operations need.

Portable between PostgreSQL and SQLite (SQLAlchemy Core). Times are stored as UTC; on SQLite,
where the column has no zone, ``UTCDateTime`` puts it back on read.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
    true,
)
from sqlalchemy.types import TypeDecorator

# Bump when a table or column changes, with a migration in sql/migrations/versions/ that
# brings a world of the previous version here; a world with another version raises
# SchemaMismatch (an older one says how to upgrade it).
SCHEMA_VERSION = 4


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; the library works in aware UTC")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


def as_utc(value: datetime | str) -> datetime:
    """A stored time (a datetime, or ISO text from SQLite or from JSON) as aware UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


# Integer ids; BigInteger on PostgreSQL, INTEGER (rowid alias) on SQLite.
Id = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

world_settings = Table(
    "world_settings",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("world_id", String(64), nullable=False),
    # The world's identity (a random hex id made with it): two worlds both named "default"
    # are told apart by it.
    Column("world_uid", String(32), nullable=False),
    Column("schema_version", Integer, nullable=False),
    Column("speed", Integer, nullable=False, default=1),
    Column("map_radius", Integer, nullable=False, default=200),
    # Disputed value made a setting: +20 %/level (official) or +10 %/level (classic).
    Column("tournament_square_bonus_percent", Integer, nullable=False, default=20),
    Column("build_queue_limit", Integer, nullable=False, default=2),
    Column("instant_builds", Boolean, nullable=False, default=False),
    # Morale in battles (the defender's population against the attacker's).
    Column("morale", Boolean, nullable=False, default=True, server_default=true()),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint("id = 1", name="single_row"),
)

alliances = Table(
    "alliances",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(50), nullable=False, unique=True),
    Column("tag", String(8), nullable=False, unique=True),
    Column("founder_id", Id, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

players = Table(
    "players",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("username", String(50), nullable=False, unique=True),
    Column("tribe", String(16), nullable=False),
    Column("rank", Integer, nullable=False, default=0),
    Column("population", Integer, nullable=False, default=0),
    Column("alliance_id", Id, ForeignKey("alliances.id"), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
)

villages = Table(
    "villages",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(50), nullable=False),
    Column("player_id", Id, ForeignKey("players.id"), nullable=False, index=True),
    Column("x", Integer, nullable=False),
    Column("y", Integer, nullable=False),
    Column("population", Integer, nullable=False, default=0),
    Column("is_capital", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("x", "y", name="xy"),
    # A player has one capital.
    Index(
        "uq_villages_capital",
        "player_id",
        unique=True,
        postgresql_where=text("is_capital"),
        sqlite_where=text("is_capital"),
    ),
)

# Stock is stored as floats brought up to ``updated_at``; production and capacities are
# derived from buildings and troops by the rules and kept here so a read is one row.
village_resources = Table(
    "village_resources",
    metadata,
    Column("village_id", Id, ForeignKey("villages.id"), primary_key=True),
    Column("wood", Float, nullable=False),
    Column("clay", Float, nullable=False),
    Column("iron", Float, nullable=False),
    Column("wheat", Float, nullable=False),
    Column("wood_production", Integer, nullable=False),
    Column("clay_production", Integer, nullable=False),
    Column("iron_production", Integer, nullable=False),
    Column("wheat_production", Integer, nullable=False),
    Column("warehouse_capacity", Integer, nullable=False),
    Column("granary_capacity", Integer, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    CheckConstraint(
        "wood >= 0 AND clay >= 0 AND iron >= 0 AND wheat >= 0", name="stock_not_negative"
    ),
)

village_buildings = Table(
    "village_buildings",
    metadata,
    Column("village_id", Id, ForeignKey("villages.id"), primary_key=True),
    Column("slot", Integer, primary_key=True),
    Column("building_name", String(32), nullable=False),
    Column("level", Integer, nullable=False),
    CheckConstraint("level >= 0", name="level_not_negative"),
)

build_queue = Table(
    "build_queue",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("village_id", Id, ForeignKey("villages.id"), nullable=False),
    Column("queue_position", Integer, nullable=False),
    Column("slot", Integer, nullable=False),
    Column("building_name", String(32), nullable=False),
    Column("target_level", Integer, nullable=False),
    Column("wood", Integer, nullable=False),
    Column("clay", Integer, nullable=False),
    Column("iron", Integer, nullable=False),
    Column("wheat", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("completes_at", UTCDateTime, nullable=False),
    # One order per queue position of a village, and one order per slot and target level.
    # Both databases check these row by row, so the queue closes up one row at a time into
    # freed positions (sql.village_writes.close_up_queue), never through a duplicate.
    UniqueConstraint("village_id", "queue_position", name="uq_build_queue_position"),
    UniqueConstraint("village_id", "slot", "target_level", name="uq_build_queue_slot_level"),
    CheckConstraint("queue_position >= 1 AND target_level >= 1", name="position_and_level"),
    CheckConstraint(
        "wood >= 0 AND clay >= 0 AND iron >= 0 AND wheat >= 0", name="cost_not_negative"
    ),
)

# Troops at home, owned by the village they stand in.
troops = Table(
    "troops",
    metadata,
    Column("village_id", Id, ForeignKey("villages.id"), primary_key=True),
    Column("unit", String(32), primary_key=True),
    Column("count", Integer, nullable=False),
    CheckConstraint("count >= 0", name="count_not_negative"),
)

training_orders = Table(
    "training_orders",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("village_id", Id, ForeignKey("villages.id"), nullable=False, index=True),
    Column("wood", Integer, nullable=False),
    Column("clay", Integer, nullable=False),
    Column("iron", Integer, nullable=False),
    Column("wheat", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# One line per unit type of an order; each training building works through its lines in turn.
training_queue = Table(
    "training_queue",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("order_id", Id, ForeignKey("training_orders.id"), nullable=False, index=True),
    Column("village_id", Id, ForeignKey("villages.id"), nullable=False),
    Column("unit", String(32), nullable=False),
    Column("count", Integer, nullable=False),
    Column("trained", Integer, nullable=False, default=0),
    Column("building_name", String(32), nullable=False),
    Column("seconds_each", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("completes_at", UTCDateTime, nullable=False),
    Index("ix_training_queue_village", "village_id", "building_name", "completes_at"),
    CheckConstraint("count > 0 AND trained >= 0 AND trained <= count", name="trained_of_count"),
)

# kind: attack, raid, siege, reinforcement, scout, return. state: underway, stationed, done.
movements = Table(
    "movements",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("player_id", Id, ForeignKey("players.id"), nullable=False),
    Column("from_village_id", Id, ForeignKey("villages.id"), nullable=False),
    Column("to_village_id", Id, ForeignKey("villages.id"), nullable=False),
    Column("troops", JSON, nullable=False),
    Column("wood", Integer, nullable=False, default=0),
    Column("clay", Integer, nullable=False, default=0),
    Column("iron", Integer, nullable=False, default=0),
    Column("wheat", Integer, nullable=False, default=0),
    Column("catapult_target", String(32), nullable=True),
    Column("state", String(16), nullable=False, default="underway"),
    Column("departed_at", UTCDateTime, nullable=False),
    Column("arrives_at", UTCDateTime, nullable=False),
    Index("ix_movements_from", "from_village_id", "state"),
    Index("ix_movements_to", "to_village_id", "state"),
    Index("ix_movements_due", "state", "arrives_at"),
    CheckConstraint(
        "wood >= 0 AND clay >= 0 AND iron >= 0 AND wheat >= 0", name="loot_not_negative"
    ),
)

# state: open, accepted, cancelled. Offered resources and merchants are held while open.
trade_offers = Table(
    "trade_offers",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("village_id", Id, ForeignKey("villages.id"), nullable=False, index=True),
    Column("player_id", Id, ForeignKey("players.id"), nullable=False),
    Column("offer_resource", String(8), nullable=False),
    Column("offer_amount", Integer, nullable=False),
    Column("request_resource", String(8), nullable=False),
    Column("request_amount", Integer, nullable=False),
    Column("merchants", Integer, nullable=False),
    Column("state", String(16), nullable=False, default="open"),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_trade_offers_state", "state", "created_at"),
    CheckConstraint(
        "offer_amount > 0 AND request_amount > 0 AND merchants >= 0", name="amounts_positive"
    ),
)

# state: underway (to the target), returning (merchants coming home), done.
shipments = Table(
    "shipments",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("from_village_id", Id, ForeignKey("villages.id"), nullable=False),
    Column("to_village_id", Id, ForeignKey("villages.id"), nullable=False),
    Column("wood", Integer, nullable=False),
    Column("clay", Integer, nullable=False),
    Column("iron", Integer, nullable=False),
    Column("wheat", Integer, nullable=False),
    Column("merchants", Integer, nullable=False),
    Column("state", String(16), nullable=False, default="underway"),
    Column("departed_at", UTCDateTime, nullable=False),
    Column("arrives_at", UTCDateTime, nullable=False),
    Column("returns_at", UTCDateTime, nullable=False),
    Index("ix_shipments_from", "from_village_id", "state"),
    Index("ix_shipments_to", "to_village_id", "state"),
    CheckConstraint(
        "wood >= 0 AND clay >= 0 AND iron >= 0 AND wheat >= 0 AND merchants >= 0",
        name="goods_not_negative",
    ),
)

messages = Table(
    "messages",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("from_player_id", Id, ForeignKey("players.id"), nullable=False),
    Column("to_player_id", Id, ForeignKey("players.id"), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Column("sent_at", UTCDateTime, nullable=False),
    Column("read_at", UTCDateTime, nullable=True),
    Index("ix_messages_to", "to_player_id", "sent_at"),
)

reports = Table(
    "reports",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("player_id", Id, ForeignKey("players.id"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("village_id", Id, ForeignKey("villages.id"), nullable=True),
    Column("payload", JSON, nullable=False),
    Column("read", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_reports_player", "player_id", "kind", "created_at"),
)

alliance_invitations = Table(
    "alliance_invitations",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("alliance_id", Id, ForeignKey("alliances.id"), nullable=False),
    Column("player_id", Id, ForeignKey("players.id"), nullable=False),
    Column("invited_by", Id, ForeignKey("players.id"), nullable=False),
    Column("status", String(16), nullable=False, default="pending"),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("alliance_id", "player_id", name="alliance_player"),
)

# The sandbox server's bearer tokens, stored as hashes (sql/tokens.py): one per player.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("player_id", Id, ForeignKey("players.id"), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
)

# The server's idempotency store: the same key replays the first answer.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("player_id", Id, primary_key=True),
    Column("key", String(128), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("response_body", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
)

__all__ = [
    "SCHEMA_VERSION",
    "UTCDateTime",
    "as_utc",
    "alliance_invitations",
    "alliances",
    "api_tokens",
    "build_queue",
    "idempotency_keys",
    "messages",
    "metadata",
    "movements",
    "players",
    "reports",
    "shipments",
    "trade_offers",
    "training_orders",
    "training_queue",
    "troops",
    "village_buildings",
    "village_resources",
    "villages",
    "world_settings",
]

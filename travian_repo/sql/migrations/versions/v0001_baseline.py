"""Schema version 1: the world as create_world made it before migrations existed.

Such a world has no alembic_version table; the upgrade stamps it with this revision (read
from world_settings.schema_version) and goes on from here. There is nothing to create:
worlds are made by create_world at the newest version, never by replaying migrations.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

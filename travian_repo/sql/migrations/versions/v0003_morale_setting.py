"""Schema version 3: morale in battles is a world setting.

- world_settings.morale: whether the engine's battles weigh the defender's population
  against the attacker's (Travian 4 morale). Worlds upgraded get it on, like new ones.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

VERSION = 3


def upgrade() -> None:
    with op.batch_alter_table("world_settings") as batch:
        batch.add_column(sa.Column("morale", sa.Boolean(), nullable=False,
                                   server_default=sa.true()))
    op.get_bind().execute(sa.text("UPDATE world_settings SET schema_version = :v"),
                          {"v": VERSION})


def downgrade() -> None:
    with op.batch_alter_table("world_settings") as batch:
        batch.drop_column("morale")
    op.get_bind().execute(sa.text("UPDATE world_settings SET schema_version = 2"))

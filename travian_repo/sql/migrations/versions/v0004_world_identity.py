"""Schema version 4: a world's identity, ``world_settings.world_uid`` (random hex).

Worlds are often all called "default"; the identity tells two of them apart, so a client
reading one world's database and writing through another world's API is refused. An
upgraded world gets a fresh identity.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

VERSION = 4


def upgrade() -> None:
    conn = op.get_bind()
    with op.batch_alter_table("world_settings") as batch:
        batch.add_column(sa.Column("world_uid", sa.String(32), nullable=True))
    conn.execute(sa.text("UPDATE world_settings SET world_uid = :uid"), {"uid": uuid.uuid4().hex})
    with op.batch_alter_table("world_settings") as batch:
        batch.alter_column("world_uid", existing_type=sa.String(32), nullable=False)
    conn.execute(sa.text("UPDATE world_settings SET schema_version = :v"), {"v": VERSION})


def downgrade() -> None:
    with op.batch_alter_table("world_settings") as batch:
        batch.drop_column("world_uid")
    op.get_bind().execute(sa.text("UPDATE world_settings SET schema_version = 3"))

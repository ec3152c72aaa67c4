"""Alembic's environment for world databases.

The migrations run on a connection handed over by ``travian_repo.sql.migrate`` (which opens
the one transaction they all run in, so a failed upgrade leaves the world as it was).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from travian_repo.sql import schema

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError(
        "world migrations run through `travian-repo upgrade-world --database-url URL` "
        "(or travian_repo.sandbox.upgrade_world(url)), which hands them a connection"
    )
context.configure(
    connection=connection,
    target_metadata=schema.metadata,
    render_as_batch=True,  # SQLite alters a table by copying it
)
with context.begin_transaction():
    context.run_migrations()

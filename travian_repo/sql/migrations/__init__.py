"""The world database's migrations (Alembic): env.py and one revision per schema version."""

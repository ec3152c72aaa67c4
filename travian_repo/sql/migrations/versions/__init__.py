"""One revision per schema version; see sql/migrate.py for how they are run."""

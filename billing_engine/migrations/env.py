"""Alembic environment of the engine's migrations."""

from billing_core.migrations import run_environment
from billing_engine.db.migrate import MIGRATION_LOCK_KEY

run_environment(version_table="alembic_version", lock_key=MIGRATION_LOCK_KEY)

"""Alembic environment of the alerts process: its own version table in the shared database."""

from alerts.store.migrate import MIGRATION_LOCK_KEY, VERSION_TABLE
from billing_core.migrations import run_environment

run_environment(version_table=VERSION_TABLE, lock_key=MIGRATION_LOCK_KEY)

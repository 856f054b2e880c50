"""The alerts process' Alembic history (alerts/migrations, version table
`alerts_alembic_version`), run by billing_core's migrations runner."""

from __future__ import annotations

from pathlib import Path

from billing_core.migrations import MigrationHistory

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
VERSION_TABLE = "alerts_alembic_version"
# Replicas starting together migrate one at a time (the engine's migrations use 8006001).
MIGRATION_LOCK_KEY = 8007002
HISTORY = MigrationHistory(MIGRATIONS_DIR, version_table=VERSION_TABLE)


def migrate(url: str, revision: str = "head") -> None:
    HISTORY.upgrade(url, revision)


def downgrade(url: str, revision: str) -> None:
    HISTORY.downgrade(url, revision)


def go_to(url: str, revision: str) -> None:
    """Upgrade or downgrade to a revision ('head', an id, '-1', 'base')."""
    HISTORY.go_to(url, revision)


def schema_version(url: str) -> str | None:
    """The alerts schema revision the database is at, or None before the first migration."""
    return HISTORY.current(url)


def head_revision() -> str:
    return HISTORY.head()

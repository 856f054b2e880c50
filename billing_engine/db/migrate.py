"""The engine's migration history (version table `alembic_version`), applied from code."""

from __future__ import annotations

from pathlib import Path

from billing_core.migrations import MigrationHistory

ENGINE_MIGRATIONS = MigrationHistory(Path(__file__).resolve().parent.parent / "migrations")
# Replicas starting together migrate one at a time (the alerts process uses 8007002).
MIGRATION_LOCK_KEY = 8006001


def migrate(url: str, revision: str = "head") -> None:
    ENGINE_MIGRATIONS.upgrade(url, revision)


def migrate_to(url: str, revision: str) -> None:
    """Upgrade or downgrade to a revision ('head', '0001', '-1', 'base')."""
    ENGINE_MIGRATIONS.go_to(url, revision)


def schema_version(url: str) -> str | None:
    return ENGINE_MIGRATIONS.current(url)


def head_revision() -> str:
    return ENGINE_MIGRATIONS.head()

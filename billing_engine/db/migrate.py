"""Apply Alembic migrations programmatically, so the package works from any directory."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from billing_engine.db.database import normalise_url

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Alembic's config is ConfigParser-backed: escape % in passwords.
    config.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return config


def migrate(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def migrate_to(url: str, revision: str) -> None:
    """Upgrade or downgrade to a revision ('head', '0001', '-1', 'base')."""
    from alembic.script import ScriptDirectory

    config = alembic_config(url)
    current = schema_version(url)
    script = ScriptDirectory.from_config(config)
    if revision in {"head", "heads"}:
        command.upgrade(config, revision)
        return
    if revision.startswith("-") or revision == "base":
        command.downgrade(config, revision)
        return
    target = script.get_revision(revision)
    if target is None:
        raise ValueError(f"unknown revision {revision!r}")
    ancestors = (
        {r.revision for r in script.iterate_revisions(current, "base")} if current else set()
    )
    if revision in ancestors:
        command.downgrade(config, revision)
    else:
        command.upgrade(config, revision)


def schema_version(url: str) -> str | None:
    """The revision the database is at, or None before the first migration."""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine, pool

    engine = create_engine(normalise_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head

"""Alembic, driven from code, for both processes' migration histories.

The engine and the alerts process share one database, each with its own history and version
table. `MigrationHistory` upgrades, downgrades and reports one of them without an alembic.ini,
so the CLIs work from any directory; `run_environment` is the body of each history's env.py.
Replicas that start together migrate one at a time behind a PostgreSQL advisory lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config

from billing_core.sql import connectable_url, normalise_url, sqlite_session


@dataclass(frozen=True)
class MigrationHistory:
    directory: Path
    version_table: str = "alembic_version"

    def config(self, url: str) -> Config:
        config = Config()
        config.set_main_option("script_location", str(self.directory))
        # Alembic's config is ConfigParser-backed: escape % in passwords.
        config.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
        return config

    def upgrade(self, url: str, revision: str = "head") -> None:
        command.upgrade(self.config(url), revision)

    def downgrade(self, url: str, revision: str) -> None:
        command.downgrade(self.config(url), revision)

    def go_to(self, url: str, revision: str) -> None:
        """Upgrade or downgrade to a revision ('head', an id, '-1', 'base')."""
        from alembic.script import ScriptDirectory

        if revision in {"head", "heads"}:
            self.upgrade(url, revision)
            return
        if revision.startswith("-") or revision == "base":
            self.downgrade(url, revision)
            return
        config = self.config(url)
        script = ScriptDirectory.from_config(config)
        if script.get_revision(revision) is None:
            raise ValueError(f"unknown revision {revision!r}")
        current = self.current(url)
        ancestors = (
            {r.revision for r in script.iterate_revisions(current, "base")} if current else set()
        )
        if revision in ancestors:
            self.downgrade(url, revision)
        else:
            self.upgrade(url, revision)

    def current(self, url: str) -> str | None:
        """The revision the database is at, or None before the first migration."""
        from alembic.runtime.migration import MigrationContext

        engine = migration_engine(url)
        try:
            with engine.connect() as conn:
                context = MigrationContext.configure(
                    conn, opts={"version_table": self.version_table}
                )
                return context.get_current_revision()
        finally:
            engine.dispose()

    def head(self) -> str:
        from alembic.script import ScriptDirectory

        head = ScriptDirectory.from_config(self.config("sqlite://")).get_current_head()
        assert head is not None
        return head


def migration_engine(url: str) -> Any:
    """An engine of one connection at a time for migrating `url`; a SQLite file gets the same
    session settings as the processes' own connections (WAL first of all)."""
    from sqlalchemy import create_engine, event, pool

    plain, connect_args = connectable_url(url)
    engine = create_engine(plain, poolclass=pool.NullPool, connect_args=connect_args)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", sqlite_session)
    return engine


def run_environment(*, version_table: str, lock_key: int) -> None:
    """What an env.py does: migrate online, one replica at a time on PostgreSQL."""
    from alembic import context

    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url must be set"
    connectable = migration_engine(url)
    with connectable.connect() as connection:
        context.configure(
            connection=connection,
            version_table=version_table,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({int(lock_key)})")
            context.run_migrations()
    connectable.dispose()

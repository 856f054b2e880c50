"""Do the migrations build the tables the code declares?

    from tests.support.schema_drift import schema_drift

    assert schema_drift(metadata, url, include_table=lambda name: name in metadata.tables) == []

`schema_drift` runs alembic's `compare_metadata` between a `MetaData` (the tables as the code
declares them) and the database at `url` (as its migrations left it), and returns what differs:
alembic's diff entries, e.g. `("add_column", None, "alert_states", Column("acked_by", ...))`
for a column the code has and the database lacks. Empty means no drift.

`include_table` says which tables are the caller's: both processes share one database, so each
checks its own tables and leaves the other's (and the version tables) alone. Types are compared
too (alembic's `compare_type`). Run it on every backend the process supports: SQLite and
PostgreSQL reflect differently, and a migration can be right on one and wrong on the other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, create_engine, pool

from billing_core.sql import normalise_url


def schema_drift(metadata: MetaData, url: str, *,
                 include_table: Callable[[str], bool]) -> list[Any]:
    """alembic's differences between `metadata` and the database, for the tables included."""

    def include_name(name: str | None, type_: str, _parents: Any) -> bool:
        return type_ != "table" or (name is not None and include_table(name))

    engine = create_engine(normalise_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"include_name": include_name, "compare_type": True})
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()

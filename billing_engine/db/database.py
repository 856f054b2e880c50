"""The engine's database handle and the base of every store."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, text

from billing_core.sql import create_sql_engine, dialect_insert, normalise_url, transaction

T = TypeVar("T")


@dataclass(frozen=True)
class Database:
    engine: Engine
    url: str

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    def connections_in_use(self) -> int:
        pool: Any = self.engine.pool
        checkedout = getattr(pool, "checkedout", None)
        return int(checkedout()) if callable(checkedout) else 0

    def ping(self) -> None:
        transaction(self.engine, lambda conn: conn.execute(text("SELECT 1")).scalar_one())

    def dispose(self) -> None:
        self.engine.dispose()


def create_database(url: str, *, pool_size: int = 10) -> Database:
    engine = create_sql_engine(url, pool_size=pool_size, application_name="billing_engine")
    return Database(engine=engine, url=normalise_url(url))


class Store:
    """Base of each concept's store: one transaction per call, parameterised SQL only."""

    def __init__(self, database: Database) -> None:
        self.db = database
        self._insert = dialect_insert(database.engine)

    def _run(self, work: Callable[[Connection], T], *, write: bool = False) -> T:
        return transaction(self.db.engine, work, write=write)

"""The engine's database handle and the base of every store."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import Connection, Engine, text

from billing_core.sql import (
    create_sql_engine,
    dialect_insert,
    normalise_url,
    pool_capacity,
    pool_in_use,
    transaction,
)

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
        return int(pool_in_use(self.engine))

    def connections_max(self) -> float:
        return pool_capacity(self.engine)

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

"""The alerts process' database: its engine (the engine's database, its own pool), the MetaData
every alerts table is declared on, and `Store`, the base of each concept's store.

Each concept declares its own tables on `metadata` and queries only those; what it needs of
another concept's tables it asks that concept's store for, inside the same transaction when the
two writes must agree. `alerts.store.schema` gathers every table for the migrations' checks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import BigInteger, Connection, Engine, Integer, MetaData, text

from billing_core.sql import create_sql_engine, dialect_insert, is_postgres, transaction

__all__ = ["Id", "Store", "create_alerts_engine", "is_postgres", "metadata"]

T = TypeVar("T")
metadata = MetaData()
# SQLite only autoincrements an INTEGER PRIMARY KEY.
Id = BigInteger().with_variant(Integer(), "sqlite")


def create_alerts_engine(url: str, *, pool_size: int = 5) -> Engine:
    return create_sql_engine(url, pool_size=pool_size, application_name="alerts")


class Store:
    """One engine, and `run`: every unit of work is one transaction (billing_core's), and a lost
    database raises `DatabaseUnavailable` with nothing committed."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    def run(self, work: Callable[[Connection], T], *, write: bool = False) -> T:
        return transaction(self.engine, work, write=write)

    def insert(self, table: Any) -> Any:
        """INSERT with ON CONFLICT for this dialect."""
        return dialect_insert(self.engine)(table)

    def ping(self) -> None:
        self.run(lambda conn: conn.execute(text("SELECT 1")))

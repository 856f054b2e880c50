"""The database connection of the alerts process (the engine's database, its own pool)."""

from __future__ import annotations

from sqlalchemy import Engine

from billing_core.sql import create_sql_engine, is_postgres, normalise_url

__all__ = ["create_alerts_engine", "is_postgres", "normalise_url"]


def create_alerts_engine(url: str, *, pool_size: int = 5) -> Engine:
    return create_sql_engine(url, pool_size=pool_size, application_name="alerts")

"""Storage adapter: SQLAlchemy Core over PostgreSQL (production, tests) or SQLite (embedded)."""

from billing_engine.store.database import Database, DatabaseUnavailable, create_database
from billing_engine.store.migrate import migrate
from billing_engine.store.repository import Repository

__all__ = ["Database", "DatabaseUnavailable", "Repository", "create_database", "migrate"]

"""Storage: SQLAlchemy Core over PostgreSQL (production, tests) or SQLite (embedded)."""

from billing_core.errors import DatabaseUnavailable
from billing_engine.db.database import Database, Store, create_database
from billing_engine.db.migrate import migrate

__all__ = ["Database", "DatabaseUnavailable", "Store", "create_database", "migrate"]

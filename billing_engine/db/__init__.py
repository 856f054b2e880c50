"""Storage adapter: SQLAlchemy Core over PostgreSQL (production, tests) or SQLite (embedded)."""

from billing_engine.db.database import Database, DatabaseUnavailable, create_database
from billing_engine.db.migrate import migrate
from billing_engine.db.repository import Repository

__all__ = ["Database", "DatabaseUnavailable", "Repository", "create_database", "migrate"]

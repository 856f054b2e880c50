"""The SQL engine both processes use: PostgreSQL in production and tests, SQLite when embedded.

`transaction` is the one way either process runs a unit of work: it retries serialisation
failures and deadlocks of a write, and turns a lost or unreachable database into
`DatabaseUnavailable`, so callers see one exception whatever the driver said.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from billing_core.errors import DatabaseUnavailable

T = TypeVar("T")
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})  # serialization failure, deadlock detected
WRITE_ATTEMPTS = 5


def normalise_url(url: str) -> str:
    """Accept postgres:// and postgresql:// URLs and use psycopg 3 for them."""
    parsed = make_url(url)
    if parsed.drivername in {"postgres", "postgresql", "postgresql+psycopg2"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


# `?pgbouncer=true` on a PostgreSQL URL says it names PgBouncer in transaction pooling mode (the
# parameter Prisma users know). It is taken off before connecting, and psycopg then never
# prepares statements: a prepared statement lives in one server session, and in transaction
# mode the next transaction may run on another (PgBouncer tracks them only from 1.21 on).
POOLER_PARAMETER = "pgbouncer"


def through_pgbouncer(url: str) -> bool:
    """Whether the URL is marked as going through PgBouncer in transaction mode."""
    value = make_url(url).query.get(POOLER_PARAMETER, "")
    return str(value).lower() in {"1", "true", "yes", "on"}


def connectable_url(url: str) -> tuple[str, dict[str, Any]]:
    """The URL as the driver takes it (our own parameter removed, psycopg 3 chosen), and the
    connect arguments it calls for."""
    pooled = through_pgbouncer(url)
    parsed = make_url(normalise_url(url)).difference_update_query([POOLER_PARAMETER])
    connect_args: dict[str, Any] = {"prepare_threshold": None} if pooled else {}
    return parsed.render_as_string(hide_password=False), connect_args


def _utc_session(dbapi_conn: Any, _record: Any) -> None:
    """Every session runs in UTC, whatever the server's default time zone: what PostgreSQL
    does with a timestamptz then never depends on the server's settings, and psycopg hands
    back instants in `datetime.UTC` itself, which our comparisons and conversions take as
    they are (under another zone each one asks the zone for its offset). A plain SET, so
    PgBouncer in transaction mode tracks it for the client like any time zone change."""
    with dbapi_conn.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'UTC'")
    dbapi_conn.commit()


def create_sql_engine(url: str, *, pool_size: int, application_name: str) -> Engine:
    """A SQLAlchemy engine for either backend."""
    url, pooler_args = connectable_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        pg = create_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            pool_timeout=5,
            connect_args={"connect_timeout": 3, "application_name": application_name,
                          **pooler_args},
        )
        event.listen(pg, "connect", _utc_session)
        return pg
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url, connect_args={"timeout": 30, "check_same_thread": False}, pool_pre_ping=True
    )
    event.listen(engine, "connect", sqlite_session)
    return engine


def sqlite_session(dbapi_conn: Any, _record: Any) -> None:
    """What every SQLite connection of ours sets first (the migrations' too)."""
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute("PRAGMA busy_timeout=30000")
        # WAL with synchronous=FULL: a committed write survives a crash or power loss, and a
        # second process (the alerts process in embedded mode) reads while the engine writes.
        _write_ahead_log(cursor)
        cursor.execute("PRAGMA synchronous=FULL")
    finally:
        cursor.close()
    # PostgreSQL's bit_count, for the engine's minute masks (integers on SQLite).
    dbapi_conn.create_function("bit_count", 1, _bit_count, deterministic=True)


def _write_ahead_log(cursor: Any) -> None:
    """Switch a new database file to WAL; a file already in WAL keeps it without a lock.
    The switch itself needs the file to itself, and SQLite can answer "locked" at once
    rather than wait when another process is starting on the same file (the engine and the
    alerts process of `make run`, their migrations): it is tried again for up to 30 s."""
    if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
        return
    deadline = time.monotonic() + 30
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _bit_count(value: int | None) -> int | None:
    return None if value is None else int(value).bit_count()


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def dialect_insert(engine: Engine) -> Any:
    """`insert` with ON CONFLICT support for the engine's dialect."""
    return postgresql.insert if is_postgres(engine) else sqlite.insert


def transaction(engine: Engine, work: Callable[[Connection], T], *, write: bool = False) -> T:
    """Run `work` in one transaction and commit it."""
    attempts = WRITE_ATTEMPTS if write else 1
    for attempt in range(1, attempts + 1):
        try:
            with engine.begin() as conn:
                return work(conn)
        except DBAPIError as exc:
            sqlstate = getattr(exc.orig, "sqlstate", None)
            if sqlstate in RETRYABLE_SQLSTATES and attempt < attempts:
                time.sleep(0.01 * attempt)
                continue
            if isinstance(exc, OperationalError) or exc.connection_invalidated:
                first_line = (str(exc.orig).strip().splitlines() or ["unreachable"])[0]
                raise DatabaseUnavailable(first_line) from exc
            raise
        except TimeoutError as exc:  # pool exhausted: treat as unavailable, nothing written
            raise DatabaseUnavailable("no database connection available") from exc
    raise AssertionError("unreachable")


def array_literal(values: Iterable[str | int | datetime | None]) -> str:
    """A PostgreSQL array literal of text, integers or aware datetimes (None is NULL), for a
    parameter the statement casts to an array type (`CAST(:ids AS text[])`).

    psycopg adapts a list element by element in Python, and a datetime through its text
    dumper: 4.5 ms for 1,000 timestamps, most of a 1,000-instance batch's statement. Written
    here as one string it takes a fifth of that, and the server parses it in C.

    A list of plain text (ids, org ids: nearly every array a batch sends) is joined in one
    pass when none of it needs a backslash: the joined string then holds exactly the quotes
    its separators put there, which one count checks."""
    items = values if isinstance(values, list) else list(values)
    if not items:
        return "{}"
    try:
        joined = '","'.join(items)  # type: ignore[arg-type]  # TypeError unless all text
    except TypeError:
        joined = None
    if joined is not None and "\\" not in joined and joined.count('"') == 2 * (len(items) - 1):
        return '{"' + joined + '"}'
    return "{" + ",".join(map(_array_element, items)) + "}"


def _array_element(value: str | int | datetime | None) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, str):  # quoted, so spaces, commas, braces and the word NULL stay text
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a naive datetime has no place in an array of timestamptz")
        return '"' + value.isoformat() + '"'
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise TypeError(f"no array element for {type(value).__name__}")


def utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utc_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else utc(value)


def pool_in_use(engine: Engine) -> float:
    """Connections checked out of the engine's pool now (0 for a pool that does not count)."""
    checkedout = getattr(engine.pool, "checkedout", None)
    return float(checkedout()) if callable(checkedout) else 0.0


def pool_capacity(engine: Engine) -> float:
    """What the pool may hold at once (size plus overflow); NaN for a pool without a bound."""
    size = getattr(engine.pool, "size", None)
    # QueuePool keeps its overflow allowance private; -1 means no bound.
    overflow = getattr(engine.pool, "_max_overflow", None)
    if not callable(size) or not isinstance(overflow, int) or overflow < 0:
        return float("nan")
    return float(size() + overflow)

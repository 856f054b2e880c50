"""Where raw usage lives by month, and how a month leaves.

On PostgreSQL `usage_hours` is partitioned by range of `hour`, one partition per UTC month,
named `usage_hours_pYYYY_MM`. Partitions are created ahead by the housekeeping job (and, should
a heartbeat ever find its month missing, by the ingest itself before it retries), and a month
past retention is detached (`DETACH PARTITION ... CONCURRENTLY`, so ingest into the other months
never waits), copied out, and dropped. Every step can be repeated: a job stopped between any two
finds the detached table next time and finishes it.

On SQLite (embedded, one machine) there are no partitions: a month past retention is copied out
and its rows deleted.

Partition DDL names are built from integers here, never from input; DDL cannot take bound
parameters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

from sqlalchemy import Connection, column, func, select, table, text

from billing_core.periods import BillingPeriod, period_containing
from billing_engine.db.database import Store
from billing_engine.usage.tables import minute_count, usage_hours

PARENT = "usage_hours"
# One replica changes partitions at a time (the migration lock is 8006001).
PARTITION_LOCK_KEY = 8006014
ARCHIVE_COLUMNS = ("org_id", "instance_id", "hour", "minute_mask")
_NAME = re.compile(r"^usage_hours_p(\d{4})_(\d{2})$")


def partition_name(period: BillingPeriod) -> str:
    return f"{PARENT}_p{period.start.year:04d}_{period.start.month:02d}"


def period_of(name: str) -> BillingPeriod | None:
    match = _NAME.match(name)
    if match is None:
        return None
    return period_containing(datetime(int(match[1]), int(match[2]), 1, tzinfo=UTC))


def hour_range(period: BillingPeriod) -> tuple[int, int]:
    """[first, end) hours since the epoch of a period."""
    return int(period.start.timestamp()) // 3600, int(period.end.timestamp()) // 3600


def periods_of_hours(hours: Iterable[int]) -> list[BillingPeriod]:
    found = {period_containing(datetime.fromtimestamp(h * 3600, UTC)) for h in hours}
    return sorted(found, key=lambda p: p.start)


def create_partitions(conn: Connection, periods: Iterable[BillingPeriod]) -> list[str]:
    """Create the missing partitions of `periods` in the caller's transaction, under the
    partition lock. Returns the names created."""
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PARTITION_LOCK_KEY})
    # A partition is created with a short lock on the parent; never queue behind a long one.
    conn.execute(text("SET LOCAL lock_timeout = '5s'"))
    created = []
    for period in periods:
        name = partition_name(period)
        if conn.execute(text("SELECT to_regclass(:name)"), {"name": name}).scalar() is not None:
            continue  # attached, or detached on its way out: never recreate a retired month
        first, end = hour_range(period)
        conn.execute(
            text(f"CREATE TABLE {name} PARTITION OF {PARENT} FOR VALUES FROM ({first}) TO ({end})")
        )
        created.append(name)
    return created


def is_missing_partition(error: BaseException) -> bool:
    """PostgreSQL's answer to a row whose month has no partition (SQLSTATE 23514)."""
    orig = getattr(error, "orig", None)
    return getattr(orig, "sqlstate", None) == "23514" and "no partition" in str(orig)


@dataclass(frozen=True)
class StoredMonth:
    period: BillingPeriod
    table: str | None  # the partition (PostgreSQL) or None (SQLite: rows of one table)
    attached: bool  # False: detached, waiting to be archived and dropped


@dataclass(frozen=True)
class MonthStats:
    rows: int
    minutes: int


class PartitionStore(Store):
    """The months of raw usage as stored, and the steps that retire one."""

    def ensure(self, periods: Iterable[BillingPeriod]) -> list[str]:
        """Create the partitions of `periods` that do not exist yet (PostgreSQL)."""
        wanted = sorted(set(periods), key=lambda p: p.start)
        if not self.db.is_postgres or not wanted:
            return []
        existing = {m.table for m in self.months()}
        missing = [p for p in wanted if partition_name(p) not in existing]
        if not missing:
            return []
        return self._run(lambda conn: create_partitions(conn, missing), write=True)

    def months(self) -> list[StoredMonth]:
        """Every month holding raw usage (SQLite) or having a partition (PostgreSQL), attached
        or detached, oldest first."""
        if not self.db.is_postgres:
            return self._sqlite_months()
        query = text(
            """
            SELECT c.relname AS name, i.inhrelid IS NOT NULL AS attached
            FROM pg_class c
            LEFT JOIN pg_inherits i
              ON i.inhrelid = c.oid AND i.inhparent = CAST(:parent AS regclass)
            WHERE c.relkind = 'r' AND c.relnamespace = CAST(current_schema() AS regnamespace)
              AND c.relname LIKE 'usage\\_hours\\_p%'
            """
        )
        rows = self._run(lambda c: c.execute(query, {"parent": PARENT}).all())
        found = []
        for row in rows:
            period = period_of(row.name)
            if period is not None:
                found.append(StoredMonth(period, row.name, bool(row.attached)))
        return sorted(found, key=lambda m: m.period.start)

    def _sqlite_months(self) -> list[StoredMonth]:
        u = usage_hours.c
        low, high = self._run(lambda c: c.execute(select(func.min(u.hour), func.max(u.hour))).one())
        if low is None:
            return []
        first = period_containing(datetime.fromtimestamp(int(low) * 3600, UTC))
        last = period_containing(datetime.fromtimestamp(int(high) * 3600, UTC))
        return [StoredMonth(p, None, True) for p in iter_months(first, last)]

    def stats(self, month: StoredMonth) -> MonthStats:
        """Rows and minutes a month holds."""
        if month.table is not None:
            source: Any = table(_checked(month.table), column("minute_mask"))
            query = select(
                func.count().label("n"),
                func.coalesce(func.sum(minute_count(source.c.minute_mask)), 0).label("minutes"),
            )
        else:
            first, end = hour_range(month.period)
            u = usage_hours.c
            query = select(
                func.count().label("n"),
                func.coalesce(func.sum(minute_count(u.minute_mask)), 0).label("minutes"),
            ).where(u.hour >= first, u.hour < end)
        row = self._run(lambda c: c.execute(query).one())
        return MonthStats(int(row.n), int(row.minutes))

    def detach(self, month: StoredMonth) -> None:
        """Take a month's partition out of `usage_hours` without blocking ingest: DETACH
        PARTITION CONCURRENTLY runs outside a transaction; one interrupted earlier is finished
        with FINALIZE."""
        if month.table is None or not month.attached:
            return
        table = _checked(month.table)
        with self.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            pending = conn.execute(
                text(
                    "SELECT inhdetachpending FROM pg_inherits "
                    "WHERE inhrelid = CAST(:name AS regclass)"
                ),
                {"name": table},
            ).scalar()
            mode = "FINALIZE" if pending else "CONCURRENTLY"
            conn.execute(text(f"ALTER TABLE {PARENT} DETACH PARTITION {table} {mode}"))

    def copy_out(self, month: StoredMonth, sink: IO[bytes]) -> None:
        """Write a month's rows as CSV (ARCHIVE_COLUMNS, no header) in key order."""
        if month.table is not None:
            from psycopg import sql

            statement = sql.SQL(
                "COPY (SELECT {columns} FROM {table} ORDER BY org_id, instance_id, hour) "
                "TO STDOUT (FORMAT csv)"
            ).format(
                columns=sql.SQL(", ").join(sql.Identifier(c) for c in ARCHIVE_COLUMNS),
                table=sql.Identifier(_checked(month.table)),
            )
            with self.db.engine.connect() as conn:
                raw: Any = conn.connection.driver_connection
                with raw.cursor() as cursor, cursor.copy(statement) as copy:
                    for chunk in copy:
                        sink.write(bytes(chunk))
            return
        import csv
        import io

        first, end = hour_range(month.period)
        u = usage_hours.c
        query = (
            select(u.org_id, u.instance_id, u.hour, u.minute_mask)
            .where(u.hour >= first, u.hour < end)
            .order_by(u.org_id, u.instance_id, u.hour)
        )
        with self.db.engine.connect() as conn:
            text_sink = io.TextIOWrapper(sink, encoding="utf-8", newline="", write_through=True)
            writer = csv.writer(text_sink, lineterminator="\n")
            for row in conn.execution_options(yield_per=5000).execute(query):
                writer.writerow(tuple(row))
            text_sink.detach()

    def drop(self, month: StoredMonth) -> int:
        """Remove a month's raw usage: drop its detached partition (PostgreSQL) or delete its
        rows (SQLite). Returns rows deleted on SQLite, 0 on PostgreSQL."""
        if month.table is not None:
            if month.attached:
                raise ValueError(f"{month.table} is still attached; detach it first")
            statement = text(f"DROP TABLE IF EXISTS {_checked(month.table)}")
            self._run(lambda c: c.execute(statement), write=True)
            return 0
        first, end = hour_range(month.period)
        u = usage_hours.c
        stmt = usage_hours.delete().where(u.hour >= first, u.hour < end)
        return int(self._run(lambda c: c.execute(stmt).rowcount, write=True))

    def storage_bytes(self, period: BillingPeriod | None = None) -> int | None:
        """Bytes raw usage takes on disk, indexes included: all attached partitions, or the
        partition of `period` (PostgreSQL only: SQLite keeps all months in one B-tree). None
        on an SQLite built without its `dbstat` table."""
        if self.db.is_postgres and period is not None:
            query = text("SELECT coalesce(pg_total_relation_size(to_regclass(:name)), 0)")
            name = partition_name(period)
            return int(self._run(lambda c: c.execute(query, {"name": name}).scalar_one()))
        if self.db.is_postgres:
            query = text(
                "SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) FROM pg_inherits "
                "WHERE inhparent = CAST(:parent AS regclass)"
            )
            return int(self._run(lambda c: c.execute(query, {"parent": PARENT}).scalar_one()))
        available = text("SELECT count(*) FROM pragma_module_list WHERE name = 'dbstat'")
        query = text("SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name = :parent")

        def work(conn: Connection) -> int | None:
            if not conn.execute(available).scalar_one():
                return None
            return int(conn.execute(query, {"parent": PARENT}).scalar_one())

        return self._run(work)


def _checked(table: str) -> str:
    """A partition name fit to go into DDL: only names this module makes."""
    if _NAME.match(table) is None:
        raise ValueError(f"not a usage partition: {table!r}")
    return table


def iter_months(first: BillingPeriod, last: BillingPeriod) -> Iterator[BillingPeriod]:
    period = first
    while period.start <= last.start:
        yield period
        period = period.next()

"""Metering: instance-hours with their minutes as a bit mask, daily rollups per org, and
instances as last seen."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from billing_engine.db.metadata import metadata

# One row per (org, instance, UTC hour) with at least one billable minute; bit m of
# `minute_mask` is minute m of the hour. About 2.5 to 3.5 bytes per instance-minute on
# PostgreSQL for instances that run whole hours, index included (docs/scaling.md), against 169
# for the one-row-per-minute table this replaced. The key leads with org_id, the column a
# distributed PostgreSQL (Citus) would shard on. The fixed-width columns come first so
# PostgreSQL pads nothing between them. On PostgreSQL the table is partitioned by month of
# `hour` (`usage/partitions.py` keeps the partitions); on SQLite it is one B-tree (no rowid).
#
# `minutes_added` is how many minutes the row's last write added. It is how one upsert both
# merges and counts: the conflict branch sees the stored mask (locked) and the one sent, and
# RETURNING can only show the row as written. It costs nothing on PostgreSQL (it fills the
# padding after `hour`) and means nothing between writes.
usage_hours = Table(
    "usage_hours",
    metadata,
    Column("minute_mask", BigInteger, nullable=False),
    Column("hour", Integer, nullable=False),
    Column("minutes_added", SmallInteger, nullable=False),
    Column("org_id", String(64), nullable=False),
    Column("instance_id", String(128), nullable=False),
    PrimaryKeyConstraint("org_id", "instance_id", "hour"),
    postgresql_partition_by="RANGE (hour)",
    sqlite_with_rowid=False,
)


# Minutes per org per UTC day, kept current in the ingest transaction.
daily_usage = Table(
    "daily_usage",
    metadata,
    Column("org_id", String(64), nullable=False),
    Column("day", Date, nullable=False),
    Column("minutes", Integer, nullable=False),
    PrimaryKeyConstraint("org_id", "day"),
)

# Minutes per org per billing period (UTC calendar month, named by its first day), kept in the
# same statements as `daily_usage`: always the sum of the org's daily rows in that month. The
# budget round reads one row per org from here instead of a row per day (`usage/facts.py`).
# `minutes` is not indexed, so adding to it is a HOT update on PostgreSQL.
period_usage = Table(
    "period_usage",
    metadata,
    Column("minutes", BigInteger, nullable=False),
    Column("first_day", Date, nullable=False),
    Column("org_id", String(64), nullable=False),
    PrimaryKeyConstraint("org_id", "first_day"),
)


instances = Table(
    "instances",
    metadata,
    Column("instance_id", String(128), primary_key=True),
    Column("org_id", String(64), nullable=False),
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
    Column("last_state", String(8), nullable=False),
)

# Heartbeats refused, per org, UTC hour of the refusal (hours since the epoch) and reason: what
# a post-mortem lists as "orgs whose heartbeats were refused" (the metric counts by reason
# only; an org id is never a label). Written only when a batch has refusals, so the ingest of
# good batches costs nothing more. Batches from unknown orgs are not kept here (their ids are
# not customers); rows past REFUSALS_KEEP_DAYS go in housekeeping.
heartbeat_refusals = Table(
    "heartbeat_refusals",
    metadata,
    Column("hour", Integer, nullable=False),
    Column("heartbeats", BigInteger, nullable=False),
    Column("org_id", String(64), nullable=False),
    Column("reason", String(32), nullable=False),
    PrimaryKeyConstraint("org_id", "hour", "reason"),
)

Index("ix_heartbeat_refusals_hour", heartbeat_refusals.c.hour)
Index("ix_daily_usage_day", daily_usage.c.day)
Index("ix_period_usage_period", period_usage.c.first_day, period_usage.c.org_id)
Index("ix_instances_org", instances.c.org_id)
Index("ix_instances_last_seen", instances.c.last_seen)


class minute_count(FunctionElement[int]):  # noqa: N801 - reads as the SQL function it is
    """The minutes a mask holds (its set bits), in SQL: PostgreSQL's `bit_count` over the mask
    as bit(64); on SQLite a function of the same name the engine registers on each connection
    (`billing_core.sql`)."""

    type = BigInteger()
    inherit_cache = True


@compiles(minute_count)
def _minute_count_sqlite(element: minute_count, compiler: Any, **kw: Any) -> str:
    return f"bit_count({compiler.process(element.clauses, **kw)})"


@compiles(minute_count, "postgresql")
def _minute_count_postgres(element: minute_count, compiler: Any, **kw: Any) -> str:
    return f"bit_count(CAST({compiler.process(element.clauses, **kw)} AS bit(64)))"

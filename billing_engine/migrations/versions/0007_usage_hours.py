"""Metering stored as instance-hours with a minute mask, partitioned by month on PostgreSQL.

Converts every minute row of `usage_slots` into the instance-hour holding it (the mask is the sum
of the minutes' distinct bits, which is their OR), then drops `usage_slots`. Daily rollups are
untouched: they already count the same minutes. Each minute row's `state` is not kept: nothing
read it, and it held whichever heartbeat of the minute arrived first.

On PostgreSQL `usage_hours` is partitioned by range of `hour`, one partition per UTC month,
created here for every month that holds usage and for the months around now; the engine's
housekeeping creates the months ahead from then on (`billing_engine/usage/partitions.py`). The
primary key is added after the rows are in, so each partition's index is built sorted, compact.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

PARENT = "usage_hours"


def _month_start(year: int, month: int) -> datetime:
    return datetime(year + (month - 1) // 12, (month - 1) % 12 + 1, 1, tzinfo=UTC)


def _hour(moment: datetime) -> int:
    return int(moment.timestamp()) // 3600


def _create_month(year: int, month: int) -> None:
    start = _month_start(year, month)
    end = _month_start(start.year, start.month + 1)
    name = f"{PARENT}_p{start.year:04d}_{start.month:02d}"
    op.execute(
        f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {PARENT} "
        f"FOR VALUES FROM ({_hour(start)}) TO ({_hour(end)})"
    )


def _months(first: datetime, last: datetime) -> list[tuple[int, int]]:
    months = []
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        months.append((year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    columns: list[sa.schema.SchemaItem] = [
        sa.Column("minute_mask", sa.BigInteger, nullable=False),
        sa.Column("hour", sa.Integer, nullable=False),
        sa.Column("minutes_added", sa.SmallInteger, nullable=False),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("instance_id", sa.String(128), nullable=False),
    ]
    if postgres:
        op.create_table(PARENT, *columns, postgresql_partition_by="RANGE (hour)")
        low, high = bind.execute(sa.text("SELECT min(minute), max(minute) FROM usage_slots")).one()
        now = datetime.now(UTC)
        first = _month_start(now.year, now.month - 1)
        last = _month_start(now.year, now.month + 2)
        if low is not None:
            first = min(first, datetime.fromtimestamp(int(low) * 60, UTC))
            last = max(last, datetime.fromtimestamp(int(high) * 60, UTC))
        for year, month in _months(first, last):
            _create_month(year, month)
        mask = "CAST(sum(CAST(1 AS bigint) << CAST(minute % 60 AS integer)) AS bigint)"
        added = "CAST(count(*) AS smallint)"
    else:
        op.create_table(
            PARENT, *columns, sa.PrimaryKeyConstraint("org_id", "instance_id", "hour"),
            sqlite_with_rowid=False,
        )
        mask = "sum(1 << (minute % 60))"
        added = "count(*)"
    # (instance_id, minute) is unique in usage_slots, so the bits summed are distinct: an OR.
    op.execute(
        "INSERT INTO usage_hours (minute_mask, hour, minutes_added, org_id, instance_id) "
        "SELECT " + mask + ", CAST(minute / 60 AS integer), " + added + ", org_id, instance_id "
        "FROM usage_slots GROUP BY org_id, instance_id, CAST(minute / 60 AS integer) "
        "ORDER BY org_id, instance_id, CAST(minute / 60 AS integer)"
    )
    if postgres:
        op.create_primary_key("usage_hours_pkey", PARENT, ["org_id", "instance_id", "hour"])
    op.drop_index("ix_usage_slots_org_minute", table_name="usage_slots")
    op.drop_table("usage_slots")


def downgrade() -> None:
    op.create_table(
        "usage_slots",
        sa.Column("instance_id", sa.String(128), nullable=False),
        sa.Column("minute", sa.BigInteger, nullable=False),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.PrimaryKeyConstraint("instance_id", "minute"),
    )
    op.create_index("ix_usage_slots_org_minute", "usage_slots", ["org_id", "minute"])
    # One minute row per set bit; the state each minute had was never kept in masks.
    op.execute(
        "WITH RECURSIVE bits(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM bits WHERE n < 59) "
        "INSERT INTO usage_slots (instance_id, minute, org_id, state) "
        "SELECT u.instance_id, CAST(u.hour AS bigint) * 60 + bits.n, u.org_id, 'running' "
        "FROM usage_hours u JOIN bits ON (u.minute_mask >> bits.n) & 1 = 1"
    )
    op.drop_table(PARENT)  # on PostgreSQL, with its partitions

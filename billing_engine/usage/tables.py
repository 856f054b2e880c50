"""Metering: billable minute slots, daily rollups per org, and instances as last seen."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
)

from billing_engine.db.metadata import metadata

# One row per billable (instance, UTC minute). The primary key is the metering unit.
usage_slots = Table(
    "usage_slots",
    metadata,
    Column("instance_id", String(128), nullable=False),
    Column("minute", BigInteger, nullable=False),
    Column("org_id", String(64), nullable=False),
    Column("state", String(8), nullable=False),
    PrimaryKeyConstraint("instance_id", "minute"),
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


instances = Table(
    "instances",
    metadata,
    Column("instance_id", String(128), primary_key=True),
    Column("org_id", String(64), nullable=False),
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
    Column("last_state", String(8), nullable=False),
)

Index("ix_usage_slots_org_minute", usage_slots.c.org_id, usage_slots.c.minute)
Index("ix_daily_usage_day", daily_usage.c.day)
Index("ix_instances_org", instances.c.org_id)
Index("ix_instances_last_seen", instances.c.last_seen)

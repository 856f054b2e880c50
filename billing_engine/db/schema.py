"""Tables. Alembic migrations create them; this module is what the queries are written against."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
)

metadata = MetaData()

orgs = Table(
    "orgs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("billing_email", String(320), nullable=False),
    Column("plan", String(64), nullable=False),
    Column("stripe_customer_id", String(64), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

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

# What the throttler remembers per instance, so a decision never scans raw slots.
instance_throttle = Table(
    "instance_throttle",
    metadata,
    Column("instance_id", String(128), primary_key=True),
    Column("org_id", String(64), nullable=False),
    Column("run_started_at", DateTime(timezone=True), nullable=True),
    Column("last_running_at", DateTime(timezone=True), nullable=True),
    Column("idle_since", DateTime(timezone=True), nullable=True),
    Column("last_seen", DateTime(timezone=True), nullable=True),
    Column("paused_reason", String(32), nullable=True),
    Column("paused_since", DateTime(timezone=True), nullable=True),
    Column("checked_at", DateTime(timezone=True), nullable=False),
)

# An admin reset of an org's daily throttle counter: minutes up to the offset no longer count
# towards the daily cap. Usage itself (daily_usage, usage_slots) is never touched.
daily_counter_resets = Table(
    "daily_counter_resets",
    metadata,
    Column("org_id", String(64), nullable=False),
    Column("day", Date, nullable=False),
    Column("offset_minutes", Integer, nullable=False),
    Column("reset_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("org_id", "day"),
)

# Tables of later migrations live in their own modules, on the same metadata.
from billing_engine.invoicing import tables as _invoicing  # noqa: E402,F401
from billing_engine.stripe.meters import tables as _meters  # noqa: E402,F401
from billing_engine.stripe.webhooks import tables as _webhooks  # noqa: E402,F401

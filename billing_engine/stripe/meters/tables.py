"""The usage-meter outbox (migration 0004).

One row per usage record to report to Stripe: an org's instance-minutes in one closed UTC hour.
Version 1 carries the hour's minutes as first counted; a later version carries only minutes that
arrived after the hour was reported (a correction), so the versions of an hour always sum to the
minutes the engine holds for it and no minute is ever sent twice.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    UniqueConstraint,
)

from billing_engine.db.metadata import BigId, metadata

# state: pending (waiting or being retried), sent (Stripe accepted it), failed (Stripe refused it
# for good: kept for people to see, never retried unless an admin requeues it), rejected (Stripe
# accepted it, then its asynchronous validation reported it in an error report: not billed;
# requeueable), expired (its hour left Stripe's 35-day window before it could be sent: never
# sent, counted).
meter_outbox = Table(
    "meter_outbox",
    metadata,
    Column("id", BigId, autoincrement=True),
    Column("org_id", String(64), nullable=False),
    Column("hour", BigInteger, nullable=False),  # UTC hour, counted in hours since the epoch
    Column("version", Integer, nullable=False),
    Column("identifier", String(100), nullable=False),  # Stripe's identifier and idempotency key
    Column("minutes", Integer, nullable=False),
    Column("state", String(8), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    # Set while a sender holds the record (its lease); a crashed sender's lease just expires.
    Column("claimed_until", DateTime(timezone=True), nullable=True),
    Column("last_error", String(500), nullable=True),
    Column("last_status", Integer, nullable=True),  # HTTP status of the last answer, if any
    Column("stripe_customer_id", String(64), nullable=True),  # who it was last sent for
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=True),
    # Bumped by an admin's requeue: part of the identifier sent to Stripe (migration 0010).
    Column("generation", Integer, nullable=False, server_default="0"),
    # org_id in every key, for Citus (on SQLite `id` alone is the key: db/metadata.py). The
    # identifier comes first in its own: a Stripe error report names the identifier alone.
    PrimaryKeyConstraint("org_id", "id"),
    UniqueConstraint("org_id", "hour", "version", name="uq_meter_outbox_org_hour_version"),
    UniqueConstraint("identifier", "org_id", name="uq_meter_outbox_identifier_org"),
    CheckConstraint("minutes > 0", name="ck_meter_outbox_minutes_positive"),
    # Claims walk this in order (migration 0010 added hour and id: a backlog of 200,000 due
    # records was sorted whole on every claim before).
    Index("ix_meter_outbox_state_due", "state", "next_attempt_at", "hour", "id"),
    # The oldest unsent hour, for the window gauge.
    Index("ix_meter_outbox_state_hour", "state", "hour"),
)

"""Stripe subscriptions as last applied."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, Index, PrimaryKeyConstraint, String, Table

from billing_engine.db.metadata import metadata

# The last applied state of each Stripe subscription, stamped with the `created` of the event it
# came from so an older delivery never overwrites it. A subscription is the org's its events
# resolve to; the key holds org_id, the column Citus would distribute the table on.
subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", String(255), nullable=False),
    Column("org_id", String(64), nullable=False),
    Column("customer_id", String(255), nullable=True),
    Column("status", String(32), nullable=False),
    Column("price_ids", String(1000), nullable=False),  # space-separated, in item order
    Column("plan", String(64), nullable=True),
    Column("current_period_start", DateTime(timezone=True), nullable=True),
    Column("current_period_end", DateTime(timezone=True), nullable=True),
    Column("cancel_at_period_end", Boolean, nullable=False),
    Column("event_created_at", DateTime(timezone=True), nullable=False),
    Column("event_id", String(255), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("org_id", "id"),
)

Index("ix_subscriptions_org", subscriptions.c.org_id)

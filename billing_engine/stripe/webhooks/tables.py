"""The Stripe webhook inbox."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, Index, Integer, String, Table, Text

from billing_engine.db.metadata import metadata

# Every verified Stripe event, keyed on Stripe's event id and written before any effect.
# status: pending (stored, not yet handled), handled, ignored (a type we do not act on),
# failed (handling failed; attempts and last_error say how often and why).
stripe_events = Table(
    "stripe_events",
    metadata,
    Column("event_id", String(255), primary_key=True),
    Column("type", String(100), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),  # the event's `created`
    Column("livemode", Boolean, nullable=False),
    Column("customer_id", String(255), nullable=True),
    Column("payload", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", String(1000), nullable=True),
    Column("effect", String(200), nullable=True),
    Column("org_id", String(64), nullable=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("last_attempt_at", DateTime(timezone=True), nullable=True),
    Column("handled_at", DateTime(timezone=True), nullable=True),
)

Index("ix_stripe_events_status_received", stripe_events.c.status, stripe_events.c.received_at)
Index("ix_stripe_events_customer", stripe_events.c.customer_id, stripe_events.c.status)

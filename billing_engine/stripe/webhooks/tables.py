"""Stripe webhook inbox, subscriptions, payments (migration 0003)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, DateTime, Integer, String, Table, Text

from billing_engine.db.schema import metadata

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

# The last applied state of each Stripe subscription, stamped with the `created` of the event it
# came from so an older delivery never overwrites it.
subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", String(255), primary_key=True),
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
)

# One row per attempt to collect an invoice. event_id is unique: an event records at most one.
payment_attempts = Table(
    "payment_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(255), nullable=False, unique=True),
    Column("org_id", String(64), nullable=False),
    Column("customer_id", String(255), nullable=True),
    Column("invoice_id", String(255), nullable=True),
    Column("charge_id", String(255), nullable=True),
    Column("payment_intent_id", String(255), nullable=True),
    Column("amount_cents", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("method", String(16), nullable=False),
    Column("failure_code", String(64), nullable=True),
    Column("failure_reason", String(32), nullable=True),
    Column("failure_message", String(500), nullable=True),
    Column("attempt_number", Integer, nullable=True),
    Column("refunded_cents", BigInteger, nullable=False),
    Column("attempted_at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)

refunds = Table(
    "refunds",
    metadata,
    Column("refund_key", String(255), primary_key=True),
    Column("event_id", String(255), nullable=False),
    Column("org_id", String(64), nullable=False),
    Column("charge_id", String(255), nullable=False),
    Column("payment_intent_id", String(255), nullable=True),
    Column("amount_cents", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("reason", String(64), nullable=True),
    Column("refunded_at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)

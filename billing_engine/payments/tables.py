"""Payment attempts and refunds, from Stripe's invoice and charge events."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    UniqueConstraint,
)

from billing_engine.db.metadata import metadata

# One row per attempt to collect an invoice; an event records at most one. Keys lead with
# org_id, the column Citus would distribute both tables on (on SQLite `id` alone is
# payment_attempts' key: db/metadata.py).
payment_attempts = Table(
    "payment_attempts",
    metadata,
    Column("id", Integer, autoincrement=True),
    Column("event_id", String(255), nullable=False),
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
    PrimaryKeyConstraint("org_id", "id"),
    UniqueConstraint("org_id", "event_id", name="uq_payment_attempts_org_event"),
)


refunds = Table(
    "refunds",
    metadata,
    Column("refund_key", String(255), nullable=False),
    Column("event_id", String(255), nullable=False),
    Column("org_id", String(64), nullable=False),
    Column("charge_id", String(255), nullable=False),
    Column("payment_intent_id", String(255), nullable=True),
    Column("amount_cents", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("reason", String(64), nullable=True),
    Column("refunded_at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("org_id", "refund_key"),
)

Index("ix_payment_attempts_org", payment_attempts.c.org_id, payment_attempts.c.attempted_at)
Index("ix_payment_attempts_attempted", payment_attempts.c.attempted_at)
# One attempt per charge: every event about a charge fills in the same row (store.add_payment).
Index(
    "ux_payment_attempts_charge",
    payment_attempts.c.org_id,
    payment_attempts.c.charge_id,
    unique=True,
)
Index("ix_payment_attempts_intent", payment_attempts.c.payment_intent_id)
Index("ix_refunds_org", refunds.c.org_id, refunds.c.refunded_at)
Index("ix_refunds_charge", refunds.c.charge_id)
Index("ix_refunds_refunded", refunds.c.refunded_at)

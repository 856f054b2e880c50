"""Invoices, their lines, credits and closed periods (migration 0005); Stripe's invoices (0009).

`invoices` is the table other jobs read (reconciliation): one row per org per period with the total
in cents, its status and the Stripe invoice id once known.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    UniqueConstraint,
    text,
)

from billing_engine.db.metadata import BigId, metadata

# One row per org per billing period, written once when the period closes. Every key leads with
# org_id, the column Citus would distribute these tables on (invoice lines sit with their
# invoice, credit lines with their credit); on SQLite `id` alone is the key (db/metadata.py).
# status: `finalized` when we close it; Stripe events may later move it to `paid`,
# `payment_failed` or `void`. Money is integer cents; total = subtotal - credits, never below 0.
invoices = Table(
    "invoices",
    metadata,
    Column("id", BigId, autoincrement=True),
    Column("org_id", String(64), nullable=False),
    Column("period", String(7), nullable=False),  # "YYYY-MM", UTC calendar month
    Column("period_start", DateTime(timezone=True), nullable=False),
    Column("period_end", DateTime(timezone=True), nullable=False),
    Column("plan", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("included_minutes", BigInteger, nullable=False),
    Column("used_minutes", BigInteger, nullable=False),
    Column("overage_minutes", BigInteger, nullable=False),
    Column("subtotal_cents", BigInteger, nullable=False),
    Column("credits_cents", BigInteger, nullable=False),
    Column("total_cents", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("stripe_invoice_id", String(64), nullable=True),
    Column("closed_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("org_id", "id"),
    UniqueConstraint("org_id", "period", name="uq_invoices_org_period"),
    CheckConstraint("total_cents >= 0", name="ck_invoices_total_non_negative"),
    Index("ix_invoices_period", "period"),
)


# The lines of an invoice in display order. kind: base_fee, overage, credit (negative amount).
invoice_lines = Table(
    "invoice_lines",
    metadata,
    Column("invoice_id", BigId, nullable=False),
    Column("position", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("description", String(300), nullable=False),
    Column("minutes", BigInteger, nullable=True),  # overage lines: the exact minutes billed
    Column("unit_amount_cents", BigInteger, nullable=False),
    Column("amount_cents", BigInteger, nullable=False),
    Column("credit_id", BigId, nullable=True),
    Column("org_id", String(64), nullable=False),  # its invoice's (migration 0013)
    PrimaryKeyConstraint("org_id", "invoice_id", "position"),
    ForeignKeyConstraint(["org_id", "invoice_id"], ["invoices.org_id", "invoices.id"],
                         name="fk_invoice_lines_invoice"),
    ForeignKeyConstraint(["org_id", "credit_id"], ["credits.org_id", "credits.id"],
                         name="fk_invoice_lines_credit"),
    Index("ix_invoice_lines_credit", "credit_id"),
)


# Credits an admin granted. remaining_cents falls as invoices consume it (their credit lines are
# the record of where it went); it never goes below zero.
credits = Table(
    "credits",
    metadata,
    Column("id", BigId, autoincrement=True),
    Column("org_id", String(64), nullable=False),
    Column("amount_cents", BigInteger, nullable=False),
    Column("remaining_cents", BigInteger, nullable=False),
    Column("reason", String(500), nullable=False),
    Column("granted_by", String(64), nullable=False),
    Column("granted_at", DateTime(timezone=True), nullable=False),
    Column("idempotency_key", String(128), nullable=True),
    # The credit in Stripe (migration 0011, billing_engine/stripe/credits): pending until the
    # customer balance transaction is made, then sent with its id; failed when Stripe refused it
    # for good; legacy for credits granted before credits went to Stripe.
    Column("stripe_status", String(16), nullable=False, server_default=text("'pending'")),
    Column("stripe_balance_transaction_id", String(64), nullable=True),
    Column("stripe_attempts", Integer, nullable=False, server_default=text("0")),
    Column("stripe_next_attempt_at", DateTime(timezone=True), nullable=True),
    Column("stripe_claimed_until", DateTime(timezone=True), nullable=True),
    Column("stripe_last_error", String(500), nullable=True),
    Column("stripe_sent_at", DateTime(timezone=True), nullable=True),
    # Times an admin sent a refused credit again: part of the Idempotency-Key, since Stripe
    # replays a stored refusal for the same key.
    Column("stripe_retries", Integer, nullable=False, server_default=text("0")),
    PrimaryKeyConstraint("org_id", "id"),
    UniqueConstraint("org_id", "idempotency_key", name="uq_credits_org_idempotency_key"),
    CheckConstraint("amount_cents > 0", name="ck_credits_amount_positive"),
    CheckConstraint(
        "remaining_cents >= 0 AND remaining_cents <= amount_cents", name="ck_credits_remaining"
    ),
    Index("ix_credits_org_granted", "org_id", "granted_at"),
    Index("ix_credits_stripe_due", "stripe_status", "stripe_next_attempt_at"),
)


# A period whose invoices are all written: the scheduler's cheap "already done?" check.
closed_periods = Table(
    "closed_periods",
    metadata,
    Column("period", String(7), primary_key=True),
    Column("closed_at", DateTime(timezone=True), nullable=False),
    Column("invoices", Integer, nullable=False),  # invoices that period holds in total
)


# Stripe's invoices as its invoice events last described them (invoice.finalized, .paid,
# .payment_failed, .voided): what the customer was really billed and can open. `period` is ours
# ("YYYY-MM"), so an invoice closed after Stripe's event still finds it; event_created keeps an
# older event delivered late from overwriting a newer state.
stripe_invoices = Table(
    "stripe_invoices",
    metadata,
    Column("org_id", String(64), nullable=False),
    Column("stripe_invoice_id", String(255), nullable=False),
    Column("customer_id", String(255), nullable=True),
    Column("number", String(100), nullable=True),
    Column("status", String(32), nullable=True),
    Column("currency", String(3), nullable=True),
    Column("amount_due_cents", BigInteger, nullable=True),
    Column("amount_paid_cents", BigInteger, nullable=True),
    Column("total_cents", BigInteger, nullable=True),
    Column("hosted_invoice_url", String(1000), nullable=True),
    Column("period", String(7), nullable=True),
    Column("event_created", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # The org first, as on every table Citus would distribute (docs/scaling.md).
    PrimaryKeyConstraint("org_id", "stripe_invoice_id"),
    Index("ix_stripe_invoices_org_period", "org_id", "period"),
)

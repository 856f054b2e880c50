"""Reconciliation runs and the mismatches each found."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    text,
)

from billing_engine.db.metadata import BigId, metadata

# One row per reconciliation run, so the engine's gauge shows the last run's result even when the
# run happened in another process (the CLI). report is the run's JSON report. trigger: manual
# (the API or the CLI), daily or period_close (housekeeping, migration 0011).
reconciliation_runs = Table(
    "reconciliation_runs",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("period", String(7), nullable=False),  # "YYYY-MM"
    Column("ran_at", DateTime(timezone=True), nullable=False),
    Column("provider", String(16), nullable=False),  # stripe or simulated
    Column("mismatches", Integer, nullable=False),
    Column("report", Text, nullable=False),
    Column("trigger", String(16), nullable=False, server_default=text("'manual'")),
    Index("ix_reconciliation_runs_ran_at", "ran_at"),
)

# One row per mismatch of a run, with every number of its org for the period so the console's
# drill-down shows them side by side: minutes on our invoice, minutes Stripe accepted from the
# outbox, minutes Stripe's meter aggregated, and the invoice totals (ours after credits,
# Stripe's amount due after the customer's balance). A number not known is null.
reconciliation_mismatches = Table(
    "reconciliation_mismatches",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("run_id", BigId, ForeignKey("reconciliation_runs.id"), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("org_id", String(64), nullable=True),
    Column("stripe_customer_id", String(64), nullable=True),
    Column("our_invoice_id", BigInteger, nullable=True),
    Column("stripe_invoice_ids", String(500), nullable=True),  # space-separated
    Column("billed_minutes", BigInteger, nullable=True),
    Column("sent_minutes", BigInteger, nullable=True),
    Column("stripe_minutes", BigInteger, nullable=True),
    Column("our_cents", BigInteger, nullable=True),
    Column("stripe_cents", BigInteger, nullable=True),
    Column("detail", String(500), nullable=False),
    Index("ix_reconciliation_mismatches_run", "run_id", "org_id"),
)

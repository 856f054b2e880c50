"""Reconciliation runs."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, Integer, String, Table, Text

from billing_engine.db.metadata import BigId, metadata

# One row per reconciliation run, so the engine's gauge shows the last run's result even when the
# run happened in another process (the CLI). report is the run's JSON report.
reconciliation_runs = Table(
    "reconciliation_runs",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("period", String(7), nullable=False),  # "YYYY-MM"
    Column("ran_at", DateTime(timezone=True), nullable=False),
    Column("provider", String(16), nullable=False),  # stripe or simulated
    Column("mismatches", Integer, nullable=False),
    Column("report", Text, nullable=False),
    Index("ix_reconciliation_runs_ran_at", "ran_at"),
)

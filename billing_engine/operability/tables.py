"""Housekeeping job claims: one row per (job, time slot), written by the replica that runs it."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Float, PrimaryKeyConstraint, String, Table

from billing_engine.db.metadata import metadata

# A replica runs a periodic job only after inserting its (job, slot) row; the primary key lets
# exactly one replica (or worker process) in. `slot` is the epoch time divided by the job's
# period, so every replica agrees on it without talking to the others.
housekeeping_runs = Table(
    "housekeeping_runs",
    metadata,
    Column("job", String(64), nullable=False),
    Column("slot", BigInteger, nullable=False),
    Column("claimed_by", String(128), nullable=False),
    Column("claimed_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("outcome", String(16), nullable=True),  # ok, failed
    Column("seconds", Float, nullable=True),
    PrimaryKeyConstraint("job", "slot"),
)

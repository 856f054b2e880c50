"""The admin audit log."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, Integer, String, Table, Text

from billing_engine.db.metadata import BigId, metadata

# Every admin mutation, refused ones included. actor is the admin key's name (null if refused).
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(64), nullable=True),
    Column("method", String(8), nullable=False),
    Column("path", String(500), nullable=False),
    Column("target", String(300), nullable=True),
    Column("org_id", String(64), nullable=True),
    Column("summary", Text, nullable=False),  # JSON: query and body, secrets redacted
    Column("status", Integer, nullable=False),
    Column("outcome", String(16), nullable=False),  # succeeded, failed, refused
    Column("request_id", String(64), nullable=True),
    Index("ix_audit_log_at", "at"),
    Index("ix_audit_log_org_at", "org_id", "at"),
)

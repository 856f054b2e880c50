"""API keys. Only the SHA-256 of a key is stored; `prefix` is its first characters, for people."""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Column, DateTime, Index, String, Table, Text

from billing_engine.db.metadata import metadata

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("prefix", String(32), nullable=False),
    Column("sha256", String(64), nullable=False, unique=True),
    Column("kind", String(8), nullable=False),  # org or staff
    Column("org_id", String(64), nullable=True),  # org keys only
    Column("role", String(16), nullable=True),  # staff keys only
    Column("name", String(64), nullable=False),
    Column("scopes", Text, nullable=False),  # space-separated; empty for staff keys
    Column("created_by", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_used_at", DateTime(timezone=True), nullable=True),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    CheckConstraint(
        "(kind = 'org' AND org_id IS NOT NULL AND role IS NULL)"
        " OR (kind = 'staff' AND org_id IS NULL AND role IS NOT NULL)",
        name="ck_api_keys_kind",
    ),
    Index("ix_api_keys_org", "org_id", "created_at"),
)

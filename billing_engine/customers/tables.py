"""Customers (orgs): who is billed, on which plan, linked to which Stripe customer."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, String, Table, func

from billing_engine.db.metadata import metadata

orgs = Table(
    "orgs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("billing_email", String(320), nullable=False),
    Column("plan", String(64), nullable=False),
    Column("stripe_customer_id", String(64), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Search is case-folded and by prefix; PostgreSQL also gets pattern-ops indexes so LIKE 'abc%'
# uses them under any collation.
Index("ix_orgs_name_lower", func.lower(orgs.c.name))
Index("ix_orgs_email_lower", func.lower(orgs.c.billing_email))
for _name, _column in (("name", orgs.c.name), ("email", orgs.c.billing_email), ("id", orgs.c.id)):
    Index(
        f"ix_orgs_{_name}_prefix",
        func.lower(_column).label("folded"),
        postgresql_ops={"folded": "text_pattern_ops"},
    ).ddl_if(dialect="postgresql")
Index("ix_orgs_stripe_customer", orgs.c.stripe_customer_id)

"""Customers (orgs): who is billed, on which plan, linked to which Stripe customer."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, String, Table

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

"""Throttle state per instance and admin resets of an org's daily counter."""

from __future__ import annotations

from sqlalchemy import Column, Date, DateTime, Index, Integer, PrimaryKeyConstraint, String, Table

from billing_engine.db.metadata import metadata

# What the throttler remembers per instance, so a decision never scans raw slots.
instance_throttle = Table(
    "instance_throttle",
    metadata,
    Column("instance_id", String(128), primary_key=True),
    Column("org_id", String(64), nullable=False),
    Column("run_started_at", DateTime(timezone=True), nullable=True),
    Column("last_running_at", DateTime(timezone=True), nullable=True),
    Column("idle_since", DateTime(timezone=True), nullable=True),
    Column("last_seen", DateTime(timezone=True), nullable=True),
    Column("paused_reason", String(32), nullable=True),
    Column("paused_since", DateTime(timezone=True), nullable=True),
    Column("checked_at", DateTime(timezone=True), nullable=False),
)


# An admin reset of an org's daily throttle counter: minutes up to the offset no longer count
# towards the daily cap. Usage itself (daily_usage, usage_hours) is never touched.
daily_counter_resets = Table(
    "daily_counter_resets",
    metadata,
    Column("org_id", String(64), nullable=False),
    Column("day", Date, nullable=False),
    Column("offset_minutes", Integer, nullable=False),
    Column("reset_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("org_id", "day"),
)

Index("ix_instance_throttle_org", instance_throttle.c.org_id)

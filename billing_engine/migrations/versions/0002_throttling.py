"""Throttle state per instance and daily-counter resets per org.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "instance_throttle",
        sa.Column("instance_id", sa.String(128), primary_key=True),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("run_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_running_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("idle_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paused_reason", sa.String(32), nullable=True),
        sa.Column("paused_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_instance_throttle_org", "instance_throttle", ["org_id"])
    op.create_table(
        "daily_counter_resets",
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("offset_minutes", sa.Integer, nullable=False),
        sa.Column("reset_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("org_id", "day"),
    )


def downgrade() -> None:
    op.drop_table("daily_counter_resets")
    op.drop_table("instance_throttle")

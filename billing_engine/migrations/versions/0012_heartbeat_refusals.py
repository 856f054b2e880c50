"""Heartbeats refused per org, hour and reason, for post-mortems.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "heartbeat_refusals",
        sa.Column("hour", sa.Integer, nullable=False),
        sa.Column("heartbeats", sa.BigInteger, nullable=False),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("org_id", "hour", "reason"),
    )
    op.create_index("ix_heartbeat_refusals_hour", "heartbeat_refusals", ["hour"])


def downgrade() -> None:
    op.drop_index("ix_heartbeat_refusals_hour", table_name="heartbeat_refusals")
    op.drop_table("heartbeat_refusals")

"""Usage-meter outbox towards Stripe's billing meter events; reconciliation runs.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "meter_outbox",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("hour", sa.BigInteger, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("identifier", sa.String(100), nullable=False),
        sa.Column("minutes", sa.Integer, nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("last_status", sa.Integer, nullable=True),
        sa.Column("stripe_customer_id", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("org_id", "hour", "version", name="uq_meter_outbox_org_hour_version"),
        sa.UniqueConstraint("identifier", name="uq_meter_outbox_identifier"),
        sa.CheckConstraint("minutes > 0", name="ck_meter_outbox_minutes_positive"),
    )
    op.create_index("ix_meter_outbox_state_due", "meter_outbox", ["state", "next_attempt_at"])
    op.create_table(
        "reconciliation_runs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("ran_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("mismatches", sa.Integer, nullable=False),
        sa.Column("report", sa.Text, nullable=False),
    )
    op.create_index("ix_reconciliation_runs_ran_at", "reconciliation_runs", ["ran_at"])


def downgrade() -> None:
    op.drop_index("ix_reconciliation_runs_ran_at", table_name="reconciliation_runs")
    op.drop_table("reconciliation_runs")
    op.drop_index("ix_meter_outbox_state_due", table_name="meter_outbox")
    op.drop_table("meter_outbox")

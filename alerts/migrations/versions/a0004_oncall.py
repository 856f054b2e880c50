"""Escalations: who was told of each alert episode, at which step.

Revision ID: a0004
Revises: a0003
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "a0004"
down_revision = "a0003"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "alert_escalations",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("episode", sa.BigInteger, nullable=False),
        sa.Column("alertname", sa.String(200), nullable=False),
        sa.Column("severity", sa.String(8), nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("rotation", sa.String(64), nullable=False),
        sa.Column("person", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("fingerprint", "episode", "step", "kind",
                            name="uq_alert_escalations_step"),
    )
    op.create_index("ix_alert_escalations_at", "alert_escalations", ["at"])


def downgrade() -> None:
    op.drop_index("ix_alert_escalations_at", table_name="alert_escalations")
    op.drop_table("alert_escalations")

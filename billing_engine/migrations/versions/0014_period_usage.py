"""Minutes per org per billing period, kept beside the daily rollups, filled from them.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "period_usage",
        sa.Column("minutes", sa.BigInteger, nullable=False),
        sa.Column("first_day", sa.Date, nullable=False),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("org_id", "first_day"),
    )
    op.create_index("ix_period_usage_period", "period_usage", ["first_day", "org_id"])
    if op.get_bind().dialect.name == "postgresql":
        month = "CAST(date_trunc('month', day) AS date)"
    else:
        month = "date(day, 'start of month')"
    op.execute(
        f"INSERT INTO period_usage (minutes, first_day, org_id) "  # noqa: S608 - no input
        f"SELECT sum(minutes), {month}, org_id FROM daily_usage GROUP BY org_id, {month}"
    )


def downgrade() -> None:
    op.drop_index("ix_period_usage_period", table_name="period_usage")
    op.drop_table("period_usage")

"""Delivery lanes: a priority on each queued message; budget notices read back by round.

Revision ID: a0003
Revises: a0002
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "a0003"
down_revision = "a0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alert_outbox") as batch:
        batch.add_column(sa.Column("priority", sa.SmallInteger, nullable=False,
                                   server_default="1"))
    op.create_index("ix_alert_outbox_lane", "alert_outbox",
                    ["status", "priority", "next_attempt_at"])
    op.drop_index("ix_alert_budget_notices_round", table_name="alert_budget_notices")
    op.create_index("ix_alert_budget_notices_round", "alert_budget_notices",
                    ["round_id", "org_id"])


def downgrade() -> None:
    op.drop_index("ix_alert_budget_notices_round", table_name="alert_budget_notices")
    op.create_index("ix_alert_budget_notices_round", "alert_budget_notices", ["round_id"])
    op.drop_index("ix_alert_outbox_lane", table_name="alert_outbox")
    with op.batch_alter_table("alert_outbox") as batch:
        batch.drop_column("priority")

"""Usage-meter outbox: a send generation per record, part of the identifier sent to Stripe;
indexes for ordered claims of a large backlog and for the oldest unsent hour.

An admin's requeue of a record Stripe refused or rejected bumps it, so the record goes out under
an identifier Stripe has not seen (billing_engine/stripe/meters/rules.py).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("meter_outbox") as batch:
        batch.add_column(
            sa.Column("generation", sa.Integer, nullable=False, server_default="0")
        )
        batch.create_index("ix_meter_outbox_state_hour", ["state", "hour"])
        # Claims read due records in this order: the index gives it without a sort.
        batch.drop_index("ix_meter_outbox_state_due")
        batch.create_index(
            "ix_meter_outbox_state_due", ["state", "next_attempt_at", "hour", "id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("meter_outbox") as batch:
        batch.drop_index("ix_meter_outbox_state_hour")
        batch.drop_index("ix_meter_outbox_state_due")
        batch.create_index("ix_meter_outbox_state_due", ["state", "next_attempt_at"])
        batch.drop_column("generation")

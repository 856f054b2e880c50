"""Stripe's invoices as its events describe them; one payment attempt per charge.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stripe_invoices",
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("stripe_invoice_id", sa.String(255), nullable=False),
        sa.Column("customer_id", sa.String(255), nullable=True),
        sa.Column("number", sa.String(100), nullable=True),
        sa.Column("status", sa.String(32), nullable=True),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.Column("amount_due_cents", sa.BigInteger, nullable=True),
        sa.Column("amount_paid_cents", sa.BigInteger, nullable=True),
        sa.Column("total_cents", sa.BigInteger, nullable=True),
        sa.Column("hosted_invoice_url", sa.String(1000), nullable=True),
        sa.Column("period", sa.String(7), nullable=True),
        sa.Column("event_created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("org_id", "stripe_invoice_id"),
    )
    op.create_index("ix_stripe_invoices_org_period", "stripe_invoices", ["org_id", "period"])
    # Before this revision an attempt could repeat a charge id (one row per invoice event); keep
    # the charge on the earliest row only, so the unique index can be built.
    op.execute(
        "UPDATE payment_attempts SET charge_id = NULL WHERE charge_id IS NOT NULL AND id > "
        "(SELECT MIN(p.id) FROM payment_attempts p WHERE p.org_id = payment_attempts.org_id "
        "AND p.charge_id = payment_attempts.charge_id)"
    )
    op.drop_index("ix_payment_attempts_charge", table_name="payment_attempts")
    op.create_index(
        "ux_payment_attempts_charge", "payment_attempts", ["org_id", "charge_id"], unique=True
    )


def downgrade() -> None:
    op.drop_index("ux_payment_attempts_charge", table_name="payment_attempts")
    op.create_index("ix_payment_attempts_charge", "payment_attempts", ["charge_id"])
    op.drop_index("ix_stripe_invoices_org_period", table_name="stripe_invoices")
    op.drop_table("stripe_invoices")

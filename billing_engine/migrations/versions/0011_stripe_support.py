"""Credits sent to Stripe as customer balance transactions; reconciliation mismatches kept per
run, with the trigger of each run.

Credits granted before this revision were never sent to Stripe and their invoices are long
settled: they are marked `legacy` and never sent.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("credits") as batch:
        batch.add_column(sa.Column("stripe_status", sa.String(16), nullable=False,
                                   server_default=sa.text("'pending'")))
        batch.add_column(sa.Column("stripe_balance_transaction_id", sa.String(64),
                                   nullable=True))
        batch.add_column(sa.Column("stripe_attempts", sa.Integer, nullable=False,
                                   server_default=sa.text("0")))
        batch.add_column(sa.Column("stripe_next_attempt_at", sa.DateTime(timezone=True),
                                   nullable=True))
        batch.add_column(sa.Column("stripe_claimed_until", sa.DateTime(timezone=True),
                                   nullable=True))
        batch.add_column(sa.Column("stripe_last_error", sa.String(500), nullable=True))
        batch.add_column(sa.Column("stripe_sent_at", sa.DateTime(timezone=True),
                                   nullable=True))
        batch.add_column(sa.Column("stripe_retries", sa.Integer, nullable=False,
                                   server_default=sa.text("0")))
    op.execute("UPDATE credits SET stripe_status = 'legacy'")
    op.create_index("ix_credits_stripe_due", "credits",
                    ["stripe_status", "stripe_next_attempt_at"])

    with op.batch_alter_table("reconciliation_runs") as batch:
        batch.add_column(sa.Column("trigger", sa.String(16), nullable=False,
                                   server_default=sa.text("'manual'")))
    op.create_table(
        "reconciliation_mismatches",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("run_id", BigId, sa.ForeignKey("reconciliation_runs.id"), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("org_id", sa.String(64), nullable=True),
        sa.Column("stripe_customer_id", sa.String(64), nullable=True),
        sa.Column("our_invoice_id", sa.BigInteger, nullable=True),
        sa.Column("stripe_invoice_ids", sa.String(500), nullable=True),
        sa.Column("billed_minutes", sa.BigInteger, nullable=True),
        sa.Column("sent_minutes", sa.BigInteger, nullable=True),
        sa.Column("stripe_minutes", sa.BigInteger, nullable=True),
        sa.Column("our_cents", sa.BigInteger, nullable=True),
        sa.Column("stripe_cents", sa.BigInteger, nullable=True),
        sa.Column("detail", sa.String(500), nullable=False),
    )
    op.create_index("ix_reconciliation_mismatches_run", "reconciliation_mismatches",
                    ["run_id", "org_id"])


def downgrade() -> None:
    op.drop_index("ix_reconciliation_mismatches_run", table_name="reconciliation_mismatches")
    op.drop_table("reconciliation_mismatches")
    with op.batch_alter_table("reconciliation_runs") as batch:
        batch.drop_column("trigger")
    op.drop_index("ix_credits_stripe_due", table_name="credits")
    with op.batch_alter_table("credits") as batch:
        for name in ("stripe_retries", "stripe_sent_at", "stripe_last_error",
                     "stripe_claimed_until", "stripe_next_attempt_at", "stripe_attempts",
                     "stripe_balance_transaction_id", "stripe_status"):
            batch.drop_column(name)

"""Stripe webhook inbox, subscriptions and payments.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Events for a Stripe customer are matched to an org on every delivery.
    op.create_index("ix_orgs_stripe_customer", "orgs", ["stripe_customer_id"])
    op.create_table(
        "stripe_events",
        sa.Column("event_id", sa.String(255), primary_key=True),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("livemode", sa.Boolean, nullable=False),
        sa.Column("customer_id", sa.String(255), nullable=True),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.String(1000), nullable=True),
        sa.Column("effect", sa.String(200), nullable=True),
        sa.Column("org_id", sa.String(64), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=True),
    )
    # Failing and waiting events are few; the gauges and the list read them by status.
    op.create_index("ix_stripe_events_status_received", "stripe_events", ["status", "received_at"])
    op.create_index("ix_stripe_events_customer", "stripe_events", ["customer_id", "status"])
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(255), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("price_ids", sa.String(1000), nullable=False),
        sa.Column("plan", sa.String(64), nullable=True),
        sa.Column("current_period_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("current_period_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancel_at_period_end", sa.Boolean, nullable=False),
        sa.Column("event_created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_subscriptions_org", "subscriptions", ["org_id"])
    op.create_table(
        "payment_attempts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(255), nullable=False, unique=True),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(255), nullable=True),
        sa.Column("invoice_id", sa.String(255), nullable=True),
        sa.Column("charge_id", sa.String(255), nullable=True),
        sa.Column("payment_intent_id", sa.String(255), nullable=True),
        sa.Column("amount_cents", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("failure_code", sa.String(64), nullable=True),
        sa.Column("failure_reason", sa.String(32), nullable=True),
        sa.Column("failure_message", sa.String(500), nullable=True),
        sa.Column("attempt_number", sa.Integer, nullable=True),
        sa.Column("refunded_cents", sa.BigInteger, nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_payment_attempts_org", "payment_attempts", ["org_id", "attempted_at"])
    op.create_index("ix_payment_attempts_attempted", "payment_attempts", ["attempted_at"])
    op.create_index("ix_payment_attempts_charge", "payment_attempts", ["charge_id"])
    op.create_index("ix_payment_attempts_intent", "payment_attempts", ["payment_intent_id"])
    op.create_table(
        "refunds",
        sa.Column("refund_key", sa.String(255), primary_key=True),
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("charge_id", sa.String(255), nullable=False),
        sa.Column("payment_intent_id", sa.String(255), nullable=True),
        sa.Column("amount_cents", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("reason", sa.String(64), nullable=True),
        sa.Column("refunded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_refunds_org", "refunds", ["org_id", "refunded_at"])
    op.create_index("ix_refunds_charge", "refunds", ["charge_id"])
    op.create_index("ix_refunds_refunded", "refunds", ["refunded_at"])


def downgrade() -> None:
    op.drop_table("refunds")
    op.drop_table("payment_attempts")
    op.drop_table("subscriptions")
    op.drop_table("stripe_events")
    op.drop_index("ix_orgs_stripe_customer", table_name="orgs")

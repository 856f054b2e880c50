"""Invoices, invoice lines, credits, closed periods and the admin audit log.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "invoices",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("plan", sa.String(64), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("included_minutes", sa.BigInteger, nullable=False),
        sa.Column("used_minutes", sa.BigInteger, nullable=False),
        sa.Column("overage_minutes", sa.BigInteger, nullable=False),
        sa.Column("subtotal_cents", sa.BigInteger, nullable=False),
        sa.Column("credits_cents", sa.BigInteger, nullable=False),
        sa.Column("total_cents", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("stripe_invoice_id", sa.String(64), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("org_id", "period", name="uq_invoices_org_period"),
        sa.CheckConstraint("total_cents >= 0", name="ck_invoices_total_non_negative"),
    )
    op.create_index("ix_invoices_period", "invoices", ["period"])
    op.create_table(
        "credits",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("amount_cents", sa.BigInteger, nullable=False),
        sa.Column("remaining_cents", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("granted_by", sa.String(64), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("idempotency_key", sa.String(128), nullable=True),
        sa.UniqueConstraint("org_id", "idempotency_key", name="uq_credits_org_idempotency_key"),
        sa.CheckConstraint("amount_cents > 0", name="ck_credits_amount_positive"),
        sa.CheckConstraint(
            "remaining_cents >= 0 AND remaining_cents <= amount_cents",
            name="ck_credits_remaining",
        ),
    )
    op.create_index("ix_credits_org_granted", "credits", ["org_id", "granted_at"])
    op.create_table(
        "invoice_lines",
        sa.Column("invoice_id", BigId, sa.ForeignKey("invoices.id"), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("description", sa.String(300), nullable=False),
        sa.Column("minutes", sa.BigInteger, nullable=True),
        sa.Column("unit_amount_cents", sa.BigInteger, nullable=False),
        sa.Column("amount_cents", sa.BigInteger, nullable=False),
        sa.Column("credit_id", BigId, sa.ForeignKey("credits.id"), nullable=True),
        sa.PrimaryKeyConstraint("invoice_id", "position"),
    )
    op.create_index("ix_invoice_lines_credit", "invoice_lines", ["credit_id"])
    op.create_table(
        "closed_periods",
        sa.Column("period", sa.String(7), primary_key=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("invoices", sa.Integer, nullable=False),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(64), nullable=True),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("path", sa.String(500), nullable=False),
        sa.Column("target", sa.String(300), nullable=True),
        sa.Column("org_id", sa.String(64), nullable=True),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=True),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_org_at", "audit_log", ["org_id", "at"])


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_table("closed_periods")
    op.drop_table("invoice_lines")
    op.drop_table("credits")
    op.drop_table("invoices")

"""Orgs, minute slots, daily rollups and instances.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "orgs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("billing_email", sa.String(320), nullable=False),
        sa.Column("plan", sa.String(64), nullable=False),
        sa.Column("stripe_customer_id", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_orgs_name_lower", "orgs", [sa.text("lower(name)")])
    op.create_index("ix_orgs_email_lower", "orgs", [sa.text("lower(billing_email)")])
    if op.get_bind().dialect.name == "postgresql":
        # Prefix search (LIKE 'abc%') uses these under any collation.
        op.execute("CREATE INDEX ix_orgs_name_prefix ON orgs (lower(name) text_pattern_ops)")
        op.execute(
            "CREATE INDEX ix_orgs_email_prefix ON orgs (lower(billing_email) text_pattern_ops)"
        )
        op.execute("CREATE INDEX ix_orgs_id_prefix ON orgs (lower(id) text_pattern_ops)")
    op.create_table(
        "usage_slots",
        sa.Column("instance_id", sa.String(128), nullable=False),
        sa.Column("minute", sa.BigInteger, nullable=False),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.PrimaryKeyConstraint("instance_id", "minute"),
    )
    op.create_index("ix_usage_slots_org_minute", "usage_slots", ["org_id", "minute"])
    op.create_table(
        "daily_usage",
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("minutes", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("org_id", "day"),
    )
    op.create_index("ix_daily_usage_day", "daily_usage", ["day"])
    op.create_table(
        "instances",
        sa.Column("instance_id", sa.String(128), primary_key=True),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_state", sa.String(8), nullable=False),
    )
    op.create_index("ix_instances_org", "instances", ["org_id"])
    op.create_index("ix_instances_last_seen", "instances", ["last_seen"])


def downgrade() -> None:
    op.drop_table("instances")
    op.drop_table("daily_usage")
    op.drop_table("usage_slots")
    op.drop_table("orgs")

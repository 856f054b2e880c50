"""API keys: org keys with scopes and staff keys with a role, stored as SHA-256 hashes.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("prefix", sa.String(32), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("org_id", sa.String(64), nullable=True),
        sa.Column("role", sa.String(16), nullable=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("scopes", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "(kind = 'org' AND org_id IS NOT NULL AND role IS NULL)"
            " OR (kind = 'staff' AND org_id IS NULL AND role IS NOT NULL)",
            name="ck_api_keys_kind",
        ),
    )
    op.create_index("ix_api_keys_org", "api_keys", ["org_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_api_keys_org", table_name="api_keys")
    op.drop_table("api_keys")

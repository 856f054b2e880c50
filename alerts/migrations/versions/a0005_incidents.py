"""Alert history (one row per episode that fired) and incidents with their events and
post-incident checklist.

Revision ID: a0005
Revises: a0004
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "a0005"
down_revision = "a0004"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "alert_episodes",
        sa.Column("fingerprint", sa.String(64), primary_key=True),
        sa.Column("episode", sa.BigInteger, primary_key=True),
        sa.Column("alertname", sa.String(200), nullable=False),
        sa.Column("severity", sa.String(8), nullable=False),
        sa.Column("labels", sa.Text, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acked_by", sa.String(200), nullable=True),
    )
    op.create_index("ix_alert_episodes_fired", "alert_episodes", ["fired_at"])
    op.create_index("ix_alert_episodes_name", "alert_episodes", ["alertname", "fired_at"])
    op.create_table(
        "alert_incidents",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("severity", sa.String(2), nullable=False),
        sa.Column("impact", sa.Text, nullable=False),
        sa.Column("commander", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("fingerprints", sa.Text, nullable=False),
        sa.Column("declared_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("declared_by", sa.String(200), nullable=False),
        sa.Column("last_update_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("update_reminded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.String(200), nullable=True),
        sa.Column("slack_thread", sa.String(64), nullable=True),
        sa.Column("postmortem", sa.Text, nullable=True),
        sa.Column("postmortem_by", sa.String(200), nullable=True),
        sa.Column("postmortem_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_alert_incidents_declared", "alert_incidents", ["declared_at"])
    op.create_table(
        "alert_incident_events",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("incident_id", sa.BigInteger, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("who", sa.String(200), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
    )
    op.create_index("ix_alert_incident_events_incident", "alert_incident_events",
                    ["incident_id", "at"])
    op.create_table(
        "alert_incident_tasks",
        sa.Column("incident_id", sa.BigInteger, primary_key=True),
        sa.Column("key", sa.String(16), primary_key=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done_by", sa.String(200), nullable=True),
        sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_alert_incident_tasks_due", "alert_incident_tasks", ["done_at", "due_at"])


def downgrade() -> None:
    for table, index in (("alert_incident_tasks", "ix_alert_incident_tasks_due"),
                         ("alert_incident_events", "ix_alert_incident_events_incident"),
                         ("alert_incidents", "ix_alert_incidents_declared")):
        op.drop_index(index, table_name=table)
        op.drop_table(table)
    op.drop_index("ix_alert_episodes_name", table_name="alert_episodes")
    op.drop_index("ix_alert_episodes_fired", table_name="alert_episodes")
    op.drop_table("alert_episodes")

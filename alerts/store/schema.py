"""The alerts process' tables. Its own Alembic migrations (alerts/migrations) create them, with
their own version table, so they live in the engine's database without touching its history.

The budget round reads billing facts only through the engine's published query
(`billing_engine.usage.facts.thresholds_reached`), never the engine's tables.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

# SQLite only autoincrements an INTEGER PRIMARY KEY.
Id = BigInteger().with_variant(Integer(), "sqlite")

# Where each alert instance (one label set of one rule) stands. One row per fingerprint: a new
# episode of the same alert reuses the row with a new active_at.
alert_states = Table(
    "alert_states",
    metadata,
    Column("fingerprint", String(64), primary_key=True),
    Column("alertname", String(200), nullable=False),
    Column("labels", Text, nullable=False),  # JSON object
    Column("annotations", Text, nullable=False),  # JSON object, as rendered
    Column("status", String(10), nullable=False),  # pending | firing | resolved
    Column("active_at", DateTime(timezone=True), nullable=False),
    Column("fired_at", DateTime(timezone=True), nullable=True),
    Column("resolved_at", DateTime(timezone=True), nullable=True),
    Column("keep_firing_since", DateTime(timezone=True), nullable=True),
    Column("last_evaluated_at", DateTime(timezone=True), nullable=False),
    Column("value", String(40), nullable=True),  # repr of the float: NaN and Inf survive
    Column("acked_at", DateTime(timezone=True), nullable=True),
    Column("acked_by", String(200), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_alert_states_status", "status"),
)

# The outbox: one row per message to one receiver. Claimed, sent, then marked.
alert_outbox = Table(
    "alert_outbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("kind", String(10), nullable=False),  # rule | budget | test
    Column("receiver", String(100), nullable=False),
    Column("channel", String(20), nullable=False),  # email | slack
    Column("payload", Text, nullable=True),  # the Message as JSON (budget: built when sent)
    Column("notice_key", String(120), nullable=True),  # budget: org_id/period/threshold
    Column("status", String(10), nullable=False),  # pending | sent | failed
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("claimed_by", String(100), nullable=True),
    Column("claimed_until", DateTime(timezone=True), nullable=True),
    Column("last_reason", String(40), nullable=True),
    Column("last_detail", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_alert_outbox_due", "status", "next_attempt_at"),
    Index("ix_alert_outbox_notice_key", "notice_key"),
)

# The notification log: each (fingerprint, receiver, state, repeat bucket) at most once, ever.
alert_notifications = Table(
    "alert_notifications",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("fingerprint", String(64), nullable=False),
    Column("alertname", String(200), nullable=False),
    Column("receiver", String(100), nullable=False),
    Column("channel", String(20), nullable=False),
    Column("state", String(10), nullable=False),  # firing | resolved
    Column("repeat_bucket", String(64), nullable=False),
    Column("episode", BigInteger, nullable=False),
    Column("outbox_id", BigInteger, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("fingerprint", "receiver", "state", "repeat_bucket",
                     name="uq_alert_notifications_key"),
    Index("ix_alert_notifications_outbox", "outbox_id"),
)

alert_silences = Table(
    "alert_silences",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("matchers", Text, nullable=False),  # JSON list of {name, op, value}
    Column("starts_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("comment", Text, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_alert_silences_expires_at", "expires_at"),
)

# Budget notices: one row per org, billing period and threshold, ever. The primary key is the
# "once per threshold per period" guarantee; the customer email and the support Slack line are
# queued in the same transaction that inserts the row.
alert_budget_notices = Table(
    "alert_budget_notices",
    metadata,
    Column("org_id", String(64), nullable=False),
    Column("period", String(7), nullable=False),  # 2026-11
    Column("threshold", Integer, nullable=False),  # 50 | 90 | 100
    Column("email", String(320), nullable=False),
    Column("org_name", String(200), nullable=False),
    Column("plan", String(64), nullable=False),
    Column("used_minutes", Integer, nullable=False),
    Column("included_minutes", Integer, nullable=False),
    Column("round_id", String(36), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("org_id", "period", "threshold"),
    Index("ix_alert_budget_notices_round", "round_id"),
)

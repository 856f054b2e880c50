"""The alerts audit log (`alert_audit`): one row per change made through the API or the CLI
(acknowledgement, silence added or expired, test message sent), written by `record` inside the
change's own transaction, so the two commit together or not at all.

A row holds who (the principal's name and role), what (`action`), on what (`target`) and a few
words of detail; never a credential, and never the body of a refused request (refusals are
counted in `alert_access_denied_total` and `alert_auth_failures_total`, not stored).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, select
from sqlalchemy.exc import DBAPIError

from alerts.store.database import Id, Store, metadata
from billing_core.access import Principal
from billing_core.errors import DatabaseUnavailable
from billing_core.sql import utc

alert_audit = sa.Table(
    "alert_audit",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("target", sa.String(200), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),  # JSON object of short strings
    sa.Index("ix_alert_audit_at", "at"),
)


class AuditUnavailable(DatabaseUnavailable):
    """The audit row could not be written, so the change it records was not made either."""

    code = "audit_unavailable"

    @property
    def public_message(self) -> str:
        return "the audit log cannot be written; nothing was changed"


@dataclass(frozen=True)
class AuditEntry:
    actor: str
    role: str
    action: str  # alert.ack, silence.add, silence.expire, test.email, test.slack
    target: str
    at: datetime
    detail: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, principal: Principal, *, action: str, target: str, at: datetime,
           **detail: str | None) -> AuditEntry:
        return cls(actor=principal.actor[:64],
                   role=principal.role.name if principal.role is not None else principal.kind,
                   action=action, target=target[:200], at=at,
                   detail={k: v[:500] for k, v in detail.items() if v})


def record(conn: Connection, entry: AuditEntry) -> None:
    """Write `entry` in the caller's transaction; AuditUnavailable (503) if the database refuses
    it, which rolls the whole transaction back."""
    values = {"at": entry.at, "actor": entry.actor, "role": entry.role, "action": entry.action,
              "target": entry.target, "detail": json.dumps(entry.detail, sort_keys=True)}
    try:
        conn.execute(alert_audit.insert().values(**values))
    except DBAPIError as exc:
        raise AuditUnavailable(type(exc.orig).__name__) from exc


class AuditStore(Store):
    def record_alone(self, entry: AuditEntry) -> None:
        """An audit row in a transaction of its own (before a test message is sent)."""
        self.run(lambda conn: record(conn, entry), write=True)

    def audit_log(self, *, limit: int = 100) -> list[dict[str, Any]]:
        """The newest rows first."""
        query = select(alert_audit).order_by(alert_audit.c.id.desc()).limit(limit)
        rows = self.run(lambda conn: conn.execute(query).all())
        return [{"at": utc(r.at), "actor": r.actor, "role": r.role, "action": r.action,
                 "target": r.target, "detail": json.loads(r.detail)} for r in rows]

"""Silences (`alert_silences`), over SQLAlchemy Core."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, select, update

from alerts.access.store import AuditEntry, record
from alerts.silences.rules import Matcher, MatchOp, Silence
from alerts.store.database import Store, metadata
from billing_core.sql import utc

alert_silences = sa.Table(
    "alert_silences",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("matchers", sa.Text, nullable=False),  # JSON list of {name, op, value}
    sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("comment", sa.Text, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_alert_silences_expires_at", "expires_at"),
)


def silence_from_row(row: Any) -> Silence:
    return Silence(
        id=row.id,
        matchers=tuple(Matcher(name=m["name"], value=m["value"], op=MatchOp(m["op"]))
                       for m in json.loads(row.matchers)),
        starts_at=utc(row.starts_at),
        expires_at=utc(row.expires_at),
        comment=row.comment,
        created_by=row.created_by,
        created_at=utc(row.created_at),
    )


class SilenceStore(Store):
    def add_silence(self, *, matchers: Sequence[Matcher], starts_at: datetime,
                    expires_at: datetime, comment: str, created_by: str, now: datetime,
                    audit: AuditEntry | None = None) -> Silence:
        """Store a silence and, in the same transaction, its audit row (target: the new id)."""
        silence_id = str(uuid.uuid4())
        values = {
            "id": silence_id,
            "matchers": json.dumps([{"name": m.name, "op": m.op.value, "value": m.value}
                                    for m in matchers]),
            "starts_at": starts_at, "expires_at": expires_at, "comment": comment,
            "created_by": created_by, "created_at": now, "updated_at": now,
        }
        def work(conn: Connection) -> None:
            conn.execute(alert_silences.insert().values(**values))
            if audit is not None:
                record(conn, replace(audit, target=silence_id))

        self.run(work, write=True)
        silence = self.get_silence(silence_id)
        assert silence is not None
        return silence

    def get_silence(self, silence_id: str) -> Silence | None:
        query = select(alert_silences).where(alert_silences.c.id == silence_id)
        row = self.run(lambda conn: conn.execute(query).first())
        return silence_from_row(row) if row is not None else None

    def list_silences(self, *, state: str, now: datetime) -> list[Silence]:
        """Silences by state: active (not expired yet), expired, or all; newest first."""
        query = select(alert_silences)
        if state == "active":
            query = query.where(alert_silences.c.expires_at > now)
        elif state == "expired":
            query = query.where(alert_silences.c.expires_at <= now)
        query = query.order_by(alert_silences.c.created_at.desc(), alert_silences.c.id)
        rows = self.run(lambda conn: conn.execute(query).all())
        return [silence_from_row(r) for r in rows]

    def expire_silence(self, silence_id: str, *, now: datetime,
                       audit: AuditEntry | None = None) -> Silence | None:
        def work(conn: Connection) -> None:
            ended = conn.execute(update(alert_silences)
                                 .where(alert_silences.c.id == silence_id,
                                        alert_silences.c.expires_at > now)
                                 .values(expires_at=now, updated_at=now))
            if audit is not None and ended.rowcount:
                record(conn, audit)

        self.run(work, write=True)
        return self.get_silence(silence_id)

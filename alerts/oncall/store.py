"""Escalations (`alert_escalations`): who was told of each alert episode, at which step, once.

The unique key (fingerprint, episode, step, kind) is the "never a second page" guarantee: a
restart, a new leader or a retried round inserts with ON CONFLICT DO NOTHING and queues the
messages only for the rows it inserted, in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, and_, or_, select

from alerts.delivery.store import OutboxEntry, enqueue_many
from alerts.store.database import Id, Store, metadata
from billing_core.sql import utc

ESCALATED = "escalated"
RESOLVED = "resolved"

alert_escalations = sa.Table(
    "alert_escalations",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("episode", sa.BigInteger, nullable=False),
    sa.Column("alertname", sa.String(200), nullable=False),
    sa.Column("severity", sa.String(8), nullable=False),
    sa.Column("step", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(10), nullable=False),  # escalated | resolved
    sa.Column("rotation", sa.String(64), nullable=False),
    sa.Column("person", sa.String(64), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("fingerprint", "episode", "step", "kind",
                        name="uq_alert_escalations_step"),
    sa.Index("ix_alert_escalations_at", "at"),
)


@dataclass(frozen=True)
class Escalation:
    fingerprint: str
    episode: int
    alertname: str
    severity: str
    step: int
    kind: str
    rotation: str
    person: str
    at: datetime


def escalation_key(e: Escalation) -> str:
    """What the outbox files an escalation's messages under."""
    return f"esc/{e.fingerprint}/{e.episode}/{e.step}/{e.kind}"


def _row(r: Any) -> Escalation:
    return Escalation(fingerprint=r.fingerprint, episode=int(r.episode), alertname=r.alertname,
                      severity=r.severity, step=int(r.step), kind=r.kind, rotation=r.rotation,
                      person=r.person, at=utc(r.at))


class EscalationStore(Store):
    def escalations_of(self, episodes: Sequence[tuple[str, int]]) -> dict[tuple[str, int],
                                                                          list[Escalation]]:
        """Every escalation row of these (fingerprint, episode) pairs, oldest first."""
        if not episodes:
            return {}
        e = alert_escalations
        conditions = [and_(e.c.fingerprint == fp, e.c.episode == episode)
                      for fp, episode in episodes]
        query = select(e).where(or_(*conditions)).order_by(e.c.id)
        rows = self.run(lambda conn: conn.execute(query).all())
        result: dict[tuple[str, int], list[Escalation]] = {}
        for r in rows:
            item = _row(r)
            result.setdefault((item.fingerprint, item.episode), []).append(item)
        return result

    def escalations_between(self, starts: datetime, ends: datetime) -> list[Escalation]:
        e = alert_escalations
        query = select(e).where(e.c.at >= starts, e.c.at < ends).order_by(e.c.at, e.c.id)
        return [_row(r) for r in self.run(lambda conn: conn.execute(query).all())]

    def record_escalation(self, escalation: Escalation,
                          messages: Sequence[OutboxEntry]) -> bool:
        """Note `escalation` and queue its messages, in one transaction; False (nothing queued)
        when it was noted already."""

        def work(conn: Connection) -> bool:
            statement = self.insert(alert_escalations).values(
                fingerprint=escalation.fingerprint, episode=escalation.episode,
                alertname=escalation.alertname, severity=escalation.severity,
                step=escalation.step, kind=escalation.kind, rotation=escalation.rotation,
                person=escalation.person, at=escalation.at,
            ).on_conflict_do_nothing(
                index_elements=["fingerprint", "episode", "step", "kind"]
            ).returning(alert_escalations.c.id)
            if conn.execute(statement).first() is None:
                return False
            enqueue_many(conn, messages, now=escalation.at)
            return True

        return self.run(work, write=True)

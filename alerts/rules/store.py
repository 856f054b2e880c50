"""Where each alert stands (`alert_states`), over SQLAlchemy Core.

One row per fingerprint: a new episode of the same alert reuses the row with a new active_at.
A round's new states and the notifications they cause are written in one transaction (the
notifications through delivery's `queue_message`), so a crash leaves either both or neither.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, case, delete, func, or_, select, update

from alerts.access.store import AuditEntry, record
from alerts.delivery.store import (
    DeliveryRecord,
    QueuedMessage,
    deliveries_of,
    queue_message,
    receivers_told,
)
from alerts.rules.model import Alert, AlertStatus
from alerts.store.database import Store, metadata
from billing_core.sql import utc, utc_or_none

alert_states = sa.Table(
    "alert_states",
    metadata,
    sa.Column("fingerprint", sa.String(64), primary_key=True),
    sa.Column("alertname", sa.String(200), nullable=False),
    sa.Column("labels", sa.Text, nullable=False),  # JSON object
    sa.Column("annotations", sa.Text, nullable=False),  # JSON object, as rendered
    sa.Column("status", sa.String(10), nullable=False),  # pending | firing | resolved
    sa.Column("active_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("fired_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("keep_firing_since", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_evaluated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("value", sa.String(40), nullable=True),  # repr of the float: NaN and Inf survive
    sa.Column("acked_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("acked_by", sa.String(200), nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_alert_states_status", "status"),
)

# One row per episode that fired: the history people search, kept ALERTS_RETENTION_DAYS.
alert_episodes = sa.Table(
    "alert_episodes",
    metadata,
    sa.Column("fingerprint", sa.String(64), primary_key=True),
    sa.Column("episode", sa.BigInteger, primary_key=True),
    sa.Column("alertname", sa.String(200), nullable=False),
    sa.Column("severity", sa.String(8), nullable=False),
    sa.Column("labels", sa.Text, nullable=False),  # JSON object
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("fired_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("acked_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("acked_by", sa.String(200), nullable=True),
    sa.Index("ix_alert_episodes_fired", "fired_at"),
    sa.Index("ix_alert_episodes_name", "alertname", "fired_at"),
)


@dataclass(frozen=True)
class Episode:
    """One firing of one alert, from the history."""

    fingerprint: str
    episode: int
    alertname: str
    severity: str
    labels: dict[str, str]
    summary: str
    fired_at: datetime
    resolved_at: datetime | None
    acked_at: datetime | None
    acked_by: str | None


def _episode(r: Any) -> Episode:
    return Episode(fingerprint=r.fingerprint, episode=int(r.episode), alertname=r.alertname,
                   severity=r.severity, labels=json.loads(r.labels), summary=r.summary,
                   fired_at=utc(r.fired_at), resolved_at=utc_or_none(r.resolved_at),
                   acked_at=utc_or_none(r.acked_at), acked_by=r.acked_by)


# An acknowledged alert and the (receiver, channel) pairs told it fired -> messages to queue.
AckRelay = Callable[[Alert, Sequence[tuple[str, str]]], Sequence[QueuedMessage]]


def value_text(value: float | None) -> str | None:
    if value is None:
        return None
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def value_float(raw: str | None) -> float | None:
    if raw is None:
        return None
    return float(raw.replace("+Inf", "inf").replace("-Inf", "-inf"))


def _alert_from_row(row: Any) -> Alert:
    return Alert(
        fingerprint=row.fingerprint,
        alertname=row.alertname,
        labels=json.loads(row.labels),
        annotations=json.loads(row.annotations),
        status=AlertStatus(row.status),
        active_at=utc(row.active_at),
        last_evaluated_at=utc(row.last_evaluated_at),
        value=value_float(row.value),
        fired_at=utc_or_none(row.fired_at),
        resolved_at=utc_or_none(row.resolved_at),
        keep_firing_since=utc_or_none(row.keep_firing_since),
        acked_at=utc_or_none(row.acked_at),
        acked_by=row.acked_by,
    )


def _alert_values(alert: Alert, now: datetime) -> dict[str, Any]:
    return {
        "fingerprint": alert.fingerprint,
        "alertname": alert.alertname,
        "labels": json.dumps(dict(alert.labels), sort_keys=True),
        "annotations": json.dumps(dict(alert.annotations), sort_keys=True),
        "status": alert.status.value,
        "active_at": alert.active_at,
        "fired_at": alert.fired_at,
        "resolved_at": alert.resolved_at,
        "keep_firing_since": alert.keep_firing_since,
        "last_evaluated_at": alert.last_evaluated_at,
        "value": value_text(alert.value),
        "acked_at": alert.acked_at,
        "acked_by": alert.acked_by,
        "updated_at": now,
    }


def _keep_ack(statement: Any, column: Any) -> Any:
    """On upsert: keep the stored ack while the episode (active_at) is unchanged."""
    return case(
        (alert_states.c.active_at == statement.excluded.active_at,
         func.coalesce(column, statement.excluded[column.name])),
        else_=statement.excluded[column.name],
    )


class AlertStateStore(Store):
    def load_alerts(self, *, statuses: Iterable[AlertStatus] | None = None) -> list[Alert]:
        query = select(alert_states)
        if statuses is not None:
            query = query.where(alert_states.c.status.in_([s.value for s in statuses]))
        rows = self.run(lambda conn: conn.execute(query).all())
        return [_alert_from_row(r) for r in rows]

    def get_alert(self, fingerprint: str) -> Alert | None:
        query = select(alert_states).where(alert_states.c.fingerprint == fingerprint)
        row = self.run(lambda conn: conn.execute(query).first())
        return _alert_from_row(row) if row is not None else None

    def apply_round(self, *, alerts: Sequence[Alert], dropped: Sequence[str],
                    messages: Sequence[QueuedMessage], now: datetime) -> list[int]:
        """Store the round's alert states and queue its messages, in one transaction.

        A message is queued only for the notification keys this transaction inserts into the
        log; keys already there (another replica, a retried round) are skipped. Returns the
        outbox ids created.
        """

        def work(conn: Connection) -> list[int]:
            self._upsert_alerts(conn, alerts, now)
            if dropped:
                conn.execute(delete(alert_states).where(
                    alert_states.c.fingerprint.in_(list(dropped)),
                    alert_states.c.status == AlertStatus.PENDING.value))
            queued = (queue_message(conn, m, now=now) for m in messages)
            return [outbox_id for outbox_id in queued if outbox_id is not None]

        return self.run(work, write=True)

    def _upsert_alerts(self, conn: Connection, alerts: Sequence[Alert], now: datetime) -> None:
        if not alerts:
            return
        rows = [_alert_values(a, now) for a in alerts]
        statement = self.insert(alert_states)
        statement = statement.on_conflict_do_update(
            index_elements=[alert_states.c.fingerprint],
            set_={
                **{c: statement.excluded[c] for c in rows[0]
                   if c not in {"fingerprint", "acked_at", "acked_by"}},
                # An ack made through the API during the round survives, unless the round
                # started a new episode.
                "acked_at": _keep_ack(statement, alert_states.c.acked_at),
                "acked_by": _keep_ack(statement, alert_states.c.acked_by),
            },
        )
        conn.execute(statement, rows)
        fired = [a for a in alerts if a.fired_at is not None]
        if not fired:
            return
        history = self.insert(alert_episodes)
        e = alert_episodes
        history = history.on_conflict_do_update(
            index_elements=[e.c.fingerprint, e.c.episode],
            set_={"resolved_at": history.excluded.resolved_at,
                  "acked_at": func.coalesce(e.c.acked_at, history.excluded.acked_at),
                  "acked_by": func.coalesce(e.c.acked_by, history.excluded.acked_by)})
        conn.execute(history, [{
            "fingerprint": a.fingerprint, "episode": a.episode, "alertname": a.alertname,
            "severity": a.severity[:8], "labels": json.dumps(dict(a.labels), sort_keys=True),
            "summary": a.annotations.get("summary", "")[:2000], "fired_at": a.fired_at,
            "resolved_at": a.resolved_at, "acked_at": a.acked_at, "acked_by": a.acked_by,
        } for a in fired])

    def history(self, *, since: datetime, until: datetime, alertname: str | None = None,
                severity: str | None = None, limit: int = 500) -> list[Episode]:
        """Episodes that fired in [since, until), newest first."""
        e = alert_episodes
        query = select(e).where(e.c.fired_at >= since, e.c.fired_at < until)
        if alertname:
            query = query.where(e.c.alertname == alertname)
        if severity:
            query = query.where(e.c.severity == severity)
        query = query.order_by(e.c.fired_at.desc(), e.c.fingerprint).limit(limit)
        return [_episode(r) for r in self.run(lambda conn: conn.execute(query).all())]

    def episodes_between(self, starts: datetime, ends: datetime) -> list[Episode]:
        """Episodes firing at any moment of [starts, ends): fired before it ends, not resolved
        before it starts."""
        e = alert_episodes
        query = (select(e).where(e.c.fired_at < ends,
                                 or_(e.c.resolved_at.is_(None), e.c.resolved_at >= starts))
                 .order_by(e.c.fired_at, e.c.fingerprint))
        return [_episode(r) for r in self.run(lambda conn: conn.execute(query).all())]

    def purge_history(self, *, before: datetime) -> int:
        """Forget episodes resolved before `before`."""
        statement = delete(alert_episodes).where(alert_episodes.c.resolved_at < before)
        return int(self.run(lambda conn: conn.execute(statement).rowcount, write=True) or 0)

    def ack(self, fingerprint: str, *, by: str, now: datetime,
            audit: AuditEntry | None = None, relay: AckRelay | None = None) -> Alert | None:
        """Acknowledge, and write its audit row in the same transaction. `relay` makes the
        messages telling receivers about it from the receivers (and their channels) that were
        sent the episode's firing notification; they are queued in that transaction too."""
        def work(conn: Connection) -> Alert | None:
            acked = conn.execute(update(alert_states)
                                 .where(alert_states.c.fingerprint == fingerprint,
                                        alert_states.c.status != AlertStatus.RESOLVED.value)
                                 .values(acked_at=now, acked_by=by, updated_at=now))
            if audit is not None and acked.rowcount:
                record(conn, audit)
            row = conn.execute(select(alert_states).where(
                alert_states.c.fingerprint == fingerprint)).first()
            if row is None:
                return None
            alert = _alert_from_row(row)
            e = alert_episodes
            conn.execute(update(e).where(e.c.fingerprint == fingerprint,
                                         e.c.episode == alert.episode, e.c.acked_at.is_(None))
                         .values(acked_at=now, acked_by=by))
            if relay is not None and acked.rowcount:
                for message in relay(alert, receivers_told(conn, fingerprint, alert.episode)):
                    queue_message(conn, message, now=now)
            return alert

        return self.run(work, write=True)

    def list_alerts(self, *, state: str, now: datetime, recent: timedelta
                    ) -> list[tuple[Alert, list[DeliveryRecord]]]:
        """Active alerts (pending and firing), or recent ones (also resolved within `recent`),
        each with its current episode's deliveries."""
        query = select(alert_states)
        if state == "active":
            query = query.where(alert_states.c.status != AlertStatus.RESOLVED.value)
        else:
            query = query.where(or_(alert_states.c.status != AlertStatus.RESOLVED.value,
                                    alert_states.c.resolved_at >= now - recent))
        query = query.order_by(alert_states.c.active_at.desc(), alert_states.c.fingerprint)

        def work(conn: Connection) -> list[tuple[Alert, list[DeliveryRecord]]]:
            alerts = [_alert_from_row(r) for r in conn.execute(query).all()]
            deliveries = deliveries_of(conn, [(a.fingerprint, a.episode) for a in alerts])
            return [(a, deliveries.get(a.fingerprint, [])) for a in alerts]

        return self.run(work)

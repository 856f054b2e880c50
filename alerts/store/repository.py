"""Alert state, the notification log, the outbox and silences, over SQLAlchemy Core.

Every statement is parameterised. Writes that must agree (new alert states and the notifications
they cause) happen in one transaction, so a crash leaves either both or neither.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, and_, delete, func, or_, select, text, update

from alerts.rules.model import Alert, AlertStatus
from alerts.rules.notify import NotificationKey
from alerts.silences.rules import Matcher, MatchOp, Silence
from alerts.store.schema import (
    alert_budget_notices,
    alert_notifications,
    alert_outbox,
    alert_silences,
    alert_states,
)
from billing_core.sql import dialect_insert, transaction, utc, utc_or_none

T = TypeVar("T")

PENDING = "pending"
SENT = "sent"
FAILED = "failed"




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


@dataclass(frozen=True)
class QueuedMessage:
    """One message for one receiver, covering the notification keys it announces."""

    kind: str
    receiver: str
    channel: str
    keys: tuple[tuple[NotificationKey, str], ...]  # (key, alertname)
    build_payload: Callable[[Sequence[NotificationKey]], str]


@dataclass(frozen=True)
class OutboxItem:
    id: int
    kind: str
    receiver: str
    channel: str
    payload: str | None
    notice_key: str | None
    attempts: int
    created_at: datetime


@dataclass(frozen=True)
class Delivery:
    """The state of one notification of an alert, for the API."""

    receiver: str
    channel: str
    state: str
    repeat_bucket: str
    status: str
    attempts: int
    created_at: datetime
    sent_at: datetime | None
    last_reason: str | None
    last_detail: str | None


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


def _outbox_item(row: Any) -> OutboxItem:
    return OutboxItem(id=int(row.id), kind=row.kind, receiver=row.receiver, channel=row.channel,
                      payload=row.payload, notice_key=row.notice_key,
                      attempts=int(row.attempts), created_at=utc(row.created_at))


class AlertStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    # -- plumbing -------------------------------------------------------------------------------

    def run(self, work: Callable[[Connection], T], *, write: bool = False) -> T:
        """One transaction (billing_core's): a lost database raises DatabaseUnavailable."""
        return transaction(self.engine, work, write=write)

    def insert(self, table: Any) -> Any:
        return dialect_insert(self.engine)(table)

    def ping(self) -> None:
        self.run(lambda conn: conn.execute(text("SELECT 1")))

    # -- alert state ----------------------------------------------------------------------------

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

    def notification_keys(self, fingerprints: Iterable[str]) -> list[NotificationKey]:
        wanted = sorted(set(fingerprints))
        if not wanted:
            return []
        query = select(alert_notifications.c.fingerprint, alert_notifications.c.receiver,
                       alert_notifications.c.state, alert_notifications.c.repeat_bucket).where(
            alert_notifications.c.fingerprint.in_(wanted))
        rows = self.run(lambda conn: conn.execute(query).all())
        return [NotificationKey(r.fingerprint, r.receiver, r.state, r.repeat_bucket) for r in rows]

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
            return [oid for m in messages if (oid := self._queue(conn, m, now)) is not None]

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

    def _queue(self, conn: Connection, message: QueuedMessage, now: datetime) -> int | None:
        inserted: list[NotificationKey] = []
        row_ids: list[int] = []
        for key, alertname in message.keys:
            statement = self.insert(alert_notifications).values(
                fingerprint=key.fingerprint, alertname=alertname, receiver=key.receiver,
                channel=message.channel, state=key.state, repeat_bucket=key.repeat_bucket,
                episode=key.episode, created_at=now,
            ).on_conflict_do_nothing(
                index_elements=["fingerprint", "receiver", "state", "repeat_bucket"]
            ).returning(alert_notifications.c.id)
            row = conn.execute(statement).first()
            if row is not None:
                inserted.append(key)
                row_ids.append(int(row.id))
        if not inserted:
            return None
        outbox_id = self._enqueue(conn, kind=message.kind, receiver=message.receiver,
                                  channel=message.channel,
                                  payload=message.build_payload(inserted), now=now)
        conn.execute(update(alert_notifications)
                     .where(alert_notifications.c.id.in_(row_ids))
                     .values(outbox_id=outbox_id))
        return outbox_id

    def ack(self, fingerprint: str, *, by: str, now: datetime) -> Alert | None:
        def work(conn: Connection) -> Alert | None:
            conn.execute(update(alert_states)
                         .where(alert_states.c.fingerprint == fingerprint,
                                alert_states.c.status != AlertStatus.RESOLVED.value)
                         .values(acked_at=now, acked_by=by, updated_at=now))
            row = conn.execute(select(alert_states).where(
                alert_states.c.fingerprint == fingerprint)).first()
            return _alert_from_row(row) if row is not None else None

        return self.run(work, write=True)

    def list_alerts(self, *, state: str, now: datetime, recent: timedelta
                    ) -> list[tuple[Alert, list[Delivery]]]:
        """Active alerts (pending and firing), or recent ones (also resolved within `recent`)."""
        query = select(alert_states)
        if state == "active":
            query = query.where(alert_states.c.status != AlertStatus.RESOLVED.value)
        else:
            query = query.where(or_(alert_states.c.status != AlertStatus.RESOLVED.value,
                                    alert_states.c.resolved_at >= now - recent))
        query = query.order_by(alert_states.c.active_at.desc(), alert_states.c.fingerprint)

        def work(conn: Connection) -> list[tuple[Alert, list[Delivery]]]:
            alerts = [_alert_from_row(r) for r in conn.execute(query).all()]
            deliveries = self._deliveries(conn, alerts)
            return [(a, deliveries.get(a.fingerprint, [])) for a in alerts]

        return self.run(work)

    def _deliveries(self, conn: Connection, alerts: Sequence[Alert]
                    ) -> dict[str, list[Delivery]]:
        if not alerts:
            return {}
        n, o = alert_notifications, alert_outbox
        conditions = [and_(n.c.fingerprint == a.fingerprint, n.c.episode == a.episode)
                      for a in alerts]
        rows = conn.execute(
            select(n.c.fingerprint, n.c.receiver, n.c.channel, n.c.state, n.c.repeat_bucket,
                   n.c.created_at, o.c.status, o.c.attempts, o.c.sent_at, o.c.last_reason,
                   o.c.last_detail)
            .select_from(n.outerjoin(o, o.c.id == n.c.outbox_id))
            .where(or_(*conditions))
            .order_by(n.c.id)
        ).all()
        result: dict[str, list[Delivery]] = {}
        for r in rows:
            result.setdefault(r.fingerprint, []).append(Delivery(
                receiver=r.receiver, channel=r.channel, state=r.state,
                repeat_bucket=r.repeat_bucket, status=r.status or PENDING,
                attempts=int(r.attempts or 0), created_at=utc(r.created_at),
                sent_at=utc_or_none(r.sent_at), last_reason=r.last_reason,
                last_detail=r.last_detail))
        return result

    # -- silences -------------------------------------------------------------------------------

    def add_silence(self, *, matchers: Sequence[Matcher], starts_at: datetime,
                    expires_at: datetime, comment: str, created_by: str, now: datetime
                    ) -> Silence:
        silence_id = str(uuid.uuid4())
        values = {
            "id": silence_id,
            "matchers": json.dumps([{"name": m.name, "op": m.op.value, "value": m.value}
                                    for m in matchers]),
            "starts_at": starts_at, "expires_at": expires_at, "comment": comment,
            "created_by": created_by, "created_at": now, "updated_at": now,
        }
        self.run(lambda conn: conn.execute(alert_silences.insert().values(**values)), write=True)
        silence = self.get_silence(silence_id)
        assert silence is not None
        return silence

    def get_silence(self, silence_id: str) -> Silence | None:
        query = select(alert_silences).where(alert_silences.c.id == silence_id)
        row = self.run(lambda conn: conn.execute(query).first())
        return silence_from_row(row) if row is not None else None

    def list_silences(self, *, state: str, now: datetime) -> list[Silence]:
        query = select(alert_silences)
        if state == "active":
            query = query.where(alert_silences.c.expires_at > now)
        elif state == "expired":
            query = query.where(alert_silences.c.expires_at <= now)
        query = query.order_by(alert_silences.c.created_at.desc(), alert_silences.c.id)
        rows = self.run(lambda conn: conn.execute(query).all())
        return [silence_from_row(r) for r in rows]

    def expire_silence(self, silence_id: str, *, now: datetime) -> Silence | None:
        def work(conn: Connection) -> None:
            conn.execute(update(alert_silences)
                         .where(alert_silences.c.id == silence_id,
                                alert_silences.c.expires_at > now)
                         .values(expires_at=now, updated_at=now))

        self.run(work, write=True)
        return self.get_silence(silence_id)

    # -- outbox ---------------------------------------------------------------------------------

    def _enqueue(self, conn: Connection, *, kind: str, receiver: str, channel: str,
                 payload: str | None, now: datetime, notice_key: str | None = None) -> int:
        row = conn.execute(alert_outbox.insert().values(
            kind=kind, receiver=receiver, channel=channel, payload=payload,
            notice_key=notice_key, status=PENDING, attempts=0, next_attempt_at=now,
            created_at=now, updated_at=now,
        ).returning(alert_outbox.c.id)).one()
        return int(row.id)

    def enqueue(self, *, kind: str, receiver: str, channel: str, payload: str | None,
                now: datetime, notice_key: str | None = None) -> int:
        return self.run(lambda conn: self._enqueue(
            conn, kind=kind, receiver=receiver, channel=channel, payload=payload, now=now,
            notice_key=notice_key), write=True)

    def claim_due(self, *, now: datetime, worker: str, lease: timedelta, limit: int,
                  skip_receivers: Iterable[str] = ()) -> list[OutboxItem]:
        """Claim up to `limit` due messages for `worker` until now + lease."""
        o = alert_outbox
        skip = list(skip_receivers)

        def work(conn: Connection) -> list[OutboxItem]:
            due = (select(o.c.id).where(
                o.c.status == PENDING, o.c.next_attempt_at <= now,
                or_(o.c.claimed_until.is_(None), o.c.claimed_until < now))
                .order_by(o.c.next_attempt_at, o.c.id).limit(limit))
            if skip:
                due = due.where(o.c.receiver.not_in(skip))
            if self.dialect == "postgresql":
                due = due.with_for_update(skip_locked=True)
            ids = [int(r.id) for r in conn.execute(due).all()]
            if not ids:
                return []
            conn.execute(update(o).where(o.c.id.in_(ids))
                         .values(claimed_by=worker, claimed_until=now + lease, updated_at=now))
            rows = conn.execute(select(o).where(o.c.id.in_(ids)).order_by(o.c.id)).all()
            return [_outbox_item(r) for r in rows]

        return self.run(work, write=True)

    def mark_sent(self, item_id: int, *, worker: str, now: datetime, attempts: int) -> None:
        self._mark(item_id, worker=worker, values={
            "status": SENT, "sent_at": now, "attempts": attempts, "claimed_until": None,
            "updated_at": now})

    def mark_retry(self, item_id: int, *, worker: str, now: datetime, attempts: int,
                   next_attempt_at: datetime, reason: str, detail: str) -> None:
        self._mark(item_id, worker=worker, values={
            "attempts": attempts, "next_attempt_at": next_attempt_at, "claimed_until": None,
            "last_reason": reason, "last_detail": detail[:2000], "updated_at": now})

    def mark_failed(self, item_id: int, *, worker: str, now: datetime, attempts: int,
                    reason: str, detail: str) -> None:
        self._mark(item_id, worker=worker, values={
            "status": FAILED, "attempts": attempts, "claimed_until": None,
            "last_reason": reason, "last_detail": detail[:2000], "updated_at": now})

    def release(self, item_id: int, *, worker: str, now: datetime,
                next_attempt_at: datetime) -> None:
        """Give a claimed message back untried, to be sent from `next_attempt_at`."""
        self._mark(item_id, worker=worker, values={
            "next_attempt_at": next_attempt_at, "claimed_until": None, "updated_at": now})

    def _mark(self, item_id: int, *, worker: str, values: dict[str, Any]) -> None:
        # Only the worker holding the claim may mark it (a lost lease means another took over).
        statement = update(alert_outbox).where(
            alert_outbox.c.id == item_id, alert_outbox.c.claimed_by == worker,
            alert_outbox.c.status == PENDING).values(**values)
        self.run(lambda conn: conn.execute(statement), write=True)

    def outbox_stats(self, *, now: datetime) -> tuple[int, float]:
        """(messages waiting, age in seconds of the oldest), 0 and 0.0 when empty."""
        query = select(func.count(), func.min(alert_outbox.c.created_at)).where(
            alert_outbox.c.status == PENDING)
        row = self.run(lambda conn: conn.execute(query).one())
        oldest = utc_or_none(row[1])
        age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
        return int(row[0]), age

    def outbox_item(self, item_id: int) -> dict[str, Any] | None:
        query = select(alert_outbox).where(alert_outbox.c.id == item_id)
        row = self.run(lambda conn: conn.execute(query).first())
        return dict(row._mapping) if row is not None else None

    def purge(self, *, before: datetime) -> tuple[int, int]:
        """Forget delivered or failed messages, and their log keys, created before `before`.

        Only keys that can never be planned again go: planning looks at the current repeat
        bucket of each episode, which is never older than one repeat interval. Waiting messages
        are kept whatever their age. Budget notices stay (they are the once-per-period record).
        Returns (outbox rows, log rows) deleted.
        """
        o, n = alert_outbox, alert_notifications

        def work(conn: Connection) -> tuple[int, int]:
            done = select(o.c.id).where(o.c.status != PENDING, o.c.created_at < before)
            logged = conn.execute(delete(n).where(
                n.c.created_at < before,
                or_(n.c.outbox_id.is_(None), n.c.outbox_id.in_(done)))).rowcount
            sent = conn.execute(delete(o).where(o.c.status != PENDING,
                                                o.c.created_at < before)).rowcount
            return int(sent or 0), int(logged or 0)

        return self.run(work, write=True)

    # -- budget history -------------------------------------------------------------------------

    def budget_history(self, org_id: str) -> list[dict[str, Any]]:
        b, o = alert_budget_notices, alert_outbox
        notice_key = b.c.org_id + "/" + b.c.period + "/" + func.cast(b.c.threshold, text_type())
        query = (
            select(b.c.period, b.c.threshold, b.c.email, b.c.plan, b.c.used_minutes,
                   b.c.included_minutes, b.c.created_at, o.c.channel, o.c.receiver,
                   o.c.status, o.c.attempts, o.c.sent_at, o.c.last_reason, o.c.last_detail)
            .select_from(b.outerjoin(o, o.c.notice_key == notice_key))
            .where(b.c.org_id == org_id)
            .order_by(b.c.period.desc(), b.c.threshold, o.c.id)
        )
        rows = self.run(lambda conn: conn.execute(query).all())
        return [dict(r._mapping) for r in rows]


def text_type() -> Any:
    from sqlalchemy import String

    return String(12)


def _keep_ack(statement: Any, column: Any) -> Any:
    """On upsert: keep the stored ack while the episode (active_at) is unchanged."""
    from sqlalchemy import case

    return case(
        (alert_states.c.active_at == statement.excluded.active_at,
         func.coalesce(column, statement.excluded[column.name])),
        else_=statement.excluded[column.name],
    )

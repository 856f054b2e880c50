"""The notification log and the outbox, over SQLAlchemy Core.

- `alert_notifications`: each (fingerprint, receiver, state, repeat bucket) at most once, ever;
  each key points at the outbox message that announces it.
- `alert_outbox`: one row per message to one receiver, claimed with a lease, sent, then marked.

Other concepts queue messages inside their own transactions through the functions that take a
connection (`queue_message`, `enqueue_in`), so a new alert state and the notification it causes
(or a budget notice and its emails) are committed together or not at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, and_, delete, func, or_, select, update

from alerts.delivery.lanes import ALERT
from alerts.delivery.message import NotificationKey
from alerts.store.database import Id, Store, metadata
from billing_core.sql import dialect_insert, utc, utc_or_none

PENDING = "pending"
SENT = "sent"
FAILED = "failed"

alert_outbox = sa.Table(
    "alert_outbox",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(10), nullable=False),  # rule | budget | test | escalation ...
    # lanes.PAGE (0), ALERT (1) or BULK (2): which lane sends it, most urgent first
    sa.Column("priority", sa.SmallInteger, nullable=False, server_default="1"),
    sa.Column("receiver", sa.String(100), nullable=False),
    sa.Column("channel", sa.String(20), nullable=False),  # email | slack
    sa.Column("payload", sa.Text, nullable=True),  # the Message as JSON
    sa.Column("notice_key", sa.String(120), nullable=True),  # budget: org_id/period/threshold
    sa.Column("status", sa.String(10), nullable=False),  # pending | sent | failed
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("claimed_by", sa.String(100), nullable=True),
    sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_reason", sa.String(40), nullable=True),
    sa.Column("last_detail", sa.Text, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_alert_outbox_due", "status", "next_attempt_at"),
    sa.Index("ix_alert_outbox_lane", "status", "priority", "next_attempt_at"),
    sa.Index("ix_alert_outbox_notice_key", "notice_key"),
)

alert_notifications = sa.Table(
    "alert_notifications",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("alertname", sa.String(200), nullable=False),
    sa.Column("receiver", sa.String(100), nullable=False),
    sa.Column("channel", sa.String(20), nullable=False),
    sa.Column("state", sa.String(10), nullable=False),  # firing | resolved
    sa.Column("repeat_bucket", sa.String(64), nullable=False),
    sa.Column("episode", sa.BigInteger, nullable=False),
    sa.Column("outbox_id", sa.BigInteger, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("fingerprint", "receiver", "state", "repeat_bucket",
                     name="uq_alert_notifications_key"),
    sa.Index("ix_alert_notifications_outbox", "outbox_id"),
)


@dataclass(frozen=True)
class QueuedMessage:
    """One message for one receiver, covering the notification keys it announces."""

    kind: str
    receiver: str
    channel: str
    keys: tuple[tuple[NotificationKey, str], ...]  # (key, alertname)
    build_payload: Callable[[Sequence[NotificationKey]], str]
    priority: int = ALERT


@dataclass(frozen=True)
class OutboxEntry:
    """One message to queue as it is (budget and test messages: no notification log key)."""

    kind: str
    receiver: str
    channel: str
    payload: str
    notice_key: str | None = None
    priority: int = ALERT


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
    priority: int = ALERT


@dataclass(frozen=True)
class DeliveryRecord:
    """How one notification of an alert went (the log key and its outbox message)."""

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


@dataclass(frozen=True)
class NoticeDelivery:
    """How one message of a budget notice went."""

    channel: str
    receiver: str
    status: str
    attempts: int
    sent_at: datetime | None
    last_reason: str | None
    last_detail: str | None


# -- in the caller's transaction -----------------------------------------------------------------


def enqueue_in(conn: Connection, entry: OutboxEntry, *, now: datetime) -> int:
    row = conn.execute(alert_outbox.insert().values(
        kind=entry.kind, receiver=entry.receiver, channel=entry.channel, payload=entry.payload,
        notice_key=entry.notice_key, priority=entry.priority, status=PENDING, attempts=0,
        next_attempt_at=now, created_at=now, updated_at=now,
    ).returning(alert_outbox.c.id)).one()
    return int(row.id)


def enqueue_many(conn: Connection, entries: Sequence[OutboxEntry], *, now: datetime) -> int:
    """Queue several messages in one statement; returns how many."""
    if entries:
        conn.execute(alert_outbox.insert(), [{
            "kind": e.kind, "receiver": e.receiver, "channel": e.channel, "payload": e.payload,
            "notice_key": e.notice_key, "priority": e.priority, "status": PENDING, "attempts": 0,
            "next_attempt_at": now, "created_at": now, "updated_at": now,
        } for e in entries])
    return len(entries)


def queue_message(conn: Connection, message: QueuedMessage, *, now: datetime) -> int | None:
    """Log the message's keys and queue it for those this transaction logs first; None (and
    nothing queued) when every key was logged already (another replica, a retried round)."""
    inserted: list[NotificationKey] = []
    row_ids: list[int] = []
    insert = dialect_insert(conn.engine)
    for key, alertname in message.keys:
        statement = insert(alert_notifications).values(
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
    entry = OutboxEntry(kind=message.kind, receiver=message.receiver, channel=message.channel,
                        payload=message.build_payload(inserted), priority=message.priority)
    outbox_id = enqueue_in(conn, entry, now=now)
    conn.execute(update(alert_notifications)
                 .where(alert_notifications.c.id.in_(row_ids))
                 .values(outbox_id=outbox_id))
    return outbox_id


def receivers_told(conn: Connection, fingerprint: str, episode: int) -> list[tuple[str, str]]:
    """(receiver, channel) of every receiver an episode's firing notification was queued for."""
    n = alert_notifications
    rows = conn.execute(
        select(n.c.receiver, n.c.channel).distinct()
        .where(n.c.fingerprint == fingerprint, n.c.episode == episode, n.c.state == "firing")
        .order_by(n.c.receiver)
    ).all()
    return [(r.receiver, r.channel) for r in rows]


def deliveries_of(conn: Connection, episodes: Sequence[tuple[str, int]]
                  ) -> dict[str, list[DeliveryRecord]]:
    """Each alert's notifications in one episode ((fingerprint, episode) pairs), oldest first."""
    if not episodes:
        return {}
    n, o = alert_notifications, alert_outbox
    conditions = [and_(n.c.fingerprint == fingerprint, n.c.episode == episode)
                  for fingerprint, episode in episodes]
    rows = conn.execute(
        select(n.c.fingerprint, n.c.receiver, n.c.channel, n.c.state, n.c.repeat_bucket,
               n.c.created_at, o.c.status, o.c.attempts, o.c.sent_at, o.c.last_reason,
               o.c.last_detail)
        .select_from(n.outerjoin(o, o.c.id == n.c.outbox_id))
        .where(or_(*conditions))
        .order_by(n.c.id)
    ).all()
    result: dict[str, list[DeliveryRecord]] = {}
    for r in rows:
        result.setdefault(r.fingerprint, []).append(DeliveryRecord(
            receiver=r.receiver, channel=r.channel, state=r.state,
            repeat_bucket=r.repeat_bucket, status=r.status or PENDING,
            attempts=int(r.attempts or 0), created_at=utc(r.created_at),
            sent_at=utc_or_none(r.sent_at), last_reason=r.last_reason,
            last_detail=r.last_detail))
    return result


def deliveries_by_notice(conn: Connection, notice_keys: Sequence[str]
                         ) -> dict[str, list[NoticeDelivery]]:
    """The messages queued under each notice key, oldest first."""
    if not notice_keys:
        return {}
    o = alert_outbox
    rows = conn.execute(
        select(o.c.notice_key, o.c.channel, o.c.receiver, o.c.status, o.c.attempts,
               o.c.sent_at, o.c.last_reason, o.c.last_detail)
        .where(o.c.notice_key.in_(sorted(set(notice_keys))))
        .order_by(o.c.id)
    ).all()
    result: dict[str, list[NoticeDelivery]] = {}
    for r in rows:
        result.setdefault(r.notice_key, []).append(NoticeDelivery(
            channel=r.channel, receiver=r.receiver, status=r.status,
            attempts=int(r.attempts), sent_at=utc_or_none(r.sent_at),
            last_reason=r.last_reason, last_detail=r.last_detail))
    return result


def _outbox_item(row: Any) -> OutboxItem:
    return OutboxItem(id=int(row.id), kind=row.kind, receiver=row.receiver, channel=row.channel,
                      payload=row.payload, notice_key=row.notice_key,
                      attempts=int(row.attempts), created_at=utc(row.created_at),
                      priority=int(row.priority))


class OutboxStore(Store):
    """The outbox worker's side: claim what is due, mark how it went, count what waits."""

    def enqueue(self, *, kind: str, receiver: str, channel: str, payload: str,
                now: datetime, notice_key: str | None = None, priority: int = ALERT) -> int:
        entry = OutboxEntry(kind=kind, receiver=receiver, channel=channel, payload=payload,
                            notice_key=notice_key, priority=priority)
        return self.run(lambda conn: enqueue_in(conn, entry, now=now), write=True)

    def notification_keys(self, fingerprints: Iterable[str]) -> list[NotificationKey]:
        wanted = sorted(set(fingerprints))
        if not wanted:
            return []
        n = alert_notifications
        query = select(n.c.fingerprint, n.c.receiver, n.c.state, n.c.repeat_bucket).where(
            n.c.fingerprint.in_(wanted))
        rows = self.run(lambda conn: conn.execute(query).all())
        return [NotificationKey(r.fingerprint, r.receiver, r.state, r.repeat_bucket) for r in rows]

    def claim_due(self, *, now: datetime, worker: str, lease: timedelta, limit: int,
                  priorities: Sequence[int] | None = None,
                  skip_receivers: Iterable[str] = ()) -> list[OutboxItem]:
        """Claim up to `limit` due messages for `worker` until now + lease: of `priorities`
        only (None: any), the most urgent first, then the longest due."""
        o = alert_outbox
        skip = list(skip_receivers)

        def work(conn: Connection) -> list[OutboxItem]:
            due = (select(o.c.id).where(
                o.c.status == PENDING, o.c.next_attempt_at <= now,
                or_(o.c.claimed_until.is_(None), o.c.claimed_until < now))
                .order_by(o.c.priority, o.c.next_attempt_at, o.c.id).limit(limit))
            if priorities is not None:
                due = due.where(o.c.priority.in_(list(priorities)))
            if skip:
                due = due.where(o.c.receiver.not_in(skip))
            if self.dialect == "postgresql":
                due = due.with_for_update(skip_locked=True)
            ids = [int(r.id) for r in conn.execute(due).all()]
            if not ids:
                return []
            conn.execute(update(o).where(o.c.id.in_(ids))
                         .values(claimed_by=worker, claimed_until=now + lease, updated_at=now))
            rows = conn.execute(select(o).where(o.c.id.in_(ids))
                                .order_by(o.c.priority, o.c.next_attempt_at, o.c.id)).all()
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

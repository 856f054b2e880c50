"""Incidents, their events and their post-incident checklist, over SQLAlchemy Core.

- `alert_incidents`: one row per incident, with its status, when the last update was posted,
  when the commander was last reminded, the Slack thread it lives in, and the post-mortem text
  once someone edited it (until then it is drafted from data on each read).
- `alert_incident_events`: what people wrote: updates, notes, status changes.
- `alert_incident_tasks`: the checklist started by the resolution, each item with its due time.

Every change is one transaction with the messages it queues and, for people's changes, its
audit row.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, select, update

from alerts.access.store import AuditEntry, record
from alerts.delivery.store import OutboxEntry, enqueue_many
from alerts.incidents.rules import Incident, Task
from alerts.store.database import Id, Store, metadata
from billing_core.sql import utc, utc_or_none
from billing_engine.usage.facts import refused_orgs as refused_orgs_query

alert_incidents = sa.Table(
    "alert_incidents",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("severity", sa.String(2), nullable=False),
    sa.Column("impact", sa.Text, nullable=False),
    sa.Column("commander", sa.String(200), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("fingerprints", sa.Text, nullable=False),  # JSON list
    sa.Column("declared_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("declared_by", sa.String(200), nullable=False),
    sa.Column("last_update_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("update_reminded_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("resolved_by", sa.String(200), nullable=True),
    sa.Column("slack_thread", sa.String(64), nullable=True),  # the declaration's Slack ts
    sa.Column("postmortem", sa.Text, nullable=True),
    sa.Column("postmortem_by", sa.String(200), nullable=True),
    sa.Column("postmortem_at", sa.DateTime(timezone=True), nullable=True),
    sa.Index("ix_alert_incidents_declared", "declared_at"),
)

alert_incident_events = sa.Table(
    "alert_incident_events",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("incident_id", sa.BigInteger, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # update | note | status | reminder
    sa.Column("who", sa.String(200), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Index("ix_alert_incident_events_incident", "incident_id", "at"),
)

alert_incident_tasks = sa.Table(
    "alert_incident_tasks",
    metadata,
    sa.Column("incident_id", sa.BigInteger, primary_key=True),
    sa.Column("key", sa.String(16), primary_key=True),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("done_by", sa.String(200), nullable=True),
    sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True),
    sa.Index("ix_alert_incident_tasks_due", "done_at", "due_at"),
)


@dataclass(frozen=True)
class Event:
    at: datetime
    kind: str
    who: str
    text: str


@dataclass(frozen=True)
class Postmortem:
    text: str
    edited_by: str
    edited_at: datetime


def _incident(r: Any) -> Incident:
    return Incident(id=int(r.id), title=r.title, severity=r.severity, impact=r.impact,
                    commander=r.commander, status=r.status, declared_at=utc(r.declared_at),
                    declared_by=r.declared_by, last_update_at=utc(r.last_update_at),
                    fingerprints=tuple(json.loads(r.fingerprints)),
                    resolved_at=utc_or_none(r.resolved_at), resolved_by=r.resolved_by,
                    update_reminded_at=utc_or_none(r.update_reminded_at))


def _task(r: Any) -> Task:
    return Task(key=r.key, title=r.title, due_at=utc(r.due_at), done_at=utc_or_none(r.done_at),
                done_by=r.done_by)


@dataclass(frozen=True)
class RefusedOrg:
    org_id: str
    name: str | None
    reason: str
    heartbeats: int


class IncidentStore(Store):
    def declare(self, *, title: str, severity: str, impact: str, commander: str,
                fingerprints: Sequence[str], by: str, now: datetime, audit: AuditEntry | None,
                messages: Any) -> Incident:
        """Store a new incident and queue what `messages(incident)` makes for it."""

        def work(conn: Connection) -> Incident:
            row = conn.execute(alert_incidents.insert().values(
                title=title, severity=severity, impact=impact, commander=commander,
                status="investigating", fingerprints=json.dumps(list(fingerprints)),
                declared_at=now, declared_by=by, last_update_at=now,
            ).returning(alert_incidents.c.id)).one()
            incident = self._get(conn, int(row.id))
            assert incident is not None
            if audit is not None:
                record(conn, AuditEntry(actor=audit.actor, role=audit.role, action=audit.action,
                                        target=incident.key, at=audit.at, detail=audit.detail))
            enqueue_many(conn, messages(incident), now=now)
            return incident

        return self.run(work, write=True)

    def get_incident(self, incident_id: int) -> Incident | None:
        return self.run(lambda conn: self._get(conn, incident_id))

    @staticmethod
    def _get(conn: Connection, incident_id: int) -> Incident | None:
        row = conn.execute(select(alert_incidents)
                           .where(alert_incidents.c.id == incident_id)).first()
        return _incident(row) if row is not None else None

    def list_incidents(self, *, open_only: bool = False, since: datetime | None = None,
                       limit: int = 100) -> list[Incident]:
        i = alert_incidents
        query = select(i).order_by(i.c.declared_at.desc(), i.c.id.desc()).limit(limit)
        if open_only:
            query = query.where(i.c.resolved_at.is_(None))
        if since is not None:
            query = query.where(i.c.declared_at >= since)
        return [_incident(r) for r in self.run(lambda conn: conn.execute(query).all())]

    def add_event(self, incident_id: int, event: Event, *, status: str | None,
                  counts_as_update: bool, audit: AuditEntry | None,
                  messages: Sequence[OutboxEntry], severity: str | None = None,
                  commander: str | None = None) -> Incident | None:
        """Note an update, a note, a status, severity or commander change, and queue its
        messages."""

        def work(conn: Connection) -> Incident | None:
            values: dict[str, Any] = {}
            if counts_as_update:
                values["last_update_at"] = event.at
            if status is not None:
                values["status"] = status
            if severity is not None:
                values["severity"] = severity
            if commander is not None:
                values["commander"] = commander
            if values:
                conn.execute(update(alert_incidents).where(
                    alert_incidents.c.id == incident_id,
                    alert_incidents.c.resolved_at.is_(None)).values(**values))
            conn.execute(alert_incident_events.insert().values(
                incident_id=incident_id, at=event.at, kind=event.kind, who=event.who,
                text=event.text))
            if audit is not None:
                record(conn, audit)
            enqueue_many(conn, messages, now=event.at)
            return self._get(conn, incident_id)

        return self.run(work, write=True)

    def resolve(self, incident_id: int, *, by: str, now: datetime, tasks: Sequence[Task],
                summary: str, audit: AuditEntry | None,
                messages: Sequence[OutboxEntry]) -> Incident | None:
        """Resolve an open incident, start its checklist and queue its messages; None when it
        was resolved already (by someone else meanwhile)."""

        def work(conn: Connection) -> Incident | None:
            done = conn.execute(update(alert_incidents).where(
                alert_incidents.c.id == incident_id, alert_incidents.c.resolved_at.is_(None)
            ).values(status="resolved", resolved_at=now, resolved_by=by, last_update_at=now))
            if not done.rowcount:
                return None
            conn.execute(alert_incident_events.insert().values(
                incident_id=incident_id, at=now, kind="resolved", who=by, text=summary))
            if tasks:
                conn.execute(alert_incident_tasks.insert(), [{
                    "incident_id": incident_id, "key": t.key, "title": t.title,
                    "due_at": t.due_at} for t in tasks])
            if audit is not None:
                record(conn, audit)
            enqueue_many(conn, messages, now=now)
            return self._get(conn, incident_id)

        return self.run(work, write=True)

    def events(self, incident_id: int) -> list[Event]:
        e = alert_incident_events
        query = select(e).where(e.c.incident_id == incident_id).order_by(e.c.at, e.c.id)
        return [Event(at=utc(r.at), kind=r.kind, who=r.who, text=r.text)
                for r in self.run(lambda conn: conn.execute(query).all())]

    def refused_orgs(self, starts: datetime, ends: datetime, *, limit: int
                     ) -> tuple[list[RefusedOrg], int]:
        """The orgs whose heartbeats the engine refused between `starts` and `ends` (its
        published query, by the hour), most refused first: up to `limit` of them, and how many
        orgs there were in all."""
        found = refused_orgs_query(starts, ends).subquery("refused")
        per_org = (select(found.c.org_id, sa.func.sum(found.c.heartbeats).label("total"))
                   .group_by(found.c.org_id).subquery("per_org"))
        top = (select(per_org.c.org_id, per_org.c.total)
               .order_by(per_org.c.total.desc(), per_org.c.org_id).limit(limit).subquery("top"))
        rows = (select(found).join(top, top.c.org_id == found.c.org_id)
                .order_by(top.c.total.desc(), found.c.org_id, found.c.heartbeats.desc(),
                          found.c.reason))

        def work(conn: Connection) -> tuple[list[RefusedOrg], int]:
            listed = [RefusedOrg(org_id=r.org_id, name=r.org_name, reason=r.reason,
                                 heartbeats=int(r.heartbeats)) for r in conn.execute(rows)]
            orgs = conn.execute(select(sa.func.count()).select_from(per_org)).scalar_one()
            return listed, int(orgs)

        return self.run(work)

    def tasks(self, incident_id: int) -> list[Task]:
        t = alert_incident_tasks
        query = select(t).where(t.c.incident_id == incident_id).order_by(t.c.due_at, t.c.key)
        return [_task(r) for r in self.run(lambda conn: conn.execute(query).all())]

    def complete_task(self, incident_id: int, key: str, *, by: str, now: datetime,
                      audit: AuditEntry | None) -> bool:
        t = alert_incident_tasks

        def work(conn: Connection) -> bool:
            done = conn.execute(update(t).where(t.c.incident_id == incident_id, t.c.key == key,
                                                t.c.done_at.is_(None))
                                .values(done_at=now, done_by=by))
            if done.rowcount and audit is not None:
                record(conn, audit)
            return bool(done.rowcount)

        return self.run(work, write=True)

    def tasks_overdue(self, now: datetime) -> list[tuple[int, Task]]:
        """Checklist items past due, not done, not reminded of yet."""
        t = alert_incident_tasks
        query = select(t).where(t.c.done_at.is_(None), t.c.due_at <= now,
                                t.c.reminded_at.is_(None)).order_by(t.c.due_at)
        return [(int(r.incident_id), _task(r))
                for r in self.run(lambda conn: conn.execute(query).all())]

    def remind(self, *, incident_id: int, now: datetime, task_key: str | None,
               messages: Sequence[OutboxEntry], seen: datetime | None = None) -> bool:
        """Note a reminder (of the next update, or of a checklist item) and queue it, once: the
        row is only claimed if no other round reminded of the same thing first (for updates:
        if `update_reminded_at` is still `seen`, the value the caller decided on)."""
        i, t = alert_incidents, alert_incident_tasks

        def work(conn: Connection) -> bool:
            if task_key is None:
                unchanged = (i.c.update_reminded_at.is_(None) if seen is None
                             else i.c.update_reminded_at == seen)
                claimed = conn.execute(update(i).where(
                    i.c.id == incident_id, i.c.resolved_at.is_(None), unchanged
                ).values(update_reminded_at=now)).rowcount
            else:
                claimed = conn.execute(update(t).where(
                    t.c.incident_id == incident_id, t.c.key == task_key,
                    t.c.reminded_at.is_(None)).values(reminded_at=now)).rowcount
            if claimed:
                enqueue_many(conn, messages, now=now)
            return bool(claimed)

        return self.run(work, write=True)

    def purge_incidents(self, *, before: datetime) -> int:
        """Forget incidents resolved before `before`, with their events and checklist."""
        i, e, t = alert_incidents, alert_incident_events, alert_incident_tasks

        def work(conn: Connection) -> int:
            old = select(i.c.id).where(i.c.resolved_at < before)
            conn.execute(sa.delete(e).where(e.c.incident_id.in_(old)))
            conn.execute(sa.delete(t).where(t.c.incident_id.in_(old)))
            return int(conn.execute(sa.delete(i).where(i.c.resolved_at < before)).rowcount or 0)

        return self.run(work, write=True)

    def set_slack_thread(self, incident_id: int, thread: str) -> None:
        i = alert_incidents
        statement = update(i).where(i.c.id == incident_id, i.c.slack_thread.is_(None)
                                    ).values(slack_thread=thread[:64])
        self.run(lambda conn: conn.execute(statement), write=True)

    def slack_thread(self, incident_id: int) -> str | None:
        query = select(alert_incidents.c.slack_thread).where(alert_incidents.c.id == incident_id)
        value = self.run(lambda conn: conn.execute(query).scalar())
        return str(value) if value else None

    def postmortem(self, incident_id: int) -> Postmortem | None:
        i = alert_incidents
        query = select(i.c.postmortem, i.c.postmortem_by, i.c.postmortem_at).where(
            i.c.id == incident_id)
        row = self.run(lambda conn: conn.execute(query).first())
        if row is None or row.postmortem is None:
            return None
        return Postmortem(text=row.postmortem, edited_by=row.postmortem_by or "",
                          edited_at=utc(row.postmortem_at))

    def save_postmortem(self, incident_id: int, *, text: str, by: str, now: datetime,
                        audit: AuditEntry | None) -> bool:
        i = alert_incidents

        def work(conn: Connection) -> bool:
            done = conn.execute(update(i).where(i.c.id == incident_id).values(
                postmortem=text, postmortem_by=by, postmortem_at=now)).rowcount
            if done and audit is not None:
                record(conn, audit)
            return bool(done)

        return self.run(work, write=True)

"""Incidents as people run them: declare, post updates and notes, resolve, work the checklist,
write the post-mortem; and the round that reminds the commander of what is due.

Messages go through the outbox in the pages lane (routes.yml, kind `incident`). Who did what is
the signed-in person (or key) the API authenticated, recorded in the audit log with the change.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

import jinja2
from sqlalchemy.exc import DBAPIError

from alerts.access.store import AuditEntry
from alerts.delivery.lanes import PAGE
from alerts.delivery.links import LinkSettings
from alerts.delivery.message import message_to_json
from alerts.delivery.routing import RoutingTable
from alerts.delivery.store import OutboxEntry
from alerts.incidents.impact import Query, measure
from alerts.incidents.messages import incident_message, incident_url
from alerts.incidents.rules import (
    UPDATE_EVERY,
    AlertEpisode,
    Entry,
    Incident,
    Task,
    alert_entries,
    checklist,
    linked,
    matches,
    reminder_due,
    timeline,
    update_due_at,
)
from alerts.incidents.schemas import (
    EntryOut,
    IncidentDetail,
    IncidentIn,
    IncidentList,
    IncidentOut,
    PostmortemIn,
    PostmortemOut,
    ResolveIn,
    TaskOut,
    UpdateIn,
)
from alerts.incidents.store import Event, IncidentStore
from alerts.oncall.rules import OnCallPolicy
from alerts.oncall.store import ESCALATED, Escalation
from alerts.rules.store import Episode
from alerts.silences.rules import Silence
from billing_core.access import Principal
from billing_core.clock import Clock
from billing_core.errors import Conflict, DatabaseUnavailable, NotFound

log = logging.getLogger("alerts.incidents")
TEMPLATES = Path(__file__).resolve().parent / "templates"
REFUSED_ORGS_LISTED = 20  # the post-mortem names this many orgs and counts the rest


class IncidentData(Protocol):
    """What the incident service reads besides its own tables."""

    def episodes_between(self, starts: datetime, ends: datetime) -> list[Episode]: ...

    def escalations_between(self, starts: datetime, ends: datetime) -> list[Escalation]: ...

    def list_silences(self, *, state: str, now: datetime) -> list[Silence]: ...


def _episode(e: Episode) -> AlertEpisode:
    return AlertEpisode(fingerprint=e.fingerprint, alertname=e.alertname, severity=e.severity,
                        labels=e.labels, fired_at=e.fired_at, resolved_at=e.resolved_at,
                        acked_at=e.acked_at, acked_by=e.acked_by)


def _duration(value: timedelta) -> str:
    minutes = int(value.total_seconds() // 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else "", f"{minutes} min"]
    return " ".join(p for p in parts if p)


class IncidentService:
    def __init__(self, *, store: IncidentStore, data: IncidentData, policy: OnCallPolicy,
                 routing: RoutingTable, links: LinkSettings, clock: Clock,
                 query: Query | None = None) -> None:
        self.store = store
        self.data = data
        self.policy = policy
        self.routing = routing
        self.links = links
        self.clock = clock
        self.query = query
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=False,
            undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
            keep_trailing_newline=True)

    # -- changes ------------------------------------------------------------------------------

    def declare(self, body: IncidentIn, *, by: Principal) -> IncidentDetail:
        now = self.clock()
        audit = AuditEntry.of(by, action="incident.declare", target="new", at=now,
                              severity=body.severity, title=body.title)
        incident = self.store.declare(
            title=body.title, severity=body.severity, impact=body.impact,
            commander=body.commander, fingerprints=body.fingerprints, by=by.actor, now=now,
            audit=audit,
            messages=lambda i: self._entries(i, what="declared", text="", at=now))
        log.info("incident declared", extra={"incident": incident.key, "by": by.actor,
                                             "severity": incident.severity})
        return self.detail(incident.id)

    def update(self, incident_id: int, body: UpdateIn, *, by: Principal) -> IncidentDetail:
        """An update or a note; either may change the status, the severity (the new
        severity's stakeholders are told) or the commander (a hand-over)."""
        now = self.clock()
        incident = self._open(incident_id)
        changes = []
        severity = body.severity if body.severity not in (None, incident.severity) else None
        commander = body.commander if body.commander not in (None, incident.commander) else None
        if body.status is not None:
            changes.append(f"Status: {body.status}.")
        if severity is not None:
            changes.append(f"Severity: {incident.severity} -> {severity}.")
        if commander is not None:
            changes.append(f"Commander: {incident.commander} -> {commander}.")
        text = " ".join([*changes, body.text])
        shown = replace(incident, status=body.status or incident.status,
                        severity=severity or incident.severity,
                        commander=commander or incident.commander)
        # An update, or any change of who leads or how bad it is, goes to the channel; a new
        # severity also reaches the stakeholders it names.
        counts = body.kind == "update" or severity is not None or commander is not None
        messages = (self._entries(shown, what="update", text=text, at=now,
                                  stakeholders=severity is not None) if counts else [])
        audit = AuditEntry.of(by, action=f"incident.{body.kind}", target=incident.key, at=now,
                              status=body.status, severity=severity, commander=commander)
        self.store.add_event(incident_id, Event(at=now, kind=body.kind, who=by.actor, text=text),
                             status=body.status, counts_as_update=counts, audit=audit,
                             messages=messages, severity=severity, commander=commander)
        return self.detail(incident_id)

    def resolve(self, incident_id: int, body: ResolveIn, *, by: Principal) -> IncidentDetail:
        now = self.clock()
        incident = self._open(incident_id)
        resolved = replace(incident, status="resolved", resolved_at=now, resolved_by=by.actor)
        audit = AuditEntry.of(by, action="incident.resolve", target=incident.key, at=now)
        if self.store.resolve(incident_id, by=by.actor, now=now, tasks=checklist(now),
                              summary=body.summary, audit=audit,
                              messages=self._entries(resolved, what="resolved",
                                                     text=body.summary, at=now)) is None:
            raise Conflict("incident_id", "the incident is resolved already")
        return self.detail(incident_id)

    def complete_task(self, incident_id: int, key: str, *, by: Principal) -> IncidentDetail:
        now = self.clock()
        incident = self._get(incident_id)
        if key not in {t.key for t in self.store.tasks(incident_id)}:
            raise NotFound("key", f"{incident.key} has no checklist item {key!r}")
        audit = AuditEntry.of(by, action="incident.task", target=incident.key, at=now, task=key)
        if not self.store.complete_task(incident_id, key, by=by.actor, now=now, audit=audit):
            raise Conflict("key", "that checklist item is done already")
        return self.detail(incident_id)

    def save_postmortem(self, incident_id: int, body: PostmortemIn, *,
                        by: Principal) -> PostmortemOut:
        now = self.clock()
        incident = self._get(incident_id)
        audit = AuditEntry.of(by, action="incident.postmortem", target=incident.key, at=now)
        self.store.save_postmortem(incident_id, text=body.text, by=by.actor, now=now,
                                   audit=audit)
        return self.postmortem(incident_id)

    # -- reads --------------------------------------------------------------------------------

    def listing(self, *, open_only: bool, days: int) -> IncidentList:
        since = self.clock() - timedelta(days=days)
        return IncidentList(incidents=[self._out(i) for i in self.store.list_incidents(
            open_only=open_only, since=since)])

    def detail(self, incident_id: int) -> IncidentDetail:
        incident = self._get(incident_id)
        entries = self.timeline(incident, now=self.clock())
        return IncidentDetail(
            **self._out(incident).model_dump(),
            timeline=[EntryOut(at=e.at, kind=e.kind, who=e.who, text=e.text) for e in entries],
            tasks=[TaskOut(key=t.key, title=t.title, due_at=t.due_at, done_at=t.done_at,
                           done_by=t.done_by) for t in self.store.tasks(incident_id)])

    def timeline(self, incident: Incident, *, now: datetime) -> list[Entry]:
        starts = incident.declared_at - timedelta(minutes=30)
        ends = incident.resolved_at or now
        entries = [Entry(incident.declared_at, "declared", incident.declared_by,
                         f"{incident.key} declared ({incident.severity}): {incident.title}. "
                         f"Impact: {incident.impact}. Commander: {incident.commander}")]
        for event in self.store.events(incident.id):
            kind = "resolved" if event.kind == "resolved" else event.kind
            entries.append(Entry(event.at, kind, event.who, event.text))
        episodes = [_episode(e) for e in self.data.episodes_between(starts, ends)]
        link = linked(incident, episodes)
        mine = [e for e in episodes if matches(incident, e, link, now)]
        for episode in mine:
            entries += alert_entries(episode, ends=ends)
        fingerprints = {e.fingerprint for e in mine}
        for escalation in self.data.escalations_between(starts, ends):
            if escalation.fingerprint in fingerprints and escalation.kind == ESCALATED:
                entries.append(Entry(escalation.at, "escalated", "alerts",
                                     f"{escalation.alertname} told {escalation.person} "
                                     f"({escalation.rotation}, step {escalation.step})"))
        for silence in self.data.list_silences(state="all", now=now):
            if starts <= silence.created_at <= ends:
                matchers = ", ".join(str(m) for m in silence.matchers)
                entries.append(Entry(silence.created_at, "silenced", silence.created_by,
                                     f"Silence {silence.id} added ({matchers}): "
                                     f"{silence.comment}"))
        return timeline(entries)

    def postmortem(self, incident_id: int) -> PostmortemOut:
        incident = self._get(incident_id)
        saved = self.store.postmortem(incident_id)
        if saved is not None:
            return PostmortemOut(incident_id=incident_id, markdown=saved.text,
                                 edited_by=saved.edited_by, edited_at=saved.edited_at)
        return PostmortemOut(incident_id=incident_id, markdown=self.draft(incident),
                             edited_by=None, edited_at=None)

    def draft(self, incident: Incident) -> str:
        """The post-mortem drafted from data, with the template of the incident runbook."""
        now = self.clock()
        ends = incident.resolved_at or now
        timeline_entries = self.timeline(incident, now=now)
        # The damage began with the first of its alerts to fire, often before the declaration.
        fired = [e.at for e in timeline_entries if e.kind == "alert fired"]
        starts = min([incident.declared_at, *fired])
        impact = (measure(self.query, starts=starts, ends=ends)
                  if self.query is not None else None)
        try:
            refused, refused_orgs = self.store.refused_orgs(starts, ends,
                                                            limit=REFUSED_ORGS_LISTED)
        except (DatabaseUnavailable, DBAPIError):
            # The engine's tables live in another database, or it is down: say so.
            log.warning("the orgs whose heartbeats were refused could not be read")
            refused, refused_orgs = None, 0
        return self.templates.get_template("postmortem.md.j2").render(
            incident=incident, impact=impact, timeline=timeline_entries,
            refused=refused, refused_orgs=refused_orgs,
            impact_from=f"{starts:%Y-%m-%d %H:%M UTC}",
            tasks=self.store.tasks(incident.id),
            declared=f"{incident.declared_at:%Y-%m-%d %H:%M UTC}",
            resolved=f"{incident.resolved_at:%Y-%m-%d %H:%M UTC}" if incident.resolved_at else "",
            duration=_duration(incident.duration(now)), drafted_at=f"{now:%Y-%m-%d %H:%M UTC}",
            number=_number, percent=_percent, money=_money)

    # -- the reminder round -------------------------------------------------------------------

    def run_round(self, now: datetime | None = None) -> int:
        """Remind commanders of updates due and of checklist items past due; how many."""
        now = now or self.clock()
        sent = 0
        for incident in self.store.list_incidents(open_only=True, limit=1000):
            if reminder_due(incident, now):
                text = (f"The last update was at {incident.last_update_at:%H:%M UTC}; "
                        f"{incident.severity} incidents are updated every "
                        f"{_duration(UPDATE_EVERY[incident.severity])}. "
                        "Post one in the console or with the alerts CLI.")
                sent += self.store.remind(
                    incident_id=incident.id, now=now, task_key=None,
                    seen=incident.update_reminded_at,
                    messages=self._entries(incident, what="reminder", text=text, at=now))
        for incident_id, task in self.store.tasks_overdue(now):
            owner = self.store.get_incident(incident_id)
            if owner is None:
                continue
            text = f"Due {task.due_at:%Y-%m-%d %H:%M UTC}: {task.title}."
            sent += self.store.remind(
                incident_id=incident_id, now=now, task_key=task.key,
                messages=self._entries(owner, what="task", text=text, at=now, task=task))
        return sent

    # -- helpers ------------------------------------------------------------------------------

    def _get(self, incident_id: int) -> Incident:
        incident = self.store.get_incident(incident_id)
        if incident is None:
            raise NotFound("incident_id", "no such incident")
        return incident

    def _open(self, incident_id: int) -> Incident:
        incident = self._get(incident_id)
        if not incident.is_open:
            raise Conflict("incident_id", f"{incident.key} is resolved")
        return incident

    def _out(self, incident: Incident) -> IncidentOut:
        return IncidentOut(
            id=incident.id, key=incident.key, title=incident.title, severity=incident.severity,
            impact=incident.impact, commander=incident.commander, status=incident.status,
            fingerprints=list(incident.fingerprints), declared_at=incident.declared_at,
            declared_by=incident.declared_by, last_update_at=incident.last_update_at,
            next_update_due=update_due_at(incident), resolved_at=incident.resolved_at,
            resolved_by=incident.resolved_by, console_url=incident_url(incident, self.links))

    def commander_email(self, incident: Incident) -> str:
        person = self.policy.people.get(incident.commander.lstrip("@"))
        if person is not None:
            return person.email
        name = incident.commander.strip()
        return name if "@" in name.strip("@") and "." in name and " " not in name else ""

    def _entries(self, incident: Incident, *, what: str, text: str, at: datetime,
                 task: Task | None = None, stakeholders: bool = False) -> list[OutboxEntry]:
        contacts = self.policy.incidents
        message = incident_message(
            incident, what=what, text=text, at=at, links=self.links,
            status_page=contacts.status_page,
            stakeholders=contacts.stakeholders.get(incident.severity, ()),
            commander_email=self.commander_email(incident), task=task,
            tell_stakeholders=stakeholders)
        entries = []
        for destination in self.routing.route(message.labels, kind="incident"):
            receiver = destination.receiver
            recipients = receiver.recipients(message.labels) if receiver.channel == "email" else ()
            if receiver.channel == "email" and not recipients:
                continue  # this message is not for that mailbox (e.g. an update: channel only)
            entries.append(OutboxEntry(
                kind="incident", receiver=receiver.name, channel=receiver.channel,
                payload=message_to_json(replace(message, recipients=recipients)),
                notice_key=f"inc/{incident.id}", priority=PAGE))
        return entries


def _number(value: float | None) -> str:
    return "unknown" if value is None else f"{value:,.0f}"


def _percent(value: float | None) -> str:
    return "unknown" if value is None else f"{value * 100:.2f} %"


def _money(cents: float | None) -> str:
    return "unknown" if cents is None else f"${cents / 100:,.2f}"


"""Escalation rounds, and who is on call, as the API and the console show it.

After each evaluation round the leader walks the firing alerts: for each one not acknowledged or
silenced whose severity the policy escalates, every step due by now that was not noted yet is
noted and its messages queued (routes.yml, kind `escalation`: the person's email and on-call
Slack, in the pages lane). When an alert resolves, everyone who was told of it is told it is
over. The rows' unique key makes this safe across restarts and leader changes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from alerts.delivery.lanes import PAGE
from alerts.delivery.links import LinkSettings
from alerts.delivery.message import message_to_json
from alerts.delivery.routing import RoutingTable
from alerts.delivery.store import OutboxEntry
from alerts.oncall.messages import escalation_labels, escalation_message, next_up
from alerts.oncall.rules import (
    OnCallPolicy,
    Person,
    due_step,
    next_shift,
    next_step,
    on_call,
)
from alerts.oncall.schemas import (
    EscalationOut,
    EscalationStepOut,
    OnCallOut,
    RotationOut,
    SeverityOut,
    ShiftOut,
)
from alerts.oncall.store import ESCALATED, RESOLVED, Escalation, EscalationStore, escalation_key
from alerts.rules.model import Alert, AlertStatus
from alerts.rules.notify import RESOLVED_NOTIFY_WINDOW
from alerts.rules.store import AlertStateStore
from alerts.silences.rules import silenced_by
from alerts.silences.store import SilenceStore
from billing_core.clock import Clock

log = logging.getLogger("alerts.oncall")


@dataclass
class EscalationReport:
    at: datetime
    told: list[Escalation] = field(default_factory=list)


class OnCallService:
    def __init__(self, *, policy: OnCallPolicy, alerts: AlertStateStore, silences: SilenceStore,
                 escalations: EscalationStore, routing: RoutingTable, links: LinkSettings,
                 clock: Clock, on_queued: Callable[[], None] | None = None) -> None:
        self.policy = policy
        self.alerts = alerts
        self.silences = silences
        self.escalations = escalations
        self.routing = routing
        self.links = links
        self.clock = clock
        self.on_queued = on_queued

    def repeat_for(self, severity: str) -> timedelta | None:
        """The policy's repeat interval for a severity; None where it says nothing."""
        rule = self.policy.severities.get(severity)
        return rule.repeat if rule is not None else None

    # -- the round ----------------------------------------------------------------------------

    def run_round(self, now: datetime | None = None) -> EscalationReport:
        now = now or self.clock()
        report = EscalationReport(at=now)
        alerts = [a for a in self.alerts.load_alerts()
                  if self.policy.escalates(a.labels)
                  and (a.status == AlertStatus.FIRING
                       or (a.status == AlertStatus.RESOLVED and a.resolved_at is not None
                           and now - a.resolved_at <= RESOLVED_NOTIFY_WINDOW))]
        if not alerts:
            return report
        done = self.escalations.escalations_of([(a.fingerprint, a.episode) for a in alerts])
        silences = self.silences.list_silences(state="active", now=now)
        for alert in alerts:
            rows = done.get((alert.fingerprint, alert.episode), [])
            if alert.status == AlertStatus.RESOLVED:
                report.told += self._resolve(alert, rows, now)
            elif alert.acked_at is None and not silenced_by(alert.labels, silences, now):
                report.told += self._escalate(alert, rows, now)
        if report.told:
            for e in report.told:
                log.info("on-call told", extra={
                    "alertname": e.alertname, "fingerprint": e.fingerprint, "step": e.step,
                    "kind": e.kind, "rotation": e.rotation, "person": e.person})
            if self.on_queued is not None:
                self.on_queued()
        return report

    def _holders(self, now: datetime) -> dict[str, Person]:
        return {name: self.policy.people[on_call(self.policy, name, now).person]
                for name in self.policy.rotations}

    def _escalate(self, alert: Alert, rows: list[Escalation], now: datetime) -> list[Escalation]:
        fired = alert.fired_at or alert.active_at
        due = due_step(self.policy, alert.severity, fired, now)
        if due is None:
            return []
        noted = {r.step for r in rows if r.kind == ESCALATED}
        holders = self._holders(now)
        steps = self.policy.severities[alert.severity].steps
        pending = [step for step in range(max(noted, default=-1) + 1, due + 1)]
        # Several steps due at once (a silence just ended, or no leader ran for a while): the
        # first of them (so whoever should have heard first does) and the furthest are told;
        # the ones in between would only be told in the same second.
        told = []
        for step in sorted({pending[0], pending[-1]}) if pending else []:
            rotation = steps[step]
            person = holders[rotation]
            escalation = Escalation(
                fingerprint=alert.fingerprint, episode=alert.episode, alertname=alert.alertname,
                severity=alert.severity, step=step, kind=ESCALATED, rotation=rotation,
                person=person.name, at=now)
            after = next_up(self.policy, alert.severity, step, holders)
            entries = self._entries(alert, escalation, person, after)
            if self.escalations.record_escalation(escalation, entries):
                told.append(escalation)
        return told

    def _resolve(self, alert: Alert, rows: list[Escalation], now: datetime) -> list[Escalation]:
        resolved = {r.step for r in rows if r.kind == RESOLVED}
        told = []
        for row in rows:
            if row.kind != ESCALATED or row.step in resolved:
                continue
            person = self.policy.people.get(row.person) or Person(name=row.person)
            escalation = Escalation(
                fingerprint=row.fingerprint, episode=row.episode, alertname=row.alertname,
                severity=row.severity, step=row.step, kind=RESOLVED, rotation=row.rotation,
                person=row.person, at=now)
            if self.escalations.record_escalation(
                    escalation, self._entries(alert, escalation, person, None)):
                told.append(escalation)
        return told

    def _entries(self, alert: Alert, escalation: Escalation, person: Person,
                 after: tuple[str, Person] | None) -> list[OutboxEntry]:
        labels = escalation_labels(alert, escalation, person)
        entries = []
        for destination in self.routing.route(labels, kind="escalation"):
            receiver = destination.receiver
            recipients = receiver.recipients(labels) if receiver.channel == "email" else ()
            if receiver.channel == "email" and not recipients:
                continue  # a person without an email is told in Slack only
            message = escalation_message(alert, escalation, person=person, policy=self.policy,
                                         next_up=after, recipients=recipients, links=self.links)
            entries.append(OutboxEntry(kind="escalation", receiver=receiver.name,
                                       channel=receiver.channel, payload=message_to_json(message),
                                       notice_key=escalation_key(escalation), priority=PAGE))
        return entries

    # -- views --------------------------------------------------------------------------------

    def oncall(self, now: datetime | None = None) -> OnCallOut:
        now = now or self.clock()

        def shift(name: str, *, upcoming: bool) -> ShiftOut:
            s = (next_shift if upcoming else on_call)(self.policy, name, now)
            person = self.policy.people[s.person]
            return ShiftOut(person=person.name, email=person.email or None, starts=s.starts,
                            ends=s.ends, override=s.override)

        return OnCallOut(
            at=now,
            rotations=[RotationOut(name=name, members=list(rotation.members),
                                   now=shift(name, upcoming=False),
                                   next=shift(name, upcoming=True))
                       for name, rotation in self.policy.rotations.items()],
            severities=[SeverityOut(severity=s.severity,
                                    response_seconds=int(s.response.total_seconds()),
                                    repeat_seconds=(int(s.repeat.total_seconds())
                                                    if s.repeat else None),
                                    steps=list(s.steps))
                        for s in self.policy.severities.values()])

    def escalation_views(self, alerts: Sequence[Alert], now: datetime
                         ) -> dict[str, EscalationOut]:
        """Per fingerprint: the steps taken this episode and, while unacknowledged and not
        silenced, the next."""
        relevant = [a for a in alerts if self.policy.escalates(a.labels)]
        rows = self.escalations.escalations_of([(a.fingerprint, a.episode) for a in relevant])
        holders = self._holders(now)
        silences = self.silences.list_silences(state="active", now=now) if relevant else []
        views = {}
        for alert in relevant:
            taken = [EscalationStepOut(step=r.step, rotation=r.rotation, person=r.person, at=r.at)
                     for r in rows.get((alert.fingerprint, alert.episode), [])
                     if r.kind == ESCALATED]
            upcoming = None
            fired = alert.fired_at or alert.active_at
            if (alert.status == AlertStatus.FIRING and alert.acked_at is None
                    and not silenced_by(alert.labels, silences, now)):
                following = next_step(self.policy, alert.severity, fired, now)
                if following is not None:
                    step, at = following
                    rotation = self.policy.severities[alert.severity].steps[step]
                    upcoming = EscalationStepOut(step=step, rotation=rotation,
                                                 person=holders[rotation].name, at=at)
            views[alert.fingerprint] = EscalationOut(
                response_seconds=int(
                    self.policy.severities[alert.severity].response.total_seconds()),
                steps=taken, next=upcoming)
        return views


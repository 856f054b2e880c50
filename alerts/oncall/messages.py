"""The Message an escalation step becomes (pure): who is told, why, and what happens next."""

from __future__ import annotations

from datetime import timedelta

from alerts.delivery.links import LinkSettings, console_alert_url
from alerts.delivery.message import Message
from alerts.oncall.rules import OnCallPolicy, Person
from alerts.oncall.store import RESOLVED, Escalation
from alerts.rules.messages import linked_annotations
from alerts.rules.model import Alert


def _duration(value: timedelta) -> str:
    minutes = int(value.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"{hours} h" + (f" {rest} min" if rest else "")


def escalation_labels(alert: Alert, escalation: Escalation, person: Person) -> dict[str, str]:
    return {
        **alert.labels,
        "alertname": alert.alertname,
        "severity": alert.severity,
        "person": person.name,
        "person_email": person.email,
        "person_slack": person.slack,
        "rotation": escalation.rotation,
        "step": str(escalation.step),
    }


def escalation_message(alert: Alert, escalation: Escalation, *, person: Person,
                       policy: OnCallPolicy, next_up: tuple[str, Person] | None,
                       recipients: tuple[str, ...], links: LinkSettings) -> Message:
    """Step 0 tells the first rotation the alert fired; step n tells the next one that nobody
    acknowledged it in time; `resolved` tells everyone who was told that it is over."""
    annotations = linked_annotations(alert, links=links, resolved=escalation.kind == RESOLVED)
    rule = policy.severities[alert.severity]
    summary_of_alert = annotations.get("summary", alert.alertname)
    fired = alert.fired_at or alert.active_at
    if escalation.kind == RESOLVED:
        summary = (f"Resolved: {alert.alertname} ({alert.severity}), which you were told of "
                   f"as {escalation.rotation} on call")
        description = summary_of_alert
    elif escalation.step == 0:
        summary = (f"{alert.severity} {alert.alertname} is firing: you are {escalation.rotation} "
                   "on call")
        description = summary_of_alert
    else:
        waited = _duration(escalation.at - fired)
        summary = (f"{alert.severity} {alert.alertname} unacknowledged for {waited}: escalated "
                   f"to you ({escalation.rotation})")
        description = summary_of_alert
    if escalation.kind != RESOLVED:
        then = (f"it goes to {next_up[0]} ({next_up[1].name})" if next_up is not None
                else "nobody further is told")
        description += (f"\n\nAcknowledge it within {_duration(rule.response)} (console, Alerts "
                        f"page, or the alerts API), or {then}.")
    return Message(
        kind="escalation",
        fingerprint=alert.fingerprint,
        alertname=alert.alertname,
        state="resolved" if escalation.kind == RESOLVED else "firing",
        severity=alert.severity,
        summary=summary,
        description=description,
        starts_at=fired,
        ends_at=alert.resolved_at if escalation.kind == RESOLVED else None,
        value=alert.value,
        labels=escalation_labels(alert, escalation, person),
        annotations=annotations,
        recipients=recipients,
        runbook_url=annotations.get("runbook_url", ""),
        dashboard_url=annotations.get("dashboard_url", ""),
        logs_url=annotations.get("logs_url", ""),
        traces_url=annotations.get("traces_url", ""),
        console_url=console_alert_url(alert.fingerprint, console_url=links.console_url),
    )


def next_up(policy: OnCallPolicy, severity: str, step: int,
            holder: dict[str, Person]) -> tuple[str, Person] | None:
    """The rotation told after `step`, and who holds it (from `holder`: rotation -> person)."""
    steps = policy.severities[severity].steps
    if step + 1 >= len(steps):
        return None
    rotation = steps[step + 1]
    return rotation, holder[rotation]

"""The Message a group of rule alerts becomes at one receiver (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from alerts.delivery.links import (
    LinkSettings,
    alert_links,
    console_alert_url,
    rewrite_annotations,
)
from alerts.delivery.message import AlertDetail, Message
from alerts.rules.model import Alert

SEVERITY_ORDER = {"P0": 0, "P1": 1, "P2": 2, "P3": 3}


def primary_first(alerts: Sequence[Alert]) -> list[Alert]:
    """The most urgent alert first (severity, then name), the one a group's message leads with."""
    return sorted(alerts, key=lambda a: (SEVERITY_ORDER.get(a.severity, 9), a.alertname,
                                         a.fingerprint))


def linked_annotations(alert: Alert, *, links: LinkSettings, resolved: bool) -> dict[str, str]:
    """The alert's annotations with their links made real, plus `logs_url` and `traces_url`
    for its service and time window where LOGS_BASE_URL and TRACES_BASE_URL are set."""
    return {**rewrite_annotations(alert.annotations, links=links),
            **alert_links(alert.labels, started=alert.active_at,
                          resolved=alert.resolved_at if resolved else None, links=links)}


def alert_detail(alert: Alert, *, resolved: bool, links: LinkSettings) -> AlertDetail:
    return AlertDetail(
        fingerprint=alert.fingerprint,
        status="resolved" if resolved else "firing",
        labels=dict(alert.labels),
        annotations=linked_annotations(alert, links=links, resolved=resolved),
        starts_at=alert.fired_at or alert.active_at,
        ends_at=alert.resolved_at if resolved else None,
        console_url=console_alert_url(alert.fingerprint, console_url=links.console_url),
    )


def rule_message(alerts: Sequence[Alert], *, state: str, recipients: tuple[str, ...],
                 links: LinkSettings, group_labels: Mapping[str, str] | None = None) -> Message:
    """One message for a group of alerts of one receiver (one alert is a group of one).
    `state` is firing, resolved, or acked (someone acknowledged them)."""
    ordered = primary_first(alerts)
    lead = ordered[0]
    resolved = state == "resolved"
    annotations = linked_annotations(lead, links=links, resolved=resolved)
    return Message(
        kind="rule",
        fingerprint=lead.fingerprint,
        alertname=lead.alertname,
        state="resolved" if resolved else "acked" if state == "acked" else "firing",
        severity=lead.severity,
        summary=annotations.get("summary", lead.alertname),
        description=annotations.get("description", ""),
        starts_at=lead.fired_at or lead.active_at,
        value=lead.value,
        ends_at=lead.resolved_at if state == "resolved" else None,
        labels=dict(lead.labels),
        annotations=annotations,
        group=tuple(dict(a.labels) for a in ordered) if len(ordered) > 1 else (),
        values={a.fingerprint: a.value for a in ordered if a.value is not None},
        recipients=recipients,
        runbook_url=annotations.get("runbook_url", ""),
        dashboard_url=annotations.get("dashboard_url", ""),
        logs_url=annotations.get("logs_url", ""),
        traces_url=annotations.get("traces_url", ""),
        console_url=console_alert_url(lead.fingerprint, console_url=links.console_url),
        alerts=tuple(alert_detail(a, resolved=resolved, links=links) for a in ordered),
        group_labels=dict(group_labels) if group_labels is not None
        else {"alertname": lead.alertname},
    )

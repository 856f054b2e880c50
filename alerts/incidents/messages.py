"""The Messages an incident becomes (pure): declared, updated, resolved, and reminders.

Each goes to routes.yml's kind `incident`: the incidents Slack channel always; by email, the
stakeholders the severity names (declaration and resolution only, through the `stakeholders`
label) and the commander (reminders only, through `commander_email`).
"""

from __future__ import annotations

from datetime import datetime

from alerts.delivery.links import LinkSettings
from alerts.delivery.message import Message
from alerts.incidents.rules import Incident, Task
from alerts.rules.model import fingerprint

WHAT = ("declared", "update", "resolved", "reminder", "task")


def incident_url(incident: Incident, links: LinkSettings) -> str:
    return f"{links.console_url.rstrip('/')}/incidents?id={incident.id}"


def incident_message(incident: Incident, *, what: str, text: str, at: datetime,
                     links: LinkSettings, status_page: str = "",
                     stakeholders: tuple[str, ...] = (), commander_email: str = "",
                     task: Task | None = None, tell_stakeholders: bool = False) -> Message:
    """`what`: declared, update, resolved, reminder (an update is due) or task (a checklist item
    is due). `text`: the update's words, the resolution's summary, or the reminder's. The
    stakeholders are emailed at declaration and resolution, and with `tell_stakeholders` (an
    update that changed the severity)."""
    key = incident.key
    if what == "declared":
        summary = f"Incident declared: {key} {incident.title}"
    elif what == "update":
        summary = f"{key} update ({incident.status}): {incident.title}"
    elif what == "resolved":
        summary = f"{key} resolved: {incident.title}"
    elif what == "reminder":
        summary = f"{key}: a status update is due ({incident.severity}, {incident.title})"
    else:
        summary = f"{key}: checklist item due: {task.title if task else ''}"
    lines = []
    if what in ("declared", "resolved") or tell_stakeholders:
        lines += [f"Severity: {incident.severity}", f"Impact: {incident.impact}",
                  f"Commander: {incident.commander}",
                  f"Status page: {status_page or 'not configured: update it by hand'}"]
    if text:
        lines.append(text)
    labels = {"alertname": key, "incident_id": str(incident.id), "incident_what": what,
              "severity": incident.severity, "commander": incident.commander,
              "impact": incident.impact, "incident_status": incident.status,
              "status_page": status_page,
              "stakeholders": (",".join(stakeholders)
                               if what in ("declared", "resolved") or tell_stakeholders else ""),
              "commander_email": commander_email if what in ("reminder", "task") else ""}
    return Message(
        kind="incident",
        fingerprint=fingerprint({"incident": str(incident.id), "what": what,
                                 "at": at.isoformat()}),
        alertname=key,
        state="resolved" if what == "resolved" else "firing",
        severity=incident.severity,
        summary=summary,
        description="\n".join(lines),
        starts_at=incident.declared_at,
        ends_at=incident.resolved_at,
        labels=labels,
        console_url=incident_url(incident, links),
    )

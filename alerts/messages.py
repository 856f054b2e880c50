"""Build the channel Messages the outbox stores, and store them as JSON.

A message is built when it is queued (so a retry sends exactly what was decided) and read back
when it is sent.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from alerts.channels.base import Message
from alerts.domain.budget import BudgetCrossing
from alerts.domain.model import Alert, fingerprint
from alerts.links import LinkSettings, console_alert_url, rewrite_annotations, runbook_url
from billing_core.plans import Plan

BUDGET_ALERTNAME = "BudgetThresholdReached"
SEVERITY_ORDER = {"P0": 0, "P1": 1, "P2": 2, "P3": 3}


def _float_out(value: float | None) -> Any:
    if value is None:
        return None
    if math.isnan(value) or math.isinf(value):
        return str(value)
    return value


def _float_in(value: Any) -> float | None:
    return None if value is None else float(value)


def message_to_json(message: Message) -> str:
    return json.dumps({
        "kind": message.kind,
        "fingerprint": message.fingerprint,
        "alertname": message.alertname,
        "state": message.state,
        "severity": message.severity,
        "summary": message.summary,
        "description": message.description,
        "starts_at": message.starts_at.isoformat(),
        "value": _float_out(message.value),
        "ends_at": message.ends_at.isoformat() if message.ends_at else None,
        "labels": dict(message.labels),
        "annotations": dict(message.annotations),
        "group": [dict(member) for member in message.group],
        "values": {k: _float_out(v) for k, v in message.values.items()},
        "recipients": list(message.recipients),
        "runbook_url": message.runbook_url,
        "dashboard_url": message.dashboard_url,
        "console_url": message.console_url,
    }, sort_keys=True)


def message_from_json(raw: str) -> Message:
    data = json.loads(raw)
    return Message(
        kind=data["kind"],
        fingerprint=data["fingerprint"],
        alertname=data["alertname"],
        state=data["state"],
        severity=data["severity"],
        summary=data["summary"],
        description=data["description"],
        starts_at=datetime.fromisoformat(data["starts_at"]),
        value=_float_in(data.get("value")),
        ends_at=datetime.fromisoformat(data["ends_at"]) if data.get("ends_at") else None,
        labels=data.get("labels", {}),
        annotations=data.get("annotations", {}),
        group=tuple(data.get("group", [])),
        values={k: float(v) for k, v in data.get("values", {}).items() if v is not None},
        recipients=tuple(data.get("recipients", [])),
        runbook_url=data.get("runbook_url", ""),
        dashboard_url=data.get("dashboard_url", ""),
        console_url=data.get("console_url", ""),
    )


def primary_first(alerts: Sequence[Alert]) -> list[Alert]:
    """The most urgent alert first (severity, then name), the one a group's message leads with."""
    return sorted(alerts, key=lambda a: (SEVERITY_ORDER.get(a.severity, 9), a.alertname,
                                         a.fingerprint))


def rule_message(alerts: Sequence[Alert], *, state: str, recipients: tuple[str, ...],
                 links: LinkSettings) -> Message:
    """One message for a group of alerts of one receiver (one alert is a group of one)."""
    ordered = primary_first(alerts)
    lead = ordered[0]
    annotations = rewrite_annotations(lead.annotations, links=links)
    return Message(
        kind="rule",
        fingerprint=lead.fingerprint,
        alertname=lead.alertname,
        state="resolved" if state == "resolved" else "firing",
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
        console_url=console_alert_url(lead.fingerprint, console_url=links.console_url),
    )


def budget_labels(crossing: BudgetCrossing, plan: Plan | None) -> dict[str, str]:
    labels = {
        "alertname": BUDGET_ALERTNAME,
        "org_id": crossing.org_id,
        "org_name": crossing.org_name,
        "billing_email": crossing.email,
        "plan": crossing.plan,
        "period": crossing.period,
        "threshold": str(crossing.threshold),
    }
    if plan is not None:
        labels["plan_name"] = plan.name
        labels["overage_allowed"] = "true" if plan.overage_allowed else "false"
    return labels


def budget_fingerprint(org_id: str, period: str, threshold: int) -> str:
    return fingerprint({"alertname": BUDGET_ALERTNAME, "org_id": org_id, "period": period,
                        "threshold": str(threshold)})


def budget_message(crossing: BudgetCrossing, *, plan: Plan | None, recipients: tuple[str, ...],
                   now: datetime, links: LinkSettings) -> Message:
    labels = budget_labels(crossing, plan)
    values: dict[str, float] = {"used_hours": crossing.used_hours,
                                "included_hours": crossing.included_hours}
    if plan is not None and plan.overage_allowed:
        values["overage_cents_per_hour"] = float(plan.overage_cents_per_hour)
    summary = (f"{crossing.org_name} used {crossing.threshold} % of the included hours for "
               f"{crossing.period}")
    return Message(
        kind="budget",
        fingerprint=budget_fingerprint(crossing.org_id, crossing.period, crossing.threshold),
        alertname=BUDGET_ALERTNAME,
        state="firing",
        severity="P3",
        summary=summary,
        description=(f"{crossing.used_hours:g} h of {crossing.included_hours:g} h included "
                     f"hours used ({crossing.percent_used:g} %)."),
        starts_at=now,
        value=crossing.percent_used,
        labels=labels,
        values=values,
        recipients=recipients,
        console_url=f"{links.console_url}/customers?{_query({'org_id': crossing.org_id})}",
    )


def delivery_test_message(*, channel: str, recipients: tuple[str, ...], requested_by: str,
                          now: datetime, links: LinkSettings) -> Message:
    return Message(
        kind="test",
        fingerprint=fingerprint({"alertname": "DeliveryTest", "at": now.isoformat()}),
        alertname="DeliveryTest",
        state="firing",
        severity="P3",
        summary=f"Alerts delivery check ({channel})",
        description=(f"Requested by {requested_by}. If you can read this, the alerts process "
                     f"can deliver {channel} messages with its current settings."),
        starts_at=now,
        recipients=recipients,
        runbook_url=runbook_url("alerting", "alertdeliveryerrors",
                                base_url=links.runbook_base_url),
        dashboard_url=f"{links.grafana_url}/d/billing-alerting",
        console_url=f"{links.console_url}/alerts",
    )


def _query(params: Mapping[str, str]) -> str:
    from urllib.parse import urlencode

    return urlencode(params)

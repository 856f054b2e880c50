"""The contract between the outbox worker and the channels, and the message the outbox stores.

The worker owns retries, backoff, the notification log and metrics. A channel only tries once
and says how it went: sent, retry later (optionally after `retry_after` seconds), or give up.

A message is built when it is queued (so a retry sends exactly what was decided), stored as JSON
(`message_to_json`) and read back when it is sent (`message_from_json`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from alerts.delivery.links import LinkSettings, runbook_url
from alerts.rules.model import fingerprint

Kind = Literal["rule", "budget", "test", "escalation", "incident"]
# "acked": someone acknowledged the alert (told to channels that track acknowledgements).
State = Literal["firing", "resolved", "acked"]


@dataclass(frozen=True)
class AlertDetail:
    """One alert of a rule message with its own labels, annotations (links made real) and
    times: what receivers built for Alertmanager, and PagerDuty, get for each alert of a group.
    `starts_at` is when it fired; `ends_at` when it resolved (None while it fires)."""

    fingerprint: str
    status: Literal["firing", "resolved"]
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime
    ends_at: datetime | None = None
    console_url: str = ""  # the console's page for this alert


@dataclass(frozen=True)
class Message:
    """One notification to one receiver, fully rendered apart from the channel's own format.

    - kind "rule": an alerting rule from prometheus/rules (labels carry alertname, severity,
      slo, ...; annotations carry summary, description, runbook_url, dashboard_url, already
      templated and with their URL prefixes rewritten to RUNBOOK_BASE_URL / GRAFANA_URL).
    - kind "budget": an org crossed a share of its included hours. labels carry org_id,
      org_name, threshold ("50", "90", "100"), period ("2026-11"); values: used_hours,
      included_hours. Emailed to the org's billing email; support gets a Slack line.
    - kind "test": a test message sent on demand to check the configuration.
    - kind "escalation": one person is told of a firing alert as a step of the on-call policy
      (or that one they were told of resolved); labels carry person, person_email,
      person_slack, rotation, step besides the alert's own.
    - kind "incident": an incident declared, updated or resolved.
    """

    kind: Kind
    fingerprint: str
    alertname: str
    state: State
    severity: str  # P0..P3
    summary: str
    description: str
    starts_at: datetime
    value: float | None = None
    ends_at: datetime | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    # group members when several alerts of one name are sent together (fingerprint -> labels)
    group: tuple[Mapping[str, str], ...] = ()
    values: Mapping[str, float] = field(default_factory=dict)
    recipients: tuple[str, ...] = ()  # email addresses (email channel only)
    runbook_url: str = ""
    dashboard_url: str = ""
    # The service's logs and traces over the alert's window (LOGS_BASE_URL, TRACES_BASE_URL);
    # empty when not configured or when the alert is about none of our processes.
    logs_url: str = ""
    traces_url: str = ""
    console_url: str = ""  # the console's alert page for this alert
    # Rule messages: each alert it carries, and the labels that made its group at the route
    # (group_by, or the slo label). Messages queued before these existed have neither.
    alerts: tuple[AlertDetail, ...] = ()
    group_labels: Mapping[str, str] = field(default_factory=dict)


def alert_details(message: Message) -> tuple[AlertDetail, ...]:
    """The alerts of a message; one made of the message's own fields when it lists none. The
    messages of one incident (declared, updates, resolved) are one alert, keyed by the incident,
    so a receiver that tracks alerts (PagerDuty) opens it once and closes it at resolution."""
    if message.alerts:
        return message.alerts
    incident = message.labels.get("incident_id") if message.kind == "incident" else None
    return (AlertDetail(
        fingerprint=fingerprint({"incident": incident}) if incident else message.fingerprint,
        status="resolved" if message.state == "resolved" else "firing",
        labels=message.labels, annotations=message.annotations, starts_at=message.starts_at,
        ends_at=message.ends_at if message.state == "resolved" else None,
        console_url=message.console_url),)


@dataclass(frozen=True)
class NotificationKey:
    """What the notification log holds at most once, ever: a rule alert's notification to one
    receiver, in one state, in one repeat bucket (`<episode>/<n>` or `<episode>/resolved`)."""

    fingerprint: str
    receiver: str
    state: str
    repeat_bucket: str

    @property
    def episode(self) -> int:
        return episode_of(self.repeat_bucket)


def episode_of(repeat_bucket: str) -> int:
    return int(repeat_bucket.split("/", 1)[0])


@dataclass(frozen=True)
class DeliveryResult:
    ok: bool
    permanent: bool = False  # true: retrying cannot help (bad address, 4xx other than 429)
    retry_after: float | None = None  # seconds the receiver asked us to wait (Slack 429)
    reason: str = ""  # bounded: used as a metric label (e.g. "timeout", "http_500", "rate_limited")
    detail: str = ""  # free text for the log and the notification log; never a secret


class Channel(Protocol):
    name: str  # "email" | "slack" | "webhook" | "pagerduty"

    def send(self, message: Message) -> DeliveryResult: ...


# -- the outbox's JSON form -----------------------------------------------------------------


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
        "logs_url": message.logs_url,
        "traces_url": message.traces_url,
        "console_url": message.console_url,
        "alerts": [_detail_out(detail) for detail in message.alerts],
        "group_labels": dict(message.group_labels),
    }, sort_keys=True)


def _detail_out(detail: AlertDetail) -> dict[str, Any]:
    return {"fingerprint": detail.fingerprint, "status": detail.status,
            "labels": dict(detail.labels), "annotations": dict(detail.annotations),
            "starts_at": detail.starts_at.isoformat(),
            "ends_at": detail.ends_at.isoformat() if detail.ends_at else None,
            "console_url": detail.console_url}


def _detail_in(data: dict[str, Any]) -> AlertDetail:
    return AlertDetail(fingerprint=data["fingerprint"], status=data["status"],
                       labels=data.get("labels", {}), annotations=data.get("annotations", {}),
                       starts_at=datetime.fromisoformat(data["starts_at"]),
                       ends_at=datetime.fromisoformat(data["ends_at"]) if data.get("ends_at")
                       else None,
                       console_url=data.get("console_url", ""))


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
        logs_url=data.get("logs_url", ""),
        traces_url=data.get("traces_url", ""),
        console_url=data.get("console_url", ""),
        alerts=tuple(_detail_in(detail) for detail in data.get("alerts", [])),
        group_labels=data.get("group_labels", {}),
    )


def delivery_test_message(*, channel: str, recipients: tuple[str, ...], requested_by: str,
                          now: datetime, links: LinkSettings) -> Message:
    """The message `test-email` and `test-slack` send: it says who asked, and no alert fires."""
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

"""PagerDuty Events API v2: each alert of a Message becomes one event, posted once.

The wire format is PagerDuty's published one (its OpenAPI document for the Events API v2 and
the "Send an Alert Event" page): `POST https://events.pagerduty.com/v2/enqueue` with
`routing_key` (the service integration's 32-character key), `event_action` and `dedup_key`;
a trigger also carries `payload` (`summary` of at most 1024 characters, `source`, `severity`,
`timestamp`, `component`, `group`, `class`, `custom_details`), `client`, `client_url` and
`links`. Acknowledge and resolve carry only the routing key, the action and the dedup key.

- The dedup key is the alert's fingerprint: the same for every repeat and for the resolve of an
  episode, so PagerDuty keeps one alert per alert of ours, and an acknowledgement made through
  our API or console reaches the alert PagerDuty opened. A group of alerts in one message is
  one event per alert.
- firing -> trigger, acked -> acknowledge, resolved -> resolve. Acknowledgements made in
  PagerDuty are not read back.
- Escalation messages (routes.yml kind `escalation`) are keyed by their alert's fingerprint,
  so they add to the alert the page opened; an incident's messages (kind `incident`) are one
  alert keyed by the incident: declaring triggers it, updates add to it, resolving resolves it.
- Severity: P0 critical, P1 error, P2 warning, P3 info; any other severity error.
- Answers: 202 (any 2xx) is sent; 400 (PagerDuty found the event invalid) and other 4xx are a
  permanent `rejected`; 429 is `rate_limited`, retried after `Retry-After` or, when PagerDuty
  gives none, after 30 s (its documentation asks for a pause between retries); 5xx is
  `server_error`. The first event refused stops the message; a retry posts every event again,
  which PagerDuty takes as it should (a trigger adds to the open alert, a resolve of a resolved
  alert is dropped).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from alerts.delivery.http import post_json
from alerts.delivery.message import AlertDetail, DeliveryResult, Message, alert_details
from alerts.delivery.wording import format_value, one_line

DEFAULT_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
DEFAULT_PAGERDUTY_TIMEOUT_SECONDS = 10.0
ROUTING_KEY_LENGTH = 32
SUMMARY_LIMIT = 1024
RATE_LIMIT_WAIT_SECONDS = 30.0
SEVERITIES = {"P0": "critical", "P1": "error", "P2": "warning", "P3": "info"}
ACTIONS = {"firing": "trigger", "acked": "acknowledge", "resolved": "resolve"}
CLIENT = "Billing ops alerts"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _links(detail: AlertDetail) -> list[dict[str, str]]:
    found = [(detail.annotations.get("runbook_url", ""), "Runbook"),
             (detail.annotations.get("dashboard_url", ""), "Dashboard"),
             (detail.annotations.get("logs_url", ""), "Logs"),
             (detail.annotations.get("traces_url", ""), "Traces"),
             (detail.console_url, "Alert in console")]
    return [{"href": href, "text": text} for href, text in found if href]


def _trigger_payload(detail: AlertDetail, message: Message) -> dict[str, Any]:
    labels = detail.labels
    severity = labels.get("severity", message.severity)
    name = labels.get("alertname", message.alertname)
    summary = one_line(detail.annotations.get("summary", ""))
    # An alert's own summary after its name; an incident's message says it all by itself.
    title = f"{name}: {summary}" if summary else one_line(message.summary) or name
    payload: dict[str, Any] = {
        "summary": _cut(f"[{severity}] {title}", SUMMARY_LIMIT),
        "timestamp": detail.starts_at.isoformat(),
        "severity": SEVERITIES.get(severity, "error"),
        # where it broke: the instance, else the service, else the scrape job
        "source": labels.get("instance") or labels.get("service") or labels.get("job")
        or "billing-alerts",
        "component": labels.get("service") or labels.get("job", ""),
        "group": labels.get("slo", ""),
        "class": "incident" if message.kind == "incident" else name,
    }
    details: dict[str, Any] = {
        "description": detail.annotations.get("description", "").strip(),
        "firing_since": detail.starts_at.isoformat(),
        "labels": dict(labels),
        "fingerprint": detail.fingerprint,
    }
    if detail.fingerprint in message.values:
        details["value"] = format_value(message.values[detail.fingerprint])
    elif detail.fingerprint == message.fingerprint and message.value is not None:
        details["value"] = format_value(message.value)
    payload["custom_details"] = details
    return {key: value for key, value in payload.items() if value != ""}


def _console(message: Message) -> str:
    parts = urlsplit(message.console_url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def build_events(message: Message, *, routing_key: str) -> list[dict[str, Any]]:
    """The events a message becomes, one per alert it carries."""
    action = ACTIONS[message.state]
    events = []
    for detail in alert_details(message):
        event: dict[str, Any] = {"routing_key": routing_key, "event_action": action,
                                 "dedup_key": detail.fingerprint}
        if action == "trigger":
            event["payload"] = _trigger_payload(detail, message)
            event["client"] = CLIENT
            if message.console_url:
                event["client_url"] = _console(message)
            links = _links(detail)
            if links:
                event["links"] = links
        events.append(event)
    return events


class PagerDutyChannel:
    """Sends to one PagerDuty service through its Events API v2 integration. The routing key is
    a secret: never in a detail or a repr."""

    name = "pagerduty"

    def __init__(self, routing_key: str, *, url: str = DEFAULT_EVENTS_URL,
                 timeout_seconds: float = DEFAULT_PAGERDUTY_TIMEOUT_SECONDS,
                 client: httpx.Client | None = None) -> None:
        self.routing_key = routing_key
        self.url = url
        self.timeout_seconds = timeout_seconds
        self._own_client = client is None
        self._client = client or httpx.Client(follow_redirects=False)

    def __repr__(self) -> str:
        return f"PagerDutyChannel(timeout_seconds={self.timeout_seconds})"

    def close(self) -> None:
        if self._own_client:
            self._client.close()

    def send(self, message: Message) -> DeliveryResult:
        if not self.routing_key:
            return DeliveryResult(ok=False, permanent=True, reason="rejected",
                                  detail="no PagerDuty routing key set")
        if message.kind == "budget":
            return DeliveryResult(ok=False, permanent=True, reason="rejected",
                                  detail="budget messages go to email and Slack only")
        try:
            events = build_events(message, routing_key=self.routing_key)
        except (KeyError, ValueError) as exc:
            return DeliveryResult(ok=False, permanent=True, reason="rejected",
                                  detail=f"cannot build: {exc!r}")
        accepted = []
        for event in events:
            result, _response = post_json(
                self._client, self.url, event, timeout=self.timeout_seconds,
                secrets=(self.routing_key,), rate_limit_wait=RATE_LIMIT_WAIT_SECONDS)
            if not result.ok:
                return result
            accepted.append(event["dedup_key"])
        return DeliveryResult(ok=True, detail=f"PagerDuty accepted {ACTIONS[message.state]} "
                                              f"for {', '.join(accepted)}")
